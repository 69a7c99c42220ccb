#!/usr/bin/env bash
# What the scripts that drive the worker with wrk need first (bench.sh, profile.sh): the
# toolchain (scripts/setup.sh) and wrk itself, installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v wrk >/dev/null; then
  echo "[wrk-setup] installing wrk" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
