#!/usr/bin/env bash
# Plugin store benchmark (BENCHMARKS.md, "Plugin store"): hbd's RSS with
# HOSTS hosts each holding SAMPLES samples of every built-in plugin (the
# data `hbc --once --print` produces on this machine), beside the reference
# of the same run: the bytes of plugin JSON hbd holds. Also the state file's
# size and how long the final save at SIGTERM takes.
# Usage: benches/store.sh   Environment: HOSTS (10000), SAMPLES (50), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
SAMPLES=${SAMPLES:-50}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin hbd --bin hbc --example plugin_load
dir=$(mktemp -d)
hbd_pid=""
cleanup() { [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

"$target/release/hbc" --once --print --name template > "$dir/template.json"
cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
state_save_interval: 86400
journal_enabled: false
max_plugin_size: 65536
YAML
"$target/release/hbd" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
hbd_pid=$!
for _ in $(seq 100); do grep -q "udp: listening on" "$dir/hbd.log" && break; sleep 0.1; done
port=$(grep -o 'udp: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3)
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
idle=$(rss "$hbd_pid")
load=$("$target/release/examples/plugin_load" --target "127.0.0.1:$port" --template "$dir/template.json" --hosts "$HOSTS" --samples "$SAMPLES")
sleep 1
full=$(rss "$hbd_pid")
# What hbd holds: per host, SAMPLES of each monitor plugin and 1 of each info plugin.
held=$(python3 - "$dir/template.json" "$SAMPLES" "$HOSTS" <<'PY'
import json, sys
m = json.loads(open(sys.argv[1]).readline())
samples, hosts = int(sys.argv[2]), int(sys.argv[3])
per_host = sum(len(json.dumps(p["data"], separators=(",", ":"))) * (samples if p["kind"] == "monitor" else 1) for p in m["plugins"].values())
print(f"{per_host * hosts / 1048576:.1f}")
PY
)
start=$(date +%s.%N)
kill -TERM "$hbd_pid"; wait "$hbd_pid" || true; hbd_pid=""
save=$(echo "$(date +%s.%N) - $start" | bc)
state=$(du -m "$dir/state.json" | cut -f1)
echo "# store: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $HOSTS hosts x $SAMPLES samples, hbd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# $load"
echo
echo "| figure | hbd | reference |"
echo "|---|---|---|"
echo "| RSS idle (MiB) | $idle | |"
echo "| RSS holding the store (MiB) | $full | plugin JSON held: $held MiB |"
echo "| state file (MiB) | $state | |"
echo "| SIGTERM to exit, final save included (s) | $(printf '%.2f' "$save") | |"
