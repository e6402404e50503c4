#!/usr/bin/env bash
# API benchmark (BENCHMARKS.md, "HTTP and WebSocket"): `GET /api/0/hosts`
# with HOSTS hosts under wrk, beside `GET /healthz` on the same server in the
# same run as the reference (the cost of serving at all); and WebSocket
# fan-out to 100 clients while heartbeats arrive at RATE/s, beside 1 client.
# Usage: benches/api.sh   Environment: HOSTS (10000), RATE (1000), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
RATE=${RATE:-1000}
target=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "api.sh needs wrk (Debian package wrk)" >&2; exit 1; }
cargo build --release --quiet --bin hbd --example loadgen --example ws_fanout
dir=$(mktemp -d)
hbd_pid=""
cleanup() { [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
journal_dir: $dir/journal
ws_max_clients: 128
YAML
"$target/release/hbd" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
hbd_pid=$!
for _ in $(seq 100); do grep -q "ws: listening on" "$dir/hbd.log" && break; sleep 0.1; done
addr() { grep -o "$1: listening on 127.0.0.1:[0-9]*" "$dir/hbd.log" | awk '{print $4}'; }
udp=$(addr udp); http=$(addr http); ws=$(addr ws)
"$target/release/examples/loadgen" --target "$udp" --hosts "$HOSTS" --rate 20000 --seconds $((HOSTS / 20000 + 1)) > /dev/null
count=$(curl -s "http://$http/api/0/hosts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
bytes=$(curl -s "http://$http/api/0/hosts" | wc -c)
run_wrk() { wrk -t2 -c8 -d10s --latency "http://$http$1" | awk '
  /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
  END {printf "%s | %s | %s", rps, p50, p99}'; }
hosts_line=$(run_wrk /api/0/hosts)
health_line=$(run_wrk /healthz)
fan100=$("$target/release/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients 100 --rate "$RATE" --seconds 5)
fan1=$("$target/release/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients 1 --rate "$RATE" --seconds 5)
echo "# api: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), hbd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $count hosts, /api/0/hosts is $bytes bytes"
echo
echo "| wrk -t2 -c8 -d10s | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| GET /api/0/hosts ($count hosts) | $hosts_line |"
echo "| reference: GET /healthz | $health_line |"
echo
echo "WebSocket, heartbeats at $RATE/s:"
echo
echo "- 100 clients: $fan100"
echo "- reference, 1 client: $fan1"
