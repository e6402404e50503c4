#!/usr/bin/env bash
# The web UI under load: Chromium shows the overview of 10,000 hosts while
# 1,000 heartbeats a second arrive (issue 13). Prints the time to the first
# full render and the main thread's busy time per second, measured over the
# DevTools protocol by the ignored test ui_benchmark_… in tests/browser.rs.
# Loopback only; about half a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example loadgen
# The test finds loadgen beside the test build's hbd: build it there too.
cargo build --example loadgen
cargo test --test browser ui_benchmark -- --ignored --nocapture 2>&1 | grep -E "^ui benchmark|test result"
