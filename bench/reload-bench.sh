#!/usr/bin/env bash
# A reload under load (issue: "a reload never stalls the pollers"). The XDP
# appliance on core 0, pktgen (socket mode) on core 1 at RATE moves/s for
# SECONDS, and a SIGHUP every HUP_MS ms meanwhile, for each players_per_worker
# in PLAYERS; the same without SIGHUPs as the baseline. Per run: pktgen's
# loss, the kernel-timestamp RTT p99, the poller's per-batch max and the
# longest reload work one turn of the poller did (stats: latency.batch_ns,
# reload_ns). Writes $OUT (default bench/reload-results.json) and prints a
# table.
#   usage: bench/reload-bench.sh   (root; make release first)
# Knobs: RATE (200000), DURATION (5 s), CLIENTS (1000: players per game, 10 games), HUP_MS (100), PLAYERS ("65536 1048576"),
# RUNS (2), HUPS ("0 1": without, then with SIGHUPs), KEY_CHANGE (0: the SIGHUPs reload an unchanged config; 1: each
# re-keys key_id 1, which holds no player, so every reload sweeps the
# table), LOG_DIR (default: a tmpfs directory, so the figures are the
# reload's and not the lab VM disk's stalls; give a path to measure with
# the log on disk), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
RATE=${RATE:-200000}; CLIENTS=${CLIENTS:-1000}; SECONDS_RUN=${DURATION:-5}; HUP_MS=${HUP_MS:-100}
PLAYERS=${PLAYERS:-"65536 1048576"}; RUNS=${RUNS:-2}; KEY_CHANGE=${KEY_CHANGE:-0}
OUT=${OUT:-bench/reload-results.json}
for f in "$BIN" "$PKTGEN"; do [ -x "$f" ] || { echo "$f missing: make release first" >&2; exit 1; }; done
LOG_DIR=${LOG_DIR:-/dev/shm/ih-reload-bench.$$}
export LAB_LOG_DIR=$LOG_DIR
trap 'lab_down; case $LOG_DIR in /dev/shm/ih-reload-bench.*) rm -rf "$LOG_DIR" ;; esac' EXIT
lab_up
"$BIN" keygen --out "$DIR/secret1.hex"
ROWS=$DIR/rows.jsonl; : > "$ROWS"
printf >&2 '%-8s %-4s %3s %9s %9s %8s %9s %11s %11s\n' players hup run offered acked loss% kp99_us batch_max_us reload_max_us
for players in $PLAYERS; do
  for hup in ${HUPS:-0 1}; do
    for run in $(seq "$RUNS"); do
      LAB_MOVES_EXTRA="players_per_worker = $players" LAB_INTERFACE_EXTRA="ring_size = 4096" appliance_up xdp 1000000
      if [ "$KEY_CHANGE" = 1 ]; then
        sed -i 's/^secrets = .*/secrets = ["secret0.hex", "secret1.hex"]/' "$DIR/ironhoard.toml"; kill -HUP "$APID"; sleep 0.5
      fi
      rm -f "$DIR/r.json"
      ip netns exec "$NS" taskset -c 1 "$PKTGEN" --target "$HOST_IP:7777" --secret-file "$DIR/secret0.hex" \
        --rate "$RATE" --duration "$SECONDS_RUN" --games 10 --players "$CLIENTS" --board 16x16 --mode socket --cpu 1 --rx-cpu 1 \
        --report "$DIR/r.json" --quiet 2>"$DIR/pktgen.err" &
      GPID=$!
      n=0
      if [ "$hup" = 1 ]; then
        while kill -0 "$GPID" 2>/dev/null; do
          sleep "$(awk -v m="$HUP_MS" 'BEGIN { printf "%.3f", m / 1000 }')"
          if [ "$KEY_CHANGE" = 1 ]; then   # re-key key_id 1 (no player uses it)
            "$BIN" keygen --out "$DIR/secret1.hex.new" && mv "$DIR/secret1.hex.new" "$DIR/secret1.hex"
          fi
          kill -HUP "$APID" 2>/dev/null || true; n=$((n + 1))
        done
      fi
      wait "$GPID" || { echo "pktgen:"; tail -3 "$DIR/pktgen.err"; } >&2
      "$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/lat.json" 2>/dev/null || echo '{}' > "$DIR/lat.json"
      "$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/st.json" 2>/dev/null || echo '{}' > "$DIR/st.json"
      appliance_down
      rm -rf "$LOG_DIR"
      python3 - "$DIR" "$players" "$hup" "$run" "$n" "$RATE" >> "$ROWS" <<'PY'
import json, sys
d, players, hup, run, n, rate = sys.argv[1:]
def load(f):
    try: return json.load(open(f"{d}/{f}"))
    except Exception: return {}
r, lat, st = load("r.json"), load("lat.json"), load("st.json")
row = {"players_per_worker": int(players), "sighup": hup == "1", "run": int(run), "sighups": int(n), "asked_pps": int(rate),
       "offered_pps": r.get("offered_pps"), "acked": r.get("acked"), "sent": r.get("sent"), "lost": r.get("lost"),
       "kernel_rtt_ns": r.get("latency_kernel_ns"), "batch_ns": lat.get("batch_ns"), "reload_ns": lat.get("reload_ns"),
       "reloads": st.get("reloads")}
print(json.dumps(row))
PY
      python3 - "$ROWS" >&2 <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
sent, lost = r.get("sent") or 0, r.get("lost") or 0
k = ((r.get("kernel_rtt_ns") or {}).get("p99") or 0) // 1000 or None
b = (r.get("batch_ns") or {}).get("max"); rl = (r.get("reload_ns") or {}).get("max")
f = lambda v, d=1000: "-" if v is None else f"{v / d:.0f}"
print(f"{r['players_per_worker']:<8} {'yes' if r['sighup'] else 'no':<4} {r['run']:>3} {r.get('offered_pps') or 0:>9.0f} {r.get('acked') or 0:>9} "
      f"{100 * lost / sent if sent else 0:>8.3f} {k if k is not None else '-':>9} {f(b):>11} {f(rl):>11}")
PY
    done
  done
done
python3 - "$ROWS" "$OUT" "RATE=$RATE CLIENTS=$CLIENTS DURATION=$SECONDS_RUN HUP_MS=$HUP_MS PLAYERS=\"$PLAYERS\" RUNS=$RUNS KEY_CHANGE=$KEY_CHANGE LOG_DIR=$LOG_DIR bash bench/reload-bench.sh" <<'PY'
import json, sys, platform, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"cpu": cpu, "cores": "appliance core 0, pktgen core 1", "command": " ".join(sys.argv[3:]), "rows": rows}, open(sys.argv[2], "w"), indent=1)
PY
echo "wrote $OUT" >&2
