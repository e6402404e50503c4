#!/usr/bin/env bash
# WebSocket fan-out (issue 25, item 4): the time from a heartbeat datagram
# to its `heartbeat` update at each of N browsers (examples/ws_fanout.rs),
# against a fresh release hbd on loopback. Runs CLIENTS clients (100), then
# the 1-client reference, then CLIENTS again, each for DURATION seconds (10) at RATE
# heartbeats a second (1,000), and prints ws_fanout's lines: p50, p99, max,
# and how many of the updates arrived, and the CPU of hbd, of its ws hub
# and of the clients over each run.
#
# Usage: benches/ws.sh   Environment: CLIENTS, RATE, DURATION (seconds),
# CARGO_TARGET_DIR, HBD_BIN (another build of hbd, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin hbd --example ws_fanout
hbd_bin=${HBD_BIN:-$target/release/hbd}
dir=$(mktemp -d)
hbd_pid=""
cleanup() {
    [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_host: 127.0.0.1
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
journal_dir: $dir
ws_max_clients: $((CLIENTS + 28))
YAML
"$hbd_bin" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
hbd_pid=$!
for _ in $(seq 1000); do
    grep -q "ws: listening on" "$dir/hbd.log" && grep -q "udp: listening on" "$dir/hbd.log" && break
    kill -0 "$hbd_pid" 2>/dev/null || { cat "$dir/hbd.log" >&2; exit 1; }
    sleep 0.01
done
udp=$(grep -o 'udp: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | sed 's/.* on //')
ws=$(grep -o 'ws: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | sed 's/.* on //')
echo "# ws fan-out: $(nproc) cores, hbd $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU seconds: hbd's ws hub thread (schedstat, ns) and all of hbd (ticks).
hub_ns() {
    local task
    for task in /proc/"$hbd_pid"/task/*; do
        if [ "$(cat "$task/comm")" = ws ]; then cut -d' ' -f1 "$task/schedstat"; return; fi
    done
}
hbd_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$hbd_pid/stat"; }
TIMEFORMAT='%U %S'
for clients in "$CLIENTS" 1 "$CLIENTS"; do
    hub0=$(hub_ns); cpu0=$(hbd_cpu)
    # The clients' own CPU too: on a small machine they share the cores with hbd.
    { time "$target/release/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients "$clients" --rate "$RATE" \
        --seconds "$DURATION" 2>&1; } 2> "$dir/time"
    read -r user sys < "$dir/time"
    echo "  CPU over the run: hbd $(echo "$(hbd_cpu) - $cpu0" | bc) s (ws hub $(echo "scale=2; ($(hub_ns) - $hub0) / 1000000000" | bc) s), the clients $(echo "$user + $sys" | bc) s"
done
