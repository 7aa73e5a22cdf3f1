#!/usr/bin/env bash
# tierkit-cache's remote tier end to end: two app instances against three redis-server
# processes the example starts itself (127.0.0.1:26382-26384), one killed with SIGKILL and
# restarted. The example exits non-zero if a read or write error reached a caller, if keys of
# a live node changed node, if more than 1/3 + 5% of keys moved, or if a cached key of a live
# node missed; it prints the invalidation latency over 10,000 updates.
# Debug build: the workspace test step has already compiled the examples.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --example cache_tier --features cache -- --spawn-redis --updates 10000
echo "cache_tier: no caller saw an error with one of three Redis nodes killed; only its keys moved"
