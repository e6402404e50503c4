#!/usr/bin/env bash
# The console at N hosts (issues 13 and 25): Chromium shows the overview of
# each host count given (default: 1,000, 10,000 and 100,000), first quiet,
# then while UI_RATE heartbeats a second arrive (default 1,000). Prints the
# first contentful paint, the first full render, the JS heap the page keeps,
# its renderer's RSS and peak RSS, and the main thread's busy time per
# second while scrolling, with the same-run references (/healthz, and the
# whole /api/0/hosts fetched and parsed in the page), measured over the
# DevTools protocol by the ignored test ui_benchmark_… in tests/browser.rs.
# Release builds (hbd as users run it). HBD_BENCH_BIN=path/to/hbd measures
# that build's console (an earlier commit's) instead, for a before/after.
# Loopback only; about a minute per host count.
#   benches/ui.sh [HOSTS...]
set -euo pipefail
cd "$(dirname "$0")/.."
# The test finds loadgen beside the test build's hbd.
cargo build --jobs 1 --release --example loadgen
cargo test --jobs 1 --release --test browser --no-run
for n in ${@:-1000 10000 100000}; do
  UI_HOSTS=$n cargo test --jobs 1 --release --test browser ui_benchmark -- --ignored --nocapture 2>&1 |
    grep -E "^ui benchmark|test result|panicked|timed out"
done
