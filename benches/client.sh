#!/usr/bin/env bash
# Client benchmark (BENCHMARKS.md, "Client"): hbc's RSS and CPU per
# collection cycle with every built-in system plugin on, each sampled every
# second (`--print`, so no server is needed), beside the same-run RSS of the
# bare Rust receive loop (examples/udp_sink.rs) as the smallest Rust process.
# Usage: benches/client.sh   Environment: SECONDS_MEASURED (20), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
MEASURE=${SECONDS_MEASURED:-20}
target=${CARGO_TARGET_DIR:-target}
# BIN=DIR NO_BUILD=1: measure binaries built elsewhere (DIR/hbc, DIR/examples/udp_sink).
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --quiet --bin hbc --example udp_sink
fi
BIN=${BIN:-$target/release}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
cat > "$dir/hbc.yaml" <<YAML
interval: 1
plugins:
  os_info: {interval: 1}
  cpu_monitor: {interval: 1}
  memory_monitor: {interval: 1}
  disk_monitor: {interval: 1}
  network_monitor: {interval: 1}
  filesystem_info: {interval: 1}
YAML
"$BIN/hbc" -c "$dir/hbc.yaml" --print --name bench > "$dir/out.jsonl" 2> "$dir/hbc.log" &
pid=$!; pids+=("$pid")
"$BIN/examples/udp_sink" --bind 127.0.0.1:0 --idle 600 > /dev/null 2>&1 &
sink=$!; pids+=("$sink")
sleep 3
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
lines_before=$(wc -l < "$dir/out.jsonl"); cpu_before=$(cpu "$pid")
sleep "$MEASURE"
lines_after=$(wc -l < "$dir/out.jsonl"); cpu_after=$(cpu "$pid")
rss() { awk '/^VmRSS/ {printf "%.2f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {printf "%.2f", $2/1024}' "/proc/$1/status"; }
# Plugin reports in the printed messages = collections done.
reports=$(tail -n +"$((lines_before + 1))" "$dir/out.jsonl" | head -n "$((lines_after - lines_before))" | python3 -c '
import json, sys
print(sum(len(json.loads(l).get("plugins", {})) for l in sys.stdin))')
cycles=$(echo "scale=2; $reports / 6" | bc)
ms=$(echo "scale=3; ($cpu_after - $cpu_before) * 1000 / $ticks / $cycles" | bc)
echo "# client: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), hbc $(git rev-parse --short HEAD 2>/dev/null || echo '?'), ${MEASURE} s measured, $cycles cycles of 6 plugins"
echo
echo "| figure | hbc | reference (bare Rust loop) |"
echo "|---|---|---|"
echo "| RSS (MiB) | $(rss "$pid") | $(rss "$sink") |"
echo "| peak RSS (MiB) | $(hwm "$pid") | $(hwm "$sink") |"
echo "| CPU per cycle, all 6 system plugins (ms) | $ms | |"
echo "| stripped release binary (bytes) | $(stat -c %s "$BIN/hbc") | $(stat -c %s "$BIN/examples/udp_sink") |"
