#!/usr/bin/env bash
# Builds the release worker into build/ (build/worker/shim.mjs + the wasm module).
# worker-build would fetch wasm-bindgen and esbuild from GitHub; point it at the ones
# scripts/setup.sh installed from crates.io and npm instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
worker-build --release "$@"
