#!/usr/bin/env bash
# `npm run coverage`: line coverage of the host-testable core with cargo-llvm-cov (installed
# here, with rustup's llvm-tools, when missing). Fails under 90 % of lines.
#
# Not counted, because it only compiles for wasm32 and is exercised by the end-to-end tests in
# workerd instead: src/runtime/ (every runtime adapter).
# Test-only code (tests.rs files, testing.rs, store/sqlite.rs) is left out of the figure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup component list --installed | grep -q '^llvm-tools'; then
  rustup component add llvm-tools-preview
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  echo "[coverage] installing cargo-llvm-cov (a few minutes)" >&2
  cargo install cargo-llvm-cov --locked --quiet
fi
cargo llvm-cov --lib --summary-only \
  --ignore-filename-regex '(tests\.rs|_tests\.rs|testing\.rs|store/sqlite\.rs)$' \
  --fail-under-lines 90
