"""Training options declared once (issue 25 item 2): `kdasr train`'s flags are TrainRun's fields, a
request overrides the preset as the flags did, one KdMode type spells the KD mode everywhere, the
preset is read at the entry point only, and the typed checkpoint reads a file the trainer wrote
before it existed (and writes the same keys)."""

from __future__ import annotations

import ast
import dataclasses
import shutil
import sys
from pathlib import Path

import pytest
import torch
import typer

from kdasr.cli import app
from kdasr.errors import KdasrError, ModelError
from kdasr.teachers.kd_mode import BERT_LABEL_MODES, KdMode, bert_label_mode
from kdasr.training.checkpoint import TrainingCheckpoint, check_resumable, load_checkpoint
from kdasr.training.config import TrainConfig
from kdasr.training.presets import read_preset
from kdasr.training.request import TrainRun

ROOT = Path(__file__).resolve().parents[1]
OLD_CHECKPOINT = ROOT / "tests" / "data" / "checkpoint-v0.1-739659c.pt"  # see tests/data/make_old_checkpoint.py
RUN = dict(train_manifest="t.jsonl", dev_manifest="d.jsonl", tokenizer="tok.model", out="exp")


def _train_command():
    return typer.main.get_command(app).commands["train"]


def test_every_train_flag_is_a_field_and_every_field_a_flag():
    params = {p.name: p for p in _train_command().params if p.name != "help"}
    fields = {f.name: f for f in dataclasses.fields(TrainRun)}
    assert list(params) == list(fields)  # same names, same order
    for name, f in fields.items():
        p = params[name]
        flags = list(f.metadata["flags"]) or [f"--{name.replace('_', '-')}"]
        assert p.opts == flags and p.help == f.metadata["help"], name
        want = None if f.default is dataclasses.MISSING else f.default
        want = want.value if isinstance(want, KdMode) else (None if want == () else want)
        assert p.required == (f.default is dataclasses.MISSING) and p.default == want, name
    # what the rest of the project passes: the flags the tests and the recipe use are all still there
    assert {"--train", "--dev", "--out", "-o", "--kd", "--branch-from", "--snapshot", "--no-resume"} <= {
        o for p in params.values() for o in (*p.opts, *p.secondary_opts)
    }


def test_fields_that_set_a_train_config_field_name_one():
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    sets = {f.name: f.metadata["sets"] for f in dataclasses.fields(TrainRun) if f.metadata["sets"]}
    assert set(sets.values()) <= known and len(set(sets.values())) == len(sets)


def test_parsed_flags_build_the_request_the_library_gets():
    """The command line's values (click's parse, as `kdasr train` runs it) become a typed TrainRun."""
    cmd = _train_command()
    required = ["--train", "t.jsonl", "--dev", "d.jsonl", "--tokenizer", "tok.model", "-o", "exp"]
    args = [*required, "--kd", "bert-context", "--soft-labels", "soft", "--snapshot", "5", "--snapshot", "10",
            "--lr", "1e-4", "--no-resume"]
    run = TrainRun(**cmd.make_context("train", args).params)  # (click consumes the list it is given)
    assert run.kd is KdMode.BERT_CONTEXT and run.snapshot == (5.0, 10.0) and run.out == Path("exp")
    assert run.soft_labels == Path("soft") and run.resume is False and run.config == "demo"
    base = read_preset("tiny").train
    cfg = run.train_config(base)
    assert cfg.kd is KdMode.BERT_CONTEXT and cfg.kd_weight == 0.3 and cfg.lr == 1e-4
    assert cfg.snapshot_minutes == (5.0, 10.0) and cfg.max_frames == base.max_frames
    defaults = TrainRun(**cmd.make_context("train", required).params)
    assert defaults.train_config(base) == dataclasses.replace(base, kd=KdMode.NONE, kd_weight=0.0)
    assert TrainRun(**RUN, kd="lm", soft_labels="s", kd_weight=0.0, minutes=2).train_config(base).kd_weight == 0.0
    assert TrainRun(**RUN, minutes=2.5).train_config(base).max_minutes == 2.5


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kd": "bert-ctx"}, "--kd must be one of none, lm, bert, bert-context, count, got 'bert-ctx'"),
        ({"kd": "lm"}, "--kd lm needs --soft-labels DIR"),
        ({"init_from": "a.pt", "branch_from": "b.pt"}, "--init-from and --branch-from exclude each other"),
    ],
)
def test_requests_that_cannot_run_are_refused_in_one_line(kw, message):
    with pytest.raises(KdasrError, match=message.replace("(", r"\(")):
        TrainRun(**RUN, **kw)


def test_one_kd_mode_type_for_the_flag_the_soft_labels_and_the_trainer():
    assert [m.value for m in KdMode] == ["none", "lm", "bert", "bert-context", "count"]  # unchanged on CLI and disk
    for mode in KdMode:
        assert KdMode.parse(mode.value) is mode and f"{mode}" == mode.value
        if mode is not KdMode.NONE:  # the soft labels' meta.json (teacher, mode) names it back
            assert KdMode.of_soft_labels(mode.teacher, mode.label_mode) is mode
    assert [bert_label_mode(m) for m in BERT_LABEL_MODES] == [KdMode.BERT, KdMode.BERT_CONTEXT]
    assert KdMode.BERT_CONTEXT.context and not KdMode.BERT.context and KdMode.LM.label_mode == "causal"
    assert KdMode.of_soft_labels("lm", "context") is None
    assert (KdMode.COUNT.teacher, KdMode.COUNT.label_mode, KdMode.COUNT.default_weight) == (
        "count", "two-sided-count", 0.1) and not KdMode.COUNT.context
    with pytest.raises(KdasrError, match="unknown soft-label mode 'two-sided-count'"):
        bert_label_mode("two-sided-count")  # not a BERT input mode
    with pytest.raises(KdasrError, match="unknown soft-label mode 'causal'"):
        bert_label_mode("causal")
    assert TrainConfig(kd="bert").kd is KdMode.BERT  # a preset's or a caller's string becomes the type
    assert TrainConfig(kd="bert-context").to_dict()["kd"].__class__ is str  # plain in checkpoints


def test_no_library_module_reads_a_config_by_name():
    """Presets are read at the entry points (kdasr/cli/); the library gets the objects."""
    readers = []
    for path in sorted((ROOT / "kdasr").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "kdasr").parts or path.name == "presets.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name | ast.Attribute) and getattr(node, "id", getattr(node, "attr", "")) in (
                "read_preset", "load_preset"
            ):
                readers.append(str(path.relative_to(ROOT)))
    assert not readers, readers


def test_teacher_sizes_live_in_the_teachers_package():
    from kdasr.cli.teacher import _sizes
    from kdasr.teachers.sizes import TEACHER_SIZES

    assert _sizes("paper", None, None, None) == (6, 512, 8, 2048)
    assert _sizes("demo", 2, 128, None) == (2, 128, 4, 512)  # the feed-forward keeps its 4x ratio
    assert TEACHER_SIZES["tiny"].override(hidden=64).ff_dim == 128
    with pytest.raises(typer.BadParameter, match="--size must be one of paper, demo, tiny"):
        _sizes("huge", None, None, None)


def test_a_checkpoint_written_before_the_typed_one_still_loads_and_resumes(tmp_path):
    """tests/data/checkpoint-v0.1-739659c.pt: a last.pt of the trainer as of 739659c (dict payload).
    It reads into a TrainingCheckpoint, writes back the same keys and values, and a run resumes
    from it; the checkpoint the resumed run writes has the same keys and plain values."""
    sys.path.insert(0, str(ROOT / "tests"))
    from train_worker import examples

    from kdasr.text import Tokenizer
    from kdasr.training.trainer import train

    payload = load_checkpoint(OLD_CHECKPOINT)
    ck = TrainingCheckpoint.load(OLD_CHECKPOINT)
    assert (ck.kind, ck.step, ck.epoch, ck.batch_pos, ck.world_size) == ("last", 2, 0, 2, 1)
    assert ck.summary == {"preset": "test", "kd": "none"} and ck.train_config["kd"] == "none"
    again = ck.to_dict()
    assert list(again) == list(payload)  # same keys, same order
    for key, value in payload.items():
        if key not in ("model", "optimizer", "rng", "rngs"):
            assert again[key] == value, key
    assert all(torch.equal(again["model"][k], v) for k, v in payload["model"].items())

    tok = Tokenizer.from_bytes(ck.tokenizer_model, str(OLD_CHECKPOINT))
    check_resumable(OLD_CHECKPOINT, ck, ck.model_config, tok)
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(OLD_CHECKPOINT, out / "last.pt")
    saved = ck.train_config
    cfg = TrainConfig(max_steps=3, max_frames=saved["max_frames"], checkpoint_minutes=0.0, threads=1,
                      specaug_start_step=1, dev_utterances=4, warmup_steps=10, log_every=1)
    torch.set_num_threads(1)
    train(ck.model_config, cfg, examples(tok, 16, 1), examples(tok, 4, 2), tok, out)
    new = load_checkpoint(out / "last.pt")  # the safe loader: no enum or other object got pickled
    # the same top-level keys; the config as today's TrainConfig writes it: every key of the old one, plus
    # fields added since (at their defaults when the old checkpoint did not have them)
    tc = new["train_config"]
    assert new["step"] == 3 and list(new) == list(payload)
    assert list(tc) == [f.name for f in dataclasses.fields(TrainConfig)] and set(saved) <= set(tc)
    assert all(tc[k] == f.default for f in dataclasses.fields(TrainConfig) if (k := f.name) not in saved)
    assert type(new["train_config"]["kd"]) is str and new["train_config"]["max_steps"] == 3


def test_a_checkpoint_without_training_state_cannot_be_continued(tmp_path):
    payload = load_checkpoint(OLD_CHECKPOINT)
    del payload["optimizer"]
    with pytest.raises(ModelError, match="cannot branch from it: it holds no 'optimizer'"):
        TrainingCheckpoint.from_dict(payload, tmp_path / "x.pt", action="branch")
    with pytest.raises(ModelError, match="not a kdasr checkpoint \\(bad model_config"):
        TrainingCheckpoint.from_dict({**payload, "model_config": {"nope": 1}}, tmp_path / "x.pt")


def test_the_kd_step_bench_takes_the_preset_the_cli_read():
    """`kdasr teacher bench` reads --config and passes the Preset in (kd_bench reads no file)."""
    from kdasr.text import Tokenizer
    from kdasr.training.kd_bench import bench_kd_step

    tok = Tokenizer.from_bytes(TrainingCheckpoint.load(OLD_CHECKPOINT).tokenizer_model)
    torch.set_num_threads(1)
    times = bench_kd_step(tok, read_preset("tiny"), steps=1, batch=2, frames=64, units=4)
    assert times.preset == "tiny"
    assert set(times.seconds) == {"baseline (CE)", "KD (bert, λ=0.1)", "baseline, bf16 autocast"}
    assert all(t > 0 for t in times.seconds.values())
