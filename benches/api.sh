#!/usr/bin/env bash
# API benchmark (BENCHMARKS.md, "HTTP and WebSocket"): `GET /api/0/hosts`
# with HOSTS hosts under wrk, beside nginx (Debian package) serving the same
# bytes as a static file in the same run (the reference), and `GET /healthz`
# on the same server (the cost of serving at all); and WebSocket
# fan-out to 100 clients while heartbeats arrive at RATE/s, beside 1 client.
# Usage: benches/api.sh   Environment: HOSTS (10000), RATE (1000), CARGO_TARGET_DIR,
# BIN and NO_BUILD=1 (binaries from BIN), HBD_REV (names the code measured).
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
RATE=${RATE:-1000}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
command -v wrk >/dev/null || { echo "api.sh needs wrk (Debian package wrk)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "api.sh needs nginx (Debian package nginx)" >&2; exit 1; }
# BIN=DIR NO_BUILD=1: measure binaries built elsewhere (DIR/hbd, DIR/examples/…).
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --quiet --bin hbd --example loadgen --example ws_fanout
fi
dir=$(mktemp -d)
hbd_pid=""
nginx_pid=""
cleanup() {
    [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null && sleep 0.5
    rm -rf "$dir"
}
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
"$BIN/hbd" -f -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
hbd_pid=$!
for _ in $(seq 100); do grep -q "ws: listening on" "$dir/hbd.log" && break; sleep 0.1; done
addr() { grep -o "$1: listening on 127.0.0.1:[0-9]*" "$dir/hbd.log" | awk '{print $4}'; }
udp=$(addr udp); http=$(addr http); ws=$(addr ws)
# A long interval: the hosts stay up for the whole run (10,000 going down at
# once would send every browser 20,000 updates in the middle of the
# WebSocket measurement, more than a client's queue holds).
"$BIN/examples/loadgen" --target "$udp" --hosts "$HOSTS" --rate 20000 --seconds $((HOSTS / 20000 + 1)) --interval 3600 > /dev/null
count=$(curl -s "http://$http/api/0/hosts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
curl -s "http://$http/api/0/hosts" > "$dir/hosts.json"
bytes=$(wc -c < "$dir/hosts.json")
# nginx serving the same bytes from a file: the reference. One worker per
# core as Debian's default config has, logging off, port 0 not possible: a
# free port from the kernel via python.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/www/api/0" && cp "$dir/hosts.json" "$dir/www/api/0/hosts"
cat > "$dir/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    default_type application/json;
    client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    server { listen 127.0.0.1:$nginx_port; root $dir/www; }
}
NGINX
nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/api/0/hosts" && break; sleep 0.1; done
etag=$(curl -s -D - -o /dev/null "http://$http/api/0/hosts" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
gzip_bytes=$(curl -s -H 'Accept-Encoding: gzip' "http://$http/api/0/hosts" | wc -c)
run_wrk() { wrk -t2 -c8 -d10s --latency "$@" | awk '
  /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
  END {printf "%s | %s | %s", rps, p50, p99}'; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
hosts_line=$(run_wrk "http://$http/api/0/hosts")
nginx_line=$(run_wrk "http://127.0.0.1:$nginx_port/api/0/hosts")
gzip_line=$(run_wrk -H 'Accept-Encoding: gzip' "http://$http/api/0/hosts")
cond_line=$(run_wrk -H "If-None-Match: $etag" "http://$http/api/0/hosts")
health_line=$(run_wrk "http://$http/healthz")
fan100=$("$BIN/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients 100 --rate "$RATE" --seconds 5)
fan1=$("$BIN/examples/ws_fanout" --udp "$udp" --ws "$ws" --clients 1 --rate "$RATE" --seconds 5)
echo "# api: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), hbd ${HBD_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}, $count hosts, /api/0/hosts is $bytes bytes"
echo
echo "| wrk -t2 -c8 -d10s | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| GET /api/0/hosts ($count hosts) | $hosts_line |"
echo "| reference: nginx, the same bytes as a file | $nginx_line |"
echo "| GET /api/0/hosts, Accept-Encoding: gzip ($gzip_bytes bytes) | $gzip_line |"
echo "| GET /api/0/hosts, If-None-Match: its ETag (304) | $cond_line |"
echo "| GET /healthz | $health_line |"
echo
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "WebSocket, heartbeats at $RATE/s:"
echo
echo "- 100 clients: $fan100"
echo "- reference, 1 client: $fan1"
