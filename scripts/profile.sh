#!/usr/bin/env bash
# `npm run profile -- <scenario>`: a release build that keeps its function names, in
# build-profile/ (its own target dir, so build/ and the normal build's incremental state are left
# alone), then scripts/profile.mjs: V8's sampling profiler on the worker's isolate under wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
bash scripts/wrk-setup.sh
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export LEAN_ENTRY_ESBUILD="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
export ESBUILD_BIN="$PWD/scripts/lean-entry.mjs" # the shipped entry (scripts/build.sh)
CARGO_TARGET_DIR=target/profile CARGO_PROFILE_RELEASE_STRIP=false \
  worker-build --release --out-dir build-profile >/dev/null
node scripts/profile.mjs "$@"
