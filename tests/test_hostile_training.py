"""Issue 31 items 8-10 on the training side: training checks its manifests like `kdasr data
validate` (report and skip, or refuse with --strict), an empty training set, a full disk during a
checkpoint save, a feature cache holding object arrays and a BERT dir holding pytorch_model.bin
are one line each; a resumed run removes the temp files its killed writes left. Real
`python -m kdasr train` runs of the tiny config on eval/samples (about 8 s each on 1 thread)."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import KDASR

pytestmark = pytest.mark.slow  # every test here trains or runs a chain of subprocesses

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "eval" / "samples"
TOKENIZER = ROOT / "export" / "demo-en-small" / "tokenizer.model"


def _kdasr(*args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([*KDASR, *args], capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and not [ln for ln in proc.stderr.splitlines() if ln.strip() and ln not in errors], (
        proc.stderr)
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def _manifest(path: Path, extra: list[dict] = ()) -> Path:
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["audio"] = str(SAMPLES / r["audio"])
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, *extra]))
    return path


def _train(manifest: Path, out: Path, *extra: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return _kdasr("train", "--train", str(manifest), "--dev", str(_manifest(out.parent / "dev.jsonl")),
                  "--tokenizer", str(TOKENIZER), "--out", str(out), "--config", "tiny", "--max-steps", "1",
                  "--threads", "1", *extra, preexec_fn=preexec_fn)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished one-step run (last.pt, epoch-1.pt, feature cache) to copy and resume."""
    root = tmp_path_factory.mktemp("run")
    proc = _train(_manifest(root / "train.jsonl"), root / "exp")
    assert proc.returncode == 0, proc.stderr
    return root / "exp"


def _copy_run(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained.parent, dest)
    return dest / "exp"


# -- item 10: training validates like `kdasr data validate` ----------------------------------------

BAD = [
    {"id": "digits", "audio": str(SAMPLES / "web_matthew_6-026.flac"), "text": "chapter 6 verse 26", "duration": 4.5},
    {"id": "unnormalised", "audio": str(SAMPLES / "web_matthew_6-026.flac"), "text": "See the Birds!",
     "duration": 4.5},
    {"id": "too-long", "audio": str(SAMPLES / "web_matthew_6-026.flac"), "text": "see " * 2500, "duration": 5.0},
]


def test_training_reports_and_skips_what_data_validate_reports(tmp_path):
    manifest = _manifest(tmp_path / "train.jsonl", [{**b, "text": b["text"].strip()} for b in BAD])
    validate = _kdasr("data", "validate", str(manifest))
    assert validate.returncode == 1 and len(validate.stdout.splitlines()) == 3, validate.stdout
    assert "9999 characters for 5.00 s" in validate.stdout

    proc = _train(manifest, tmp_path / "exp")
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning:")]
    assert [ln.split(": field")[0] for ln in warned[:3]] == [f"warning: {manifest}:{n}" for n in (9, 10, 11)]
    assert "digits" in warned[0] and "not normalised" in warned[1] and "9999 characters" in warned[2]
    assert "3 of 11 utterances left out" in warned[3]
    summary = torch.load(tmp_path / "exp" / "last.pt", weights_only=True)["summary"]
    assert summary["train_utterances"] == 8

    strict = _train(manifest, tmp_path / "strict", "--strict")
    _one_line_error(strict, f"{manifest}:9: field 'text'", "digits")
    assert not (tmp_path / "strict" / "last.pt").exists()


# -- item 9: one line instead of a traceback ---------------------------------------------------------


def test_empty_or_all_skipped_training_manifest_is_one_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _one_line_error(_train(empty, tmp_path / "a"), str(empty), "no usable training utterances")
    all_bad = tmp_path / "all-bad.jsonl"
    all_bad.write_text(json.dumps(BAD[0]) + "\n")
    _one_line_error(_train(all_bad, tmp_path / "b"), str(all_bad), "no usable training utterances")


@contextlib.contextmanager
def _full_disk(folder: Path, keep_free: int):
    """`folder` on a tmpfs (root) filled to `keep_free` bytes; None where mounting is impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(folder)], capture_output=True)


def _fill(folder: Path, keep_free: int) -> None:
    with open(folder / "filler", "wb") as f:
        while shutil.disk_usage(folder).free > keep_free + 65536:
            f.write(b"\0" * 65536)
            f.flush()


def test_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_last_one(trained, tmp_path):
    """A tmpfs filled to 100 KB free (root); elsewhere RLIMIT_FSIZE (100 KB) makes the save fail the same way."""
    with _full_disk(tmp_path / "disk", 100_000) as mounted:
        run = _copy_run(trained, tmp_path / "disk" / "run") if mounted else _copy_run(trained, tmp_path / "run")
        before = (run / "last.pt").read_bytes()
        limit = None
        if mounted:
            _fill(tmp_path / "disk", 100_000)
            reason = "No space left on device"
        else:
            import resource

            def limit():
                resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

            reason = "File too large"
        proc = _train(run.parent / "train.jsonl", run, "--max-steps", "2", preexec_fn=limit)
        line = _one_line_error(proc, "cannot write", reason, "unchanged")
        assert str(run) in line
        assert (run / "last.pt").read_bytes() == before  # the previous checkpoint is whole
        assert torch.load(run / "last.pt", weights_only=True)["step"] == 1
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_feature_cache_with_object_arrays_is_refused_in_one_line(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    (shard,) = (run / "feats" / "train").glob("feats-*.npz")
    with open(shard, "wb") as f:
        np.savez(f, ids=np.array(["a"]), a0=np.array([{"x": 1}], dtype=object))
    _one_line_error(_train(run.parent / "train.jsonl", run, "--no-resume"), str(shard), "object arrays",
                    "delete it")


# -- item 8: orphan temp files of killed checkpoint and cache writes -------------------------------


def test_resume_removes_the_orphan_temp_files_of_its_own_writes_only(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    cache = run / "feats" / "train"
    (shard,) = cache.glob("feats-*.npz")
    ours = [run / ".last.pt.a1b2c3d4.tmp", run / ".epoch-2.pt.zz_99xyq.tmp", run / ".snapshot-0.5min.pt.abcdefgh.tmp",
            cache / f".{shard.name}.q1w2e3r4.tmp"]
    foreign = [run / ".notes.txt.a1b2c3d4.tmp", run / ".last.pt.tmp", cache / ".other.npz.q1w2e3r4.tmp"]
    for p in ours + foreign:
        p.write_bytes(b"\0" * 400_000)
    proc = _train(run.parent / "train.jsonl", run, "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in ours) and all(p.exists() for p in foreign)


class _TouchOnLoad:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code a crafted file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def test_bert_dir_with_pytorch_model_bin_is_refused_saying_why(tmp_path):
    bert = tmp_path / "bert"
    bert.mkdir()
    shutil.copy(TOKENIZER, bert / "tokenizer.model")
    from kdasr.text import Tokenizer

    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": Tokenizer(TOKENIZER).vocab_size,
              "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    (bert / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "marker"
    torch.save({"bert.embeddings.word_embeddings.weight": _TouchOnLoad(marker)}, bert / "pytorch_model.bin")
    proc = _kdasr("export-lm", "--bert", str(bert), "--out", str(tmp_path / "out"))
    line = _one_line_error(proc, str(bert), "refused", "pytorch_model.bin", "pickle", "safetensors")
    assert "weights_only" not in line
    assert not marker.exists()
