"""Word timestamps and confidence (issue 30 item 8) from the CTC head's forced alignment of the decoded
tokens: the Viterbi path on a hand-made posterior, then real decodes with the shipped model through the
API and `kdasr transcribe --word-timestamps`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "eval" / "samples").glob("*.flac"))


def test_ctc_align_follows_the_best_path():
    from kdasr.runtime.align import ctc_align

    # frames: blank, 2, 2, blank, 3, blank, 3 (a repeated token needs the blank between)
    path = [0, 2, 2, 0, 3, 0, 3]
    probs = np.full((len(path), 5), 0.02)
    for t, v in enumerate(path):
        probs[t, v] = 0.92
    lp = np.log(probs)
    spans = ctc_align(lp, len(path), (2, 3, 3), blank=0)
    assert [s[:2] for s in spans] == [(1, 3), (4, 5), (6, 7)]
    assert all(abs(s[2] - 0.92) < 1e-9 for s in spans)
    assert ctc_align(lp, 2, (2, 3, 3), blank=0) == ()  # three tokens (one repeat) need four frames
    assert ctc_align(lp, len(path), (), blank=0) == ()
    # a long piece (more than 127 CTC states): 100 tokens, each on the third of its three frames
    tokens = tuple(5 + (k % 7) for k in range(100))
    probs = np.full((300, 16), 0.01)
    probs[:, 0] = 0.9
    for k, tok in enumerate(tokens):
        probs[3 * k + 2] = 0.01
        probs[3 * k + 2, tok] = 0.9
    spans = ctc_align(np.log(probs), 300, tokens, blank=0)
    assert [s[:2] for s in spans] == [(3 * k + 2, 3 * k + 3) for k in range(100)]


def test_words_match_the_text_and_lie_in_their_segment(tmp_path):
    from kdasr import Transcriber, Word

    pause = np.zeros(16000, np.float32)
    wave = np.concatenate([x for p in SAMPLES[:3] for x in (pause, sf.read(p, dtype="float32")[0])])
    t = Transcriber(threads=1)
    r = t.transcribe(wave, word_timestamps=True)
    assert len(r.segments) >= 3
    for seg in r.segments:
        assert seg.words and all(isinstance(w, Word) for w in seg.words)
        assert " ".join(w.word for w in seg.words) == seg.text
        assert all(seg.start <= w.start <= w.end <= seg.end for w in seg.words)
        assert all(a.start <= b.start for a, b in zip(seg.words, seg.words[1:]))
        assert all(0.0 < w.probability <= 1.0 for w in seg.words)
    assert r.segments[0].words[0].start >= 0.8  # after the leading second of silence
    assert not any(s.words for s in t.transcribe(wave).segments)  # only when asked


@pytest.mark.slow
def test_cli_word_timestamps_in_json():
    doc = json.loads(run_kdasr("transcribe", str(SAMPLES[3]), "-f", "json", "--word-timestamps", "--threads", "1",
                               "-q").stdout)[0]
    words = [w for s in doc["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == doc["text"]
    assert set(words[0]) == {"start", "end", "word", "probability"}
    plain = json.loads(run_kdasr("transcribe", str(SAMPLES[3]), "-f", "json", "--threads", "1", "-q").stdout)[0]
    assert "words" not in plain["segments"][0] and plain["text"] == doc["text"]
