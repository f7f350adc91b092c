#!/usr/bin/env bash
# Where a move's round trip goes at the demo's load: the kernel-timestamp
# RTT (pktgen) split at the poller. For every logged move, send → poller:
# the move's client_ts (CLOCK_MONOTONIC just before pktgen's sendmsg) to the
# server_ts the poller wrote when its batch began (CLOCK_REALTIME, converted
# with this host's REALTIME − MONOTONIC); and the poller's own part, its
# per-batch time (RX ring to TX ring, from its stats). A tail in the first
# leg with none in the second is time spent before the poller had the move:
# the veth's receive (on the sender's core) or the poller's core taken.
# The poller's core is its own for the run (ironhoard-tune --isolate, masks
# restored after; LAB_ISOLATE=0 shares it).
#   usage: bench/tail-split.sh [RATE] [SECONDS]   (root; make release first)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-200000}; SECS=${2:-5}
. scripts/lab-lib.sh
trap lab_down EXIT INT TERM
lab_up
appliance_up xdp
isolate_pollers
# NET_RX softirqs per core, and the CPU time of ksoftirqd/N (softirq work
# the kernel deferred to a thread that must be scheduled like any other)
netrx() { awk '$1 == "NET_RX:" { print $2, $3 }' /proc/softirqs; }
ksoft() { for c in 0 1; do awk '{ print $14 + $15 }' /proc/$(pgrep -x "ksoftirqd/$c")/stat; done | xargs; }
N0=$(netrx); K0=$(ksoft)
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration "$SECS" --games 10 --players 100 --board 16x16 --invalid-ratio 0.08 \
  --cpu 1 --rx-cpu 1 ${PKTGEN_EXTRA:-} --report "$DIR/report.json" --quiet >/dev/null 2>&1 || true
N1=$(netrx); K1=$(ksoft)
"$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/latency.json"
"$BIN" tail --dir "$DIR/log" --json 2>/dev/null > "$DIR/log.jsonl" || true
python3 - "$DIR/report.json" "$DIR/latency.json" "$DIR/log.jsonl" "$RATE" "$N0" "$N1" "$K0" "$K1" <<'PY'
import json, sys, time
diff = lambda a, b: [int(y) - int(x) for x, y in zip(a.split(), b.split())]
netrx, ksoft = diff(sys.argv[5], sys.argv[6]), diff(sys.argv[7], sys.argv[8])
r, l = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
off = time.time_ns() - time.monotonic_ns()
d = sorted(json.loads(x)["server_ts_ns"] - off - json.loads(x)["client_ts"] for x in open(sys.argv[3]))
n = len(d)
q = lambda p: d[min(n - 1, int(p * n))] / 1e3
k = r.get("latency_kernel_ns") or {}
b = l["batch_ns"]
us = lambda h, p: h[p] / 1e3 if p in h else float("nan")
print(json.dumps({
    "rate": int(sys.argv[4]), "lost": r.get("lost"),
    "kernel_rtt_us": {p: round(us(k, p), 1) for p in ("p50", "p99", "p999")},
    "send_to_poller_us": {"p50": round(q(.5), 1), "p90": round(q(.9), 1), "p99": round(q(.99), 1), "p999": round(q(.999), 1),
                          "over_1ms_pct": round(100 * sum(x > 1e6 for x in d) / n, 2), "moves": n},
    "poller_batch_us": {p: round(us(b, p), 1) for p in ("p50", "p99", "p999", "max")},
    "net_rx_softirqs_per_core": netrx, "ksoftirqd_cpu_ms_per_core": [10 * t for t in ksoft],
}))
PY
