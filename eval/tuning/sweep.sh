#!/usr/bin/env bash
# Learning-speed sweep (issue 3): each variant of the demo recipe trains from scratch for
# $MINUTES minutes on $THREADS thread(s), keeping snapshots; every snapshot is exported and
# scored on the first $DEV_UTTS dev utterances (CTC greedy and attention greedy).
# Results go to $OUT/results.tsv (one row per variant and snapshot). Re-running skips what exists.
#   usage: bash eval/tuning/sweep.sh [variant ...]     (default: all)
set -euo pipefail
KDASR=${KDASR:-.venv/bin/kdasr}
DATA=${DATA:-data/demo}
OUT=${OUT:-exp/tuning}
MINUTES=${MINUTES:-22}
THREADS=${THREADS:-1}
DEV_UTTS=${DEV_UTTS:-300}
SNAPSHOTS=${SNAPSHOTS:-"8 15"}

declare -A FLAGS=(
  [baseline]=""                                         # kdasr/configs/demo.toml as shipped
  [80ms]="--config demo-fast --ctc-weight 0.3 --lr 1.5e-3"  # 3 subsampling convs: half the encoder frames
  [batch4k]="--max-frames 4000 --warmup-steps 300"      # 4x the updates per epoch
  [80ms-ctc0.5]="--config demo-fast --lr 1.5e-3"
  [80ms-8k]="--config demo-fast --ctc-weight 0.3 --lr 1.5e-3 --max-frames 8000 --warmup-steps 250"
  [80ms-lr3e-3]="--config demo-fast"                    # = demo-fast, the config make train-demo uses
  [80ms-specaug0]="--config demo-fast --lr 1.5e-3 --specaug-start-step 0"  # SpecAugment from the first step
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(baseline 80ms batch4k 80ms-ctc0.5 80ms-8k 80ms-lr3e-3 80ms-specaug0)

mkdir -p "$OUT"
[ -f "$OUT/results.tsv" ] || printf 'variant\tcheckpoint\tsteps\ttrain_minutes\tdev_ctc_wer\tdev_att_wer\n' > "$OUT/results.tsv"
for v in "${variants[@]}"; do
  exp="$OUT/$v"
  snaps=""; for m in $SNAPSHOTS; do snaps="$snaps --snapshot $m"; done
  # shellcheck disable=SC2086
  $KDASR train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --tokenizer "$DATA/tokenizer.model" \
    --feature-cache "$DATA/feats" --out "$exp" --threads "$THREADS" --minutes "$MINUTES" $snaps ${FLAGS[$v]}
  for ck in "$exp"/snapshot-*min.pt "$exp/last.pt"; do
    tag=$(basename "$ck" .pt)
    grep -q "^$v	$tag	" "$OUT/results.tsv" && continue
    $KDASR export "$ck" --out "$exp/model-$tag" >/dev/null
    wer() { $KDASR eval --model "$exp/model-$tag" --manifest "$DATA/dev.jsonl" --limit "$DEV_UTTS" \
              --threads "$THREADS" "$@" | sed -E 's/.*WER ([0-9.]+)%.*/\1/'; }
    ctc=$(wer --method ctc); att=$(wer --method attention)
    read -r steps minutes < <(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['training']; print(t['steps'], round(t['train_seconds'] / 60, 1))" "$exp/model-$tag/model.json")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$tag" "$steps" "$minutes" "$ctc" "$att" >> "$OUT/results.tsv"
  done
done
column -t -s $'\t' "$OUT/results.tsv"
