#!/usr/bin/env bash
# Who takes the poller's core? Runs the appliance (XDP backend, poller on
# core 0) under ironhoard-pktgen load (core 1), records sched_switch on core
# 0 for a few seconds with perf, and prints how often and how long the
# poller was switched out, and by whom; the RX ring's level over those
# seconds (`show rx-ring`: sampled each ms by the poller) and what it was
# after each of the longest gaps; plus the run's loss and the kernel's
# rx_ring_full.
# The poller's core is its own for the run (ironhoard-tune --isolate, masks
# restored after); LAB_ISOLATE=0 shows it shared.
#   usage: bench/poller-sched.sh [RATE] [SECONDS]   (root; make release first)
# (show rx-ring keeps the last ~4 s: SECONDS above 3 sees the ring for
# the window's end only)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
RATE=${1:-200000}
SECS=${2:-3}
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
trap lab_down EXIT INT TERM
lab_up
appliance_up xdp
isolate_pollers
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration $((SECS + 3)) --games 10 --players 100 --board 16x16 --replay-ratio 0.05 \
  --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet 2>/dev/null &
GPID=$!
sleep 1.5
steal() { awk '$1 ~ /^cpu[01]$/ { printf "%s ", $9 }' /proc/stat; }  # USER_HZ ticks
mono() { python3 -c 'import time; print(time.clock_gettime(time.CLOCK_MONOTONIC))'; }
S0=$(steal); T0=$(mono)
perf record -q -k CLOCK_MONOTONIC -e sched:sched_switch -C 0 -o "$DIR/sched.data" -- sleep "$SECS" 2>/dev/null
S1=$(steal); T1=$(mono)
"$BIN" stats --socket "$DIR/stats.sock" --command "show rx-ring" > "$DIR/ring.json"
wait "$GPID" || true
"$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/stats.json"
"$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/lat.json"
perf script -i "$DIR/sched.data" -F time,event,trace 2>/dev/null > "$DIR/sched.txt"
python3 - "$DIR/sched.txt" "$DIR/r.json" "$DIR/stats.json" "$RATE" "$SECS" "$DIR/lat.json" "$DIR/ring.json" "$S0" "$S1" "$(getconf CLK_TCK)" "$T0" "$T1" <<'PY'
import bisect, json, re, sys, collections
txt, rep, st, rate, secs = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4]), sys.argv[5]
lat = json.load(open(sys.argv[6]))
ring = json.load(open(sys.argv[7]))["queues"][0]
T0, T1 = float(sys.argv[11]), float(sys.argv[12])  # around perf record, CLOCK_MONOTONIC s
first_t = last_t = None
out_by = collections.Counter(); gaps = []; off_at = None
# while the poller is off its core: who ran, for how long (per gap and in all)
ran = collections.Counter(); in_gap = collections.Counter(); cur = None; cur_at = None; gap_list = []
pat = re.compile(r"([\d.]+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=\d+ .*?==> next_comm=(.*?) next_pid=")
for line in open(txt):
    m = pat.search(line)
    if not m:
        continue
    t, prev, nxt = float(m.group(1)), m.group(2), m.group(3)
    first_t = t if first_t is None else first_t
    last_t = t
    if cur is not None and off_at is not None:
        in_gap[cur] += t - cur_at
    cur, cur_at = nxt, t
    if prev.startswith("ih-poller"):
        out_by[nxt] += 1; off_at = t; in_gap = collections.Counter()
    elif nxt.startswith("ih-poller") and off_at is not None:
        gaps.append(t - off_at); gap_list.append((t - off_at, dict(in_gap), t)); ran.update(in_gap); off_at = None
gaps.sort()
total = sum(gaps)
print(f"poller core 0, {secs} s at {rate} moves/s asked (pktgen on core 1):")
print(f"  switched out {sum(out_by.values())} times; off-CPU {total*1e3:.1f} ms in total; longest gap {gaps[-1]*1e6 if gaps else 0:.0f} us; p99 gap {gaps[int(len(gaps)*0.99)]*1e6 if gaps else 0:.0f} us")
for comm, n in out_by.most_common(8):
    print(f"    {n:>7}  by {comm}  (ran {ran[comm]*1e3:.1f} ms in all while the poller was off)")
# the RX ring's level, sampled each ms by the poller (CLOCK_MONOTONIC us,
# as perf's times here): what it found after each of the longest gaps
# (only the samples while perf recorded: its first to its last event;
# perf's own start and exit take a second or more of [T0, T1])
w0, w1 = (max(T0, first_t), min(T1, last_t)) if first_t is not None and last_t > first_t else (T0, T1)
samples = [s for s in ring["samples"] if w0 * 1e6 <= s[0] <= w1 * 1e6]
ts = [t for t, _ in samples]
def level_after(t_end):
    i = bisect.bisect_left(ts, t_end * 1e6)
    return f"ring {samples[i][1]}/{ring['ring_size']} after it" if i < len(samples) else "no ring sample after it"
for g, who, end in sorted(gap_list, key=lambda x: -x[0])[:3]:
    print(f"  a {g*1e6:.0f} us gap ({level_after(end)}): " + ", ".join(f"{c} {v*1e6:.0f} us" for c, v in sorted(who.items(), key=lambda x: -x[1])[:4]))
# sample gaps over 2 ms inside the perf window that no sched gap explains:
# the poller on its core, by the guest's account, yet not turning (its
# vCPU stopped by the host: steal; or one batch that long)
sched_gaps = [(end - g, end) for g, _, end in gap_list]
unexplained = []
for a, b in zip(samples, samples[1:]):
    s0, s1 = a[0] / 1e6, b[0] / 1e6
    if s1 - s0 > 2e-3:
        off = sum(max(0.0, min(s1, e) - max(s0, gs)) for gs, e in sched_gaps)
        if off < 0.5 * (s1 - s0):
            unexplained.append((s1 - s0, b[1]))
steal = [(int(y) - int(x)) * 1000 // int(sys.argv[10]) for x, y in zip(sys.argv[8].split(), sys.argv[9].split())]
print(f"  steal over the {secs} s: core 0 {steal[0]} ms, core 1 {steal[1]} ms")
if unexplained:
    unexplained.sort(reverse=True)
    print(f"  {len(unexplained)} ring-sample gaps over 2 ms with the poller on its core (no sched gap): "
          + ", ".join(f"{g*1e3:.1f} ms (then {l})" for g, l in unexplained[:5]))
if samples:
    lv = sorted(l for _, l in samples)
    full = sum(l >= ring["ring_size"] for _, l in samples)
    gaps = [(b[0] - a[0], b[1]) for a, b in zip(samples, samples[1:])]
    g_max = max(gaps, default=(0, None))
    print(f"  RX ring ({ring['ring_size']} entries), the same {(ts[-1] - ts[0]) / 1e6:.1f} s, {len(samples)} samples: level p50 {lv[len(lv)//2]}, "
          f"p99 {lv[int(len(lv)*0.99)]}, max {lv[-1]}; full in {full}; "
          f"{sum(g > 2000 for g, _ in gaps)} gaps over 2 ms between samples, the longest {g_max[0]} us (then {g_max[1]})")
else:
    print("  RX ring: no sample in the perf window (show rx-ring keeps ~4 s: SECONDS ≤ 3)")
q = st["queues"][0]
exp = rep["sent"] - rep["silently_dropped_expected"]
print(f"  run: offered {rep['offered_pps']}/s acked {rep['acked_pps']}/s, lost {rep['lost']} of {exp} ({100.0*rep['lost']/max(exp,1):.3f} %), busy {rep['by_status']['busy']}")
x = q.get("xsk", {})
b = lat["batch_ns"]
print("  appliance batch time (RX ring to TX ring, whole run): " + ", ".join(f"{k} {v/1e3:.1f} us" for k, v in b.items() if k in ("p50", "p99", "p999", "max")))
print(f"  AF_XDP rx_ring_full {x.get('rx_ring_full', '?')}, rx_dropped {x.get('rx_dropped', '?')}; log records {st['log'].get('records')}, refused {st['log'].get('refused', '-')}")
PY
