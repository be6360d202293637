#!/usr/bin/env bash
# The paper on our data (issue 10), corpus to table, like a Kaldi run.sh: `make recipe` runs it.
#   corpus    corpus v2 (kdasr data synth; SYNTH=0: DATA already holds the manifests); the units are the
#             warm start's 256-unit sentencepiece model ($TOK; trained on teacher.txt when missing)
#   prep      the next three, which do not wait on each other, in two lanes side by side (JOBS >= 2; one
#             after the other with JOBS=1): BERT, then its soft labels (context, utterance) | the baseline
#             to epoch $WARM, then the LM, then its soft labels. On 2 cores this keeps both busy; stage by
#             stage the baseline would train alone on one core. With WARM=0 SWEEP=0 (the default): the
#             teachers, a quality gate (the teachers alone beside the count baselines), then BERT context's
#             soft labels and its student | the other soft labels, the baseline and the other KD students
#   teachers  BERT (masked LM) and the left-to-right LM on the teacher text, side by side (one thread each)
#   soft      soft labels for the whole train set: LM, BERT utterance, BERT context
#   quality   teacher quality and the soft labels' reference-in-top-1/top-K shares beside count baselines;
#             STRICT=1 (default): stop here unless every teacher beats them (no KD from a teacher that does not)
#   baseline  the CE student, from $WARM_START's weights (default the shipped model: CE on corpus v1; empty:
#             from scratch), up to epoch $WARM (every epoch checkpoint kept)
#   sweep     KD students branched from baseline epoch $WARM (same weights, Adam state, schedule position,
#             data order, RNG: only the loss differs), $SWEEP epochs for each lambda in $LAMBDAS (SWEEP=0:
#             none, lambda from KD_LAMBDA)
#   students  learning curves so far; lambda chosen per mode on dev (greedy attention WER of the first
#             $DEV_LIMIT dev utterances at epoch WARM+SWEEP); the baseline and the chosen KD branch of each
#             mode continued to epoch $EPOCHS (same budget); the learning curves again (CSV + PNG)
#   export    every student (its epoch $EPOCHS) with int8 variants; the LM and BERT for fusion/rescoring
#   tune      decoding chosen on dev only: beam/CTC weight per student; on the baseline shallow fusion (LM
#             weight, length bonus) and n-best rescoring with the LM and with BERT
#   decode    every system on dev and the test sets (JSON result records); whisper tiny.en beside them
#   bench     the decoding cost of every system side by side in one `kdasr bench --system` run
#   table     $TABLE_OUT + $PLOT_OUT, generated from the records by `kdasr paper-table`
#   ship      (only when named) the student with the lowest dev WER, exported from its epoch $EPOCHS
#             checkpoint with its dev-tuned decoding as model.json's recommendation, into $SHIP_DIR, with
#             MODEL_CARD.md by `kdasr model-card`. It refuses to write over $WARM_START (the default warm
#             start is export/demo-en-v1, the model export/demo-en was before the paper run)
#   ship_teachers  (only when named) the finished BERT and LM, without optimiser state, into $TEACHERS_OUT with
#             the sha1 of the text they learnt and a quality report; a later run on the same corpus adopts
#             them ($TEACHERS_FROM, default export/teachers for data/v2) instead of training them again
# Every stage skips what is complete (cheap file checks: a finished artifact newer than its inputs) and
# resumes what a kill interrupted; work files live in $EXP (git-ignored). A second run after a complete
# one trains and decodes nothing. Usage: bash eval/recipe.sh [stage ...]   (default: corpus prep quality
# sweep students export tune decode bench table; teachers, soft and baseline can be named on their own)
#
# A real corpus (LibriSpeech-size, GPUs, several nodes) is a switch of variables, e.g.
#   SYNTH=0 DATA=data/librispeech TOK=data/librispeech/tok1000.model VOCAB=1000 WARM_START= CONFIG=paper \
#   TEACHER_SIZE=paper TEACHER_AMP=bf16 BERT_MINUTES=1440 LM_MINUTES=720 THREADS= JOBS=1 \
#   LAUNCH="torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m kdasr" \
#   SETS="dev test_clean test_other" BENCH_SET=test_clean bash eval/recipe.sh
# with DATA holding kdasr manifests (`kdasr data import-librispeech ROOT OUT.jsonl`, `kdasr data import-kaldi`):
# train.jsonl, dev.jsonl, one NAME.jsonl per set in SETS, and teacher.txt (the LM/BERT text: one sentence a
# line, a blank line between documents, no dev/test sentence). Only student training uses LAUNCH (torchrun,
# NCCL on GPUs); teachers, soft labels, tuning, decoding and bench run on one machine: the teachers and
# their soft labels on its GPU when torch sees one (`--device auto`; bf16 suits A100-class GPUs), decoding
# on CPU (onnxruntime). Only the 2-core CPU settings below have been run (see eval/reports/paper-table.md); the
# torchrun path is tested with 2 CPU processes (tests/test_resume_ddp.py); tests/test_recipe.py runs this
# whole script on a toy corpus, killed in the students stage and run again.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${KDASR:-.venv/bin/kdasr}
PY=${PY:-.venv/bin/python}
LAUNCH=${LAUNCH:-$K}                       # the trainer's launcher (torchrun ... -m kdasr on a cluster)
DATA=${DATA:-data/v2}
EXP=${EXP:-exp/paper}
SYNTH=${SYNTH:-1}                          # 1: build corpus v2 into DATA (resumable); 0: DATA is given
SYNTH_ARGS=${SYNTH_ARGS:-"--voices-per-sentence 1 --jobs 2"}
WARM_START=${WARM_START-export/demo-en-v1} # every student starts from these weights (empty: from scratch);
# demo-en-v1 is the model shipped before the paper run (CE on corpus v1), kept because export/demo-en is
# now the run's best student
TOK=${TOK:-${WARM_START:+$WARM_START/tokenizer.model}}; TOK=${TOK:-$DATA/tokenizer.model}
VOCAB=${VOCAB:-256}                        # only when TOK has to be trained
CONFIG=${CONFIG:-kdasr/configs/paper-v2.toml}
TEACHER_SIZE=${TEACHER_SIZE:-demo}
BERT_MINUTES=${BERT_MINUTES:-200}          # teacher budgets: minutes, or steps when *_STEPS is set
LM_MINUTES=${LM_MINUTES:-60}
BERT_STEPS=${BERT_STEPS:-}
LM_STEPS=${LM_STEPS:-}
BERT_ARGS=${BERT_ARGS:-"--arch modernbert --window 256 --batch-size 8"}
LM_ARGS=${LM_ARGS:-}                       # e.g. "--batch-size 32"
TEACHER_EVAL_EVERY=${TEACHER_EVAL_EVERY:-500}
# teachers and soft labels under bf16 autocast where the CPU has native bf16 (AMX or AVX-512 BF16; 1.6-2.3x
# measured with AMX); fp32 elsewhere, where bf16 is emulated and slower
TEACHER_AMP=${TEACHER_AMP:-$("$PY" -c 'from kdasr.machine import cpu_has_fast_bf16; print("bf16" if cpu_has_fast_bf16() else "none")')}
# the students' forward pass: fp32 by default ("none"). "bf16" halves a step where the CPU has native bf16
# (kdasr.training.kd_bench step, paper-v2, batch 16, beside a decode job: 3.20 s fp32, 1.65 s bf16, AMD EPYC).
# All four students must use the same; a change in a resumed run goes into PROTOCOL_NOTE for the table.
# Both are kept in EXP by every run, so a later `make recipe` without them goes on alike
STUDENT_AMP=${STUDENT_AMP:-$(cat "$EXP/student_amp" 2>/dev/null || echo none)}
PROTOCOL_NOTE=${PROTOCOL_NOTE-$(cat "$EXP/protocol_note" 2>/dev/null || true)}  # free text for the protocol line
# finished teachers to adopt instead of training them: used only when EXP has no such teacher yet and the
# shipped one was trained on this DATA's teacher.txt (its teacher_text.sha1) with the units of $TOK
TEACHERS_FROM=${TEACHERS_FROM-$(if [ "$DATA" = data/v2 ]; then echo export/teachers; fi)}
TEACHERS_OUT=${TEACHERS_OUT:-export/teachers}  # where ship_teachers puts them
QUALITY_SENTENCES=${QUALITY_SENTENCES:-200}
STRICT=${STRICT:-1}                        # 1: no KD unless every teacher beats the count baselines
# Two protocols. The default fits one 180-minute session on 2 cores (exp/ may not outlive a session):
# WARM=0 SWEEP=0, every student (baseline and KD) starts from $WARM_START's weights with one seed and data
# order and trains to epoch $EPOCHS; lambda fixed per mode by KD_LAMBDA; the students train in the prep
# stage's two lanes as soon as their soft labels exist. The branched protocol (e.g. WARM=8 SWEEP=1
# EPOCHS=16, about 7 hours here): the baseline to epoch $WARM, KD students branched from that checkpoint,
# a $SWEEP-epoch sweep over $LAMBDAS choosing lambda on dev, then baseline and chosen branches to $EPOCHS
WARM=${WARM:-0}                            # KD students branch from baseline epoch-$WARM.pt (0: all start together)
SWEEP=${SWEEP:-0}                          # epochs of each lambda-sweep branch (0: no sweep, KD_LAMBDA)
EPOCHS=${EPOCHS:-2}                        # every student's final epoch (same budget)
LAMBDAS=${LAMBDAS:-"0.1 0.3 0.5"}          # the sweep's candidates (SWEEP > 0)
# lambda per mode without a sweep: the paper's for BERT (0.1 utterance, 0.3 context), and what the branched
# protocol's 1-epoch sweep over 0.1/0.3/0.5 chose on corpus v2 for all three (eval/reports/paper-sweep.png)
KD_LAMBDA=${KD_LAMBDA:-"lm=0.1 bert=0.1 bert-context=0.3"}
KD_LAMBDA_WHY=${KD_LAMBDA_WHY-"the paper's for BERT, and what a 1-epoch sweep over 0.1/0.3/0.5 from baseline \
epoch 8 chose on this corpus (eval/reports/paper-sweep.png)"}
KD_MODES=${KD_MODES:-"lm bert bert-context"}
DEV_LIMIT=${DEV_LIMIT:-300}
THREADS=${THREADS-1}                       # torch / onnxruntime threads per job (empty: their defaults)
JOBS=${JOBS:-2}                            # jobs side by side (two 1-thread jobs beat one 2-thread job here)
SETS=${SETS:-"dev test test_heldout test_neural_heldout test_noisy"}
EXPORT_ARGS=${EXPORT_ARGS:-"--check --quantize int8"}
# the dev grids, sized for the one-session protocol on 2 cores; kdasr tune caches every point, so a wider
# grid later decodes only its new points
TUNE_BEAMS=${TUNE_BEAMS:-1,10}
TUNE_CTC=${TUNE_CTC:-0,0.2,0.5}
TUNE_LM_WEIGHTS=${TUNE_LM_WEIGHTS:-0.1,0.3,0.5}
TUNE_LENGTH_BONUS=${TUNE_LENGTH_BONUS:-0,1}
TUNE_RESCORE_WEIGHTS=${TUNE_RESCORE_WEIGHTS:-0.1,0.3,1}
NBEST=${NBEST:-10}                         # n-best size (and least beam) of fusion and rescoring
RESCORERS=${RESCORERS:-"lm bert"}
SKIP_REFERENCE=${SKIP_REFERENCE:-0}        # 1: no whisper tiny.en row (it needs the `reference` extra)
# whisper's records are kept in git (~37 core-minutes for the five sets here) and adopted by a later run
# whose set is the same: its manifest and every audio file it lists hash the same (empty: never kept)
REFERENCE_FROM=${REFERENCE_FROM-eval/reports/paper-reference}
BENCH_SET=${BENCH_SET:-test}
BENCH_LIMIT=${BENCH_LIMIT:-64}
BENCH_REPEATS=${BENCH_REPEATS:-2}
QUALITY_OUT=${QUALITY_OUT:-eval/reports/teacher-quality/paper.md}
CURVES_PLOT=${CURVES_PLOT:-eval/reports/paper-curves.png}
TABLE_OUT=${TABLE_OUT:-eval/reports/paper-table.md}
PLOT_OUT=${PLOT_OUT:-${TABLE_OUT%.md}.png}
SHIP_DIR=${SHIP_DIR:-export/demo-en}       # where the ship stage puts the best student
STAGES="corpus prep quality sweep students export tune decode bench table"
PARTS="teachers soft baseline reference"  # parts of prep and decode, which can be run as stages of their own
OPTIONAL="ship ship_teachers"   # run only when named

th() { if [ -n "$THREADS" ]; then echo "--threads $THREADS"; fi; }
log() { echo "[recipe $(date +%H:%M:%S)] $*"; }
die() { echo "[recipe] error: $*" >&2; exit 1; }
fresh() {  # OUT IN... : OUT exists and no IN is newer (make's rule; cheap, so reruns skip finished work)
  local out=$1 f; shift
  [ -e "$out" ] || return 1
  for f in "$@"; do if [ "$f" -nt "$out" ]; then return 1; fi; done
}
write_if_changed() {  # FILE TEXT: atomically, and only when the text differs (keeps mtimes of reruns)
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 0; fi
  printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}
run_parallel() {  # FUNCTION JOB...: $JOBS at a time; after a failure no new job starts; fails if any failed
  local fn=$1 failed=0 j pid; shift
  local -A running=()
  for j in "$@"; do
    while [ "${#running[@]}" -ge "$JOBS" ]; do
      pid=; wait -n -p pid "${!running[@]}" || failed=1
      [ -n "$pid" ] && unset "running[$pid]"
    done
    [ "$failed" = 0 ] || break
    $fn $j & running[$!]=1
  done
  while [ "${#running[@]}" -gt 0 ]; do
    pid=; wait -n -p pid "${!running[@]}" || failed=1
    [ -n "$pid" ] && unset "running[$pid]"
  done
  [ "$failed" = 0 ] || die "$fn: a job failed (logs in $EXP/logs)"
}
mkdir -p "$EXP/logs" "$EXP/results" "$EXP/tune" "$EXP/models"

corpus() {
  if [ "$SYNTH" = 1 ] && ! { [ -f "$DATA/summary.json" ] && { [ -f "$DATA/build_info.json" ] || \
       grep -q '"version": 1' "$DATA/summary.json"; }; }; then
    # shellcheck disable=SC2086
    $K data synth "$DATA" $SYNTH_ARGS
  fi
  local f
  for f in train dev $SETS; do [ -f "$DATA/$f.jsonl" ] || die "$DATA/$f.jsonl: no such manifest"; done
  [ -f "$DATA/teacher.txt" ] || die "$DATA/teacher.txt: no teacher text"
  [ -f "$TOK" ] || $K tokenizer train "$DATA/teacher.txt" --out "${TOK%.model}" --vocab-size "$VOCAB"
}

budget() {  # STEPS MINUTES -> the teacher's budget flag
  if [ -n "$1" ]; then echo "--steps $1"; else echo "--minutes $2"; fi
}
bert_done() { [ -f "$EXP/teachers/bert/config.json" ] && [ -f "$EXP/teachers/bert/kdasr_teacher.json" ]; }
lm_done() { [ -f "$EXP/teachers/lm/lm.pt" ] && [ -f "$EXP/teachers/lm/tokenizer.model" ]; }
teacher_bert() {
  log "BERT teacher ($(budget "$BERT_STEPS" "$BERT_MINUTES"), log $EXP/logs/bert.log)"
  # shellcheck disable=SC2086,SC2046
  $K teacher bert "$DATA/teacher.txt" --tokenizer "$TOK" --out "$EXP/teachers/bert" $BERT_ARGS \
    --size "$TEACHER_SIZE" $(budget "$BERT_STEPS" "$BERT_MINUTES") $(th) --dev "$DATA/dev.jsonl" \
    --eval-every "$TEACHER_EVAL_EVERY" --save-every 5 --amp "$TEACHER_AMP" >> "$EXP/logs/bert.log" 2>&1
}
teacher_lm() {
  log "LM teacher ($(budget "$LM_STEPS" "$LM_MINUTES"), log $EXP/logs/lm.log)"
  # shellcheck disable=SC2046,SC2086
  $K teacher lm "$DATA/teacher.txt" --tokenizer "$TOK" --out "$EXP/teachers/lm" --size "$TEACHER_SIZE" $LM_ARGS \
    $(budget "$LM_STEPS" "$LM_MINUTES") $(th) --dev "$DATA/dev.jsonl" --eval-every "$TEACHER_EVAL_EVERY" \
    --save-every 5 --amp "$TEACHER_AMP" >> "$EXP/logs/lm.log" 2>&1
}
teacher() { "teacher_$1"; }
sha1_of() { sha1sum < "$1" | cut -d' ' -f1; }
adopt_teacher() {  # NAME: copy $TEACHERS_FROM/NAME into EXP when EXP has none and it fits this text and these units
  local src=$TEACHERS_FROM/$1 dst=$EXP/teachers/$1
  { [ -n "$TEACHERS_FROM" ] && [ -d "$src" ] && [ ! -e "$dst" ]; } || return 0
  if ! cmp -s "$src/tokenizer.model" "$TOK" || [ "$(cat "$src/teacher_text.sha1" 2>/dev/null)" != "$(sha1_of "$DATA/teacher.txt")" ]; then
    log "teacher $1: not adopting $src (trained on other units than $TOK or another text than $DATA/teacher.txt)"
    return 0
  fi
  log "teacher $1: adopted from $src (same text and units; TEACHERS_FROM= trains a new one)"
  mkdir -p "$EXP/teachers" && rm -rf "$dst.tmp" && cp -r "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
}
adopt_teachers() { adopt_teacher bert; adopt_teacher lm; }
teachers() {  # a finished teacher is a saved model (config.json is moved in last; lm.pt is atomic)
  local todo=()
  adopt_teachers
  bert_done || todo+=(bert)
  lm_done || todo+=(lm)
  run_parallel teacher "${todo[@]}"
}

soft_done() { [ -f "$EXP/soft/$1/summary.json" ]; }  # written at the end (meta.json is written first)
all_soft_done() { local m; for m in $KD_MODES; do soft_done "$m" || return 1; done; }
soft_one() {  # mode
  local teacher=bert mode=utterance
  case $1 in lm) teacher=lm ;; bert-context) mode=context ;; esac
  soft_done "$1" && return 0
  log "soft labels: $1 (log $EXP/logs/soft-$1.log)"
  # shellcheck disable=SC2046
  $K teacher soft-labels "$DATA/train.jsonl" --tokenizer "$TOK" --teacher "$EXP/teachers/$teacher" --mode $mode \
    --out "$EXP/soft/$1" $(th) --amp "$TEACHER_AMP" >> "$EXP/logs/soft-$1.log" 2>&1
}
soft() { run_parallel soft_one $KD_MODES; }

teacher_quality() {  # LOG BERT LM REPORT [ARG...]: kdasr teacher quality on the dev text, beside count baselines
  local logf=$EXP/logs/$1.log bert=$2 lm=$3 report=$4; shift 4
  # shellcheck disable=SC2046
  $K teacher quality --tokenizer "$TOK" --dev "$DATA/dev.jsonl" --teacher-text "$DATA/teacher.txt" --bert "$bert" \
    --lm "$lm" "$@" --sentences "$QUALITY_SENTENCES" --no-strict $(th) --report "$report" > "$logf" 2>&1 \
    || { tail -5 "$logf" >&2; die "teacher quality failed (log $logf)"; }
}
quality() {
  local soft=() inputs=("$EXP/teachers/bert/config.json" "$EXP/teachers/lm/lm.pt") m json=${QUALITY_OUT%.md}.json
  for m in $KD_MODES; do
    soft_done "$m" || die "no soft labels for $m: run the soft stage first"
    soft+=(--soft-labels "$EXP/soft/$m"); inputs+=("$EXP/soft/$m/summary.json")
  done
  if ! fresh "$json" "${inputs[@]}"; then
    mkdir -p "$(dirname "$QUALITY_OUT")"
    teacher_quality quality "$EXP/teachers/bert" "$EXP/teachers/lm" "$QUALITY_OUT" "${soft[@]}" --train "$DATA/train.jsonl"
  fi
  passed_or_die "$json"
}

train_run() {  # out epochs [extra args]: done when OUT/epoch-EPOCHS.pt exists, else (re)started: it resumes
  local out=$1 epochs=$2; shift 2
  [ -f "$out/epoch-$epochs.pt" ] && return 0
  log "train $(basename "$out") to epoch $epochs (log $EXP/logs/$(basename "$out").log)"
  # shellcheck disable=SC2046
  $LAUNCH train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --config "$CONFIG" --tokenizer "$TOK" \
    --feature-cache "$DATA/feats" --out "$out" $(th) --epochs "$epochs" --amp "$STUDENT_AMP" "$@" >> "$EXP/logs/$(basename "$out").log" 2>&1
}
init() { if [ -n "$WARM_START" ]; then echo "--init-from $WARM_START"; fi; }
together() { [ "$WARM" = 0 ] && [ "$SWEEP" = 0 ]; }  # the one-session protocol: students train in prep
# shellcheck disable=SC2046
baseline() { if [ "$WARM" -gt 0 ]; then train_run "$EXP/baseline" "$WARM" $(init); fi; }

# prep: BERT and its soft labels in one lane; the baseline, the LM and its soft labels in the other
lane_bert() {
  local m
  bert_done || teacher_bert
  for m in $KD_MODES; do case $m in bert*) soft_one "$m" ;; esac; done
}
lane_ce() {
  baseline
  lm_done || teacher_lm
  case " $KD_MODES " in *" lm "*) soft_one lm ;; esac
}
# with together: the teachers first, the gate, then BERT context's soft labels (the longest) and its
# student in one lane; the other soft labels, the baseline and the other KD students in the other
lane_context() {
  case " $KD_MODES " in *" bert-context "*) ;; *) return 0 ;; esac
  soft_one bert-context
  student_full "$(fixed_student bert-context)"
}
lane_rest() {
  local m
  for m in $KD_MODES; do [ "$m" = bert-context ] || soft_one "$m"; done
  student_full baseline
  for m in $KD_MODES; do [ "$m" = bert-context ] || student_full "$(fixed_student "$m")"; done
}
lane() { "lane_$1"; }
prep() {
  local m
  adopt_teachers
  if together; then
    for m in $KD_MODES; do fixed_student "$m" > /dev/null; done  # a mode without a lambda fails here, not later
    teachers
    gate
    if all_soft_done; then
      # a finished run whose EPOCHS was raised: the lanes would train three of the four one after the other
      # shellcheck disable=SC2046
      run_parallel student_full baseline $(for m in $KD_MODES; do fixed_student "$m"; done)
    else
      run_parallel lane context rest
    fi
  else
    run_parallel lane bert ce
  fi
}
gate() {  # the teachers alone beside the count baselines, before any KD (quality needs every soft label)
  local json=$EXP/gate.json
  fresh "$json" "$EXP/teachers/bert/config.json" "$EXP/teachers/lm/lm.pt" \
    || teacher_quality gate "$EXP/teachers/bert" "$EXP/teachers/lm" "$EXP/gate.md"
  passed_or_die "$json"
}
passed_or_die() {  # quality JSON: STRICT=1 stops unless every teacher beats the count baselines
  if "$PY" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["passed"] else 1)' "$1"; then
    log "teacher quality: every teacher beats the count baselines (${1%.json}.md)"
  elif [ "$STRICT" = 1 ]; then
    die "a teacher does not beat the count baselines (see ${1%.json}.md): no distillation from it (STRICT=0 overrides)"
  else
    log "WARNING: a teacher does not beat the count baselines (${1%.json}.md); going on because STRICT=0"
  fi
}

kd_run() {  # mode lambda epochs: from the baseline's epoch-WARM checkpoint, or (WARM=0) where the baseline starts
  local start
  if [ "$WARM" = 0 ]; then
    start=$(init)
  else
    [ -f "$EXP/baseline/epoch-$WARM.pt" ] || die "$EXP/baseline/epoch-$WARM.pt missing: run the baseline stage"
    start="--branch-from $EXP/baseline/epoch-$WARM.pt"
  fi
  # shellcheck disable=SC2086
  train_run "$EXP/kd-$1-$2" "$3" $start --kd "$1" --soft-labels "$EXP/soft/$1" --kd-weight "$2"
}
kd_run_sweep() { kd_run "$1" "$2" $((WARM + SWEEP)); }
sweep() {
  local jobs=() m l
  if [ "$SWEEP" = 0 ]; then log "no lambda sweep (SWEEP=0): $KD_LAMBDA"; return 0; fi
  for m in $KD_MODES; do for l in $LAMBDAS; do jobs+=("$m $l"); done; done
  run_parallel kd_run_sweep "${jobs[@]}"
}

curves() {  # learning curves of every run; skipped when the CSV is newer than every epoch checkpoint
  local runs=() cks=() d f
  for d in "$EXP"/baseline "$EXP"/kd-*; do [ -d "$d" ] && runs+=("$d"); done
  for d in "${runs[@]}"; do for f in "$d"/epoch-*.pt; do [ -e "$f" ] && cks+=("$f"); done; done
  [ -f "$CURVES_PLOT" ] && fresh "$EXP/curves.csv" "${cks[@]}" && return 0
  mkdir -p "$(dirname "$CURVES_PLOT")" "$EXP/curves-parts"
  # each checkpoint's decode is cached beside it: fill the caches one run per job, then the call below
  # that draws every run decodes nothing new
  [ "$JOBS" -gt 1 ] && run_parallel curves_of "${runs[@]}"
  run_curves curves "$EXP/curves.csv" "${runs[@]}" --plot "$CURVES_PLOT"
}
run_curves() {  # LOG CSV RUN... [--plot PNG]: kdasr curves on the first DEV_LIMIT dev utterances, logged to LOG
  local logf=$EXP/logs/$1.log out=$2; shift 2
  # shellcheck disable=SC2046
  $K curves "$@" --dev "$DATA/dev.jsonl" --limit "$DEV_LIMIT" --feature-cache "$DATA/feats" $(th) --no-progress \
    --out "$out" >> "$logf" 2>&1 || { tail -5 "$logf" >&2; die "kdasr curves failed (log $logf)"; }
}
curves_of() {  # RUN: decode its epoch checkpoints into their caches (the CSV of one run is a by-product)
  run_curves "curves-$(basename "$1")" "$EXP/curves-parts/$(basename "$1").csv" "$1"
}

fixed_lambda() {  # mode -> its lambda in KD_LAMBDA
  local pair
  for pair in $KD_LAMBDA; do if [ "${pair%%=*}" = "$1" ]; then echo "${pair#*=}"; return 0; fi; done
  die "KD_LAMBDA ($KD_LAMBDA) has no lambda for KD mode $1"
}
fixed_student() {  # mode -> the run name of its student at KD_LAMBDA's lambda
  local lam
  lam=$(fixed_lambda "$1") || exit 1  # a bare $(...) inside echo would hide fixed_lambda's failure
  echo "kd-$1-$lam"
}
chosen_lambda() {  # mode -> KD_LAMBDA's (SWEEP=0), else the lowest dev greedy-attention WER at epoch WARM+SWEEP
  if [ "$SWEEP" = 0 ]; then fixed_lambda "$1"; return; fi
  "$PY" - "$EXP/curves.csv" "$1" $((WARM + SWEEP)) $LAMBDAS <<'EOF'
import csv, sys
path, mode, epoch, lambdas = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
with open(path, newline="") as f:
    wer = {r["run"]: float(r["dev_wer_attention"]) for r in csv.DictReader(f) if int(r["epoch"]) == epoch}
scored = [(wer[f"kd-{mode}-{lam}"], i, lam) for i, lam in enumerate(lambdas) if f"kd-{mode}-{lam}" in wer]
if len(scored) != len(lambdas):
    sys.exit(f"{path}: no dev WER at epoch {epoch} for every kd-{mode}-* run of LAMBDAS ({' '.join(lambdas)})")
print(min(scored)[2])  # a tie goes to the lambda listed first
EOF
}

students() {
  curves
  local systems=(baseline) m l
  for m in $KD_MODES; do l=$(chosen_lambda "$m") || die "no lambda for $m"; systems+=("kd-$m-$l"); log "lambda for $m: $l"; done
  write_if_changed "$EXP/systems.txt" "$(printf '%s\n' "${systems[@]}")"
  run_parallel student_full "${systems[@]}"
  curves
}
student_full() {
  # shellcheck disable=SC2046
  if [ "$1" = baseline ]; then train_run "$EXP/baseline" "$EPOCHS" $(init); return; fi
  local rest=${1#kd-}; kd_run "${rest%-*}" "${rest##*-}" "$EPOCHS"
}
# the students of the table, one a line (written by the students stage). need_systems is called by each
# stage before any $(systems): a failure inside $(...) in a word list would not stop the script
need_systems() { [ -f "$EXP/systems.txt" ] || die "$EXP/systems.txt missing: run the students stage first"; }
systems() { cat "$EXP/systems.txt"; }

export_into() {  # DIR COMMAND...: write into DIR.tmp, moved to DIR when complete (a dir that exists is done)
  local dir=$1 logf="$EXP/logs/export-$(basename "$1").log"; shift
  rm -rf "$dir.tmp"
  "$@" --out "$dir.tmp" >> "$logf" 2>&1 || { tail -5 "$logf" >&2; die "export of $dir failed (log $logf)"; }
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}
export_one() {  # system | teachers (the LM and BERT, for fusion and rescoring)
  if [ "$1" = teachers ]; then
    fresh "$EXP/models/teachers/lm.json" "$EXP/teachers/lm/lm.pt" && \
      fresh "$EXP/models/teachers/bert.json" "$EXP/teachers/bert/config.json" && return 0
    log "export the LM and BERT"
    export_into "$EXP/models/teachers" $K export-lm --lm "$EXP/teachers/lm" --bert "$EXP/teachers/bert" --check
    return
  fi
  fresh "$EXP/models/$1/model.json" "$EXP/$1/epoch-$EPOCHS.pt" && return 0
  log "export $1"
  # shellcheck disable=SC2086
  export_into "$EXP/models/$1" $K export "$EXP/$1/epoch-$EPOCHS.pt" $EXPORT_ARGS
}
export_all() {
  need_systems
  # shellcheck disable=SC2046
  run_parallel export_one teachers $(systems)
}

tune_one() {  # OUT INPUT... -- kdasr tune args: skipped when OUT is newer than its inputs
  local out=$1 inputs=() name; shift
  while [ "$1" != -- ]; do inputs+=("$1"); shift; done; shift
  fresh "$out" "${inputs[@]}" && return 0
  name=$(basename "$out" .json)
  log "tune $name (log $EXP/logs/tune-$name.log)"
  # shellcheck disable=SC2046
  $K tune --manifest "$DATA/dev.jsonl" --limit "$DEV_LIMIT" $(th) "$@" --out "$out" --table "${out%.json}.md" \
    > "$EXP/logs/tune-$name.log" 2>&1 || { tail -5 "$EXP/logs/tune-$name.log" >&2; die "kdasr tune failed ($out)"; }
}
tune_student() {  # system: beam and CTC weight on dev
  tune_one "$EXP/tune/$1.json" "$EXP/models/$1/model.json" -- --model "$EXP/models/$1" --system "$1" \
    --grid "beam=$TUNE_BEAMS" --grid "ctc_weight=$TUNE_CTC"
}
tune_alternative() {  # fusion | rescore-lm | rescore-bert, on the baseline with BASELINE_SEARCH (set by tune)
  local b=$EXP/models/baseline lm=$EXP/models/teachers t=$EXP/tune
  # shellcheck disable=SC2086
  case $1 in
    fusion) tune_one "$t/fusion.json" "$b/model.json" "$lm/lm.json" "$t/baseline.json" -- --model "$b" --lm "$lm" \
      $BASELINE_SEARCH --system baseline+fusion --grid "lm_weight=$TUNE_LM_WEIGHTS" \
      --grid "length_bonus=$TUNE_LENGTH_BONUS" ;;
    rescore-*) tune_one "$t/$1.json" "$b/model.json" "$lm/${1#rescore-}.json" "$t/baseline.json" -- --model "$b" \
      --lm "$lm" $BASELINE_SEARCH --set "nbest=$NBEST" --set "rescore=${1#rescore-}" --system "baseline+$1" \
      --grid "rescore_weight=$TUNE_RESCORE_WEIGHTS" ;;
  esac
}
tune() {  # the students side by side, then (they need the baseline's choice) fusion and rescoring
  need_systems
  local r alternatives=(fusion)
  # shellcheck disable=SC2046
  run_parallel tune_student $(systems)
  # fusion and rescoring search with the baseline's dev-chosen CTC weight, at a beam of at least NBEST
  BASELINE_SEARCH=$("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1]))["decoding"]
print("--set beam=%d --set ctc_weight=%r" % (max(d["beam"], int(sys.argv[2])), d["ctc_weight"]))' \
    "$EXP/tune/baseline.json" "$NBEST") || die "$EXP/tune/baseline.json: no tuned decoding"
  for r in $RESCORERS; do alternatives+=("rescore-$r"); done
  run_parallel tune_alternative "${alternatives[@]}"
}

systems_with_options() {  # NAME MODEL OPTIONS lines: the table's systems
  local s r
  for s in $(systems); do echo "$s $EXP/models/$s $EXP/tune/$s.json"; done
  echo "baseline+fusion $EXP/models/baseline $EXP/tune/fusion.json"
  for r in $RESCORERS; do echo "baseline+rescore-$r $EXP/models/baseline $EXP/tune/rescore-$r.json"; done
}

set_fingerprint() {  # SET: sha1 over its manifest and the bytes of every audio file it lists
  "$PY" - "$DATA/$1.jsonl" <<'EOF'
import hashlib, sys
from pathlib import Path
from kdasr.data.manifest import read_manifest
h = hashlib.sha1(Path(sys.argv[1]).read_bytes())
for utt in read_manifest(sys.argv[1]):
    h.update(Path(utt.audio).read_bytes())
print(h.hexdigest())
EOF
}
decode_one() {  # NAME MODEL OPTIONS SET: one system on one set (MODEL "-": the whisper reference)
  local name=$1 model=$2 opts=$3 set=$4 f="$EXP/results/$1/$4.json" logf="$EXP/logs/decode-$1-$4.log" keep print
  if [ "$model" = - ]; then [ -f "$f" ] && return 0; else fresh "$f" "$opts" "$model/model.json" && return 0; fi
  mkdir -p "$(dirname "$f")"
  if [ "$model" = - ] && [ -n "$REFERENCE_FROM" ]; then
    keep=$REFERENCE_FROM/$name/$set
    print=$(set_fingerprint "$set") || die "$DATA/$set.jsonl: cannot hash the set"
    if [ -f "$keep.json" ] && [ "$(cat "$keep.sha1" 2>/dev/null)" = "$print" ]; then
      log "decode $name on $set: adopted $keep.json (the same set)"
      cp "$keep.json" "$f.tmp" && mv "$f.tmp" "$f"
      return 0
    fi
  fi
  log "decode $name on $set (log $logf)"
  if [ "$model" = - ]; then
    $K eval-reference --manifest "$DATA/$set.jsonl" --threads "${THREADS:-1}" --json "$f" > "$logf" 2>&1 \
      || { tail -5 "$logf" >&2; die "kdasr eval-reference failed ($set)"; }
    if [ -n "$REFERENCE_FROM" ]; then  # the record, then its set's hash: a half-kept pair is never adopted
      rm -f "$keep.sha1" && mkdir -p "$(dirname "$keep")" && cp "$f" "$keep.json.tmp" && mv "$keep.json.tmp" "$keep.json"
      echo "$print" > "$keep.sha1.tmp" && mv "$keep.sha1.tmp" "$keep.sha1"
    fi
  else
    # shellcheck disable=SC2046
    $K eval --model "$model" --manifest "$DATA/$set.jsonl" --options "$opts" $(th) --system "$name" --json "$f" \
      < /dev/null > "$logf" 2>&1 || { tail -5 "$logf" >&2; die "kdasr eval failed ($name, $set)"; }
  fi
}
decode() {  # every (system, set), $JOBS at a time
  need_systems
  local line set jobs=() whisper=() listed=()
  mapfile -t listed < <(systems_with_options)
  for set in $SETS; do  # set by set: dev (which ship needs) for every system first
    for line in "${listed[@]}"; do jobs+=("$line $set"); done
  done
  # whisper first: its decodes are the longest jobs, and the longest first ends the queue soonest
  mapfile -t whisper < <(reference_jobs)
  run_parallel decode_one "${whisper[@]}" "${jobs[@]}"
}
reference_jobs() { if [ "$SKIP_REFERENCE" != 1 ]; then for set in $SETS; do echo "whisper-tiny.en - - $set"; done; fi; }
# whisper on every set (part of decode; on its own it needs no student, e.g. on a core the prep stage
# leaves idle: JOBS=1 bash eval/recipe.sh reference)
reference() { local jobs=(); mapfile -t jobs < <(reference_jobs); run_parallel decode_one "${jobs[@]}"; }

bench() {
  need_systems
  local args=() inputs=() name model opts
  while read -r name model opts; do
    args+=(--system "$name=$model:$opts"); inputs+=("$opts" "$model/model.json")
  done <<< "$(systems_with_options)"
  fresh "$EXP/bench.json" "${inputs[@]}" && return 0
  log "bench $((${#args[@]} / 2)) systems on $BENCH_SET (first $BENCH_LIMIT utterances)"
  $K bench --manifest "$DATA/$BENCH_SET.jsonl" --limit "$BENCH_LIMIT" --threads "${THREADS:-1}" \
    --repeats "$BENCH_REPEATS" "${args[@]}" --out "$EXP/bench.md" >> "$EXP/logs/bench.log" 2>&1 \
    || { tail -5 "$EXP/logs/bench.log" >&2; die "kdasr bench failed"; }
}

table() {
  need_systems
  local records=() paper=() s sets from start lambdas precision
  mapfile -t records < <(find "$EXP/results" -name '*.json' | sort)
  for s in $(systems); do
    case $s in kd-bert-context-*) paper+=(--paper "$s=bert-context") ;; kd-bert-[0-9]*) paper+=(--paper "$s=bert-utterance") ;; esac
  done
  sets=$(echo $SETS | tr ' ' ,)
  from=${WARM_START:+"$WARM_START's weights"}; from=${from:-"random weights (seed 0)"}
  mkdir -p "$(dirname "$TABLE_OUT")" "$(dirname "$PLOT_OUT")"
  # the protocol goes in a file: paper-table's Path(text).is_file() raises on a text longer than a file name
  if [ "$WARM" = 0 ]; then
    start="Every student (the CE baseline and the KD students alike) starts from $from with one seed and data \
order and trains to epoch $EPOCHS: only the loss differs."
  else
    start="Every student starts from $from with one seed and data order. The baseline (CE) trained to epoch \
$EPOCHS; the KD students branched from its epoch-$WARM checkpoint (weights, Adam state, schedule, data order: only \
the loss differs) and trained to epoch $EPOCHS too."
  fi
  if [ "$SWEEP" = 0 ]; then
    lambdas="Lambda fixed per mode beforehand, not tuned in this run: $KD_LAMBDA${KD_LAMBDA_WHY:+ ($KD_LAMBDA_WHY)}."
  else
    lambdas="Lambda chosen per mode among $LAMBDAS on the first $DEV_LIMIT dev utterances after $SWEEP branch epochs."
  fi
  case $STUDENT_AMP in none) precision=fp32 ;; *) precision="$STUDENT_AMP autocast" ;; esac
  write_if_changed "$EXP/protocol.txt" "$start $lambdas Every system's decoding tuned on the first $DEV_LIMIT dev \
utterances only (eval/recipe.sh). Students' forward pass: $precision.${PROTOCOL_NOTE:+ $PROTOCOL_NOTE}$(wall_times)"
  [ -f "$PLOT_OUT" ] && fresh "$TABLE_OUT" "$EXP/protocol.txt" "$EXP/bench.json" "${records[@]}" && return 0
  $K paper-table "$EXP/results" --baseline baseline --bench "$EXP/bench.json" --sets "$sets" --plot-set "$BENCH_SET" \
    "${paper[@]}" --protocol "$EXP/protocol.txt" --out "$TABLE_OUT" --plot "$PLOT_OUT"
}

wall_times() {  # " Wall time ...": the stages' last working runs (EXP/times) and the corpus synthesis
  "$PY" - "$EXP/times" "$DATA/build_info.json" "$STAGES" <<'EOF'
import json, os, sys
from pathlib import Path
from kdasr.machine import cpu_model
times, info, stages = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
minutes = {s: int((times / s).read_text()) / 60 for s in stages if (times / s).is_file()}
if info.is_file() and "synthesis_seconds" in (built := json.loads(info.read_text())):
    minutes["corpus"] = built["synthesis_seconds"] / 60  # the corpus stage only checks a built corpus
if minutes:
    parts = ", ".join(f"{s} {minutes[s]:.0f}" for s in stages if s in minutes)
    print(f" Wall time in minutes on {os.cpu_count()} cores of {cpu_model()}: {parts}; total {sum(minutes.values()):.0f}.")
EOF
}

best_student() {  # the student (not fusion/rescoring: those need an LM at run time) with the lowest dev WER
  "$PY" - "$EXP/results" $(systems) <<'EOF'
import json, sys
from pathlib import Path
root, students = Path(sys.argv[1]), sys.argv[2:]
missing = [s for s in students if not (root / s / "dev.json").is_file()]
if missing:
    sys.exit(f"{root}: no dev result for {', '.join(missing)}: run the decode stage first")
wer = {s: json.loads((root / s / "dev.json").read_text())["wer"] for s in students}
print(min(students, key=lambda s: (wer[s], students.index(s))))  # a tie goes to the one listed first
EOF
}

decoding_flags() {  # tune JSON -> the export flags of its decoding (the fields kdasr export records)
  "$PY" - "$1" <<'EOF'
import json, sys
from kdasr.cli.decode_flags import DECODE_FLAGS, DECODING
d = json.load(open(sys.argv[1]))["decoding"]
flags = {flag: DECODE_FLAGS[flag][0] for flag in DECODING}  # export's flag -> DecodeOptions field
print(" ".join(f"--{flag.replace('_', '-')} {d[field]}" for flag, field in flags.items() if field in d))
EOF
}

ship() {
  need_systems
  local best flags facts=()
  [ "$(realpath -m "$SHIP_DIR")" != "$(realpath -m "${WARM_START:-/nonexistent}")" ] || die "SHIP_DIR $SHIP_DIR is \
every student's warm start (WARM_START): keep it first, e.g. git mv $SHIP_DIR $SHIP_DIR-v1 and WARM_START=$SHIP_DIR-v1"
  best=$(best_student) || die "no best student"
  flags=$(decoding_flags "$EXP/tune/$best.json") || die "$EXP/tune/$best.json: no tuned decoding"
  log "ship $best to $SHIP_DIR (lowest dev WER; decoding $flags)"
  # shellcheck disable=SC2086
  export_into "$SHIP_DIR" $K export "$EXP/$best/epoch-$EPOCHS.pt" $EXPORT_ARGS $flags
  [ -f "$EXP/bench.json" ] && facts+=(--bench "$EXP/bench.json")
  [ -f "$DATA/build_info.json" ] && facts+=(--corpus "$DATA/build_info.json")  # sources and licences
  $K model-card "$SHIP_DIR" --results "$EXP/results" --system "$best" "${facts[@]}" >> "$EXP/logs/ship.log" 2>&1 \
    || { tail -5 "$EXP/logs/ship.log" >&2; die "kdasr model-card failed"; }
}

ship_teachers() {  # the finished teachers (no optimiser state) into TEACHERS_OUT, with what they were trained on
  bert_done && lm_done || die "the teachers are not finished: run the teachers (or prep) stage first"
  local t
  mkdir -p "$TEACHERS_OUT"
  for t in bert lm; do
    rm -rf "$TEACHERS_OUT/$t.tmp" && mkdir "$TEACHERS_OUT/$t.tmp"
    find "$EXP/teachers/$t" -maxdepth 1 -type f ! -name train_state.pt -exec cp {} "$TEACHERS_OUT/$t.tmp/" \;
    sha1_of "$DATA/teacher.txt" > "$TEACHERS_OUT/$t.tmp/teacher_text.sha1"
    rm -rf "$TEACHERS_OUT/$t" && mv "$TEACHERS_OUT/$t.tmp" "$TEACHERS_OUT/$t"
  done
  teacher_quality ship-teachers "$TEACHERS_OUT/bert" "$TEACHERS_OUT/lm" "$TEACHERS_OUT/QUALITY.md"
  log "teachers shipped to $TEACHERS_OUT ($(du -sh "$TEACHERS_OUT" | cut -f1)); quality in $TEACHERS_OUT/QUALITY.md"
}

main() {
  case " $SETS " in *" $BENCH_SET "*) ;; *) die "BENCH_SET $BENCH_SET is not one of SETS ($SETS)" ;; esac
  local stages=${*:-$STAGES} s fn t0
  for s in $stages; do  # before anything is written: a typo in a stage name leaves EXP as it was
    case " $STAGES $PARTS $OPTIONAL curves export_all " in *" $s "*) ;;
      *) die "unknown stage '$s' (stages: $STAGES $PARTS $OPTIONAL curves)" ;; esac
  done
  mkdir -p "$EXP"  # here, not in the lanes that train: two writers of one file race
  write_if_changed "$EXP/student_amp" "$STUDENT_AMP"
  write_if_changed "$EXP/protocol_note" "$PROTOCOL_NOTE"
  for s in $stages; do
    fn=$s; [ "$s" != export ] || fn=export_all
    log "stage $fn"
    t0=$SECONDS
    $fn
    # the wall time of a stage that worked (a skipped one takes seconds): the table states them
    if [ $((SECONDS - t0)) -ge 60 ]; then mkdir -p "$EXP/times" && write_if_changed "$EXP/times/$s" $((SECONDS - t0)); fi
  done
  case " $stages " in *" table "*) log "done: $TABLE_OUT" ;; *) log "done: $stages" ;; esac
}
# bash reads a script as it runs it: one line that calls main and exits means a run that takes hours
# never reads the file again, so editing (or `git pull`ing) this script under a running recipe is safe
main "$@"; exit
