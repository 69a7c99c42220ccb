#!/usr/bin/env bash
# `npm run fuzz`: a bounded libFuzzer smoke run of every parser and verifier.
# FUZZ_SECONDS (default 30) per target; FUZZ_TARGETS to pick some. Seeds live in
# fuzz/corpus/<target>; new inputs go to a scratch directory (or, with FUZZ_GROW_CORPUS=1,
# into the corpus itself, minimized afterwards with cargo fuzz cmin), crashes to
# fuzz/artifacts/.
# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP lets the one stable toolchain
# on these machines accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "0.13.2" ]; then
  echo "[fuzz] installing cargo-fuzz 0.13.2 (a few minutes)" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi

seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for t in $targets; do
  echo "==> fuzz $t for ${seconds}s"
  mkdir -p "$scratch/$t"
  out="$scratch/$t"
  [ "${FUZZ_GROW_CORPUS:-0}" = 1 ] && out="fuzz/corpus/$t"
  if ! cargo fuzz run -O "$t" "$out" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 > "$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "[fuzz] $t FAILED: the crashing input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss)" "$scratch/$t.log" || true
  if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then
    cargo fuzz cmin -O "$t" "fuzz/corpus/$t" > "$scratch/$t.cmin.log" 2>&1
    echo "corpus: $(ls "fuzz/corpus/$t" | wc -l) inputs after cmin"
  fi
done
echo "fuzz: all targets ran ${seconds}s without a crash"
