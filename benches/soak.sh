#!/usr/bin/env bash
# Soak (BENCHMARKS.md, "Soak"; issue 15): hbd for MINUTES minutes at RATE
# heartbeats/s from HOSTS hosts with plugin data, WS_CLIENTS WebSocket
# clients and the API polled; records hbd's RSS every minute, what was
# dropped (kernel socket drops, hbd's rejections, journal lines, live
# updates), and checks at the end that every journal line is whole JSON and
# that the state file loads with every host. RSS should be flat after the
# first minutes (the table and plugin store filling up).
# Usage: benches/soak.sh   Environment: MINUTES (60), RATE (10000),
# HOSTS (10000), WS_CLIENTS (10), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-60}
RATE=${RATE:-10000}
HOSTS=${HOSTS:-10000}
WS_CLIENTS=${WS_CLIENTS:-10}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin hbd --example loadgen --example ws_fanout
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
journal_dir: $dir/journal
journal_max_size: 104857600
journal_max_backups: 3
recv_buffer_size: 8388608
ws_max_clients: 128
max_hosts: $((HOSTS * 2))
YAML
"$target/release/hbd" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
hbd_pid=$!
pids+=("$hbd_pid")
for _ in $(seq 100); do grep -q "ws: listening on" "$dir/hbd.log" && break; sleep 0.1; done
addr() { grep -o "$1: listening on 127.0.0.1:[0-9]*" "$dir/hbd.log" | awk '{print $4}'; }
udp=$(addr udp); http=$(addr http); ws=$(addr ws)
seconds=$((MINUTES * 60))
"$target/release/examples/loadgen" --target "$udp" --hosts "$HOSTS" --rate "$RATE" --seconds "$seconds" --plugins \
  > "$dir/loadgen.out" &
pids+=($!)
# Clients that stay connected for the whole run; the heartbeats they count
# are their own (ws_fanout sends 1/s), the rest of the load is loadgen's.
"$target/release/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients "$WS_CLIENTS" --rate 1 --seconds "$seconds" \
  > "$dir/ws.out" 2>&1 &
pids+=($!)
# The API polled as a dashboard would: hosts list, one host, metrics, health.
( while kill -0 "$hbd_pid" 2>/dev/null; do
    for path in /api/0/hosts /api/0/hosts/host-00001/plugins /metrics /healthz /api/0/alerts; do
      curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "http://$http$path" >> "$dir/api.out" || true
    done
    sleep 1
  done ) &
pids+=($!)
rss() { awk '/VmRSS/ {print $2}' "/proc/$hbd_pid/status"; }
metric() { curl -s "http://$http/metrics" | awk -v m="$1" '$1 == m {s += $2} END {print s + 0}'; }
kernel_drops() { awk -v port="$(printf '%04X' "${udp##*:}")" '$2 ~ ":"port"$" {print $NF}' /proc/net/udp; }
echo "# soak: $(nproc) cores, hbd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $MINUTES min at $RATE/s from $HOSTS hosts with plugin data, $WS_CLIENTS WebSocket clients, API polled every second"
echo
echo "| minute | RSS (KiB) | hosts | accepted | kernel drops | journal lines dropped | ws updates dropped |"
echo "|---|---|---|---|---|---|---|"
for minute in $(seq 0 "$MINUTES"); do
  [ "$minute" -gt 0 ] && sleep 60
  hosts=$(curl -s "http://$http/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hosts"])')
  echo "| $minute | $(rss) | $hosts | $(metric hbd_datagrams_received_total) | $(kernel_drops) | $(metric hbd_journal_lines_dropped_total) | $(metric hbd_ws_updates_dropped_total) |"
done
wait "${pids[1]}" || true
slow=$(awk '$1 != 200 || $2 > 0.1' "$dir/api.out" | wc -l)
echo
echo "API: $(wc -l < "$dir/api.out") requests, $slow not 200 or slower than 100 ms; slowest $(sort -k2 -n "$dir/api.out" | tail -1)"
echo "loadgen: $(tail -1 "$dir/loadgen.out")"
echo "WebSocket: $(tail -1 "$dir/ws.out")"
kill -TERM "$hbd_pid"
wait "$hbd_pid"
python3 - "$dir" "$HOSTS" <<'PY'
import glob, json, sys
d, hosts = sys.argv[1], int(sys.argv[2])
lines = 0
for f in glob.glob(d + "/journal/*"):
    with open(f, "rb") as fh:
        data = fh.read()
    assert data == b"" or data.endswith(b"\n"), f + ": torn last line"
    for line in data.splitlines():
        json.loads(line)
        lines += 1
state = json.load(open(d + "/state.json"))
print(f"integrity: {lines} journal lines, all whole JSON; state file loads with {len(state['hosts'])} hosts ({hosts} from loadgen, 1 from ws_fanout)")
assert len(state["hosts"]) >= hosts  # ws_fanout sends as one more host
PY
