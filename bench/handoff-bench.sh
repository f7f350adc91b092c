#!/usr/bin/env bash
# Handoffs at the poller: the per-move poller cost when every move arrives on
# the queue of a poller that does not own its player (handed over), against
# every move arriving on its owner's queue, on a two-queue XDP lab.
#
#   usage: bench/handoff-bench.sh [SECONDS] [RATE] [BURST]   (root; make release first)
#   HANDOFF_BUILDS="after=target/release/ironhoard before=/tmp/old/ironhoard"
#     compares appliance builds (the same pktgen drives all); RUNS=3 repeats.
#
# Both pollers on core 0 (pktgen alone on core 1). pktgen aims at one
# poller's players (--players-of-poller N/2): its one socket's flow lands on
# one queue, so one of N = 0, 1 makes every move a handoff and the other
# none; the appliance's handoff counters say which case a run was.
# Cost per move = the sum over both pollers of their busy time (per-batch
# time, receive to send) over the moves: the appliance's own `move_ns`
# histograms, whose mean is batch time over moves and whose p50 is the
# typical batch's (a batch that the other poller preempted on the shared
# core inflates the mean, not the p50). pktgen sends in bursts of BURST
# (default 64) so that a batch's fixed cost (the TX kick, in which the
# kernel also delivers the acks to pktgen) is spread over many moves and
# the per-move work shows.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}; RATE=${2:-100000}; BURST=${3:-64}; RUNS=${RUNS:-3}
BUILDS=${HANDOFF_BUILDS:-after=target/release/ironhoard}
export LAB_QUEUES=2
. scripts/lab-lib.sh
trap lab_down EXIT INT TERM
lab_up
# pktgen's sender runs on core 1: XPS sends everything from core 1 on the
# generator end's TX queue 0, so every move lands on the appliance's queue 0
# (without it, each run's socket lands on a queue of its flow's hash)
ip netns exec "$NS" sh -c "echo 2 > /sys/class/net/$B/queues/tx-0/xps_cpus; echo 1 > /sys/class/net/$B/queues/tx-1/xps_cpus"
PERF=${PERF:-$(command -v perf || true)}
OUT=$(mktemp /tmp/ih-handoff.XXXXXX.jsonl)
for run in $(seq "$RUNS"); do
  for b in $BUILDS; do
    label=${b%%=*}; BIN=${b#*=}
    for owner in 0 1; do
      appliance_up xdp
      # the pollers' user-space cycles by symbol, sampled every 100 k cycles:
      # hashing (SHA-256, HMAC, key derivation) per move, free of the
      # kernel's share of a batch
      ppid=""
      if [ -n "$PERF" ]; then
        "$PERF" record -q -e cycles:u -c 100000 -p "$APID" -o "$DIR/perf.data" -- sleep "$SECS" >/dev/null 2>&1 & ppid=$!
      fi
      ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
        --rate "$RATE" --duration "$SECS" --games 10 --players 1000 --board 16x16 \
        --burst "$BURST" --players-of-poller "$owner/2" --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet >/dev/null 2>&1 || true
      : > "$DIR/syms.txt"
      if [ -n "$ppid" ]; then
        wait "$ppid" || true
        "$PERF" report -i "$DIR/perf.data" --stdio --sort sym -F sample,sym 2>/dev/null | grep -E '^ +[0-9]' > "$DIR/syms.txt" || true
      fi
      "$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/stats.json"
      "$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/latency.json"
      appliance_down
      python3 - "$DIR/r.json" "$DIR/stats.json" "$DIR/latency.json" "$label" "$owner" "$RATE" "$run" "$BURST" "$DIR/syms.txt" >> "$OUT" <<'PY'
import json, re, sys
r, s, l = (json.load(open(p)) for p in sys.argv[1:4])
label, owner, rate, run, burst = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
qs = {q["queue"]: q for q in s["queues"]}
lq = {q["queue"]: q for q in l["queues"]}
handoffs = sum(q.get("handoffs", 0) for q in qs.values())
moves = max(lq[q]["move_ns"].get("count", 0) for q in lq)
# each move is served once by the poller it arrived at, and again by its
# owner if it was handed over: the two pollers' busy time over the moves
busy = sum(q["move_ns"].get("count", 0) * q["move_ns"].get("mean", 0) for q in lq.values())
arrived = max(lq, key=lambda q: lq[q]["move_ns"].get("count", 0))
hits = sum(q.get("key_cache_hits", 0) for q in qs.values())
misses = sum(q.get("key_cache_misses", 0) for q in qs.values())
case = "handed" if handoffs > 0.9 * moves else "owned" if handoffs < 0.01 * moves else "mixed"
p50 = sum(q["move_ns"].get("p50", 0) for q in lq.values() if q["move_ns"].get("count", 0) > 0.5 * moves)
# sampled user cycles (100 000 per sample) in SHA-256 compression, per move:
# sha2's compress functions are never inlined (SHA-NI target-feature code),
# so their samples are the hashing, whatever the callers inline
hashing = 0
for line in open(sys.argv[9]):
    n, sym = line.split(None, 1)
    if re.search(r"sha2::sha256::", sym):
        hashing += int(n)
print(json.dumps({"build": label, "run": run, "case": case, "players_of_poller": owner, "arrived_on_queue": arrived,
                  "rate": rate, "burst": burst, "moves": moves, "handoffs": handoffs, "key_cache_hit_pct": round(100 * hits / (hits + misses), 1) if hits + misses else None,
                  "acked": r.get("acked"), "lost": r.get("lost"),
                  "ns_per_move_mean": round(busy / moves) if moves else None,
                  "hash_cycles_per_move": round(hashing * 100000 / moves) if moves and hashing else None, "ns_per_move_p50": p50,
                  "per_queue": {q: {k: lq[q]["move_ns"].get(k) for k in ("count", "p50", "mean")} for q in lq}}))
PY
      cp "$DIR/syms.txt" "${OUT%.jsonl}.$label.$owner.$run.syms"
      tail -1 "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
print("(medians over the runs; hashing: the pollers' user-space cycles sampled in SHA-256/HMAC code)")
print("\n| build | case | runs | hashing, cycles/move | poller ns/move, p50 | mean | handoffs/move | key cache hits | lost |")
print("|---|---|---|---|---|---|---|---|---|")
for key in sorted({(r["build"], r["case"]) for r in rows}):
    rs = [r for r in rows if (r["build"], r["case"]) == key]
    med = lambda k: statistics.median(r[k] for r in rs)
    hc = [r["hash_cycles_per_move"] for r in rs if r.get("hash_cycles_per_move")]
    hcs = f"{statistics.median(hc):.0f}" if hc else "-"
    print(f"| {key[0]} | {key[1]} | {len(rs)} | {hcs} | {med('ns_per_move_p50'):.0f} | {med('ns_per_move_mean'):.0f} | "
          f"{statistics.median(r['handoffs'] / r['moves'] for r in rs):.2f} | "
          f"{'-' if rs[0].get('key_cache_hit_pct') is None else str(statistics.median(r['key_cache_hit_pct'] for r in rs)) + ' %'} | "
          f"{sum(r['lost'] or 0 for r in rs)} |")
PY
echo "rows: $OUT (the pollers' user-space profile per run beside it: ${OUT%.jsonl}.*.syms)"
