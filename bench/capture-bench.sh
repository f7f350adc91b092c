#!/usr/bin/env bash
# What `ironhoard capture` costs the data path. The XDP appliance (one
# poller) on core 0, pktgen (socket mode) on core 1 at RATE moves/s for
# DURATION s; per run either no capture ("off"), a capture of every move
# ("on"), or of every move and ack ("acks"), the capture client pinned to
# core 1 with pktgen (the appliance's streaming thread is not pinned).
# Per run: pktgen's offered and acked rates and loss, the poller's per-move
# service time (show latency: move_ns) and the capture's frames and skipped
# records. Writes $OUT (default bench/capture-results.json), prints a table.
#   usage: bench/capture-bench.sh   (root; make release first)
# Knobs: RATE (200000), DURATION (5), RUNS (2), MODES ("off on acks"),
# CLIENTS (1000 players per game, 10 games), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
RATE=${RATE:-200000}; SECONDS_RUN=${DURATION:-5}; RUNS=${RUNS:-2}; MODES=${MODES:-"off on acks"}; CLIENTS=${CLIENTS:-1000}
OUT=${OUT:-bench/capture-results.json}
for f in "$BIN" "$PKTGEN"; do [ -x "$f" ] || { echo "$f missing: make release first" >&2; exit 1; }; done
trap 'lab_down' EXIT
lab_up
ROWS=$DIR/rows.jsonl; : > "$ROWS"
printf >&2 '%-5s %3s %9s %9s %8s %9s %9s %10s %9s\n' mode run offered acked loss% move_p50 move_p99 captured skipped
for run in $(seq "$RUNS"); do
  for mode in $MODES; do
    appliance_up xdp 1000000
    rm -f "$DIR/r.json" "$DIR/cap.json" "$DIR/cap.pcap"
    CPID=""
    if [ "$mode" != off ]; then
      extra=(); [ "$mode" = acks ] && extra=(--acks)
      taskset -c 1 "$BIN" capture --socket "$DIR/stats.sock" --out "$DIR/cap.pcap" "${extra[@]}" > "$DIR/cap.json" 2> "$DIR/cap.err" &
      CPID=$!
      for _ in $(seq 100); do grep -q "capturing on" "$DIR/cap.err" 2>/dev/null && break; sleep 0.05; done
    fi
    ip netns exec "$NS" taskset -c 1 "$PKTGEN" --target "$HOST_IP:7777" --secret-file "$DIR/secret0.hex" \
      --rate "$RATE" --duration "$SECONDS_RUN" --games 10 --players "$CLIENTS" --board 16x16 --mode socket --cpu 1 --rx-cpu 1 \
      --report "$DIR/r.json" --quiet 2>"$DIR/pktgen.err" || { echo "pktgen:"; tail -3 "$DIR/pktgen.err"; } >&2
    if [ -n "$CPID" ]; then
      kill -INT "$CPID"; wait "$CPID" || { echo "capture:"; cat "$DIR/cap.err"; } >&2
    else
      echo '{}' > "$DIR/cap.json"
    fi
    "$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/lat.json" 2>/dev/null || echo '{}' > "$DIR/lat.json"
    appliance_down
    rm -rf "$DIR/log" "$DIR/cap.pcap"
    python3 - "$DIR" "$mode" "$run" "$RATE" >> "$ROWS" <<'PY'
import json, sys
d, mode, run, rate = sys.argv[1:]
def load(f):
    try: return json.load(open(f"{d}/{f}"))
    except Exception: return {}
r, lat, cap = load("r.json"), load("lat.json"), load("cap.json")
print(json.dumps({"capture": mode, "run": int(run), "asked_pps": int(rate), "offered_pps": r.get("offered_pps"),
                  "acked_pps": r.get("acked_pps"), "sent": r.get("sent"), "acked": r.get("acked"), "lost": r.get("lost"),
                  "move_ns": lat.get("move_ns"), "batch_ns": lat.get("batch_ns"),
                  "captured": cap.get("frames"), "skipped": cap.get("skipped")}))
PY
    python3 - "$ROWS" >&2 <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
sent, lost = r.get("sent") or 0, r.get("lost") or 0
m = r.get("move_ns") or {}
f = lambda v: "-" if v is None else v
print(f"{r['capture']:<5} {r['run']:>3} {r.get('offered_pps') or 0:>9.0f} {r.get('acked_pps') or 0:>9.0f} {100 * lost / sent if sent else 0:>8.3f} "
      f"{f(m.get('p50')):>9} {f(m.get('p99')):>9} {f(r.get('captured')):>10} {f(r.get('skipped')):>9}")
PY
  done
done
python3 - "$ROWS" "$OUT" "RATE=$RATE DURATION=$SECONDS_RUN RUNS=$RUNS MODES=\"$MODES\" bash bench/capture-bench.sh" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def mean(mode, key):
    v = [r[key] for r in rows if r["capture"] == mode and r.get(key) is not None]
    return sum(v) / len(v) if v else None
summary = {m: {"acked_pps": mean(m, "acked_pps"), "move_ns_p50": (lambda v: sum(v) / len(v) if v else None)(
    [r["move_ns"]["p50"] for r in rows if r["capture"] == m and r.get("move_ns")])} for m in sorted({r["capture"] for r in rows})}
json.dump({"cpu": cpu, "cores": "appliance poller core 0; pktgen and the capture client core 1", "command": " ".join(sys.argv[3:]),
           "summary": summary, "rows": rows}, open(sys.argv[2], "w"), indent=1)
print(json.dumps(summary), file=sys.stderr)
PY
echo "wrote $OUT" >&2
