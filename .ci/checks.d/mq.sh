#!/usr/bin/env bash
# tierkit-mq: the power-loss suite must be able to fail (STYLE.md rule 22).
#
# The suite runs against two deliberately broken variants of the simulated disk (`SimDir`,
# compiled with `--cfg tierkit_mutant=...`, a test-only switch that no normal build sets):
#   keep_unsynced  a "power loss" that keeps every byte written but never fsynced;
#   drop_synced    a power loss that also loses the last fsynced byte of every file.
# Each variant must make `power_loss` tests FAIL; if the suite passes against a broken disk,
# it proves nothing, and this check fails CI.
set -uo pipefail
cd "$(dirname "$0")/../.."

fail=0
for mutant in keep_unsynced drop_synced; do
  log="$(mktemp)"
  # Its own target dir: the cfg flag changes every crate's fingerprint.
  RUSTFLAGS="--cfg tierkit_mutant=\"$mutant\"" CARGO_TARGET_DIR="target/mq-mutant-$mutant" \
    cargo test -q -p tierkit-mq --features sim --test integration power_loss >"$log" 2>&1
  status=$?
  if grep -q "^error\(\[E[0-9]*\]\)\?:" "$log" && ! grep -q "test result" "$log"; then
    echo "mq mutant check: the $mutant build did not compile:"
    tail -30 "$log"
    fail=1
  elif [ "$status" -eq 0 ]; then
    echo "mq mutant check: FAILED: the power-loss suite passed against the $mutant disk"
    tail -5 "$log"
    fail=1
  elif ! grep -q "test result: FAILED" "$log"; then
    echo "mq mutant check: the $mutant run failed without a test failure:"
    tail -30 "$log"
    fail=1
  else
    failed="$(grep -c '^    power_loss::' "$log")"
    echo "mq mutant check: ok: the $mutant disk fails $failed power-loss test(s):"
    grep '^    power_loss::' "$log" | sed 's/^/  /'
  fi
  rm -f "$log"
done
if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "mq mutant check: proved that the power-loss suite catches a disk that keeps unsynced bytes and one that drops synced bytes"
