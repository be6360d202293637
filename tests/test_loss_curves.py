"""Every run's training and dev loss read from its own logs (kdasr/training/loss_curves.py): rows per
logged step and per epoch-end evaluation, grouped by the run's parent folder (the claim recipe's system),
a CSV and a PNG with a panel per group; a folder without a training log is one line naming it."""

from __future__ import annotations

import csv

import pytest

from kdasr.errors import KdasrError
from kdasr.training.loss_curves import loss_rows, plot_loss_curves, write_loss_csv

TRAIN = ["step", "epoch", "loss", "att", "ctc", "soft", "hard", "lr", "elapsed_s"]  # the trainer's columns
DEV = ["step", "epoch", "dev_loss", "dev_ctc_wer", "elapsed_s"]


def _run(folder, losses, dev):
    folder.mkdir(parents=True)
    with (folder / "train_log.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRAIN)
        for i, v in enumerate(losses, 1):
            w.writerow([20 * i, 0, v + 1, v, 2 * v, "", "", "1e-3", i])
    with (folder / "dev_log.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DEV)
        for step, v in dev:
            w.writerow([step, 0, v, 50.0, 1])


def test_rows_csv_and_a_panel_per_system(tmp_path):
    runs = []
    for system in ("ce", "bert"):
        for seed in (1, 2):
            runs.append(tmp_path / system / f"s{seed}")
            _run(runs[-1], [5.0 - 0.1 * i - 0.01 * seed for i in range(30)], [(300, 3.0), (600, 2.5)])
    rows = loss_rows(runs)
    assert len(rows) == 4 * (30 + 2)
    assert {(r["group"], r["run"]) for r in rows} == {(g, s) for g in ("ce", "bert") for s in ("s1", "s2")}
    first = next(r for r in rows if r["group"] == "bert" and r["run"] == "s2" and r["att"] != "")
    assert first["step"] == 20 and float(first["att"]) == pytest.approx(4.98) and float(first["loss"]) > 5.9
    assert [r["dev_loss"] for r in rows if r["run"] == "s1" and r["group"] == "ce" and r["dev_loss"]] == ["3.0", "2.5"]
    out, png = tmp_path / "report" / "loss-curves.csv", tmp_path / "report" / "loss-curves.png"
    out.parent.mkdir()
    write_loss_csv(rows, out)
    with out.open(newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows) and back[0].keys() == {"group", "run", "step", "loss", "att", "dev_loss"}
    plot_loss_curves(rows, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_folder_without_a_training_log_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KdasrError, match=r"empty: no train_log.csv"):
        loss_rows([tmp_path / "empty"])
