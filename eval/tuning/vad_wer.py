"""What voice-activity detection costs (RTFx) and changes (WER) on small test sets, for
eval/reports/robustness.md. Usage:

    .venv/bin/python eval/tuning/vad_wer.py [--synth N] [--threads 2] [--manifest M.jsonl --limit N]

Sets: eval/samples/manifest.jsonl (8 held-out clips), and with --synth N an espeak-ng set of N
test-split sentences (WEB + Austen, 3 voices) in two versions: as synthesised, and with 3 s of
low-level noise (-60 dBFS) before and after each sentence, as a recording with room around the
speech would have. Each set is decoded with the model's recommended decoding, VAD on and off."""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from kdasr.audio import load_audio
from kdasr.data.manifest import read_manifest
from kdasr.errors import TextError
from kdasr.eval.wer import error_rates
from kdasr.runtime import Failure, Transcriber, VadOptions
from kdasr.text import normalize_text

ROOT = Path(__file__).resolve().parents[2]
VOICES = ("en-us", "en-gb+m3", "en-us+f2")


def synth_set(folder: Path, n: int, pad_noise: bool) -> list[tuple[str, str]]:
    from kdasr.data.textcorpus import load_documents, split_documents

    docs = split_documents(load_documents(Path(tempfile.gettempdir()) / "kdasr-text-cache"))["test"]
    sentences = []
    for s in (s for d in docs for s in d.sentences):
        try:
            sentences.append((s, normalize_text(s)))
        except TextError:  # digits: not spoken the way the reference would be written
            continue
    rng = np.random.default_rng(0)
    picks = [sentences[i] for i in rng.choice(len(sentences), size=n, replace=False)]
    out = []
    for k, (s, ref) in enumerate(picks):
        wav = folder / f"s{k:03d}.wav"
        raw = folder / f"raw{k:03d}.wav"
        if not raw.exists():
            subprocess.run(["espeak-ng", "-v", VOICES[k % len(VOICES)], "-w", str(raw), s], check=True)
        x = load_audio(raw)
        if pad_noise:
            noise = lambda: (rng.standard_normal(3 * 16000) * 0.001).astype(np.float32)  # noqa: E731
            x = np.concatenate([noise(), x, noise()])
        sf.write(wav if not pad_noise else folder / f"p{k:03d}.wav", x, 16000)
        out.append((str(wav if not pad_noise else folder / f"p{k:03d}.wav"), ref))
    return out


def score(name: str, items: list[tuple[str, str]], threads: int) -> None:
    for vad in (None, VadOptions()):
        t = Transcriber(threads=threads, vad=vad)
        opts = t.recommended_options()
        t.transcribe([items[0][0]], opts)  # warm-up
        start = time.perf_counter()
        res = t.transcribe([p for p, _ in items], opts)
        wall = time.perf_counter() - start
        good = [(r, ref) for r, (_, ref) in zip(res, items) if not isinstance(r, Failure)]
        rates = error_rates([ref for _, ref in good], [r.text for r, _ in good])
        audio = sum(r.duration for r, _ in good)
        print(json.dumps({"set": name, "vad": vad is not None, "utts": len(good), "audio_s": round(audio, 1),
                          "wall_s": round(wall, 2), "rtfx": round(audio / wall, 1), "wer": round(rates.wer, 2),
                          "decoding": f"beam {opts.beam}, ctc {opts.ctc_weight}"}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--manifest", type=Path, action="append", default=[],
                    help="Also score these manifests (e.g. the demo corpus' test sets); --limit N evenly spaced")
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    for m in args.manifest:
        utts = read_manifest(m)
        n = min(args.limit, len(utts))
        picked = [utts[i * len(utts) // n] for i in range(n)]
        score(str(m), [(u.audio, normalize_text(u.text)) for u in picked], args.threads)
    samples = [(u.audio, u.text) for u in read_manifest(ROOT / "eval/samples/manifest.jsonl")]
    score("eval/samples", samples, args.threads)
    if args.synth:
        folder = Path(tempfile.gettempdir()) / "kdasr-vad-wer"
        folder.mkdir(exist_ok=True)
        score("espeak-ng", synth_set(folder, args.synth, False), args.threads)
        score("espeak-ng + 3 s noise each side", synth_set(folder, args.synth, True), args.threads)


if __name__ == "__main__":
    main()
