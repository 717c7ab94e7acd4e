#!/usr/bin/env bash
# Set up (if needed) and run the test suite: unit tests, media-truth tests and real local Ray Serve
# integration tests. Slow benchmarks-style tests are excluded by default (-m "not slow and not gpu").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
