"""Issue 27's measurements for the whisper encoders, one thread:
  python -m kdasr.export.whisper_bench [whisper-tiny.en|whisper-base] [SAMPLES_DIR]
1. the encoder graph (front end + encoder, as exported) on 5 s of audio, unpadded against padded
   to 30 s as whisper does, in torch eager and in onnxruntime;
2. one training step (forward, backward, Adam; CE + CTC; LSTM attention decoder, 25 Hz) on the
   sample clips from the frozen encoder's cache, against a full step from the features with the
   encoder frozen and with all of it fine-tuned.
Audio: the clips in SAMPLES_DIR (default eval/samples), concatenated for item 1. (In the export
stage because it exports the encoder graph and uses the training stage's step.)"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio
from ..models.config import ModelConfig
from ..models.student import build_model, load_pretrained
from ..training.encoder_cache import step_seconds
from .graphs import student_graphs
from .onnx_export import export_graph


def _best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def student(name: str, trainable: int, vocab: int = 500) -> torch.nn.Module:
    cfg = ModelConfig(vocab_size=vocab, encoder_type=name, d_model=256, whisper_trainable_layers=trainable,
                      encoder_frame_reduction=2)
    torch.manual_seed(0)
    model = build_model(cfg)
    load_pretrained(model)
    return model


def encoder_times(name: str, audio: np.ndarray) -> dict[str, float]:
    import onnxruntime as ort

    model = student(name, 0).eval()
    graph = student_graphs(model)[0]
    five = audio[: 5 * 16000]
    cases = {"5 s unpadded": five, "5 s padded to 30 s": np.pad(five, (0, 25 * 16000))}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        export_graph(graph, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for label, wave in cases.items():
            w, n = torch.from_numpy(wave)[None], torch.tensor([len(wave)])
            with torch.no_grad():
                out[f"torch eager, {label}"] = _best(lambda w=w, n=n: graph(w, n))
            feed = {"waveform": wave[None], "waveform_lens": np.array([len(wave)])}
            out[f"onnxruntime, {label}"] = _best(lambda feed=feed: sess.run(None, feed))
    return out


def step_times(name: str, waves: list[np.ndarray]) -> dict[str, float]:
    gen = np.random.default_rng(0)
    tokens = [list(gen.integers(5, 500, size=max(5, len(w) // 2400))) for w in waves]  # ~6.7 units/s
    return {
        "cached frozen encoder (decoder step)": step_seconds(student(name, 0), waves, tokens, cached=True),
        "full step, encoder frozen": step_seconds(student(name, 0), waves, tokens),
        "full step, encoder fine-tuned": step_seconds(student(name, -1), waves, tokens),
    }


def main() -> None:
    torch.set_num_threads(1)
    name = sys.argv[1] if len(sys.argv) > 1 else "whisper-tiny.en"
    samples = Path(sys.argv[2] if len(sys.argv) > 2 else "eval/samples")
    waves = [load_audio(p, 16000) for p in sorted(samples.glob("*.flac"))]
    print(f"{name}, 1 thread, torch {torch.__version__}")
    for label, s in encoder_times(name, np.concatenate(waves)).items():
        print(f"  encoder graph, {label}: {s * 1000:.0f} ms")
    total = sum(len(w) for w in waves) / 16000
    print(f"  training step on {len(waves)} clips ({total:.1f} s of audio), best of 3:")
    for label, s in step_times(name, waves).items():
        print(f"    {label}: {s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
