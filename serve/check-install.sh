#!/usr/bin/env bash
# The CPU image's build steps without Docker (for machines where the daemon cannot run): the same
# `pip install ".[serve]"` into a clean venv from a copy of exactly what the Dockerfile COPYs, the
# same no-torch check and `kdasr doctor`, then the image's command on a loopback port, probed and
# sent one sample, then stopped with SIGTERM. Prints the installed size (the image's layer minus
# the base image). Usage: serve/check-install.sh [python3.11] [workdir]
set -euo pipefail
PY=${1:-python3.11}
WORK=${2:-$(mktemp -d /tmp/kdasr-image-XXXX)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-18231}

mkdir -p "$WORK/src"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/src/"
cp -r "$ROOT/kdasr" "$WORK/src/kdasr"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$V/pip" install -q "$WORK/src[serve]"
rm -rf "$WORK/src"
"$V/python" -c "import importlib.util as u, sys; sys.exit('torch in the image' if u.find_spec('torch') else 0)"
echo "no torch: ok"
"$V/kdasr" doctor --model "$ROOT/export/demo-en"

cd "$WORK"  # not the repository: the venv's own kdasr, not the checkout's, is what runs
KDASR_MODEL="$ROOT/export/demo-en" KDASR_HOST=127.0.0.1 KDASR_PORT=$PORT KDASR_THREADS=2 \
  "$V/kdasr" serve --log-level warning &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  "$V/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=2)" \
    2>/dev/null && break
  sleep 0.5
done
"$V/python" - "$PORT" "$ROOT/eval/samples/web_matthew_6-026.flac" <<'PYEOF'
import sys
from kdasr.serve.client import Client
c = Client(port=int(sys.argv[1]))
r = c.transcribe_form(open(sys.argv[2], "rb").read(), model="demo-en", beam="1")
assert r.status == 200, r.body
print("transcription:", r.json()["text"])
PYEOF
kill -TERM $PID
wait $PID || true
trap - EXIT
echo "installed size (venv, = the image layer over python:3.11-slim): $(du -sh "$WORK/venv" | cut -f1)"
echo "model: $(du -sh "$ROOT/export/demo-en" | cut -f1)"
"$V/pip" list --format=freeze | sed 's/^/  /'
