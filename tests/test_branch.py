"""`kdasr train --branch-from`: a student branched from another run's epoch checkpoint continues
that run exactly (weights, Adam state, schedule and batch position, RNGs) with its own loss.

A --kd none branch from epoch-1 of a tiny run, trained one more epoch, equals the source run's own
epoch 2 bit for bit (so data order, schedule and RNG are carried over); a KD branch differs;
mismatched architecture, tokenizer or schedule are refused in one line."""

from __future__ import annotations

import pytest
import torch
from conftest import run_kdasr

from kdasr.errors import KdasrError
from kdasr.training.checkpoint import load_checkpoint
from kdasr.training.presets import read_preset
from kdasr.training.recipe import run_training
from kdasr.training.request import TrainRun

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _args(corpus, feats, out, *extra: str) -> list[str]:
    return [
        "train", "--train", str(corpus / "train.jsonl"), "--dev", str(corpus / "dev.jsonl"),
        "--tokenizer", str(corpus / "tokenizer.model"), "--config", "tiny", "--threads", "1",
        "--feature-cache", str(feats), "--out", str(out), *extra,
    ]


@pytest.fixture(scope="module")
def source_run(tiny_corpus, tmp_path_factory):
    """A tiny baseline trained two epochs (epoch-1.pt and epoch-2.pt kept)."""
    root = tmp_path_factory.mktemp("branch")
    c = tiny_corpus
    run_training(TrainRun(c / "train.jsonl", c / "dev.jsonl", c / "tokenizer.model", root / "src", config="tiny",
                          feature_cache=root / "feats", epochs=2, threads=1), read_preset("tiny"))
    assert (root / "src" / "epoch-1.pt").is_file() and (root / "src" / "epoch-2.pt").is_file()
    return root


@pytest.fixture(scope="module")
def lm_soft_labels(tiny_corpus, source_run):
    """Real soft labels from a (barely trained) LM teacher on the tiny corpus' units."""
    from kdasr.models.lm import LMConfig
    from kdasr.teachers.common import TeacherTrainConfig
    from kdasr.teachers.run import run_lm_teacher, run_soft_labels
    from kdasr.teachers.soft_labels import SoftLabelConfig
    from kdasr.text import Tokenizer

    tok = tiny_corpus / "tokenizer.model"
    lm = source_run / "lm"
    cfg = LMConfig(vocab_size=Tokenizer(tok).vocab_size, d_model=32, layers=1, heads=2, ff_dim=64)
    run_lm_teacher(tiny_corpus / "teacher.txt", tok, lm, cfg, TeacherTrainConfig(steps=5, threads=1, warmup_steps=2))
    soft = source_run / "soft-lm"
    run_soft_labels([tiny_corpus / "train.jsonl"], tok, lm, soft, SoftLabelConfig(), threads=1, progress=False)
    torch.set_num_threads(1)
    return soft


def test_branch_without_kd_equals_the_source_continued(tiny_corpus, source_run):
    src, feats = source_run / "src", source_run / "feats"
    source = load_checkpoint(src / "epoch-1.pt")
    run_kdasr(*_args(tiny_corpus, feats, source_run / "plain", "--epochs", "2",
                     "--branch-from", str(src / "epoch-1.pt")))
    a, b = load_checkpoint(src / "epoch-2.pt"), load_checkpoint(source_run / "plain" / "epoch-2.pt")
    assert b["step"] == a["step"] > source["step"] and b["epoch"] == a["epoch"] == 2
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert b["elapsed"] > source["elapsed"]  # the source's training time carries on
    record = b["summary"]["branched_from"]
    assert record["path"] == str(src / "epoch-1.pt")
    assert (record["step"], record["epoch"], record["kd"]) == (source["step"], 1, "none")
    assert record["started"] == source["summary"]["started"]
    # its logs begin at the branch point
    steps = [int(r.split(",")[0]) for r in (source_run / "plain" / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(source["step"] + 1, a["step"] + 1))


def test_kd_branch_differs_and_resumes_as_a_branch(tiny_corpus, source_run, lm_soft_labels, tmp_path):
    src, feats = source_run / "src", source_run / "feats"
    out = tmp_path / "lm-kd"
    kd = ["--kd", "lm", "--soft-labels", str(lm_soft_labels), "--kd-weight", "0.5"]
    base = _args(tiny_corpus, feats, out, *kd, "--branch-from", str(src / "epoch-1.pt"))
    source = load_checkpoint(src / "epoch-1.pt")
    run_kdasr(*base, "--max-steps", str(source["step"] + 1))  # one step, then stops with last.pt
    first = load_checkpoint(out / "last.pt")
    assert first["step"] == source["step"] + 1 and first["summary"]["kd"] == "lm"
    assert first["summary"]["branched_from"]["kd"] == "none"
    run_kdasr(*base, "--epochs", "2")  # the same command again: resumes the branch to the epoch end
    done = load_checkpoint(out / "epoch-2.pt")
    assert done["summary"]["branched_from"] == first["summary"]["branched_from"]
    assert done["summary"]["started"] == first["summary"]["started"]
    assert done["summary"]["kd_weight"] == 0.5 and done["train_config"]["kd"] == "lm"
    plain = load_checkpoint(src / "epoch-2.pt")
    assert done["step"] == plain["step"]
    assert any(not torch.equal(v, done["model"][k]) for k, v in plain["model"].items())
    header, *rows = (out / "train_log.csv").read_text().splitlines()
    soft = header.split(",").index("soft")
    assert all(float(r.split(",")[soft]) > 0 for r in rows)
    # OUT holds a branch of epoch-1; branching it from another checkpoint is refused
    with pytest.raises(KdasrError, match="is a branch of"):
        run_training(TrainRun(tiny_corpus / "train.jsonl", tiny_corpus / "dev.jsonl", tiny_corpus / "tokenizer.model",
                              out, config="tiny", feature_cache=feats, kd="lm", soft_labels=lm_soft_labels,
                              branch_from=src / "epoch-2.pt"), read_preset("tiny"))


def test_mismatched_branches_are_refused_in_one_line(tiny_corpus, source_run, tmp_path):
    from kdasr.text import train_tokenizer
    from kdasr.training.presets import CONFIG_DIR

    src, feats = source_run / "src", source_run / "feats"
    ck = str(src / "epoch-1.pt")
    wider = tmp_path / "wider.toml"
    wider.write_text((CONFIG_DIR / "tiny.toml").read_text().replace("d_model = 32", "d_model = 48"))
    other_units = train_tokenizer([tiny_corpus / "teacher.txt"], tmp_path / "bpe", vocab_size=60, model_type="bpe")
    cases = [
        (["--config", str(wider)], f"cannot branch from it with --config {wider}: the checkpoint's architecture "
         "differs (checkpoint vs now: d_model 32 vs 48)"),
        (["--tokenizer", str(other_units)], "cannot branch from it with " + str(other_units)),
        (["--lr", "1e-4"], "training settings differ (checkpoint vs now: lr 0.002 vs 0.0001)"),
    ]
    c = tiny_corpus
    with pytest.raises(KdasrError, match="exclude each other"):
        TrainRun(c / "train.jsonl", c / "dev.jsonl", c / "tokenizer.model", tmp_path / "x", config="tiny",
                 branch_from=src / "epoch-1.pt", init_from=src / "epoch-1.pt")
    for extra, message in cases:
        args = _args(tiny_corpus, feats, tmp_path / "x", "--branch-from", ck)
        if extra[0] in ("--config", "--tokenizer"):
            args[args.index(extra[0]) + 1] = extra[1]
        else:
            args += extra
        proc = run_kdasr(*args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "x" / "last.pt").exists()
