#!/usr/bin/env bash
# Corpus v1 vs corpus v2 at the same training budget (issue: corpus v2), each step resumable:
#   1. a 256-unit tokenizer per corpus, on its own teacher text
#   2. the demo-fast student trained on each corpus, side by side, ONE thread each, the same $STEPS
#      optimiser steps (a budget that the other jobs on a shared machine cannot tilt; ~minutes in the logs)
#   3. export; decoding chosen per model on 300 dev utterances of its own corpus (CTC greedy vs
#      joint beam 10 + CTC 0.5), then used (explicit flags) on every test set
#   4. both models scored on v2's test, test_heldout, test_neural_heldout, test_noisy and v1's test,
#      test_heldout; then both and whisper tiny.en on the same $SUBSET evenly spaced utterances of each
#      v2 set (data/v2/sub$SUBSET/: whisper is ~50x slower than kdasr, full sets would take an hour)
#   5. tables generated from the JSON results (kdasr eval-table) under $OUT/tables
# Usage: bash eval/tuning/corpus_compare.sh [train|decode|reference|table|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${KDASR:-.venv/bin/kdasr}
STEPS=${STEPS:-600}
OUT=${OUT:-exp/compare}
SUBSET=${SUBSET:-200}
SETS_V2="test test_heldout test_neural_heldout test_noisy"
SETS_V1="test test_heldout"
mkdir -p "$OUT/results"
stage=${1:-all}

train() {
  for v in v1 v2; do
    [ -f data/$v/tokenizer.model ] || $K tokenizer train data/$v/teacher.txt --out data/$v/tokenizer --vocab-size 256
  done
  for v in v1 v2; do
    $K train --train data/$v/train.jsonl --dev data/$v/dev.jsonl --tokenizer data/$v/tokenizer.model \
      --config demo-fast --feature-cache data/$v/feats --out "$OUT/$v" --max-steps "$STEPS" --threads 1 \
      > "$OUT/train-$v.log" 2>&1 &
  done
  wait
}

# export; pick CTC greedy or joint beam on dev; score the test sets with it
decode() {
  subsets
  for v in ${VERSIONS:-v1 v2}; do
    [ -f "$OUT/$v/model/model.json" ] || $K export "$OUT/$v/last.pt" --out "$OUT/$v/model" --check --method ctc
    for m in ctc joint; do
      f="$OUT/results/dev-$v-$m.json"
      [ -f "$f" ] && continue
      if [ $m = ctc ]; then flags="--method ctc"; else flags="--method attention --beam 10 --ctc-weight 0.5"; fi
      $K eval --model "$OUT/$v/model" --manifest data/$v/dev.jsonl --limit 300 --threads 1 $flags \
        --system "$v-dev-$m" --json "$f"
    done
    best=$(.venv/bin/python -c "import json,sys; a,b=(json.load(open(p))['wer'] for p in sys.argv[1:]); print('ctc' if a<=b else 'joint')" \
      "$OUT/results/dev-$v-ctc.json" "$OUT/results/dev-$v-joint.json")
    echo "$v: decoding chosen on dev: $best"
    if [ $best = ctc ]; then flags="--method ctc"; else flags="--method attention --beam 10 --ctc-weight 0.5"; fi
    for s in $SETS_V2; do
      f="$OUT/results/$v-on-v2-$s.json"
      [ -f "$f" ] || $K eval --model "$OUT/$v/model" --manifest data/v2/$s.jsonl --threads 1 $flags \
        --system "kdasr trained on corpus $v ($best)" --json "$f"
    done
    for s in $SETS_V2; do
      f="$OUT/results/sub-$v-$s.json"
      [ -f "$f" ] || $K eval --model "$OUT/$v/model" --manifest data/v2/sub$SUBSET/$s.jsonl --threads 1 $flags \
        --system "kdasr trained on corpus $v ($best)" --json "$f"
    done
    for s in $SETS_V1; do
      f="$OUT/results/$v-on-v1-$s.json"
      [ -f "$f" ] || $K eval --model "$OUT/$v/model" --manifest data/v1/$s.jsonl --threads 1 $flags \
        --system "kdasr trained on corpus $v ($best)" --json "$f"
    done
  done
}

subsets() {  # evenly spaced utterances, so every source (WEB, Austen, SOTU, Moby-Dick) is in them
  mkdir -p data/v2/sub$SUBSET
  for s in $SETS_V2; do
    [ -f data/v2/sub$SUBSET/$s.jsonl ] && continue
    .venv/bin/python -c "import json, sys; L=open(sys.argv[1]).readlines(); n=min(int(sys.argv[3]), len(L))
rows = [json.loads(L[i * len(L) // n]) for i in range(n)]  # audio paths are relative to the manifest: one up
open(sys.argv[2], 'w').writelines(json.dumps({**r, 'audio': '../' + r['audio']}) + '\\n' for r in rows)" \
      data/v2/$s.jsonl data/v2/sub$SUBSET/$s.jsonl $SUBSET
  done
}

reference() {
  subsets
  for s in $SETS_V2; do
    f="$OUT/results/sub-whisper-$s.json"
    [ -f "$f" ] || $K eval-reference --manifest data/v2/sub$SUBSET/$s.jsonl --threads 1 --json "$f"
  done
}

table() {
  mkdir -p "$OUT/tables"
  $K eval-table $OUT/results/v1-on-v2-*.json $OUT/results/v2-on-v2-*.json \
    --sets test,test_heldout,test_neural_heldout,test_noisy --out "$OUT/tables/v2-sets.md"
  $K eval-table $OUT/results/sub-v1-*.json $OUT/results/sub-v2-*.json $OUT/results/sub-whisper-*.json \
    --sets test,test_heldout,test_neural_heldout,test_noisy --out "$OUT/tables/v2-subsets-with-whisper.md"
  $K eval-table $OUT/results/v1-on-v1-*.json $OUT/results/v2-on-v1-*.json --sets test,test_heldout \
    --out "$OUT/tables/v1-sets.md"
}

case $stage in
  train) train ;; decode) decode ;; reference) reference ;; table) table ;;
  all) train; decode; reference; table ;;
  *) echo "usage: $0 [train|decode|reference|table|all]" >&2; exit 2 ;;
esac
