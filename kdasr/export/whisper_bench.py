"""Issue 27's measurements for the whisper encoders, one thread:
  python -m kdasr.export.whisper_bench [whisper-tiny.en|whisper-base] [SAMPLES_DIR] [--json OUT]
1. the encoder graph (front end + encoder, as exported) on 5 s of audio, unpadded against padded
   to 30 s as whisper does, in torch eager and in onnxruntime;
2. one training step (forward, backward, Adam; CE + CTC; LSTM attention decoder, 25 Hz) on the
   sample clips from the frozen encoder's cache, against a full step from the features with the
   encoder frozen and with all of it fine-tuned.
Audio: the clips in SAMPLES_DIR (default eval/samples) at the model's sample rate, concatenated
for item 1. Measured into a WhisperBench record; `whisper_text` prints it, `--json` writes it.
(In the export stage because it exports the encoder graph and uses the training stage's step.)"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio
from ..io_utils import atomic_write_text
from ..models.config import ModelConfig
from ..models.student import build_model, load_pretrained
from ..training.encoder_cache import step_seconds
from .graphs import student_graphs
from .onnx_export import export_graph

STEP_REPEATS = 3  # training steps: best of this many (encoder_cache.step_seconds)


@dataclass(frozen=True)
class EncoderTime:
    engine: str  # "torch eager" or "onnxruntime"
    case: str  # "5 s unpadded" or "5 s padded to 30 s"
    seconds: float  # best of 5 calls


@dataclass(frozen=True)
class StepTime:
    variant: str
    seconds: float  # best of STEP_REPEATS steps


@dataclass(frozen=True)
class WhisperBench:
    encoder: str  # whisper-tiny.en, whisper-base
    torch: str
    threads: int
    sample_rate: int
    clips: int
    seconds_audio: float
    encoder_times: tuple[EncoderTime, ...]
    step_times: tuple[StepTime, ...]

    def encoder_time(self, engine: str, case: str) -> EncoderTime:
        return next(e for e in self.encoder_times if (e.engine, e.case) == (engine, case))


def _best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def config(name: str, trainable: int, vocab: int = 500) -> ModelConfig:
    return ModelConfig(vocab_size=vocab, encoder_type=name, d_model=256, whisper_trainable_layers=trainable,
                       encoder_frame_reduction=2)


def student(name: str, trainable: int, vocab: int = 500) -> torch.nn.Module:
    cfg = config(name, trainable, vocab)
    torch.manual_seed(0)
    model = build_model(cfg)
    load_pretrained(model)
    return model


def encoder_times(name: str, audio: np.ndarray) -> list[EncoderTime]:
    """`audio` at the model's sample rate."""
    import onnxruntime as ort

    model = student(name, 0).eval()
    rate = model.cfg.sample_rate
    graph = student_graphs(model)[0]
    five = audio[: 5 * rate]
    cases = {"5 s unpadded": five, "5 s padded to 30 s": np.pad(five, (0, 25 * rate))}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        export_graph(graph, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for case, wave in cases.items():
            w, n = torch.from_numpy(wave)[None], torch.tensor([len(wave)])
            with torch.no_grad():
                out.append(EncoderTime("torch eager", case, _best(lambda w=w, n=n: graph(w, n))))
            feed = {"waveform": wave[None], "waveform_lens": np.array([len(wave)])}
            out.append(EncoderTime("onnxruntime", case, _best(lambda feed=feed: sess.run(None, feed))))
    return out


def step_times(name: str, waves: list[np.ndarray]) -> list[StepTime]:
    gen = np.random.default_rng(0)
    rate = config(name, 0).sample_rate
    tokens = [list(gen.integers(5, 500, size=max(5, len(w) * 20 // (3 * rate)))) for w in waves]  # ~6.7 units/s
    return [
        StepTime(variant, step_seconds(student(name, trainable), waves, tokens, repeats=STEP_REPEATS, cached=cached))
        for variant, trainable, cached in (
            ("cached frozen encoder (decoder step)", 0, True),
            ("full step, encoder frozen", 0, False),
            ("full step, encoder fine-tuned", -1, False),
        )
    ]


def run_bench(name: str, samples: Path) -> WhisperBench:
    torch.set_num_threads(1)
    rate = config(name, 0).sample_rate
    waves = [load_audio(p, rate) for p in sorted(samples.glob("*.flac"))]
    return WhisperBench(
        name, torch.__version__, torch.get_num_threads(), rate, len(waves), sum(len(w) for w in waves) / rate,
        tuple(encoder_times(name, np.concatenate(waves))), tuple(step_times(name, waves)),
    )


def whisper_text(b: WhisperBench) -> str:
    lines = [f"{b.encoder}, {b.threads} thread, torch {b.torch}"]
    lines += [f"  encoder graph, {e.engine}, {e.case}: {e.seconds * 1000:.0f} ms" for e in b.encoder_times]
    lines.append(f"  training step on {b.clips} clips ({b.seconds_audio:.1f} s of audio), best of {STEP_REPEATS}:")
    lines += [f"    {s.variant}: {s.seconds * 1000:.0f} ms" for s in b.step_times]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m kdasr.export.whisper_bench", description=__doc__.split("\n")[0])
    p.add_argument("encoder", nargs="?", default="whisper-tiny.en", help="whisper-tiny.en or whisper-base")
    p.add_argument("samples", nargs="?", default="eval/samples", type=Path, help="folder of .flac clips")
    p.add_argument("--json", type=Path, help="also write the records here as JSON")
    args = p.parse_args()
    b = run_bench(args.encoder, args.samples)
    print(whisper_text(b), end="")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(dataclasses.asdict(b), indent=2) + "\n")


if __name__ == "__main__":
    main()
