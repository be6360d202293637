#!/usr/bin/env bash
# LSTM location-attention decoder vs Transformer decoder at equal training time on corpus v2
# (issue 11 item 3), each stage resumable:
#   train   paper-v2 (LSTM decoder) and paper-v2-transformer (same encoder, schedule and tokenizer;
#           1.24 M vs 1.23 M decoder parameters at 256 units), ONE thread each, both encoders and CTC heads
#           from $INIT_ENCODER (--init-encoder-from; empty: from scratch), decoders from scratch. Budget
#           $BUDGET: by default $MINUTES minutes side by side (equal time only if each gets a core: an idle
#           machine); BUDGET="--max-steps N" JOBS=1 trains them one after the other to equal steps instead;
#           AMP=bf16 autocasts both forward passes (about twice the steps per minute here)
#   export  both with --check (parity vs torch) and int8 variants; recommended decoding beam 10 + CTC $CTC
#   decode  dev and test WER, greedy attention and the recommended beam, JSON result records
#   bench   both systems' decoding cost side by side in one `kdasr bench` run
#   table   the records as one Markdown table (kdasr eval-table)
# The per-step decoder cost alone, on random weights: eval/tuning/decoder_step_cost.py.
# Usage: bash eval/tuning/decoder_compare.sh [train|export|decode|bench|table|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${KDASR:-.venv/bin/kdasr}
DATA=${DATA:-data/v2}
TOK=${TOK:-export/demo-en/tokenizer.model}  # the 256 units of the paper students
OUT=${OUT:-exp/h4-decoder-compare}
MINUTES=${MINUTES:-40}
BUDGET=${BUDGET:-"--minutes $MINUTES"}
LABEL=${LABEL:-"${BUDGET#--}"}           # how the budget is named in the result records
INIT_ENCODER=${INIT_ENCODER-export/demo-en}
JOBS=${JOBS:-2}
CTC=${CTC:-0.5}
AMP=${AMP:-none}
SETS=${SETS:-"dev test"}
declare -A CONFIG=([lstm]=paper-v2 [transformer]=paper-v2-transformer)
mkdir -p "$OUT/results"

train_one() {
  [ -f "$OUT/$1/done" ] && return 0
  # shellcheck disable=SC2086
  $K train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --tokenizer "$TOK" \
    --config "kdasr/configs/${CONFIG[$1]}.toml" --feature-cache "$DATA/feats" --out "$OUT/$1" \
    --threads 1 --amp "$AMP" $BUDGET ${INIT_ENCODER:+--init-encoder-from "$INIT_ENCODER"} >> "$OUT/train-$1.log" 2>&1 \
    && touch "$OUT/$1/done"
}

train() {
  local pids=() d
  for d in lstm transformer; do
    if [ "$JOBS" -ge 2 ]; then train_one "$d" & pids+=($!); else train_one "$d"; fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

export_models() {
  for d in lstm transformer; do
    [ -f "$OUT/$d/model/model.json" ] || $K export "$OUT/$d/last.pt" --out "$OUT/$d/model" --check \
      --quantize int8 --beam 10 --ctc-weight "$CTC" --method attention
  done
}

decode() {
  for d in lstm transformer; do
    for s in $SETS; do
      f="$OUT/results/$d-$s-greedy.json"
      [ -f "$f" ] || $K eval --model "$OUT/$d/model" --manifest "$DATA/$s.jsonl" --threads 1 --method attention \
        --beam 1 --ctc-weight 0 --system "$d decoder ($LABEL), greedy" --json "$f"
      f="$OUT/results/$d-$s-beam.json"
      [ -f "$f" ] || $K eval --model "$OUT/$d/model" --manifest "$DATA/$s.jsonl" --threads 1 --method attention \
        --beam 10 --ctc-weight "$CTC" --system "$d decoder ($LABEL), beam 10 + CTC $CTC" --json "$f"
    done
  done
}

bench() {
  $K bench --manifest "$DATA/test.jsonl" --threads 1 --limit 100 --repeats 2 \
    --system "lstm=$OUT/lstm/model" --system "transformer=$OUT/transformer/model" \
    --out "$OUT/bench.md"
}

table() { $K eval-table "$OUT"/results/*.json --sets "${SETS// /,}" --out "$OUT/table.md"; }

case ${1:-all} in
  train) train ;; export) export_models ;; decode) decode ;; bench) bench ;; table) table ;;
  all) train; export_models; decode; bench; table ;;
  *) echo "usage: $0 [train|export|decode|bench|table|all]" >&2; exit 2 ;;
esac
