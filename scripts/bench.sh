#!/usr/bin/env bash
# `npm run bench`: release build, then the benchmark table (scripts/bench.mjs), written to
# bench/results.md. `npm run bench:ab -- <ref>` (this script with --ab first) instead serves
# <ref>'s release build beside this one and measures both in turn (scripts/bench-ab.mjs),
# written to bench/ab-results.md. Installs wrk from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
if ! command -v wrk >/dev/null; then
  echo "[bench] installing wrk" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
bash scripts/build.sh >/dev/null
if [ "${1:-}" = "--ab" ]; then
  shift
  exec node scripts/bench-ab.mjs "$@"
fi
node scripts/bench.mjs "$@"
