#!/usr/bin/env bash
# `npm run sim`: the cache's deterministic simulation (src/cache/sim.rs) over random seeds for
# SIM_SECONDS (default 60), in batches, on the host; or one seed with its whole trace
# (SIM_SEED=<n>). Prints a one-line verdict; exits non-zero with the failing seed and trace.
#   SIM_SECONDS=300 npm run sim          SIM_SEED=1234 SIM_STEPS=400 npm run sim
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${SIM_SECONDS:-60}
steps=${SIM_STEPS:-400}
batch=${SIM_BATCH:-50}
test_name=cache::sim::tests::simulate_seeds_from_the_environment

cargo test --quiet --lib --no-run >/dev/null 2>&1 || cargo test --lib --no-run
bin=$(cargo test --lib --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -n1 | sed -E 's/"executable":"(.*)"/\1/')
[ -x "$bin" ] || { echo "sim: could not find the test binary" >&2; exit 1; }

if [ -n "${SIM_SEED:-}" ]; then
  SIM_SEED=$SIM_SEED SIM_STEPS=$steps "$bin" --ignored --exact "$test_name" --nocapture --quiet
  exit $?
fi

start=$(date +%s)
end=$((start + seconds))
# A random first seed each run (printed, so a run can be repeated); seeds go up from it.
from=${SIM_FROM:-$(( (RANDOM << 30 | RANDOM << 15 | RANDOM) ))}
first=$from
total_seeds=0 total_steps=0 total_reads=0 total_writes=0 total_stale=0 total_failed=0 total_refreshed=0 total_patched=0 total_carried=0
while [ "$(date +%s)" -lt "$end" ]; do
  out=$(SIM_FROM=$from SIM_COUNT=$batch SIM_STEPS=$steps "$bin" --ignored --exact "$test_name" --nocapture --quiet 2>&1) || {
    printf '%s\n' "$out" | grep -v '^running\|^test result\|^$' >&2
    echo "sim: FAILED after $total_seeds seeds (seeds $first..$((from + batch))); replay the seed above with SIM_SEED=<seed> SIM_STEPS=$steps npm run sim" >&2
    exit 1
  }
  line=$(printf '%s\n' "$out" | grep '^sim-batch')
  get() { printf '%s\n' "$line" | sed -E "s/.* $1=([0-9]+).*/\1/"; }
  total_seeds=$((total_seeds + batch))
  total_steps=$((total_steps + $(get steps)))
  total_reads=$((total_reads + $(get reads)))
  total_writes=$((total_writes + $(get writes)))
  total_stale=$((total_stale + $(get stale)))
  total_failed=$((total_failed + $(get failed_reads)))
  total_refreshed=$((total_refreshed + $(get refreshed)))
  total_patched=$((total_patched + $(get patched)))
  total_carried=$((total_carried + $(get carried)))
  from=$((from + batch))
done
echo "sim: OK — $total_seeds seeds ($first..$((from - 1))), $total_steps steps, $total_reads reads ($total_stale stale, $total_failed refused by injected faults), $total_writes writes ($total_refreshed views refreshed on write, $total_patched of them patched, $total_carried call entries carried past a change about another call) in $(( $(date +%s) - start )) s; every invariant held after every step"
