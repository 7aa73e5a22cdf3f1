#!/usr/bin/env bash
# The lb proxy example under load, briefly: builds examples/proxy in release and runs the
# side-by-side load test in its smoke form (3 s per front end and scenario; the tierkit proxy,
# HAProxy and nginx in front of four loopback backends on ports 28001-28012). Fails if the
# script fails or the tierkit proxy answers any error in scenario 1 (all backends equal).
# The full run (documented in lb/README.md) is `examples/proxy/loadtest.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --example proxy
out="$(mktemp /tmp/tierkit-proxy-smoke.XXXXXX.md)"
trap 'rm -f "$out"' EXIT
examples/proxy/loadtest.sh --smoke --out "$out"
echo "proxy: the tierkit proxy example built in release and served the smoke load test without errors in scenario 1; HAProxy and nginx ran through the same script"
