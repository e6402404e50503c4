#!/usr/bin/env python3
"""Asks a running hbd, every INTERVAL seconds for SECONDS, what a user's
programs ask it, and prints how long each answer took: a heartbeat's ACK
(udp thread), GET /healthz (http thread) and GET /api/0/hosts/NAME (http
and core threads). benches/scale.sh runs it while hbd saves its state, to
show whether hbd keeps answering then.

Loopback only; bounded by SECONDS; every request has a 5 s deadline.

usage: probe.py UDP_PORT HTTP_PORT SECONDS [INTERVAL] [HOST]
prints one JSON object: {"ack": {...}, "healthz": {...}, "host": {...}}
with count, lost (no answer within 5 s), p50, p99 and max in milliseconds.
"""
import http.client
import json
import socket
import sys
import time


def summary(times, lost):
    times = sorted(times)

    def at(q):
        return round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 2) if times else None

    return {"count": len(times), "lost": lost, "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


def main():
    udp_port, http_port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    host = sys.argv[5] if len(sys.argv) > 5 else "host-00000"
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(5)
    results = {"ack": ([], 0), "healthz": ([], 0), "host": ([], 0)}

    def record(what, started, ok):
        times, lost = results[what]
        if ok:
            times.append(time.monotonic() - started)
        else:
            results[what] = (times, lost + 1)

    def get(what, path):
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            record(what, started, response.status == 200)
        except OSError:
            record(what, started, False)

    end = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < end:
        seq += 1
        started = time.monotonic()
        beat = {"ID": "HTB", "name": "probe", "interval": 60, "seq": seq}
        udp.sendto(json.dumps(beat).encode(), ("127.0.0.1", udp_port))
        ok = False
        try:
            while True:
                data, _ = udp.recvfrom(512)
                if json.loads(data).get("seq") == seq:
                    ok = True
                    break
        except (OSError, ValueError):
            pass
        record("ack", started, ok)
        get("healthz", "/healthz")
        get("host", "/api/0/hosts/" + host)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(json.dumps({what: summary(*result) for what, result in results.items()}))


if __name__ == "__main__":
    main()
