#!/usr/bin/env bash
# Instructions per accepted heartbeat, per thread (BENCHMARKS.md, "The
# ceiling of an ACKed protocol"): hbd under `valgrind --tool=callgrind`,
# load-independent, so it can guide work on a shared machine where
# wall-clock rates cannot.
#
# hbd (journal on) gets one heartbeat per host from examples/loadgen.rs,
# left out (callgrind's counters are zeroed after it); then COUNT heartbeats
# at RATE; the counters are dumped before hbd is stopped, so neither start
# nor shutdown counts. Prints each thread's instructions and the total, each
# divided by the heartbeats accepted after the warm-up (journal lines), and
# leaves callgrind.out.* in OUT for callgrind_annotate.
#
# Usage: BIN=DIR benches/callgrind.sh, DIR holding hbd and examples/loadgen
# built with symbols (CARGO_PROFILE_RELEASE_STRIP=false
# CARGO_PROFILE_RELEASE_DEBUG=1, in a CARGO_TARGET_DIR of their own).
# Environment: OUT (default a new temporary directory), HOSTS (10000), COUNT
# (40000), RATE (3000/s: slow enough that hbd under callgrind loses none).
# At this rate the once-a-second work (the tick over HOSTS hosts) is a
# larger share than at the rates of benches/ingest.sh.
set -euo pipefail

BIN=${BIN:?BIN=DIR with hbd and examples/loadgen}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hbd-callgrind.XXXXXX")}
HOSTS=${HOSTS:-10000}
COUNT=${COUNT:-40000}
RATE=${RATE:-3000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/hbd-callgrind-run.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$OUT"
cat >"$dir/hbd.yaml" <<EOF
hb_host: 127.0.0.1
hb_port: 0
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
pidfile: $dir/hbd.pid
journal_dir: $dir/journal
journal_max_size: 17179869184
EOF
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$BIN/hbd" -f -c "$dir/hbd.yaml" 2>"$dir/hbd.log" &
pid=$!
port=
for _ in $(seq 300); do
    port=$(grep -o 'udp: listening on 127\.0\.0\.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3 || true)
    [[ -n $port ]] && break
    sleep 0.2
done
[[ -n $port ]] || { echo "callgrind: hbd did not start; its log:" >&2; cat "$dir/hbd.log" >&2; exit 1; }
loadgen() { # COUNT
    "$BIN/examples/loadgen" --target "127.0.0.1:$port" --count "$1" --rate "$RATE" \
        --seconds $(($1 / RATE + 60)) --hosts "$HOSTS" >&2
}
loadgen "$HOSTS"
sleep 3
callgrind_control -z "$pid" >/dev/null
loadgen "$COUNT"
sleep 3
callgrind_control -d "$pid" >/dev/null
sleep 1
kill -TERM "$pid"
wait "$pid" || true
pid=
lines=$(cat "$dir"/journal/messages* | grep -c '"source_ip"' || true)
accepted=$((lines - HOSTS))
echo "# hbd $("$BIN/hbd" --version 2>/dev/null | head -1); $accepted heartbeats accepted after the warm-up; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| thread | instructions | per heartbeat |"
echo "|---|---|---|"
total=0
# The dump after zeroing: one file per thread, named NAME.1-THREAD.
for f in "$OUT"/callgrind.out.*.1-*; do
    ir=$(awk '/^summary:/ { print $2 }' "$f")
    [[ -n $ir && $ir -gt 1000000 ]] || continue
    # The thread's name: the component whose loop its costs are under.
    name=$(callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f" 2>/dev/null |
        grep -o 'src/server/[a-z_/]*\.rs:std::sys::backtrace' | head -1 | sed 's|src/server/||; s|\(/mod\)\?\.rs:.*||')
    total=$((total + ir))
    echo "| ${name:-?} | $ir | $((ir / accepted)) |"
done
echo "| all | $total | $((total / accepted)) |"
echo "callgrind files: $OUT" >&2
