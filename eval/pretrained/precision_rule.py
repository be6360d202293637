"""The shipped model's precision rule, fixed before any decoding: int8 is recommended on the CPU when its
pooled dev WER (dev + dev_real, word errors over words) is within MARGIN points of fp32's. Also checks
that the fp32 records of a rebuilt mix equal the kept ones (the same words and word errors per test set),
i.e. that the corpus and the runtime reproduce what the report says.

  python eval/pretrained/precision_rule.py --records exp/p27/final --kept eval/pretrained/records/final
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MARGIN = 0.5  # WER points; fixed with the rule, before the shipped model was decoded
DEV_SETS = ("dev", "dev_real")
TEST_SETS = ("test", "test_real", "test_noisy", "test_heldout", "test_neural_heldout")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def pooled_wer(records: list[dict]) -> float:
    return 100.0 * sum(r["word_errors"] for r in records) / sum(r["words"] for r in records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=Path, required=True, help="shipped-SET-PRECISION.json (run.sh precision)")
    ap.add_argument("--kept", type=Path, required=True, help="the kept ship-SET-fp32.json records")
    args = ap.parse_args()

    dev = {p: [load(args.records / f"shipped-{s}-{p}.json") for s in DEV_SETS] for p in ("fp32", "int8")}
    wer = {p: pooled_wer(rs) for p, rs in dev.items()}
    gap = wer["int8"] - wer["fp32"]
    choice = "int8" if gap <= MARGIN else "fp32"
    print("| precision | " + " | ".join(DEV_SETS) + " | pooled dev WER % |")
    print("|---|" + "---:|" * (len(DEV_SETS) + 1))
    for p, rs in dev.items():
        print(f"| {p} | " + " | ".join(f"{r['wer']:.2f}" for r in rs) + f" | {wer[p]:.2f} |")
    print(f"\nint8 - fp32 = {gap:+.2f} points (rule: int8 when <= {MARGIN}): **{choice}**\n")

    print("| test set | fp32 word errors / words, now | kept | equal | int8 WER % now |")
    print("|---|---:|---:|---|---:|")
    for s in TEST_SETS:
        now, kept = args.records / f"shipped-{s}-fp32.json", args.kept / f"ship-{s}-fp32.json"
        if not (now.is_file() and kept.is_file()):
            continue
        a, b = load(now), load(kept)
        i8 = args.records / f"shipped-{s}-int8.json"
        i8_wer = f"{load(i8)['wer']:.2f}" if i8.is_file() else "–"
        same = (a["word_errors"], a["words"]) == (b["word_errors"], b["words"])
        print(f"| {s} | {a['word_errors']} / {a['words']} | {b['word_errors']} / {b['words']} | "
              f"{'yes' if same else 'NO'} | {i8_wer} |")


if __name__ == "__main__":
    main()
