"""kdasr's import of a whisper model against faster-whisper on the same weights and audio:
  python -m kdasr.eval.whisper_parity MODEL_DIR MANIFEST [--limit N] [--model tiny.en|base]
      [--beam 5] [--precision fp32] [--variant NAME=PAD_SECONDS,PAD_TO_SECONDS ...] [--json OUT]
      [--fw-compute int8|float32] [--fw-from EARLIER.json]
faster-whisper runs as kdasr's reference does (int8, language en) with what makes one decode
comparable: no timestamps, condition_on_previous_text False, temperature 0 only (no fallback),
no no-speech skipping, no VAD. kdasr decodes the model's recommendation at the same beam, one
variant per padding: none, silence after each piece, to 30 s (faster-whisper pads to 30 s).
Per variant: the share of utterances whose normalised 1-best equals faster-whisper's, WER against
the manifest's references (kdasr's reference policy and WER code), RTFx over the decode calls,
1 thread for both. Torch-free; needs the `reference` extra."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..io_utils import atomic_write_text
from ..runtime.transcriber import Transcriber
from ..whisper_reference import load_whisper, normalise_hypothesis, whisper_model_dir
from .run import reference
from .wer import error_rates

VARIANTS = {"unpadded": (0.0, 0.0), "pad 1 s": (1.0, 0.0), "pad to 30 s": (0.0, 30.0)}


def faster_whisper_texts(model_name: str, waves: list[np.ndarray], beam: int, compute_type: str = "int8"
                         ) -> tuple[list[str], float]:
    from faster_whisper import WhisperModel

    load_whisper(1, beam, model_name)  # the reference's own checks (installed, base joined)
    model = WhisperModel(str(whisper_model_dir(model_name)), device="cpu", compute_type=compute_type, cpu_threads=1,
                         local_files_only=True)
    texts, seconds = [], 0.0
    for w in waves:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(w, language="en", beam_size=beam, without_timestamps=True,
                                       condition_on_previous_text=False, temperature=0.0,
                                       no_speech_threshold=None, vad_filter=False)
        texts.append(" ".join(s.text for s in segments))
        seconds += time.perf_counter() - t0
    return texts, seconds


def kdasr_texts(t: Transcriber, waves: list[np.ndarray], beam: int, pad: float, pad_to: float
                ) -> tuple[list[str], float]:
    opts = t.recommended_options(beam=beam, pad_seconds=pad, pad_to_seconds=pad_to)
    t0 = time.perf_counter()
    hyps = t.decode_hypotheses(waves, opts)
    seconds = time.perf_counter() - t0
    return [t.model.tokenizer.decode(nb[0].tokens) if nb else "" for nb in hyps], seconds


def compare(model_dir: Path, manifest: Path, limit: int | None, model_name: str, beam: int, precision: str,
            variants: dict[str, tuple[float, float]], compute_type: str = "int8", fw_from: Path | None = None
            ) -> dict:
    utts = [u for u in read_manifest(manifest)[:limit] if reference(u)[0] is not None]
    refs = [reference(u)[0] for u in utts]
    waves = [load_audio(u.audio, start=u.start, duration=u.duration) for u in utts]
    audio_s = sum(len(w) for w in waves) / 16000
    if fw_from is not None:  # faster-whisper's texts and time from an earlier run on the same utterances
        old = json.loads(Path(fw_from).read_text())
        if [r["id"] for r in old["rows"]] != [u.id for u in utts] or old["beam"] != beam:
            raise SystemExit(f"{fw_from}: other utterances or beam")
        fw_raw = [r["faster-whisper"] for r in old["rows"]]
        compute_type = old.get("faster_whisper_compute_type", "int8")
        fw_s = old["audio_seconds"] / old["faster-whisper"]["rtfx"]
    else:
        fw_raw, fw_s = faster_whisper_texts(model_name, waves, beam, compute_type)
    fw = [normalise_hypothesis(x) for x in fw_raw]
    out = {"manifest": str(manifest), "faster_whisper_compute_type": compute_type, "precision": precision,
           "utterances": len(utts), "audio_seconds": round(audio_s, 1), "beam": beam,
           "faster-whisper": {"wer": round(error_rates(refs, fw).wer, 2), "rtfx": round(audio_s / fw_s, 1)},
           "kdasr": {}, "rows": []}
    t = Transcriber(model_dir, threads=1, precision=precision, vad=False)
    per = {}
    for name, (pad, pad_to) in variants.items():
        raw, secs = kdasr_texts(t, waves, beam, pad, pad_to)
        hyps = [normalise_hypothesis(x) for x in raw]
        per[name] = raw
        same = sum(a == b for a, b in zip(hyps, fw))
        out["kdasr"][name] = {"identical_to_faster_whisper": round(same / len(utts), 3),
                              "wer": round(error_rates(refs, hyps).wer, 2), "rtfx": round(audio_s / secs, 1)}
    for i, u in enumerate(utts):
        out["rows"].append({"id": u.id, "ref": refs[i], "faster-whisper": fw_raw[i].strip(),
                            **{name: texts[i] for name, texts in per.items()}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--variant", action="append", help="NAME=PAD_SECONDS,PAD_TO_SECONDS (default: the three)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--fw-from", type=Path, help="reuse faster-whisper's texts and time from an earlier --json")
    ap.add_argument("--fw-compute", default="int8", help="faster-whisper's compute_type (int8 as kdasr's reference "
                    "runs it; float32 for the same arithmetic as kdasr's fp32 graphs)")
    a = ap.parse_args()
    variants = VARIANTS
    if a.variant:
        variants = {v.split("=")[0]: tuple(map(float, v.split("=")[1].split(","))) for v in a.variant}
    out = compare(a.model_dir, a.manifest, a.limit, a.model, a.beam, a.precision, variants, a.fw_compute, a.fw_from)
    summary = {k: v for k, v in out.items() if k != "rows"}
    print(json.dumps(summary, indent=1))
    if a.json:
        atomic_write_text(a.json, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
