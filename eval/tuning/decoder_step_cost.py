"""What one decoder step costs, LSTM location-attention vs Transformer decoder, at the demo sizes
(issue 11 item 3): random weights, exported to ONNX, run by onnxruntime through the runtime's
generic DecoderScorer exactly as the beam search drives it (score, then select_state), for
`--beam` hypotheses of one `--seconds` utterance over `--steps` steps. Usage:

    .venv/bin/python eval/tuning/decoder_step_cost.py [--threads 1 --beam 10 --seconds 10 --steps 60]
        [--configs paper-v2 paper-v2-transformer --vocab 256 --repeats 3 --precision fp32 int8]

Times are CPU time of this process (one ORT thread runs in the calling thread), so a machine
shared with other jobs inflates them far less than wall time; the wall-time median is printed too.
Prints one Markdown row per config x precision: parameters, encoder CPU time for the utterance
(least of the repeats), the step CPU time (ORT call + state reorder, all `--beam` rows in one
call): for each step index the least of `--repeats` runs, averaged over the steps, the first and
last step (the Transformer's self-attention grows with the prefix), and steps x step time against
the encoder."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kdasr.export.model_dir import write_model_dir, write_model_json
from kdasr.export.onnx_export import export_student
from kdasr.export.quantize import add_variants
from kdasr.models.student import build_model, count_parameters
from kdasr.runtime.onnx_model import OnnxStudent
from kdasr.runtime.search.scorers import DecoderScorer
from kdasr.text import Tokenizer, train_tokenizer
from kdasr.training.presets import load_preset


def export_random(config: str, vocab: int, out: Path, tok: Tokenizer) -> int:
    cfg, _ = load_preset(config, vocab)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    export_student(model, out)
    spec = write_model_dir(out, cfg, tok, {"note": "random weights"})
    write_model_json(out, spec.with_graphs(add_variants(out, spec.graphs, ["int8"])))
    return count_parameters(model), count_parameters(model.decoder)


def time_steps(model: OnnxStudent, seconds: float, beam: int, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    wave = (rng.standard_normal((1, int(seconds * model.sample_rate))) * 0.1).astype(np.float32)
    lens = np.array([wave.shape[1]], np.int64)
    t0 = time.process_time()
    enc = model.encode(wave, lens)
    encode_s = time.process_time() - t0
    rows = np.zeros(beam, np.int64)
    scorer = DecoderScorer(model, enc)
    state = scorer.init_state(rows)
    tokens = rng.integers(4, model.spec.vocab_size, beam).astype(np.int64)
    cpu, wall = [], []
    for _ in range(steps):
        t0, w0 = time.process_time(), time.perf_counter()
        logp, state = scorer.score(tokens, state, rows)
        state = scorer.select_state(state, rng.permutation(beam))  # hypotheses reordered, as a beam does
        cpu.append(time.process_time() - t0)
        wall.append(time.perf_counter() - w0)
        tokens = logp.argmax(-1).astype(np.int64)
    return {"encode": encode_s, "steps": np.array(cpu), "wall": np.array(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["paper-v2", "paper-v2-transformer"])
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = tmp / "text.txt"
        # a throwaway tokenizer of the wanted size (only its vocab size and special ids matter here)
        rng = np.random.default_rng(0)
        words = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(4000)]
        text.write_text("\n".join(" ".join(words[j : j + 12]) for j in range(0, 4000, 12)) + "\n")
        train_tokenizer([text], tmp / "tok", vocab_size=args.vocab)
        tok = Tokenizer(tmp / "tok.model")
        print(f"load average {os.getloadavg()[0]:.2f}; {args.threads} ORT thread(s); beam {args.beam}; "
              f"{args.seconds:g} s utterance; {args.steps} steps; vocab {tok.vocab_size}; best of {args.repeats}\n")
        print("| decoder (config) | precision | params (decoder) | encoder CPU ms | step CPU ms | step wall ms, "
              "median | first / last step CPU ms | steps x step / encoder |")
        print("|---|---|---|---:|---:|---:|---|---:|")
        for config in args.configs:
            out = tmp / config
            params, dec_params = export_random(config, tok.vocab_size, out, tok)
            for precision in args.precision:
                model = OnnxStudent.load(out, threads=args.threads, precision=precision)
                time_steps(model, args.seconds, args.beam, 5)  # warm-up (session arenas)
                runs = [time_steps(model, args.seconds, args.beam, args.steps, seed=r) for r in range(args.repeats)]
                # per step index, the least disturbed of the repeats (other load only ever adds time)
                steps = np.min([r["steps"] for r in runs], axis=0)
                enc = min(r["encode"] for r in runs)
                mean = steps.mean()
                median = np.median(np.concatenate([r["wall"] for r in runs]))
                kind = model.spec.architecture.get("decoder", "?")
                print(f"| {kind} ({config}) | {precision} | {params / 1e6:.2f} M ({dec_params / 1e6:.2f} M) "
                      f"| {enc * 1e3:.1f} | {mean * 1e3:.2f} | {median * 1e3:.2f} | {steps[0] * 1e3:.2f} / "
                      f"{steps[-1] * 1e3:.2f} | {args.steps * mean / enc:.2f} |")

if __name__ == "__main__":
    main()
