#!/usr/bin/env bash
# Your own distilled recogniser, end to end, on a corpus made in minutes (README: "Train and distil
# your own model"). Every step is one kdasr command; each skips or resumes finished work, so rerun
# the script after a stop. Needs the full toolkit: `make setup` (torch, the TTS voices).
#
# Budgets come from the environment: SENTENCES of speech (300), TEACHER_MINUTES for BERT (5),
# MINUTES per student (5). OUT is where everything goes (work/mine).
set -euo pipefail
OUT=${OUT:-work/mine}
SENTENCES=${SENTENCES:-300}
TEACHER_MINUTES=${TEACHER_MINUTES:-5}
MINUTES=${MINUTES:-5}
K=${KDASR:-kdasr}
C=$OUT/corpus
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

# Students start from the shipped small model (demo-en-small, kdasr's own Conformer encoder, the `demo`
# config): its weights already hear the synthetic voices, it trains in minutes on a CPU, and its units
# (tokenizer.model) are the ones every teacher below must share. (demo-en, whisper tiny.en's encoder
# under kdasr's decoder, is the one for real speech: config whisper-tiny-frozen, hours of training.)
START=$($K models path demo-en-small)
TOK=$START/tokenizer.model

step "1. corpus: public-domain text spoken by Debian's TTS voices, split by document"
[ -f "$C/test.jsonl" ] || $K data synth "$C" --version 1 --voices-per-sentence 1 --jobs 2 \
  --max-train-sentences "$SENTENCES" --max-eval-sentences $((SENTENCES / 5 + 2))
$K data validate "$C/train.jsonl"

step "2. BERT teacher: a masked LM over whole documents of the corpus's text, in the students' units"
$K teacher bert "$C/teacher.jsonl" --tokenizer "$TOK" --out "$OUT/bert" --size demo \
  --minutes "$TEACHER_MINUTES" --dev "$C/dev.jsonl"

step "3. soft labels: BERT's distribution at every token of every training transcript, neighbours as context"
$K teacher soft-labels "$C/train.jsonl" --tokenizer "$TOK" --teacher "$OUT/bert" --mode context --out "$OUT/soft"

step "4. two students from the same start and budget: cross-entropy only (ce), and with BERT's soft labels (kd)"
common=(--train "$C/train.jsonl" --dev "$C/dev.jsonl" --tokenizer "$TOK" --init-from "$START" --minutes "$MINUTES")
$K train "${common[@]}" --out "$OUT/ce"
$K train "${common[@]}" --out "$OUT/kd" --kd bert-context --soft-labels "$OUT/soft"

step "5. export to ONNX (checked against torch), tune decoding on dev, export with the tuned decoding"
for s in ce kd; do
  $K export "$OUT/$s/last.pt" --out "$OUT/$s/model" --check
  $K tune --model "$OUT/$s/model" --manifest "$C/dev.jsonl" --grid beam=1,5 --grid ctc_weight=0,0.3 \
    --out "$OUT/$s/tuned.json"
  $K export "$OUT/$s/last.pt" --out "$OUT/$s/model" --check  # reads $OUT/$s/tuned.json
done

step "6. test: both students, decoded as dev chose"
for s in ce kd; do
  $K eval --model "$OUT/$s/model" --manifest "$C/test.jsonl" --system "$s" --json "$OUT/$s/test.json"
done
$K eval-table "$OUT/ce/test.json" "$OUT/kd/test.json" --sets test

step "7. use it by name"
$K models add "$OUT/kd/model" --name "${NAME:-mine}" --replace
echo "now: kdasr transcribe talk.flac -m ${NAME:-mine}    or    kdasr serve -m ${NAME:-mine}"
