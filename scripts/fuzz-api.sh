#!/usr/bin/env bash
# `npm run fuzz:api`: installs schemathesis from PyPI into .venv-tools/ (once), builds the
# release worker and runs scripts/fuzz-api.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
venv=.venv-tools/schemathesis
if [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $3}')" != "4.32.5" ]; then
  echo "[fuzz:api] installing schemathesis 4.32.5" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
bash scripts/build.sh >/dev/null
node scripts/fuzz-api.mjs
