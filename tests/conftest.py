"""Shared fixtures: one tiny corpus and one tiny trained+exported model per test session."""

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
    run_kdasr("export", str(exp / "last.pt"), "--out", str(exp / "model"), "--check")
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
