#!/usr/bin/env bash
# Client benchmark (BENCHMARKS.md, "Client"): hbc's RSS and CPU per
# collection cycle with every built-in system plugin on, each sampled every
# second, beside collectd's client (Debian's collectd-core) in the same run
# with the closest plugins (cpu, load, memory, swap, df, disk, interface,
# tcpconns) every second, the bare Rust receive loop
# (examples/udp_sink.rs) as the smallest Rust process, and
# examples/diag_walk.rs, which only asks sock_diag for the TCP sockets by
# state once a second as hbc does: the kernel's walk alone.
#
# Both clients send what they collect to a receiver on 127.0.0.1, as in a
# real run (hbc compresses each message and reads its ACK; collectd's
# network plugin packs its values into binary packets). Counting TCP
# connections by state walks the kernel's whole established-connection
# hash table, whoever asks; the runs without it (hbc `connections: false`,
# collectd without tcpconns) show the rest of each client's cycle.
#
# A cycle is a second: hbc's plugins sample on fixed turns a second apart,
# collectd reads every plugin each `Interval 1`.
#
# Usage: benches/client.sh   Environment: SECONDS_MEASURED (20),
# CARGO_TARGET_DIR, BIN=DIR NO_BUILD=1 (measure binaries built elsewhere:
# DIR/hbc, DIR/examples/udp_sink, DIR/examples/diag_walk), NO_COLLECTD=1
# (skip collectd).
set -euo pipefail
cd "$(dirname "$0")/.."
MEASURE=${SECONDS_MEASURED:-20}
target=${CARGO_TARGET_DIR:-target}
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --quiet --bin hbc --example udp_sink --example diag_walk
fi
BIN=${BIN:-$target/release}
collectd=$(command -v collectd || echo /usr/sbin/collectd)
if [[ ${NO_COLLECTD:-0} != 1 && ! -x $collectd ]]; then
    echo "collectd not found: installing collectd-core" >&2
    apt-get install -y --no-install-recommends collectd-core > /dev/null 2>&1 ||
        { apt-get update > /dev/null && apt-get install -y --no-install-recommends collectd-core > /dev/null; }
fi
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# The receiver: acknowledges each hbc message as hbd would (so hbc's ACK
# path runs and it never re-resolves), drops collectd's packets.
cat > "$dir/receiver.py" <<'PY'
import json, socket, sys, zlib
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(65536)
    try:
        m = json.loads(zlib.decompress(data) if data[:1] == b"x" else data)
        ack = {"ID": "ACK", "name": m["name"], "seq": m["seq"]}
        s.sendto(json.dumps(ack, separators=(",", ":")).encode(), peer)
    except Exception:
        pass
PY
python3 "$dir/receiver.py" > "$dir/port" &
pids+=("$!")
for _ in $(seq 50); do [[ -s $dir/port ]] && break; sleep 0.1; done
port=$(cat "$dir/port")
# The smallest Rust process, for its RSS.
"$BIN/examples/udp_sink" --bind 127.0.0.1:0 --idle 600 > /dev/null 2>&1 &
sink=$!; pids+=("$sink")
# The connection counts' floor: one sock_diag dump a second and nothing else.
"$BIN/examples/diag_walk" > /dev/null 2> "$dir/diag_walk.log" &
walk=$!; pids+=("$walk")

hbc_config() {
    cat <<YAML
interval: 1
server: 127.0.0.1
port: $port
plugins:
  os_info: {interval: 1}
  cpu_monitor: {interval: 1}
  memory_monitor: {interval: 1}
  disk_monitor: {interval: 1}
  network_monitor: {interval: 1, connections: $1}
  filesystem_info: {interval: 1}
YAML
}
hbc_config true > "$dir/hbc.yaml"
hbc_config false > "$dir/hbc-nc.yaml"

collectd_config() {
    cat <<CONF
Interval 1
Hostname "bench"
FQDNLookup false
BaseDir "$dir/collectd-$1"
PIDFile "$dir/collectd-$1.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel "warning"
  File "$dir/collectd-$1.log"
</Plugin>
LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin swap
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "$port"
</Plugin>
CONF
    if [[ $1 == all ]]; then
        cat <<CONF
LoadPlugin tcpconns
<Plugin tcpconns>
  ListeningPorts false
  AllPortsSummary true
</Plugin>
CONF
    fi
}

"$BIN/hbc" -c "$dir/hbc.yaml" --name bench > /dev/null 2> "$dir/hbc.log" &
hbc=$!; pids+=("$hbc")
"$BIN/hbc" -c "$dir/hbc-nc.yaml" --name bench > /dev/null 2> "$dir/hbc-nc.log" &
hbc_nc=$!; pids+=("$hbc_nc")
cd_all= cd_nc=
if [[ ${NO_COLLECTD:-0} != 1 ]]; then
    for which in all nc; do
        mkdir -p "$dir/collectd-$which"
        collectd_config "$which" > "$dir/collectd-$which.conf"
        "$collectd" -f -C "$dir/collectd-$which.conf" > /dev/null 2>&1 &
        pids+=("$!")
        if [[ $which == all ]]; then cd_all=$!; else cd_nc=$!; fi
    done
fi
sleep 3

# CPU time in ns of all the process's threads (the scheduler's own count:
# /proc/PID/stat's clock ticks are too coarse for a millisecond a second).
cpu() { [[ -n $1 ]] && cat "/proc/$1/task/"*/schedstat | awk '{ns += $1} END {print ns}' || echo 0; }
measured=("$hbc" "$hbc_nc" "$cd_all" "$cd_nc" "$walk")
declare -A before
for p in "${measured[@]}"; do [[ -n $p ]] && before[$p]=$(cpu "$p"); done
start=$(date +%s.%N)
sleep "$MEASURE"
declare -A after
for p in "${measured[@]}"; do [[ -n $p ]] && after[$p]=$(cpu "$p"); done
end=$(date +%s.%N)
load=$(cut -d' ' -f1-3 /proc/loadavg)
cycles=$(echo "$end - $start" | bc)
ms() { [[ -n $1 ]] && echo "scale=3; (${after[$1]} - ${before[$1]}) / 1000000 / $cycles" | bc || echo "–"; }
rss() { [[ -n $1 ]] && awk '/^VmRSS/ {printf "%.2f", $2/1024}' "/proc/$1/status" || echo "–"; }
hwm() { [[ -n $1 ]] && awk '/^VmHWM/ {printf "%.2f", $2/1024}' "/proc/$1/status" || echo "–"; }
for p in "${measured[@]}"; do
    [[ -z $p ]] || kill -0 "$p" 2>/dev/null || { echo "process $p died; logs in $dir" >&2; cat "$dir"/*.log >&2; exit 1; }
done
unacked=$(cat "$dir/hbc.log" "$dir/hbc-nc.log" | grep -c "no ACK" || true)
[[ $unacked == 0 ]] || echo "warning: hbc logged $unacked times that ACKs did not come" >&2
cdver=$([[ -n $cd_all ]] && echo "collectd $(dpkg-query -W -f '${Version}' collectd-core 2>/dev/null || "$collectd" -h 2>&1 | grep -o '[0-9][0-9.]*' | head -1)" || echo "collectd not run")
echo "# client: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), hbc $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $cdver, ${cycles%.*} s measured (cycles of a second), load average $load"
echo
echo "| figure | hbc | collectd | hbc, no TCP connection counts | collectd without tcpconns | bare Rust loop | sock_diag walk alone |"
echo "|---|---|---|---|---|---|---|"
echo "| CPU per cycle (ms) | $(ms "$hbc") | $(ms "$cd_all") | $(ms "$hbc_nc") | $(ms "$cd_nc") | | $(ms "$walk") |"
echo "| RSS (MiB) | $(rss "$hbc") | $(rss "$cd_all") | $(rss "$hbc_nc") | $(rss "$cd_nc") | $(rss "$sink") | |"
echo "| peak RSS (MiB) | $(hwm "$hbc") | $(hwm "$cd_all") | $(hwm "$hbc_nc") | $(hwm "$cd_nc") | $(hwm "$sink") | |"
echo "| binary (bytes) | $(stat -c %s "$BIN/hbc") | | | | $(stat -c %s "$BIN/examples/udp_sink") | |"
