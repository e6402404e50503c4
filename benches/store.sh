#!/usr/bin/env bash
# Plugin store benchmark (BENCHMARKS.md, "Plugin store"): hbd's RSS with
# HOSTS hosts each holding SAMPLES samples of every built-in plugin, the
# data being what `hbc --once --print` produces on this machine made to vary
# per host and per sample as a real machine's does (examples/plugin_load.rs).
# Beside it, the references of the same run: the bare UDP sink's RSS
# (examples/udp_sink.rs: a process with a socket and nothing else) and the
# bytes of plugin JSON hbd holds. Also: the encoded history's bytes per
# stored number, the state file's size, how long the final save at SIGTERM
# takes, how long hbd takes to load that file at start, and /metrics.
# Usage: benches/store.sh   Environment: HOSTS (10000), SAMPLES (50), HBD_BIN, CARGO_TARGET_DIR,
# LATENCY (1; 0: heartbeats without hbc's round trips, plugin data only).
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
SAMPLES=${SAMPLES:-50}
latency_flag=""
[ "${LATENCY:-1}" = 0 ] && latency_flag="--no-latency"
target=${CARGO_TARGET_DIR:-target}
# HBD_BIN: another hbd to measure with the same load (e.g. one built at an older commit).
hbd_bin=${HBD_BIN:-$target/release/hbd}
cargo build --release --quiet --bin hbd --bin hbc --example plugin_load --example udp_sink
dir=$(mktemp -d)
hbd_pid=""
sink_pid=""
cleanup() {
    [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null
    [ -n "$sink_pid" ] && kill -9 "$sink_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

"$target/release/hbc" --once --print --name template > "$dir/template.json"
cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_host: 127.0.0.1
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
state_save_interval: 86400
journal_enabled: false
max_plugin_size: 65536
YAML
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
start_hbd() {
    : > "$dir/hbd.log"
    "$hbd_bin" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
    hbd_pid=$!
    for _ in $(seq 600); do grep -q "http: listening on" "$dir/hbd.log" && grep -q "udp: listening on" "$dir/hbd.log" && break; sleep 0.01; done
    port=$(grep -o 'udp: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3)
    http=$(grep -o 'http: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3)
}
# Sets `stopped` to the seconds from SIGTERM to exit (not in a subshell:
# only this shell can wait for hbd).
stop_hbd() {
    local t0
    t0=$(date +%s.%N)
    kill -TERM "$hbd_pid"; wait "$hbd_pid" || true; hbd_pid=""
    stopped=$(echo "$(date +%s.%N) - $t0" | bc)
}

"$target/release/examples/udp_sink" --bind 127.0.0.1:0 > /dev/null 2>&1 &
sink_pid=$!
sleep 1
sink=$(rss "$sink_pid")
kill -9 "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""

start_hbd
idle=$(rss "$hbd_pid")
load=$("$target/release/examples/plugin_load" --target "127.0.0.1:$port" --template "$dir/template.json" --hosts "$HOSTS" --samples "$SAMPLES" $latency_flag)
sleep 1
full=$(rss "$hbd_pid")
metrics=$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$http/metrics"; done | sort -n | sed -n 2p)
metrics_lines=$(curl -s "http://127.0.0.1:$http/metrics" | grep -c '^hbd_plugin_metric{' || true)
stop_hbd
save=$stopped
state=$(du -m "$dir/state.json" | cut -f1)
held=$(echo "$load" | sed -n 's/.*held_json_bytes=\([0-9]*\).*/\1/p')
numbers=$(echo "$load" | sed -n 's/.*held_numbers=\([0-9]*\).*/\1/p')
# Encoded history bytes, from the state file's blocks (version 2; a version-1
# file has none: the figure is then the JSON text per number).
encoded=$(python3 - "$dir/state.json" <<'PY'
import base64, json, sys
if open(sys.argv[1]).read(20).startswith('{"version":1,'):
    print(0)
    sys.exit()
s = json.load(open(sys.argv[1]))
print(sum(len(base64.b64decode(b[2])) for p in s.get("plugins", []) for v in p.values() for b in v.get("blocks", [])))
PY
)
t0=$(date +%s.%N)
start_hbd
loaded=$(echo "$(date +%s.%N) - $t0" | bc)
sleep 2  # as a user would see it: after the first second's clean-up
reloaded=$(rss "$hbd_pid")
stop_hbd
echo "# store: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $HOSTS hosts x $SAMPLES samples${latency_flag:+ (plugin data only)}, hbd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# ${load%%; held*}"
echo
echo "| figure | hbd | reference |"
echo "|---|---|---|"
echo "| RSS idle (MiB) | $idle | bare sink: $sink |"
echo "| RSS holding the store (MiB) | $full | plugin JSON held: $(echo "scale=1; $held / 1048576" | bc) |"
if [ "$encoded" -gt 0 ]; then
    echo "| encoded history, bytes per stored number | $(echo "scale=2; $encoded / $numbers" | bc) ($encoded bytes, $numbers numbers) | JSON text: $(echo "scale=2; $held / $numbers" | bc) |"
fi
echo "| state file (MiB) | $state | |"
echo "| SIGTERM to exit, final save included (s) | $(printf '%.2f' "$save") | |"
echo "| start-up with that state file, to listening (s) | $(printf '%.2f' "$loaded") | |"
echo "| RSS 2 s after that start (MiB) | $reloaded | |"
echo "| /metrics, median of 3 (s) | $metrics ($metrics_lines plugin lines) | |"
