#!/usr/bin/env bash
# Installs everything the build, the local runtime and the tests need, from package registries
# only (crates.io, npm). Idempotent: each step checks what is there and skips it when it matches.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

export PATH="$HOME/.cargo/bin:$PATH"

lock_version() { # prints the version of crate $1 recorded in Cargo.lock
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
else
  log "wasm32-unknown-unknown target present"
fi

# worker-build must match the worker crate: it generates the JS shim that crate expects.
worker_version=$(lock_version worker)
# (It prints the bare version; other tools print "name version".)
if [ "$(worker-build --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)" != "$worker_version" ]; then
  log "installing worker-build $worker_version (a few minutes)"
  cargo install worker-build --version "$worker_version" --locked --quiet
else
  log "worker-build $worker_version present"
fi

# worker-build would download wasm-bindgen from GitHub; we hand it one built from crates.io at
# the exact version in Cargo.lock (the CLI refuses to process a module from another version).
bindgen_version=$(lock_version wasm-bindgen)
if [ "$(wasm-bindgen --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)" != "$bindgen_version" ]; then
  log "installing wasm-bindgen-cli $bindgen_version (a few minutes)"
  # --locked fails on a yanked transitive crate of the CLI; a plain install resolves fine.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force --quiet
else
  log "wasm-bindgen-cli $bindgen_version present"
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    log "adding rustup component $component"
    rustup component add "$component"
  fi
done

# Node 22 (wrangler and miniflare need it), wrangler, miniflare, esbuild and binaryen (the
# build's wasm-opt) come from npm and are pinned in package-lock.json.
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/esbuild ] \
  || [ ! -x node_modules/.bin/wasm-opt ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
else
  log "npm packages present"
fi
log "done"
