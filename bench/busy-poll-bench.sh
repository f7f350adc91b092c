#!/usr/bin/env bash
# Preferred busy polling on and off: kernel-timestamp RTT percentiles and
# the appliance's CPU (its process's user+system time over the run) at a
# few rates, XDP backend, poller on core 0, pktgen on core 1.
#   usage: bench/busy-poll-bench.sh [SECONDS] [RATES...]   (root; make release first)
# Prints one JSON line per (busy_poll, rate).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
SECS=${1:-5}; shift || true
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(1000 10000 100000); fi
trap lab_down EXIT INT TERM
lab_up
# what ironhoard-tune --busy-poll sets on a NIC, on the lab's veth too
# (BENCH_NAPI_TUNE=0 leaves them at 0)
if [ "${BENCH_NAPI_TUNE:-1}" = 1 ]; then
  echo 2 > /sys/class/net/$A/napi_defer_hard_irqs
  echo 200000 > /sys/class/net/$A/gro_flush_timeout
fi
for bp in false true; do
  LAB_INTERFACE_EXTRA="busy_poll = $bp" appliance_up xdp
  k=0
  for rate in "${RATES[@]}"; do
    k=$((k + 1))   # each rate's moves above the last one's seqs: new moves, ACCEPTED
    t0=$(awk '{print $14+$15}' /proc/$APID/stat); sn0=$(python3 -c 'print(" ".join(str(int(l.split()[0],16)) for l in open("/proc/net/softnet_stat")))')
    ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
      --rate "$rate" --duration "$SECS" --games 10 --players 1000 --board 16x16 --first-seq $((k * 10000000)) \
      --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet >/dev/null 2>&1 || true
    t1=$(awk '{print $14+$15}' /proc/$APID/stat); sn1=$(python3 -c 'print(" ".join(str(int(l.split()[0],16)) for l in open("/proc/net/softnet_stat")))')
    python3 - "$DIR/r.json" "$bp" "$rate" "$SECS" "$t0" "$t1" "$sn0" "$sn1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); bp, rate, secs, t0, t1 = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
napi = [b - a for a, b in zip(map(int, sys.argv[7].split()), map(int, sys.argv[8].split()))]
rtt = r.get("latency_kernel_ns") or r.get("latency_ns") or {}
src = "kernel" if r.get("latency_kernel_ns") else "user"
us = lambda k: round(rtt[k] / 1e3, 1) if k in rtt else None
print(json.dumps({"busy_poll": bp == "true", "rate": rate, "rtt": src, "p50_us": us("p50"), "p99_us": us("p99"), "p999_us": us("p999"),
                  "lost": r.get("lost"), "appliance_cpu_pct": round((t1 - t0) / 100 / (secs + 0.5) * 100, 1), "softnet_processed_per_cpu": napi}))
PY
  done
  appliance_down
done
