#!/usr/bin/env bash
# tierkit-lb extra checks (issue 17):
#  1. loom model of the health / refresh / publish protocol (lb/src/eject.rs): an ejection is
#     never cancelled by a concurrent publish, max_ejected_percent is never exceeded, the slot
#     count survives a racing set_healthy. (The lease reference-count models in
#     lb/src/refcount.rs run in .ci/run's loom step.)
#  2. the policy situation table (lb_sim --situations --quick) is byte-identical across two runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "lb: loom model of health / refresh / publish (lb/src/eject.rs)"
LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg tierkit_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p tierkit-lb --lib --release loom_eject

echo "lb: situation table deterministic by seed"
scratch="${TIERKIT_SCRATCH:-$(mktemp -d)}"
cargo run --release --example lb_sim -- --situations --quick > "$scratch/lb_situations_1.txt"
cargo run --release --example lb_sim -- --situations --quick > "$scratch/lb_situations_2.txt"
if ! diff -u "$scratch/lb_situations_1.txt" "$scratch/lb_situations_2.txt"; then
  echo "lb: FAILED: two runs of the seeded situation table differ" >&2
  exit 1
fi
echo "lb: proved: no publish cancels an ejection, ejections stay within max_ejected_percent (loom);"
echo "lb: proved: the situation table is byte-identical across runs ($(wc -l < "$scratch/lb_situations_1.txt") lines)"
