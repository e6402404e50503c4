#!/usr/bin/env bash
# Footprint benchmark (BENCHMARKS.md, "Footprint"): hbd's resident memory
# idle and after 10,000 hosts, and the size of its stripped release binary,
# each next to the same figure of the reference, the bare recv_from loop
# (examples/udp_sink.rs, same release profile, same 4 MiB SO_RCVBUF).
#
# Idle: the program is started, we wait for its "listening" line, wait
# IDLE_WAIT seconds (default 3: hbd lets go of its start-up pages on its
# supervisor's first turn, a second after start; see src/memory.rs), and
# read VmRSS and VmHWM from /proc/PID/status. hbd runs with
# the built-in defaults except that it takes heartbeats on 127.0.0.1 port 0
# (not :: port 50003), serves HTTP and WebSocket on port 0 (not 50004 and
# 50005), and keeps its files in a temporary directory. Loaded: then
# examples/loadgen.rs sends 5 heartbeats from each of 10,000 hosts and the
# status is read again once the process is idle.
#
# Usage: benches/footprint.sh   (environment: CARGO_TARGET_DIR, IDLE_WAIT,
# BIN and NO_BUILD=1 for binaries built elsewhere)
set -euo pipefail

cd "$(dirname "$0")/.."
HOSTS=10000

# BIN=DIR NO_BUILD=1: measure binaries built elsewhere (DIR/hbd, DIR/examples/…).
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --bin hbd --examples >&2
fi
BIN=$(cd "${BIN:-${CARGO_TARGET_DIR:-target}/release}" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/hbd-footprint.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for_port LOGFILE WHO: the port from "WHO: listening on 127.0.0.1:PORT",
# within 10 s.
wait_for_port() {
    local line
    for _ in $(seq 100); do
        line=$(grep -o "$2: listening on 127\.0\.0\.1:[0-9]*" "$1" || true)
        if [[ -n $line ]]; then
            echo "${line##*:}"
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "footprint: program did not start listening; its log:" >&2
    cat "$1" >&2
    exit 1
}

# kib FIELD: a VmXxx value of $pid in KiB.
kib() {
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"
}
mib() {
    awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'
}
cpu_ticks() {
    local stat
    stat=$(<"/proc/$pid/stat")
    stat=${stat##*) }
    local -a f
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}
wait_idle() {
    local before after
    for _ in $(seq 50); do
        before=$(cpu_ticks)
        sleep 0.3
        after=$(cpu_ticks)
        [[ $before == "$after" ]] && return
    done
}

# measure NAME LOG STATUS WHO: sets IDLE_RSS IDLE_HWM LOADED_RSS LOADED_HWM (KiB)
# of the program just started as $pid, then stops it with SIGTERM, upon which
# it must exit with STATUS (hbd: 0; the sink does not catch it: 143).
measure() {
    local port status=0
    port=$(wait_for_port "$2" "$4")
    sleep "${IDLE_WAIT:-3}"
    IDLE_RSS=$(kib VmRSS)
    IDLE_HWM=$(kib VmHWM)
    timeout 60 "$BIN/examples/loadgen" --target "127.0.0.1:$port" --hosts "$HOSTS" \
        --count $((HOSTS * 5)) --rate 50000 --seconds 30 >&2
    wait_idle
    LOADED_RSS=$(kib VmRSS)
    LOADED_HWM=$(kib VmHWM)
    echo "$1: threads $(ls "/proc/$pid/task" | wc -l); $(grep -E '^(RssAnon|RssFile)' "/proc/$pid/status" | tr -s ' \t\n' ' ')" >&2
    kill -TERM "$pid"
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid" || status=$?
    if [[ $status != "$3" ]]; then
        echo "footprint: $1 exited with status $status; its log:" >&2
        tail "$2" >&2
        exit 1
    fi
    pid=
}

mkdir "$work/hbd"
printf 'hb_host: 127.0.0.1\nhb_port: 0\nhbd_port: 0\nws_port: 0\n' >"$work/hbd/hbd.yaml"
(cd "$work/hbd" && exec "$BIN/hbd" -f -c hbd.yaml 2>hbd.log) &
pid=$!
measure hbd "$work/hbd/hbd.log" 0 udp
hbd_idle=$IDLE_RSS hbd_idle_hwm=$IDLE_HWM hbd_loaded=$LOADED_RSS hbd_loaded_hwm=$LOADED_HWM

"$BIN/examples/udp_sink" --bind 127.0.0.1:0 >/dev/null 2>"$work/sink.log" &
pid=$!
measure udp_sink "$work/sink.log" 143 udp_sink

hbd_size=$(stat -L -c %s "$BIN/hbd")
sink_size=$(stat -L -c %s "$BIN/examples/udp_sink")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "# footprint: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo
echo "| figure | hbd | bare sink | hbd/sink |"
echo "|---|---|---|---|"
echo "| idle VmRSS (MiB) | $(mib "$hbd_idle") | $(mib "$IDLE_RSS") | $(ratio "$hbd_idle" "$IDLE_RSS") |"
echo "| idle VmHWM (MiB) | $(mib "$hbd_idle_hwm") | $(mib "$IDLE_HWM") | $(ratio "$hbd_idle_hwm" "$IDLE_HWM") |"
echo "| VmRSS after $HOSTS hosts × 5 heartbeats (MiB) | $(mib "$hbd_loaded") | $(mib "$LOADED_RSS") | $(ratio "$hbd_loaded" "$LOADED_RSS") |"
echo "| VmHWM after $HOSTS hosts × 5 heartbeats (MiB) | $(mib "$hbd_loaded_hwm") | $(mib "$LOADED_HWM") | $(ratio "$hbd_loaded_hwm" "$LOADED_HWM") |"
echo "| stripped release binary (bytes) | $hbd_size | $sink_size | $(ratio "$hbd_size" "$sink_size") |"
