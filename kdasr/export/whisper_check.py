"""`kdasr import-whisper --check`: the exported graphs against an independent torch reference of the
same weights, transformers' WhisperForConditionalGeneration (and its WhisperFeatureExtractor) with
the CTranslate2 weights mapped onto it.

transformers' encoder takes exactly 30 s, so the encoder check runs on audio padded to 30 s: the
ONNX encoder's cross-attention keys/values against the reference encoder's output through the
reference decoder's key/value projections. The decoder check feeds the reference's keys/values to
the step graph and steps it through the prompt, <|notimestamps|> and a few text tokens, against the
reference decoder's log-softmax over the whole sequence at once (with the same suppression)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ..models.whisper_hf import reference_model
from ..models.whisper_weights import CT2Checkpoint
from .check import GraphCheck
from .whisper_graphs import NEG

TEXT = [40, 2236, 407, 307, 1498, 284, 1394, 345, 11]  # GPT-2 ids: "I shall not be able to keep you,"


def test_audio(seconds: float = 6.0) -> np.ndarray:
    """A deterministic voiced signal (harmonics of a gliding pitch, syllable-rate envelope, a little
    noise); white noise alone would make the encoder magnify rounding (whisper_encoder.py)."""
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    noise = np.random.default_rng(0).standard_normal(len(t))
    return (0.05 * voiced * env + 0.002 * noise).astype(np.float32)


def check_whisper_dir(ckpt: CT2Checkpoint, out_dir: Path, prompt: list[int], suppress: list[int],
                      begin: list[int]) -> list[GraphCheck]:
    import json

    from transformers import WhisperFeatureExtractor

    spec = json.loads((out_dir / "model.json").read_text())
    bos = spec["special_ids"]["bos"]
    model = reference_model(ckpt)
    # a graph with a zero log-mel tail sees 30 s less the tail of audio, then the tail's zero frames
    tail = round(spec["architecture"].get("zero_feature_tail_seconds", 0.0) * 100)
    audio = np.pad(test_audio(), (0, 480000 - 160 * tail - 96000))
    feats = WhisperFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt").input_features
    if tail:
        feats[..., 3000 - tail :] = 0.0
    tokens = [*prompt, bos, *TEXT]
    with torch.no_grad():
        hidden = model.model.encoder(feats).last_hidden_state  # [1, 1500, D]
        layers = model.model.decoder.layers
        heads = layers[0].encoder_attn.num_heads
        split = lambda y: y.reshape(1, y.shape[1], heads, -1).transpose(1, 2).numpy()  # noqa: E731
        cross = [split(p(hidden)) for layer in layers for p in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)]
        logits = model.model.decoder(input_ids=torch.tensor([tokens]), encoder_hidden_states=hidden).last_hidden_state
        logits = model.proj_out(logits)[0]
        bias = torch.zeros(logits.shape[1])
        bias[suppress] = NEG
        logits = logits + bias
        logits[len(prompt), begin] += NEG
        ref = torch.log_softmax(logits, dim=-1).numpy()[len(prompt) - 1 :]  # from the last prompt token on
    checks = []
    for precision, file_key in (("fp32", "file"), ("int8", "int8")):
        graphs = spec["graphs"]
        if file_key not in graphs["encoder"]:
            continue
        enc = ort.InferenceSession(str(out_dir / graphs["encoder"][file_key]), providers=["CPUExecutionProvider"])
        out = enc.run(None, {"waveform": audio[None], "waveform_lens": np.array([len(audio)])})
        err = max(float(np.abs(a - b).max()) for a, b in zip(out[1:], cross))
        scale = max(float(np.abs(b).max()) for b in cross)
        checks.append(GraphCheck(f"encoder{'' if precision == 'fp32' else '.int8'} vs transformers (30 s)", err, 1,
                                 informational=precision != "fp32", unit="utterance", tolerance_factor=10.0,
                                 detail=f"cross keys/values up to {scale:.1f} in size"))
        dec = ort.InferenceSession(str(out_dir / graphs["decoder"][file_key]), providers=["CPUExecutionProvider"])
        names = [i.name for i in dec.get_inputs()]
        n_cache = sum(1 for n in names if n.startswith("self_"))
        h, dh = cross[0].shape[1], cross[0].shape[3]
        state = [np.zeros((1, h, 0, dh), np.float32) for _ in range(n_cache)]
        got = []
        for tok in tokens:
            res = dec.run(None, {"tokens": np.array([tok]), **dict(zip(names[1 : 1 + n_cache], state)),
                                 **dict(zip(names[1 + n_cache : -1], cross)), "memory_lens": np.array([1500])})
            got.append(res[0][0])
            state = res[1:]
        got = np.stack(got)[len(prompt) - 1 :]
        live = ref > -1e6  # suppressed tokens are -1e9 in both
        err = float(np.abs(got - ref)[live].max())
        checks.append(GraphCheck(f"decoder{'' if precision == 'fp32' else '.int8'} vs transformers", err,
                                 len(ref), informational=precision != "fp32", unit="steps",
                                 detail="log-probs, 1 utterance"))
    return checks
