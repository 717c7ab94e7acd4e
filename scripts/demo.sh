#!/usr/bin/env bash
# Set up (if needed), start the embedded CPU default on http://127.0.0.1:8000 with a private local Ray,
# analyze a sample clip from ../shared/media and print a readable summary. The service keeps running
# until Ctrl-C (set DEMO_EXIT=1 to stop right after the sample).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SAMPLE=${1:-../shared/media/video/decord_flipping_a_pancake.mkv}
PORT=${PORT:-8000}
ready=$(mktemp -u /tmp/reelscope-ready.XXXXXX)
.venv/bin/reelscope serve --port "$PORT" --ready-file "$ready" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$ready"' EXIT
echo "demo: starting the service (models load once per replica; about a minute on 2 cores)..."
for _ in $(seq 600); do
  [ -f "$ready" ] && break
  kill -0 $server 2>/dev/null || { echo "demo: the service failed to start" >&2; exit 1; }
  sleep 1
done
[ -f "$ready" ] || { echo "demo: the service did not come up in 10 minutes" >&2; exit 1; }
echo "demo: analyzing $SAMPLE"
.venv/bin/reelscope analyze "$SAMPLE" --server "http://127.0.0.1:$PORT" --out var/demo --html
echo "demo: full JSON in var/demo/; try: curl -F file=@YOUR.mp4 http://127.0.0.1:$PORT/analyze"
[ "${DEMO_EXIT:-0}" = 1 ] && exit 0
echo "demo: service running at http://127.0.0.1:$PORT (docs at /docs). Ctrl-C stops it."
wait $server
