#!/usr/bin/env bash
# `npm run bench`: release build, then the benchmark table (scripts/bench.mjs), written to
# bench/results.md. `npm run bench:ab -- <ref>` (this script with --ab first) instead serves
# <ref>'s release build beside this one and measures both in turn (scripts/bench-ab.mjs),
# written to bench/ab-results.md. scripts/wrk-setup.sh installs the toolchain and wrk first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
bash scripts/wrk-setup.sh
bash scripts/build.sh >/dev/null
if [ "${1:-}" = "--ab" ]; then
  shift
  exec node scripts/bench-ab.mjs "$@"
fi
node scripts/bench.mjs "$@"
