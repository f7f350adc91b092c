#!/usr/bin/env bash
# `make lab`: a veth/netns lab (SPEC §3), the appliance on the root-namespace
# end pinned to core 0 (the core its own for the run: every other movable
# thread moved off it by ironhoard-tune --isolate, put back at the end;
# LAB_ISOLATE=0 to share it), ironhoard-pktgen in the namespace pinned to core 1 with
# a hostile mix, live stats while it runs, a final report, and the lab
# removed at the end (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
BACKEND=${BACKEND:-xdp}
RATE=${RATE:-200000}
DURATION=${DURATION:-5}
# the generator falls at most MAX_LAG_US behind its schedule: a stall of its
# own core (shared here with the appliance's control plane) skips the sends
# it missed (reported) instead of sending them in one burst; "" (the
# default) = catch up in full, so the offered rate is the one asked
MAX_LAG_US=${MAX_LAG_US-}
LAG_ARGS=(); [ -n "$MAX_LAG_US" ] && LAG_ARGS=(--max-lag-us "$MAX_LAG_US")
# the generator makes up the sends it missed while its core was taken (here
# shared with the appliance's control plane and the VM's own threads) at
# most CATCH_UP times the rate (pktgen --catch-up), not at full speed:
# nothing is skipped, the offered rate is the one asked, and the appliance
# is not handed bursts no population of independent clients sends.
# CATCH_UP= (empty) catches up at full speed (docs/performance.md, "The
# tail at 200 k").
CATCH_UP=${CATCH_UP-1.5}
# This VM's host caps its CPU per 100 ms period: a poller that spins
# through every lull spends the quota, and the host then stops both vCPUs
# until the next period (steal time; docs/operations.md, "A poller on a VM
# with a CPU quota"). The demo's poller sleeps after 50 µs without a move;
# LAB_INTERFACE_EXTRA= (empty) keeps the appliance's default (2 ms), and a
# value of its own replaces this one (add idle_spin_us to it to keep it).
LAB_INTERFACE_EXTRA=${LAB_INTERFACE_EXTRA-idle_spin_us = 50}
[ -n "$CATCH_UP" ] && LAG_ARGS+=(--catch-up "$CATCH_UP")
PKTGEN_MODE=${PKTGEN_MODE:-socket}
# socket mode: the acks come back through a UDP socket (PKTGEN_RX=socket) or
# through AF_XDP (PKTGEN_RX=xdp: the generator's XDP program stamps their
# arrival, so the RTT is still the kernel's, and its core spends far less
# on receiving)
PKTGEN_RX=${PKTGEN_RX:-socket}
MODE_ARGS=(--mode socket)
[ "$PKTGEN_RX" = xdp ] && MODE_ARGS=(--mode socket --rx-mode xdp --iface "$B")
[ "$PKTGEN_MODE" = xdp ] && MODE_ARGS=(--mode xdp --iface "$B")
trap lab_down EXIT INT TERM
lab_up
appliance_up "$BACKEND"
isolate_pollers
sed 's/^/  /' "$DIR/appliance.log"

echo "== lab $NS: appliance ($BACKEND backend) on $A $HOST_IP:7777 pinned to core 0$([ "$LAB_ISOLATE" = 1 ] && echo ", the core its own (ironhoard-tune --isolate; LAB_ISOLATE=0 to share it)"); ironhoard-pktgen ($PKTGEN_MODE mode) in $NS pinned to core 1"
echo "== $RATE moves/s for $DURATION s from 1000 players, 8% hostile (forged tags, wrong key_id, junk lengths, replays)"
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration "$DURATION" --games 10 --players 100 --board 16x16 --invalid-ratio 0.08 \
  --cpu 1 --rx-cpu 1 "${MODE_ARGS[@]}" "${LAG_ARGS[@]}" ${PKTGEN_EXTRA:-} --report "$DIR/report.json" --quiet &
CPID=$!
# the vCPUs' steal time over the run (steal_ms, lab-lib.sh)
STEAL0=$(steal_ms)
# The live line is SCHED_IDLE, and a plain interpreter (not a pyenv shim's
# chain of scripts): it shares core 1 with the generator, and a normal one
# took that core for up to 5 ms a second, which the generator then sent as
# a burst.
LIVE_PY=$(command -v /usr/bin/python3 || command -v python3)
while kill -0 "$CPID" 2>/dev/null; do
  sleep 1
  chrt -i 0 "$BIN" stats --socket "$DIR/stats.sock" --json 2>/dev/null | chrt -i 0 "$LIVE_PY" -c 'import json,sys; s=json.load(sys.stdin); print("  live: rx %(rx)d tx %(tx)d accepted %(accepted)d duplicate %(duplicate)d stale %(stale)d" % s, "dropped", sum(s["dropped"].values()))' || true
done
set +e
wait "$CPID"; RC=$?
set -e
STEAL1=$(steal_ms)
echo "== appliance counters"
"$BIN" stats --socket "$DIR/stats.sock"
echo "== final report ($DIR/report.json)"
python3 - "$DIR/report.json" "$STEAL0" "$STEAL1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
steal = [int(b) - int(a) for a, b in zip(sys.argv[2].split(), sys.argv[3].split())]
l = r["latency_ns"]
print(f"  sent {r['sent']}  acked {r['acked']}  lost {r['lost']}  silently dropped by design {r['silently_dropped_expected']}")
print(f"  offered {r['offered_pps']}/s  acked {r['acked_pps']}/s  (asked {r['asked_pps']}/s; {r.get('skipped_behind', 0)} sends skipped behind schedule, --max-lag-us {r.get('max_lag_us')}, catch-up {'at most ' + str(r['catch_up']) + 'x the rate' if r.get('catch_up') else 'at full speed'})")
print(f"  RTT (user-space clock)  p50 {l['p50']/1e3:.1f} us  p99 {l['p99']/1e3:.1f} us  p99.9 {l['p999']/1e3:.1f} us  max {l['max']/1e3:.1f} us")
k = r.get("latency_kernel_ns")
if k:
    print(f"  RTT (kernel timestamps) p50 {k['p50']/1e3:.1f} us  p99 {k['p99']/1e3:.1f} us  p99.9 {k['p999']/1e3:.1f} us  max {k['max']/1e3:.1f} us  (the generator's own scheduling left out)")
print("  statuses", r["by_status"])
if steal:
    print("  steal time over the run (the hypervisor ran something else on this VM's vCPUs): "
          + ", ".join(f"core {c} {ms} ms" for c, ms in enumerate(steal)))
h = r["hostile"]
print(f"  proof: {h['sent']} hostile datagrams sent (forged, wrong key, junk, replays); answered when they must not be: {h['acked_when_it_must_not']}; moves accepted twice: {h['accepted_twice']}")
PY
exit $RC
