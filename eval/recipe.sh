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
# sweep students export tune decode bench table; teachers, soft, baseline, reference and curves can be named
# on their own). The stages are Python (kdasr/recipe/: runner.py runs them, paper.py lists them, settings.py
# reads the variables below with their defaults); this file is their entry point, as `kdasr recipe run
# [STAGE...] [--from STAGE] [--list]` is.
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
# on CPU (onnxruntime). Only the 2-core CPU defaults (settings.py) have been run (see eval/reports/paper-table.md); the
# torchrun path is tested with 2 CPU processes (tests/test_resume_ddp.py); tests/test_recipe.py runs this
# whole script on a toy corpus, killed in the students stage and run again.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-.venv/bin/python}" -m kdasr recipe run "$@"
