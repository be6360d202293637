#!/usr/bin/env bash
# The remaining runs of issues 27 and 28 as two one-thread lanes, side by side on the 2-core machine:
#   nohup bash eval/pretrained/lanes.sh A > exp/lane-A.log 2>&1 &
#   nohup bash eval/pretrained/lanes.sh B > exp/lane-B.log 2>&1 &
# Every stage skips finished work and resumes unfinished work, so after a session ends (or exp/ is lost)
# the same two commands carry on from wherever the files say. Run them from a snapshot of the package
# (git archive HEAD into a folder with data, exp and .venv linked), not from a tree being edited.
#   A: units, the grid's frozen runs (their caches are the long part), base fine-tuned whole, then the
#      claim's BERT teacher and its soft labels (T = 1, K = 32; the claim derives its T x K sweep from it)
#   B: the grid's fine-tuned tiny runs and base top 2, then the claim's LM teacher
# Then (either lane, once both are done): gridscore, and the claim (make claim).
set -euo pipefail
cd "$(dirname "$0")/../.."
lane=${1:?usage: lanes.sh A|B}
run() { bash eval/pretrained/run.sh "$@"; }
until [ -f data/mix/build_info.json ]; do  # the mix is built by make mix-corpus (hours of CPU)
  echo "[lanes $(date +%H:%M:%S)] waiting for data/mix (make mix-corpus)"; sleep 300
done
run tok
case $lane in
  A) GRID="tiny-frozen base-frozen base-all" run grid
     run bert soft quality ;;
  B) GRID="tiny-top2 tiny-all base-top2" run grid
     run lm ;;
  *) echo "lanes.sh: lane A or B" >&2; exit 2 ;;
esac
echo "[lanes $(date +%H:%M:%S)] lane $lane done"
