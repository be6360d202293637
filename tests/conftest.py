"""Shared fixtures: one tiny corpus and one tiny trained+exported model per test session.

Fast lane (`make test-fast` = `pytest -m "not slow"`): a test is `slow` when it needs a fixture in
SLOW_FIXTURES, directly or through another fixture (marked here automatically, so new tests follow the
rule), or when it is marked `@pytest.mark.slow` by hand: do that for a test (or, through `pytestmark`,
a file) whose setup + call takes over ~2 s in `pytest --durations=0` on a busy 2-core machine, e.g. a
corpus build, training, or a chain of CLI subprocesses. `make test` runs everything. Build nothing
twice: a test that needs the tiny corpus or model takes these fixtures rather than making its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KDASR = [sys.executable, "-m", "kdasr"]


def corpus_waves(corpus: Path, n: int = 4) -> list:
    """The first n waves of a corpus's test manifest, as the runtime takes them."""
    from kdasr.audio import load_audio
    from kdasr.data.manifest import read_manifest

    return [load_audio(u.audio) for u in read_manifest(corpus / "test.jsonl")[:n]]


def run_kdasr(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*KDASR, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"kdasr {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# fixtures that build a corpus or train: every test that uses one, even indirectly, is slow
SLOW_FIXTURES = frozenset({"tiny_corpus", "tiny_model"})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from kdasr.data.synth import synth_corpus
    from kdasr.text import train_tokenizer

    out = tmp_path_factory.mktemp("corpus")
    # corpus v1 (Debian voices, WEB + Austen): seconds to build; v2's text download and Kokoro voices
    # are tested on their own in test_corpus_v2.py
    synth_corpus(
        out, seed=1, jobs=2, voices_per_sentence=1, max_train_sentences=12, max_eval_sentences=4, progress=False,
        version=1,
    )
    train_tokenizer([out / "teacher.txt"], out / "tokenizer", vocab_size=60)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus, tmp_path_factory) -> Path:
    """A toy student trained a few steps through the real CLI, then exported (with parity check)."""
    exp = tmp_path_factory.mktemp("exp")
    run_kdasr(
        "train",
        "--train",
        str(tiny_corpus / "train.jsonl"),
        "--dev",
        str(tiny_corpus / "dev.jsonl"),
        "--tokenizer",
        str(tiny_corpus / "tokenizer.model"),
        "--out",
        str(exp),
        "--config",
        "tiny",
        "--max-steps",
        "6",
        "--threads",
        "2",
    )
    proc = run_kdasr("export", str(exp / "last.pt"), "--out", str(exp / "model"), "--check")
    (exp / "export-check.txt").write_text(proc.stdout)  # what the check printed, for test_e2e to read
    return exp / "model"


@pytest.fixture
def one_torch_thread():
    """Tiny models: one thread is faster, and far faster on a shared, oversubscribed machine
    (use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
