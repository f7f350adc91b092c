#!/usr/bin/env bash
# Side-by-side lab benchmark: the same generator (ironhoard-pktgen, socket
# mode, core 1) against the socket and XDP backends (appliance on core 0),
# stepping the offered rate. Prints a table (and bench/results.json):
# offered, acked, loss, RTT p50/p99/p99.9 per step. The max sustained rate is
# the highest step with loss under 0.1 %.
#   usage: bench/lab-bench.sh [SECONDS_PER_STEP]   (needs root; make release first)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
STEP_S=${1:-3}
SOCKET_RATES=${SOCKET_RATES:-"50000 100000 150000 200000 250000"}
XDP_RATES=${XDP_RATES:-"100000 200000 300000 400000 500000"}
trap lab_down EXIT INT TERM
lab_up
OUT=bench/results.json
echo "[" > "$OUT.tmp"
first=1
printf '%-7s %9s %9s %9s %8s %8s %9s %9s %9s\n' backend asked offered acked busy loss% p50_us p99_us p999_us
for backend in socket xdp; do
  rates=$SOCKET_RATES; [ "$backend" = xdp ] && rates=$XDP_RATES
  for rate in $rates; do
    appliance_up "$backend"
    ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
      --rate "$rate" --duration "$STEP_S" --games 10 --players 100 --board 16x16 \
      --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet 2>/dev/null || true
    appliance_down
    python3 - "$DIR/r.json" "$backend" "$rate" "$OUT.tmp" "$first" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); b, rate, out, first = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
exp = r["sent"] - r["silently_dropped_expected"]
loss = 100.0 * r["lost"] / exp if exp else 0.0
l = r["latency_ns"]
busy = r["by_status"]["busy"]
print(f"{b:<7} {rate:>9} {r['offered_pps']:>9} {r['acked_pps']:>9} {busy:>8} {loss:>8.3f} {l['p50']/1e3:>9.1f} {l['p99']/1e3:>9.1f} {l['p999']/1e3:>9.1f}")
row = {"backend": b, "asked_pps": rate, "offered_pps": r["offered_pps"], "acked_pps": r["acked_pps"], "busy": busy, "loss_pct": round(loss, 4),
       "p50_ns": l["p50"], "p99_ns": l["p99"], "p999_ns": l["p999"], "max_ns": l["max"]}
with open(out, "a") as f:
    f.write(("" if first else ",\n") + json.dumps(row))
PY
    first=0
  done
done
echo "]" >> "$OUT.tmp"; mv "$OUT.tmp" "$OUT"
echo "(appliance pinned to core 0, pktgen sender and receiver to core 1; $STEP_S s per step; results in $OUT)"
