"""One decoding for a student from its `kdasr tune` runs on several dev sets (dev and dev_real): the grid
point with the fewest word errors summed over the sets (then the fewest character errors), so that neither
set alone decides. Reads each tune's point cache (OUT.points/*.json, one eval record per point), prints the
pooled table and writes an options file in `kdasr tune --out`'s format for `kdasr eval --options`.

  python eval/pretrained/choose_decoding.py exp/p27/final/kd-dev-tuned.points \
      exp/p27/final/kd-dev_real-tuned.points --out exp/p27/final/kd-options.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kdasr.recipe.claim_logic import pooled_wer  # the claim recipe's pooling: word errors over words


def points(folder: Path) -> dict[str, dict]:
    """The eval records of one tune, keyed by their grid point (as canonical JSON)."""
    found = {}
    for f in sorted(folder.glob("*.json")):
        rec = json.loads(f.read_text())
        found[json.dumps(rec["tune_point"], sort_keys=True)] = rec
    if not found:
        sys.exit(f"error: {folder}: no tune points (run kdasr tune first)")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="point caches of kdasr tune (OUT.points)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    runs = [points(f) for f in a.folders]
    common = sorted(set.intersection(*(set(r) for r in runs)))
    if not common:
        sys.exit("error: the tunes share no grid point")
    pooled = []
    for key in common:
        recs = [r[key] for r in runs]
        ce = sum(sum(x["per_utterance"]["char_errors"]) for x in recs)  # records keep no char totals
        c = sum(sum(x["per_utterance"]["chars"]) for x in recs)
        pooled.append((pooled_wer(recs) / 100, ce / c, key, recs))
    pooled.sort(key=lambda p: (p[0], p[1]))
    sets = [r["set"] for r in pooled[0][3]]
    print(f"| point | {' | '.join(f'{s} WER %' for s in sets)} | pooled WER % | pooled CER % |")
    print("|---|" + "---:|" * (len(sets) + 2))
    for wer, cer, key, recs in pooled:
        best = " (chosen)" if key == pooled[0][2] else ""
        per_set = " | ".join(f"{x['wer']:.2f}" for x in recs)
        print(f"| {key}{best} | {per_set} | {100 * wer:.2f} | {100 * cer:.2f} |")
    wer, cer, key, recs = pooled[0]
    doc = {"kdasr_options": 1, "decoding": recs[0]["decoding"], "given": json.loads(key), "lm": recs[0].get("lm"),
           "tuned_on": [{"manifest": x["manifest"], "set": x["set"], "utterances": x["utterances"],
                         "limit": x.get("limit"), "wer": x["wer"], "cer": x["cer"]} for x in recs],
           "pooled": {"wer": 100 * wer, "cer": 100 * cer, "rule": "fewest word errors over all sets, then chars"},
           "model": recs[0].get("model"), "points": len(common)}
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, a.out)
    print(f"chosen {key}: pooled WER {100 * wer:.2f} %; wrote {a.out}")


if __name__ == "__main__":
    main()
