#!/usr/bin/env bash
# `npm test`: set-up, lint, host tests, release build, end-to-end tests in workerd.
# Stops at the first failure with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "set-up (skips what is installed)"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (host, all targets)"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo clippy (wasm32: the runtime glue)"
cargo clippy --target wasm32-unknown-unknown --quiet -- -D warnings

step "host tests (cargo test)"
cargo test --quiet

step "release build (worker-build)"
bash scripts/build.sh >/dev/null

step "Debian's chromium for the console's browser test (installed once)"
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
"${CHROMIUM_PATH:-/usr/bin/chromium}" --version

step "end-to-end tests against the built worker in workerd"
node --test --test-reporter=spec tests/*.test.mjs
