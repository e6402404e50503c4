# Shell functions shared by packaging/test-deb and packaging/test-static:
# waiting for a condition with a deadline, and the round trip that both make
# with real binaries on loopback: start hbd on free ports, send it a
# heartbeat with `hbc --once`, read the host back from the API, stop hbd
# with SIGTERM. Sourced, not run; the caller has `set -euo pipefail`.

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it
# succeeds; fails naming WHAT after SECONDS.
wait_until() {
	local seconds=$1 what=$2
	shift 2
	local end=$((SECONDS + seconds))
	until "$@"; do
		((SECONDS < end)) || fail "timed out after ${seconds}s waiting for $what"
		sleep 0.1
	done
}

# listening_port LOG COMPONENT: the port of "COMPONENT: listening on ADDR:PORT".
listening_port() {
	sed -n "s/.*$2: listening on .*:\([0-9][0-9]*\)$/\1/p" "$1" | head -1
}

has_port() { [ -n "$(listening_port "$1" "$2")" ]; }

# The process started by start_hbd; stop_hbd and the callers' traps use it.
hbd_pid=""

# start_hbd LOG COMMAND...: starts COMMAND (an hbd -f with a configuration
# whose ports are 0) in the background, its standard error to LOG, and
# waits until it listens; sets hbd_pid, udp_port and http_port.
start_hbd() {
	local log=$1
	shift
	"$@" 2>"$log" &
	hbd_pid=$!
	wait_until 60 "hbd to listen (log: $log)" has_all_ports "$log"
	udp_port=$(listening_port "$log" udp)
	http_port=$(listening_port "$log" http)
}

has_all_ports() {
	kill -0 "$hbd_pid" 2>/dev/null || { cat "$1" >&2; fail "hbd exited at start"; }
	has_port "$1" udp && has_port "$1" http
}

# stop_hbd LOG: SIGTERM, then hbd must exit 0 within 30 s.
stop_hbd() {
	local log=$1 status=0 target
	# Under runuser, hbd is runuser's child: signal hbd itself, since
	# runuser answers a SIGTERM of its own with 143 whatever hbd did.
	target=$(pgrep -P "$hbd_pid" -x hbd || echo "$hbd_pid")
	kill -TERM "$target"
	wait_until 30 "hbd to exit after SIGTERM" eval '! kill -0 "$hbd_pid" 2>/dev/null'
	wait "$hbd_pid" || status=$?
	hbd_pid=""
	[ "$status" -eq 0 ] || { cat "$log" >&2; fail "hbd exited $status after SIGTERM"; }
	grep -q "hbd stopped" "$log" || { cat "$log" >&2; fail "hbd did not log its orderly stop"; }
}

# kill_hbd: for traps; ends the hbd this script started, if it still runs.
kill_hbd() {
	if [ -n "$hbd_pid" ] && kill -0 "$hbd_pid" 2>/dev/null; then
		kill -TERM "$(pgrep -P "$hbd_pid" -x hbd || echo "$hbd_pid")" 2>/dev/null || true
		wait "$hbd_pid" 2>/dev/null || true
	fi
}

# http_get PATH: the body of http://127.0.0.1:$http_port/PATH, failing on
# an HTTP error.
http_get() {
	curl -fsS --max-time 10 "http://127.0.0.1:$http_port$1"
}

# check_heartbeat NAME HBC...: runs `HBC --once` against the hbd started
# by start_hbd as host NAME, then checks that /healthz answers and that the
# API knows NAME as up.
check_heartbeat() {
	local name=$1
	shift
	local log
	log=$(mktemp)
	timeout 120 "$@" --once -s "127.0.0.1:$udp_port" --name "$name" >/dev/null 2>"$log" ||
		{ cat "$log" >&2; rm -f "$log"; fail "$* --once got no acknowledgement"; }
	rm -f "$log"
	http_get /healthz | jq -e '.status == "ok"' >/dev/null || fail "/healthz is not ok"
	http_get "/api/0/hosts/$name" | jq -e '.status == "up"' >/dev/null ||
		fail "the API does not show $name as up"
	http_get "/api/0/hosts/$name/plugins" | jq -e '.plugins | has("os_info")' >/dev/null ||
		fail "the API has no os_info plugin data of $name"
}
