#!/usr/bin/env bash
# Where the lab's veth does a receiver's work, and what that does to the
# generator's ceiling: pktgen --mode xdp (core 1) against the reflector and
# the XDP backend (core 0), with the veth's NAPI as the kernel runs it
# ("sender": a veth peer's receive, XDP program and copy into the AF_XDP
# socket run in the softirq of the CPU that sent) and threaded ("threaded":
# each end's NAPI in a kthread pinned to its own side's core: the
# contender's receive on core 0, pktgen's on core 1, as a NIC's interrupt
# affinity would have it), and the XDP backend with preferred busy polling.
#
#   usage: bench/veth-napi.sh [SECONDS] [STEP_RATES...]  (root; make release
#          and cargo build --release -p ironhoard-contenders first)
#   PROFILE=1 also records `perf record -a -g` over a rate-0 run per mode
#   and prints where core 1 spent its time.
# Prints one JSON line per (mode, contender, rate); rate 0 = as fast as
# pktgen can send (its offered rate is then the generator's ceiling).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}; shift || true
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(0 200000 300000); fi
REFLECTOR_BIN=${REFLECTOR_BIN:-target/release/ih-bench-reflector}
. scripts/lab-lib.sh
for f in "$BIN" "$PKTGEN" "$REFLECTOR_BIN"; do
  [ -x "$f" ] || { echo "$f is missing: make release; cargo build --release -p ironhoard-contenders" >&2; exit 1; }
done
CPID=""
contender_down() {
  appliance_down
  if [ -n "$CPID" ]; then kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; CPID=""; fi
}
cleanup() { contender_down; lab_down; }
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up
OUT=$(mktemp /tmp/ih-veth-napi.XXXXXX.jsonl)

# napi_threaded on|off: each end's NAPI threads pinned to its side's core
# (a veth has NAPI only with GRO on or an XDP program attached: GRO is
# turned on for the threaded mode so the threads exist before either)
napi_threaded() {
  local v=0 gro=off; [ "$1" = on ] && v=1 gro=on
  ethtool -K "$A" gro $gro >/dev/null
  ip netns exec "$NS" ethtool -K "$B" gro $gro >/dev/null
  echo $v > /sys/class/net/$A/threaded 2>/dev/null || [ $v = 0 ]
  ip netns exec "$NS" sh -c "echo $v > /sys/class/net/$B/threaded" 2>/dev/null || [ $v = 0 ]
  [ $v = 1 ] || return 0
  sleep 0.2
  local pid
  for pid in $(pgrep "^napi/$A-"); do taskset -pc 0 "$pid" >/dev/null; done
  for pid in $(pgrep "^napi/$B-"); do taskset -pc 1 "$pid" >/dev/null; done
}

contender_up() {  # contender_up reflector|xdp|xdp-busy-poll
  case $1 in
    reflector)
      taskset -c 0 "$REFLECTOR_BIN" --iface "$A" --port 7777 --secret-file "$DIR/secret0.hex" --core 0 > "$DIR/reflector.log" 2>&1 &
      CPID=$!; sleep 1 ;;
    xdp) LAB_INTERFACE_EXTRA="" appliance_up xdp ;;
    xdp-busy-poll) LAB_INTERFACE_EXTRA="busy_poll = true" appliance_up xdp ;;
  esac
  # the XDP program on both ends changes the veth's NAPI set: pin again
  [ "$(cat /sys/class/net/$A/threaded)" = 1 ] && napi_threaded on || true
}

gen() {  # gen RATE REPORT
  ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
    --mode xdp --iface "$B" --rate "$1" --duration "$SECS" --games 10 --players 100 --board 16x16 \
    --cpu 1 --rx-cpu 1 --report "$2" --quiet >/dev/null 2>&1 || true
}

for mode in sender threaded busy-poll; do
  case $mode in
    sender) napi_threaded off; CONTENDERS="reflector xdp" ;;
    threaded) napi_threaded on; CONTENDERS="reflector xdp" ;;
    busy-poll)
      napi_threaded off; CONTENDERS="xdp-busy-poll"
      echo 2 > /sys/class/net/$A/napi_defer_hard_irqs; echo 200000 > /sys/class/net/$A/gro_flush_timeout ;;
  esac
  for c in $CONTENDERS; do
    contender_up "$c"
    for rate in "${RATES[@]}"; do
      rm -f "$DIR/r.json"
      gen "$rate" "$DIR/r.json"
      python3 - "$DIR/r.json" "$mode" "$c" "$rate" "$SECS" >> "$OUT" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    r = {}
mode, c, rate, secs = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
k = r.get("latency_kernel_ns") or r.get("latency_ns") or {}
src = "kernel" if r.get("latency_kernel_ns") else "user"
sent = r.get("sent") or 0
print(json.dumps({"napi": mode, "contender": c, "rate": rate, "offered_pps": r.get("offered_pps"),
                  "acked": r.get("acked"), "lost": r.get("lost"),
                  "lost_pct": round(100 * (r.get("lost") or 0) / sent, 3) if sent else None,
                  "rtt": src, "rtt_p99_us": round(k["p99"] / 1e3, 1) if "p99" in k else None}))
PY
      tail -1 "$OUT"
    done
    if [ "${PROFILE:-0}" = 1 ]; then
      perf record -q -a -g -C 0,1 -o "$DIR/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
      ppid=$!; gen 0 "$DIR/p.json"; wait $ppid || true
      echo "== $mode / $c: core 1 (pktgen's), top of the profile"
      { perf report -i "$DIR/perf.data" --no-children --sort sym -C 1 --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12; } || true
    fi
    contender_down
  done
  [ "$mode" = busy-poll ] && { echo 0 > /sys/class/net/$A/napi_defer_hard_irqs; echo 0 > /sys/class/net/$A/gro_flush_timeout; }
done
napi_threaded off
echo "rows: $OUT"
