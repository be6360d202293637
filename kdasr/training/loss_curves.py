"""Training curves from the runs' own logs, nothing decoded: each run's training loss at every logged
step (train_log.csv: `att`, the attention objective it optimises, KD term included, and `loss`, with the
CTC term) and its dev loss at each epoch end (dev_log.csv: its own objective on the dev transcripts, with
its label smoothing and CTC weight, no soft labels). Each is the run's own objective, so the curves show
how each seed trained, not which system is better (`kdasr curves` decodes; the claim tables compare).
One panel per group of runs (a run's parent folder: the claim recipe's system), one line per run in it
(its seed): every seed's curve, where `kdasr curves` has a point per epoch checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import KdasrError
from ..io_utils import atomic_open

FIELDS = ["group", "run", "step", "loss", "att", "dev_loss"]


def _rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit()]
    except OSError:
        return []


def loss_rows(run_dirs: list[Path]) -> list[dict]:
    """One row per logged training step and per dev evaluation of each run (group: the run's parent
    folder's name; run: its own). A run without train_log.csv is a one-line error naming it."""
    rows: list[dict] = []
    for run in map(Path, run_dirs):
        train = _rows(run / "train_log.csv")
        if not train:
            raise KdasrError(f"{run}: no train_log.csv with logged steps (a `kdasr train --out` folder?)")
        who = {"group": run.parent.name, "run": run.name}
        rows += [{**who, "step": int(r["step"]), "loss": r.get("loss", ""), "att": r.get("att", ""), "dev_loss": ""}
                 for r in train]
        rows += [{**who, "step": int(r["step"]), "loss": "", "att": "", "dev_loss": r.get("dev_loss", "")}
                 for r in _rows(run / "dev_log.csv") if r.get("dev_loss")]
    return rows


def write_loss_csv(rows: list[dict], path: Path) -> None:
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _smooth(values: list[float], n: int) -> list[float]:
    """Trailing mean over N logged steps (the per-batch loss is noisy)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - n] if i >= n else 0.0)
        out.append(total / min(i + 1, n))
    return out


def plot_loss_curves(rows: list[dict], path: Path, smooth: int = 10, title: str = "") -> None:
    """A panel per group: each run's attention training loss (line, trailing mean over SMOOTH logged
    steps) and its dev loss at each epoch end (ringed points, same colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(r["group"] for r in rows))
    cols = min(3, len(groups)) or 1
    nrows = -(-len(groups) // cols) or 1
    fig, axes = plt.subplots(nrows, cols, figsize=(max(8, 5 * cols), 3.8 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    for ax, group in zip(axes.flat, groups):
        runs = list(dict.fromkeys(r["run"] for r in rows if r["group"] == group))
        for i, run in enumerate(runs):
            mine = [r for r in rows if r["group"] == group and r["run"] == run]
            train = sorted((r["step"], float(r["att"])) for r in mine if r["att"] != "")
            dev = sorted((r["step"], float(r["dev_loss"])) for r in mine if r["dev_loss"] != "")
            color = f"C{i % 10}"
            if train:
                ax.plot([s for s, _ in train], _smooth([v for _, v in train], smooth), color=color, lw=1.2,
                        label=run)
            if dev:  # one legend entry per run: the rings are its dev loss
                ax.plot([s for s, _ in dev], [v for _, v in dev], "o--", mfc="none", color=color, ms=6)
        ax.set_title(group, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("loss (nats per unit)")
    fig.suptitle(title or "each run's own objective: training loss (lines, attention, smoothed) and dev loss "
                 "(rings, at epoch ends)", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
