#!/usr/bin/env bash
# Ingest benchmark (BENCHMARKS.md, "Ingest"): heartbeats per second that hbd
# accepts end-to-end (decoded, ACKed, host table updated, journaled) from
# 10,000 distinct hosts, next to the same-run figure of the reference, a bare
# recv_from loop (examples/udp_sink.rs) with hbd's 4 MiB SO_RCVBUF.
#
# For each offered rate, the sink and then a fresh hbd each get the same
# examples/loadgen.rs run over loopback. Unless WARMUP=0, each receiver
# first gets one heartbeat per host at 20,000/s, left out of every figure, so
# that the run measures steady state (hosts known) rather than 10,000 hosts
# appearing at once. Reported per receiver: datagrams sent; received (sink:
# its count; hbd: lines with "source_ip" in its journal, i.e. accepted
# end-to-end); kernel drops on the receiving socket (the `drops` column of
# /proc/net/udp, read before the socket closes); and CPU time (utime+stime
# from /proc/PID/stat, all threads, from after the warm-up until the
# receiver is idle again) per received datagram.
#
# Usage: benches/ingest.sh
# Environment: RATES (offered datagrams/s, 0 = as fast as one loadgen thread
# can; default "50000 75000 100000 150000 200000 0"), RUN_SECONDS (per run,
# default 8), HOSTS (default 10000), SIZE (JSON bytes, default 222),
# LOADGEN_ARGS (extra loadgen options, e.g. --zlib), SINK_ARGS (extra sink
# options: --ack for one ACK per datagram; "--mmsg --ack" for the ceiling of
# an ACKed protocol, recvmmsg and sendmmsg in batches of 64 as hbd does
# them, issue 25), HBD_CONFIG (extra YAML lines for hbd's config, e.g.
# "journal_enabled: false", when hbd's own "accepted" count is used instead
# of journal lines), HBD_REV (names the code measured when this is not a
# git checkout), CARGO_TARGET_DIR, BIN and NO_BUILD=1 (binaries from BIN). Only 127.0.0.1 is used; every process
# started is stopped on exit; a run takes about 2.5 minutes. WARMUP=0:
# measure from a cold start instead.
set -euo pipefail

cd "$(dirname "$0")/.."
RATES=${RATES:-"50000 75000 100000 150000 200000 0"}
RUN_SECONDS=${RUN_SECONDS:-8}
HOSTS=${HOSTS:-10000}
SIZE=${SIZE:-222}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
SINK_ARGS=${SINK_ARGS:-}
HBD_CONFIG=${HBD_CONFIG:-}
WARMUP=${WARMUP:-1}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
CLK_TCK=$(getconf CLK_TCK)

# BIN=DIR NO_BUILD=1: measure binaries built elsewhere (DIR/hbd,
# DIR/examples/loadgen, DIR/examples/udp_sink), e.g. another commit's.
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --bin hbd --examples >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hbd-ingest.XXXXXX")
receiver_pid=
cleanup() {
    if [[ -n $receiver_pid ]] && kill -0 "$receiver_pid" 2>/dev/null; then
        kill -TERM "$receiver_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$receiver_pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for_port LOGFILE PID WHO: the port from the receiver's "WHO: listening
# on 127.0.0.1:PORT" line (both receivers bind port 0), within 10 s.
wait_for_port() {
    local log=$1 pid=$2 line
    for _ in $(seq 100); do
        line=$(grep -o "$3: listening on 127\.0\.0\.1:[0-9]*" "$log" || true)
        if [[ -n $line ]]; then
            echo "${line##*:}"
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ingest: receiver did not start listening; its log:" >&2
    cat "$log" >&2
    exit 1
}

# udp_socket PORT: "RX_QUEUE_BYTES DROPS" of the socket bound to
# 127.0.0.1:PORT, from /proc/net/udp.
udp_socket() {
    local want _sl local _rem _st queues drops
    want=$(printf '0100007F:%04X' "$1")
    while read -r _sl local _rem _st queues _ _ _ _ _ _ _ drops _; do
        if [[ $local == "$want" ]]; then
            echo "$((16#${queues#*:})) $drops"
            return
        fi
    done </proc/net/udp
    echo "ingest: no socket on 127.0.0.1:$1 in /proc/net/udp" >&2
    exit 1
}

# cpu_ticks PID: utime+stime of the whole process (all threads), in ticks.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    local -a f
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}

# thread_ticks PID: "name=ticks ..." per thread, to show where time goes.
thread_ticks() {
    local task stat out=
    local -a f
    for task in /proc/"$1"/task/*; do
        stat=$(<"$task/stat")
        stat=${stat##*) }
        read -r -a f <<<"$stat"
        out+="$(<"$task/comm")=$((f[11] + f[12])) "
    done
    echo "$out"
}

# wait_idle PID PORT: until the socket's queue is empty and the process has
# used no CPU for 0.3 s (channels and journal buffer drained), at most 15 s.
wait_idle() {
    local pid=$1 port=$2 before after stats
    for _ in $(seq 50); do
        before=$(cpu_ticks "$pid")
        sleep 0.3
        after=$(cpu_ticks "$pid")
        stats=$(udp_socket "$port")
        if [[ ${stats% *} == 0 && $before == "$after" ]]; then
            return
        fi
    done
    echo "ingest: receiver $pid still busy after 15 s; figures include a backlog" >&2
}

# The functions below set globals rather than print, so that they run in
# this shell: a failure exits the script and the EXIT trap sees the pid.

# run_loadgen PORT RATE: runs loadgen; sets SENT and SECS.
run_loadgen() {
    local out
    # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of words
    out=$(timeout $((RUN_SECONDS + 30)) "$BIN/examples/loadgen" --target "127.0.0.1:$1" \
        --rate "$2" --seconds "$RUN_SECONDS" --hosts "$HOSTS" --size "$SIZE" $LOADGEN_ARGS)
    echo "$out" >&2
    # "loadgen: sent N datagrams in S s (...)"
    read -r _ _ SENT _ _ SECS _ <<<"$out"
}

# warm_up PID PORT: one heartbeat per host, then waits until the receiver is
# idle; sets WARM, the datagrams that reached the socket, and DROPS0, the
# kernel drops so far, both to be subtracted from the run's figures.
warm_up() {
    local stats
    WARM=0
    if [[ $WARMUP == 1 ]]; then
        timeout 60 "$BIN/examples/loadgen" --target "127.0.0.1:$2" --count "$HOSTS" \
            --rate 20000 --seconds 30 --hosts "$HOSTS" --size "$SIZE" >/dev/null
        wait_idle "$1" "$2"
        WARM=$HOSTS
    fi
    stats=$(udp_socket "$2")
    DROPS0=${stats#* }
    WARM=$((WARM - DROPS0))
}

# run_sink RATE: sets SENT SECS RECEIVED DROPS TICKS for the bare loop.
run_sink() {
    local log=$work/sink.log port cpu0 stats
    # shellcheck disable=SC2086 # SINK_ARGS is a list of words
    "$BIN/examples/udp_sink" --bind 127.0.0.1:0 --idle 4 $SINK_ARGS >"$work/sink.out" 2>"$log" &
    receiver_pid=$!
    port=$(wait_for_port "$log" "$receiver_pid" udp_sink)
    warm_up "$receiver_pid" "$port"
    cpu0=$(cpu_ticks "$receiver_pid")
    run_loadgen "$port" "$1"
    wait_idle "$receiver_pid" "$port"
    stats=$(udp_socket "$port")
    DROPS=$((${stats#* } - DROPS0))
    TICKS=$(($(cpu_ticks "$receiver_pid") - cpu0))
    wait "$receiver_pid"
    receiver_pid=
    # "udp_sink: received N datagrams ..."
    read -r _ _ RECEIVED _ <"$work/sink.out"
    RECEIVED=$((RECEIVED - WARM))
    echo "sink: $(<"$work/sink.out")" >&2
}

# run_hbd RATE: sets SENT SECS RECEIVED DROPS TICKS for a fresh hbd, where
# RECEIVED counts the message lines of its journal; prints its CPU per
# thread and its own summary on standard error.
run_hbd() {
    local dir=$work/hbd port cpu0 stats threads
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/hbd.yaml" <<EOF
hb_host: 127.0.0.1
hb_port: 0
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
pidfile: $dir/hbd.pid
journal_dir: $dir/journal
journal_max_size: 17179869184
$HBD_CONFIG
EOF
    "$BIN/hbd" -f -c "$dir/hbd.yaml" 2>"$dir/hbd.log" &
    receiver_pid=$!
    port=$(wait_for_port "$dir/hbd.log" "$receiver_pid" udp)
    warm_up "$receiver_pid" "$port"
    cpu0=$(cpu_ticks "$receiver_pid")
    run_loadgen "$port" "$1"
    wait_idle "$receiver_pid" "$port"
    stats=$(udp_socket "$port")
    DROPS=$((${stats#* } - DROPS0))
    TICKS=$(($(cpu_ticks "$receiver_pid") - cpu0))
    threads=$(thread_ticks "$receiver_pid")
    kill -TERM "$receiver_pid"
    for _ in $(seq 300); do
        kill -0 "$receiver_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$receiver_pid" 2>/dev/null; then
        echo "ingest: hbd did not exit within 30 s of SIGTERM" >&2
        exit 1
    fi
    if ! wait "$receiver_pid"; then
        echo "ingest: hbd failed; its log:" >&2
        tail "$dir/hbd.log" >&2
        exit 1
    fi
    receiver_pid=
    if [[ -d $dir/journal ]]; then
        RECEIVED=$(cat "$dir"/journal/* | grep -c '"source_ip"' || true)
    else
        # "udp: stopped after N datagrams, A accepted, ..."
        RECEIVED=$(grep -o 'stopped after [0-9]* datagrams, [0-9]* accepted' "$dir/hbd.log" | cut -d' ' -f5)
    fi
    RECEIVED=$((RECEIVED - WARM))
    echo "hbd: CPU ticks (1/$CLK_TCK s) per thread since start: $threads" >&2
    echo "hbd: $(grep -o 'udp: stopped after.*' "$dir/hbd.log" || true)" >&2
    rm -rf "$dir"
}

us_per() { # TICKS COUNT
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" \
        'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "-" }'
}
per_s() { # COUNT SECONDS
    awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'
}
ratio() { # A B
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

echo "# ingest: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "# $HOSTS hosts, $SIZE-byte JSON, $RUN_SECONDS s per run, warm-up: $([[ $WARMUP == 1 ]] && echo "1 heartbeat per host, not counted" || echo none); loadgen args: ${LOADGEN_ARGS:-none}; sink args: ${SINK_ARGS:-none}; hbd config extra: ${HBD_CONFIG:-none}"
echo "# hbd ${HBD_REV:-$(git describe --always --dirty 2>/dev/null || echo "(not a git checkout)")}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| offered/s | sent (sink / hbd) | sink received | sink /s | sink drops | sink CPU µs/dgram | hbd accepted | hbd /s | hbd drops | hbd CPU µs/dgram | hbd/sink rate | hbd/sink CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# The best rate each receiver took with nothing lost (no kernel drops, every
# datagram sent counted), over the offered rates tried.
sink_best=0 hbd_best=0
for rate in $RATES; do
    run_sink "$rate"
    s_sent=$SENT s_recv=$RECEIVED s_drops=$DROPS
    s_rate=$(per_s "$RECEIVED" "$SECS")
    s_us=$(us_per "$TICKS" "$RECEIVED")
    if [[ $DROPS == 0 && $RECEIVED == "$SENT" && $s_rate -gt $sink_best ]]; then
        sink_best=$s_rate
    fi
    run_hbd "$rate"
    h_rate=$(per_s "$RECEIVED" "$SECS")
    h_us=$(us_per "$TICKS" "$RECEIVED")
    if [[ $DROPS == 0 && $RECEIVED == "$SENT" && $h_rate -gt $hbd_best ]]; then
        hbd_best=$h_rate
    fi
    offered=$rate
    [[ $rate == 0 ]] && offered=max
    echo "| $offered | $s_sent / $SENT | $s_recv | $s_rate | $s_drops | $s_us | $RECEIVED | $h_rate | $DROPS | $h_us | $(ratio "$h_rate" "$s_rate") | $(ratio "$h_us" "$s_us") |"
done
echo
echo "Highest rate taken with nothing lost: sink $sink_best/s, hbd $hbd_best/s, ratio $(ratio "$hbd_best" "$sink_best")."
