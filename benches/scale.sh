#!/usr/bin/env bash
# The fleet-size benchmark (BENCHMARKS.md, "100,000 hosts"; issue 25, item 1):
# for each host count in HOSTS_LIST, a fresh hbd is filled with what a fleet
# of hbcs sends (every built-in plugin, SAMPLES samples of each, plus hbc's
# round trips; examples/plugin_load.rs) and then kept busy with heartbeats
# at their interval (examples/loadgen.rs), and these are measured, each
# beside a reference of the same run:
#
#   RSS holding the full histories          the plugin JSON held; the bare UDP sink
#   CPU per plugin message while filling    (all threads; per thread too)
#   core CPU per plugin message, one more   core CPU per heartbeat (heartbeats only)
#     round (store + alert evaluation; each
#     host's series continued: --skip)
#   a periodic state save (state thread)    cp + fsync of the same file
#   answers while it saves (probe.py)       the same probe while nothing is saved
#   SIGTERM to exit, final save included
#   start-up with that state, to listening  python3's json.load of the file
#     (and the RSS, peak RSS after it)
#   /metrics: time (median of 3) and size,  /healthz
#     with and without plugin data
#   /api/0/hosts: time and size; ?status=down
#
# hbd runs with the built-in defaults (state_save_interval 60, plugin_history
# 50, max_hosts 100,000) except: loopback ports, files in a temp dir, the
# journal off (at 100,000 hosts the fill would write 9 GiB of it; journal
# cost is ingest.sh's subject), max_plugin_size 65536 (hbc's full message),
# and a few threshold rules on every host so that samples are evaluated.
#
# Usage: benches/scale.sh   Environment: HOSTS_LIST ("1000 10000 100000"),
# SAMPLES (50), THREADS (plugin_load's senders, 1), SAVE_INTERVAL (hbd's
# state_save_interval, 60; 5 makes a 10,000-host fill see as many saves as
# a 100,000-host one, though its "no save" reference then has saves in it),
# CARGO_TARGET_DIR,
# HBD_BIN, TEMPLATE (a template message to send instead of this machine's). Prints a Markdown table on stdout; progress on stderr. On this
# 2-core machine the 100,000-host step takes about 25 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS_LIST=${HOSTS_LIST:-"1000 10000 100000"}
SAMPLES=${SAMPLES:-50}
THREADS=${THREADS:-1}
SAVE_INTERVAL=${SAVE_INTERVAL:-60}
target=${CARGO_TARGET_DIR:-target}
hbd_bin=${HBD_BIN:-$target/release/hbd}
cargo build --release --quiet --bin hbd --bin hbc --example plugin_load --example loadgen --example udp_sink
bin=$target/release
dir=$(mktemp -d)
hbd_pid=""
other_pid=""
cleanup() {
    [ -n "$hbd_pid" ] && kill -9 "$hbd_pid" 2>/dev/null
    [ -n "$other_pid" ] && kill -9 "$other_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
say() { echo "scale: $*" >&2; }
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# CPU seconds of a process, all threads (utime + stime).
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# CPU nanoseconds of hbd's thread named $1 (schedstat: exact, not ticks).
thread_ns() {
    local task
    for task in /proc/"$hbd_pid"/task/*; do
        if [ "$(cat "$task/comm")" = "$1" ]; then cut -d' ' -f1 "$task/schedstat"; return; fi
    done
    echo 0
}
thread_cpu() { # every thread's CPU seconds, "name=s ..."
    local task
    for task in /proc/"$hbd_pid"/task/*; do
        awk -v t="$(getconf CLK_TCK)" '{s = ($14 + $15) / t; if (s >= 0.5) printf "%s=%.0f ", $2, s}' "$task/stat"
    done | tr -d '()'
}
ms() { printf '%.0f' "$(echo "$1 * 1000" | bc)"; }
# GET $1: "seconds bytes status" (status 000: no answer, e.g. the connection closed)
get() { curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}\n' "http://127.0.0.1:$http$1" || true; }
median3() { for _ in 1 2 3; do get "$1"; done | sort -n | sed -n 2p; }
# "seconds bytes status" as a table cell
answered() {
    local s=$1 bytes=$2 status=$3
    if [ "$status" = 200 ]; then echo "$(ms "$s") ms, $((bytes / 1024)) KiB"; else echo "**no answer** (status $status after $(ms "$s") ms)"; fi
}

# What this machine's hbc sends, unless TEMPLATE names a file: the template
# follows the machine (its interfaces, connections, which rates are zero),
# and with it the size of every host's data, so runs compared across
# sessions need the same one.
if [[ -n ${TEMPLATE:-} ]]; then
    cp "$TEMPLATE" "$dir/template.json"
else
    "$bin/hbc" --once --print --name template > "$dir/template.json"
fi
"$bin/examples/udp_sink" --bind 127.0.0.1:0 --idle 600 > /dev/null 2>&1 &
other_pid=$!
sleep 1
sink_rss=$(rss "$other_pid")
kill -9 "$other_pid"; wait "$other_pid" 2>/dev/null || true; other_pid=""

start_hbd() {
    : > "$dir/hbd.log"
    "$hbd_bin" -f -v -c "$dir/hbd.yaml" 2> "$dir/hbd.log" &
    hbd_pid=$!
    for _ in $(seq 6000); do
        grep -q "http: listening on" "$dir/hbd.log" && grep -q "udp: listening on" "$dir/hbd.log" && break
        kill -0 "$hbd_pid" 2>/dev/null || { cat "$dir/hbd.log" >&2; exit 1; }
        sleep 0.01
    done
    port=$(grep -o 'udp: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3)
    http=$(grep -o 'http: listening on 127.0.0.1:[0-9]*' "$dir/hbd.log" | cut -d: -f3)
}
stop_hbd() { # sets `stopped`: seconds from SIGTERM to exit
    local t0
    t0=$(now)
    kill -TERM "$hbd_pid"; wait "$hbd_pid" || true; hbd_pid=""
    stopped=$(since "$t0")
}
# Waits for the next "state: saved" line after line $1 of the log; prints its seconds.
next_save() {
    local line
    for _ in $(seq 1800); do
        line=$(tail -n +"$(($1 + 1))" "$dir/hbd.log" | grep -o 'state: saved [0-9]* hosts .* in [0-9.]* s' | tail -1 || true)
        if [ -n "$line" ]; then echo "$line" | awk '{print $(NF-1)}'; return; fi
        sleep 0.1
    done
    echo "?"
}

rows=()
for hosts in $HOSTS_LIST; do
    say "$hosts hosts: filling ($SAMPLES samples of every plugin)"
    rm -f "$dir/state.json"
    cat > "$dir/hbd.yaml" <<YAML
hb_host: 127.0.0.1
hb_port: 0
hbd_host: 127.0.0.1
hbd_port: 0
ws_port: 0
pickfile: $dir/state.json
journal_enabled: false
max_plugin_size: 65536
max_hosts: $((hosts + 10))
state_save_interval: $SAVE_INTERVAL
thresholds:
  cpu_monitor:
    cpu_percent: {warning: 80.0, critical: 90.0, hysteresis: 0.1}
    load_1min: {warning: 8.0, critical: 16.0}
  memory_monitor:
    percent: {warning: 85.0, critical: 95.0}
  disk_monitor:
    "*":
      percent: {warning: 85.0, critical: 95.0}
YAML
    start_hbd
    cpu0=$(cpu "$hbd_pid")
    t0=$(now)
    load=$("$bin/examples/plugin_load" --target "127.0.0.1:$port" --template "$dir/template.json" \
        --hosts "$hosts" --samples "$SAMPLES" --threads "$THREADS")
    fill_s=$(since "$t0")
    messages=$((hosts * SAMPLES))
    fill_cpu=$(echo "scale=1; ($(cpu "$hbd_pid") - $cpu0) * 1000000 / $messages" | bc)
    threads=$(thread_cpu)
    held=$(echo "$load" | sed -n 's/.*held_json_bytes=\([0-9]*\).*/\1/p')
    sleep 2
    full=$(rss "$hbd_pid"); peak=$(hwm "$hbd_pid")

    say "$hosts hosts: one more round, core CPU per message"
    core0=$(thread_ns core)
    "$bin/examples/plugin_load" --target "127.0.0.1:$port" --template "$dir/template.json" \
        --hosts "$hosts" --skip "$SAMPLES" --samples 1 --threads "$THREADS" > /dev/null
    sleep 1
    per_sample=$(echo "scale=1; ($(thread_ns core) - $core0) / 1000 / $hosts" | bc)
    core0=$(thread_ns core)
    "$bin/examples/loadgen" --target "127.0.0.1:$port" --hosts "$hosts" --count "$hosts" \
        --rate 20000 --interval 60 --seconds 600 > /dev/null
    sleep 1
    per_beat=$(echo "scale=1; ($(thread_ns core) - $core0) / 1000 / $hosts" | bc)

    say "$hosts hosts: HTTP"
    metrics=$(answered $(median3 /metrics))
    lean=$(answered $(median3 "/metrics?plugins=none"))
    read -r healthz_s _ < <(median3 /healthz)
    hosts_answer=$(answered $(median3 /api/0/hosts))
    read -r down_s _ < <(median3 "/api/0/hosts?status=down&limit=100")

    say "$hosts hosts: heartbeats at their interval; waiting for a periodic save"
    # Every host once a minute, as hbc sends (at least 100/s).
    rate=$(( hosts / 60 > 100 ? hosts / 60 : 100 ))
    "$bin/examples/loadgen" --target "127.0.0.1:$port" --hosts "$hosts" --rate "$rate" --interval 60 \
        --seconds 200 > /dev/null &
    other_pid=$!
    quiet=$(python3 benches/probe.py "$port" "$http" 5)
    mark=$(wc -l < "$dir/hbd.log")
    # The probe covers the next save: it starts at most 60 s from now.
    python3 benches/probe.py "$port" "$http" 75 > "$dir/probe.json" &
    probe_pid=$!
    save_s=$(next_save "$mark")
    wait "$probe_pid"
    saving=$(cat "$dir/probe.json")
    kill "$other_pid" 2>/dev/null; wait "$other_pid" 2>/dev/null || true; other_pid=""

    say "$hosts hosts: SIGTERM"
    stop_hbd
    state_mb=$(du -m "$dir/state.json" | cut -f1)
    t0=$(now); cp "$dir/state.json" "$dir/copy.json"; sync "$dir/copy.json"; cp_s=$(since "$t0"); rm -f "$dir/copy.json"
    t0=$(now); python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dir/state.json"; json_s=$(since "$t0")

    say "$hosts hosts: start-up with that state"
    t0=$(now)
    start_hbd
    started_s=$(since "$t0")
    read -r first_s _ < <(get "/api/0/hosts?limit=1")
    sleep 2
    restarted="$(rss "$hbd_pid") (peak $(hwm "$hbd_pid"))"
    stop_hbd

    pick() { echo "$1" | python3 -c "import json,sys; d=json.load(sys.stdin)['$2']; print(f\"{d['p99']} / {d['max']} ms, {d['lost']} lost\")"; }
    rows+=("| $hosts | $full ($peak peak) | $(echo "scale=1; $held / 1048576" | bc); sink $sink_rss | $fill_cpu | $per_sample | $per_beat | $save_s | $(printf '%.2f' "$cp_s") | ack $(pick "$saving" ack); host $(pick "$saving" host) | ack $(pick "$quiet" ack); host $(pick "$quiet" host) | $stopped | $started_s (first answer +$(ms "$first_s") ms) | $(printf '%.2f' "$json_s") | $restarted | $metrics; plugins=none $lean | $(ms "$healthz_s") ms | $hosts_answer; down $(ms "$down_s") ms | $state_mb | $fill_s |")
    # Each row as soon as it is measured, in case a later host count fails.
    echo "${rows[-1]}" >&2
    say "$hosts hosts: done (fill $fill_s s; threads' CPU s: $threads)"
done

echo "# scale: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $SAMPLES samples a plugin, hbd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "| hosts | RSS full (MiB) | ref: plugin JSON held (MiB); bare sink | CPU per plugin message while filling (µs) | core CPU per plugin message, rules evaluated (µs) | ref: core CPU per heartbeat (µs) | periodic save (s) | ref: cp + sync of the file (s) | answers during the save: p99 / max | ref: the same with no save | SIGTERM to exit (s) | start-up with the state (s) | ref: json.load of the file (s) | RSS after start (MiB) | /metrics (all; ?plugins=none) | ref: /healthz | /api/0/hosts | state file (MiB) | fill (s) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
