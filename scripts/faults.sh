#!/usr/bin/env bash
# `npm run soak`: release build, then scripts/faults.mjs (SOAK_SECONDS, SOAK_CONCURRENCY).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
node scripts/faults.mjs
