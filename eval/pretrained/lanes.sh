#!/usr/bin/env bash
# The remaining runs of issues 27 and 28 as two one-thread lanes, side by side on the 2-core machine:
#   nohup bash eval/pretrained/lanes.sh A > exp/lane-A.log 2>&1 &
#   nohup bash eval/pretrained/lanes.sh B > exp/lane-B.log 2>&1 &
# Every stage skips finished work and resumes unfinished work, so after a session ends (or exp/ is lost)
# the same two commands carry on from wherever the files say. Run them from a snapshot of the package
# (git archive HEAD into a folder with data, exp and .venv linked), not from a tree being edited.
#   A: the grid's frozen runs (their caches are the long part), base fine-tuned whole, their scores, then the
#      claim's BERT teacher and its quality, then the claim's first stages
#   B: the grid's fine-tuned tiny runs and base top 2, their scores, the grid's bench (once A has scored its
#      runs), whisper base's missing reference rows, the claim's LM teacher, then the whole claim
# Everything is written under exp/; `run.sh keep` (from the repository) copies what is kept in git.
# Then the claim (issue 28), which makes its own soft labels from the two teachers: lane A its stages that need
# only BERT (one job), lane B, after the LM teacher, all of it (two jobs; a finished stage is skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."
lane=${1:?usage: lanes.sh A|B}
run() { bash eval/pretrained/run.sh "$@"; }
# the claim recipe (issue 28; make claim) into exp/claim, JOBS jobs (default 2); --wait: a run of it in the other
# lane is waited for, not refused. Not through make, whose setup target would reinstall .venv from this snapshot.
claim() { .venv/bin/python -m kdasr recipe claim --protocol kdasr/configs/protocols/claim-v1.toml --exp exp/claim \
            --wait --jobs "${JOBS:-2}" "$@"; }
until [ -f data/mix/build_info.json ]; do  # the mix is built by make mix-corpus (hours of CPU)
  echo "[lanes $(date +%H:%M:%S)] waiting for data/mix (make mix-corpus)"; sleep 300
done
run tok
case $lane in
  A) export GRID="tiny-frozen base-frozen base-all"; run grid gridscore
     run bert quality
     # the claim's first stages need only the BERT teacher: its soft labels and the T, K sweep, one job
     JOBS=1 claim freeze soft tk ;;
  B) export GRID="tiny-top2 tiny-all base-top2"; run grid gridscore
     # the grid's decoding cost side by side, once lane A has scored its runs too (one thread, beside lane A's
     # one-thread teacher: no core shared); skipped after 3 hours of waiting (lane A stopped?)
     for _ in $(seq 180); do [ -f exp/p27/units/grid-base-all-info.json ] && break; sleep 60; done
     [ -f exp/p27/units/grid-base-all-info.json ] && [ ! -f exp/p27/units/grid-bench.md ] && \
       GRID="tiny-frozen tiny-top2 tiny-all base-frozen base-top2 base-all" run gridbench
     run refs lm
     claim ;;  # the whole claim, two jobs, once lane A's run of it has ended (EXP/recipe.lock)
  *) echo "lanes.sh: lane A or B" >&2; exit 2 ;;
esac
echo "[lanes $(date +%H:%M:%S)] lane $lane done"
