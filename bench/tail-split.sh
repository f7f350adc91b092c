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
# The VM's own share: the steal time of each core over the run (/proc/stat:
# time the hypervisor ran something else on our vCPU), and, with GAPS=1,
# the gaps in a 5 kHz cpu-clock sampling of both cores (perf record): a
# busy core with no sample for over 1 ms was not running at all. A late
# move (over 0.5 ms from send to the poller's batch) is counted in a gap's
# shadow when its wait overlaps the gap or the backlog after it (twice the
# gap, plus 0.5 ms).
#   usage: bench/tail-split.sh [RATE] [SECONDS]   (root; make release first)
#   PKTGEN_EXTRA: more pktgen flags (e.g. --catch-up 1.5)
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
PERF_PID=""
if [ "${GAPS:-0}" = 1 ] && command -v perf >/dev/null; then
  perf record -q -e cpu-clock -C 0,1 -F 5000 -k CLOCK_MONOTONIC -o "$DIR/cpu.data" -- sleep "$(awk -v s="$SECS" 'BEGIN { print s + 1 }')" >/dev/null 2>&1 &
  PERF_PID=$!
fi
N0=$(netrx); K0=$(ksoft); S0=$(steal_ms)
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration "$SECS" --games 10 --players 100 --board 16x16 --invalid-ratio 0.08 \
  --cpu 1 --rx-cpu 1 ${PKTGEN_EXTRA:-} --report "$DIR/report.json" --quiet >/dev/null 2>&1 || true
N1=$(netrx); K1=$(ksoft); S1=$(steal_ms)
: > "$DIR/samples.txt"
if [ -n "$PERF_PID" ]; then
  wait "$PERF_PID" || true
  perf script -i "$DIR/cpu.data" -F cpu,time 2>/dev/null > "$DIR/samples.txt" || true
fi
"$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/latency.json"
"$BIN" tail --dir "$DIR/log" --json 2>/dev/null > "$DIR/log.jsonl" || true
python3 - "$DIR/report.json" "$DIR/latency.json" "$DIR/log.jsonl" "$RATE" "$N0" "$N1" "$K0" "$K1" "$S0" "$S1" "$DIR/samples.txt" <<'PY'
import bisect, json, sys, time
diff = lambda a, b: [int(y) - int(x) for x, y in zip(a.split(), b.split())]
netrx, ksoft, steal = diff(sys.argv[5], sys.argv[6]), diff(sys.argv[7], sys.argv[8]), diff(sys.argv[9], sys.argv[10])
r, l = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
off = time.time_ns() - time.monotonic_ns()
moves = [(m["client_ts"], m["server_ts_ns"] - off) for m in map(json.loads, open(sys.argv[3]))]
d = sorted(b - a for a, b in moves)
n = len(d)
# gaps over 1 ms in each core's samples (CLOCK_MONOTONIC ns)
samples = {0: [], 1: []}
for line in open(sys.argv[11]):
    f = line.split()
    if len(f) >= 2 and f[0].strip("[]").isdigit() and int(f[0].strip("[]")) in samples:
        samples[int(f[0].strip("[]"))].append(int(float(f[1].rstrip(":")) * 1e9))
gaps = {}
for c, v in samples.items():
    v.sort()
    gaps[c] = [(a, b) for a, b in zip(v, v[1:]) if b - a > 1_000_000]
late = [(a, b) for a, b in moves if b - a > 500_000]
shadows = sorted((a, b + 2 * (b - a) + 500_000) for c in gaps for a, b in gaps[c])
starts = [s for s, _ in shadows]
def shadowed(a, b):
    i = bisect.bisect_right(starts, b)
    return any(e >= a for _, e in shadows[max(0, i - 64):i])
gap_stats = {f"cpu{c}": {"count": len(g), "total_ms": round(sum(b - a for a, b in g) / 1e6, 1),
                         "longest_ms": round(max([b - a for a, b in g] or [0]) / 1e6, 2)} for c, g in gaps.items()}
# A host's CPU quota (CFS bandwidth, 100 ms periods) stops every vCPU when
# the VM has spent it and starts them all again at the next period: such
# gaps end at one phase of the period, whatever their length. The share of
# gaps ending within about 1 ms (one 0.5 ms bin each side) of the
# commonest phase:
ends = [(b // 500_000) % 200 for g in gaps.values() for _, b in g]
if ends:
    top = max(range(200), key=lambda k: sum(1 for e in ends if min((e - k) % 200, (k - e) % 200) <= 1))
    gap_stats["ending_at_one_phase_of_100ms_pct"] = round(100 * sum(1 for e in ends if min((e - top) % 200, (top - e) % 200) <= 1) / len(ends), 1)
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
    "steal_ms_per_core": steal,
    "vcpu_gaps_over_1ms": gap_stats if any(samples.values()) else None,
    "late_moves": {"over_0_5ms": len(late), "in_a_gap_shadow": sum(shadowed(a, b) for a, b in late) if any(samples.values()) else None},
}))
PY
