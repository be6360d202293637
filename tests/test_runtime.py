"""The ORT runtime reproduces the torch reference, and batching does not change results."""

from __future__ import annotations

import numpy as np
import torch
from conftest import corpus_waves

from kdasr.models.reference_decode import torch_greedy
from kdasr.models.student_io import load_student
from kdasr.runtime import DecodeOptions, Failure, Result, Transcriber


def test_ort_greedy_equals_torch_reference(tiny_corpus, tiny_model):
    model = load_student([tiny_model.parent / "last.pt"]).model
    t = Transcriber(tiny_model, vad=False)
    ids = t.model.spec.special_ids
    for wave in corpus_waves(tiny_corpus):
        ref = torch_greedy(model, torch.from_numpy(wave), ids.bos, ids.eos, ids.blank)
        got = t.transcribe([wave])[0]
        assert isinstance(got, Result)
        assert got.tokens == ref
    # the reference takes the same DecodeOptions: tighter limits cut both the same way
    tight = DecodeOptions(max_len_ratio=0.05, ctc_length_ratio=0.5, ctc_length_slack=1)
    for wave in corpus_waves(tiny_corpus, 2):
        ref = torch_greedy(model, torch.from_numpy(wave), ids.bos, ids.eos, ids.blank, tight)
        assert t.transcribe([wave], tight)[0].tokens == ref


def test_batched_equals_one_by_one(tiny_corpus, tiny_model):
    t = Transcriber(tiny_model, vad=False)
    waves = corpus_waves(tiny_corpus, 5)
    for method in ("attention", "ctc"):
        batched = t.transcribe(waves, DecodeOptions(method=method, batch_size=16))
        single = [t.transcribe([w], DecodeOptions(method=method, batch_size=1))[0] for w in waves]
        assert [r.tokens for r in batched] == [r.tokens for r in single]


def test_bad_array_is_a_failure_not_an_exception(tiny_model):
    t = Transcriber(tiny_model, vad=False)
    out = t.transcribe([np.zeros(0, np.float32), np.full(1600, np.nan, np.float32), np.zeros(16000, np.float32)])
    assert isinstance(out[0], Failure) and isinstance(out[1], Failure)
    assert isinstance(out[2], Result)


def test_remembered_encodings_skip_the_encoder_and_are_read_only(tiny_model):
    """`kdasr tune` decodes one dev set at many grid points: with remember_encodings() the same batch
    is encoded once, and a different batch is still encoded."""
    import numpy as np

    from kdasr.runtime.onnx_model import OnnxStudent

    m = OnnxStudent.load(tiny_model, threads=1)
    calls = []
    real = m._encode
    m._encode = lambda w, n: calls.append(len(n)) or real(w, n)
    rng = np.random.default_rng(0)
    waves, lens = rng.standard_normal((2, 16000)).astype(np.float32) * 0.1, np.array([16000, 12000])
    plain = m.encode(waves, lens)
    m.remember_encodings()
    m.encode(waves, lens)
    again = m.encode(waves.copy(), lens.copy())  # equal arrays, other objects: found by content
    assert len(calls) == 2 and all(np.array_equal(plain[k], again[k]) for k in plain)
    assert not next(iter(again.values())).flags.writeable
    m.encode(waves[:1], lens[:1])
    assert len(calls) == 3
