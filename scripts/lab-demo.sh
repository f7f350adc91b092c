#!/usr/bin/env bash
# `make lab`: a veth/netns lab (SPEC §3), the appliance on the root-namespace
# end pinned to core 0, a client in the namespace pinned to core 1, live
# stats while it runs, a final report, and the lab removed at the end (also
# on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make lab needs root (network namespaces, XDP)"; exit 1; }
BIN=${IRONHOARD_BIN:-target/release/ironhoard}
PKTGEN=${PKTGEN_BIN:-target/release/ironhoard-pktgen}
BACKEND=${BACKEND:-xdp}
ID=$$
NS=ihlab$ID; A=ih${ID}a; B=ih${ID}b
DIR=$(mktemp -d /tmp/ih-lab.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  ip link del "$A" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
ip link add "$A" type veth peer name "$B"
ip link set "$B" netns "$NS"
ip addr add 198.18.200.1/24 dev "$A"; ip link set "$A" up
ip netns exec "$NS" ip addr add 198.18.200.2/24 dev "$B"
ip netns exec "$NS" ip link set "$B" up
ip netns exec "$NS" ip link set lo up

"$BIN" keygen --out "$DIR/secret0.hex"
cat > "$DIR/ironhoard.toml" <<CFG
[interface]
name = "$A"
queues = 1
cores = [0]
xdp_mode = "auto"
zero_copy = "auto"
backend = "$BACKEND"
[moves]
port = 7777
secrets = ["secret0.hex"]
board_width = 16
board_height = 16
rate_per_second = 1000
rate_burst = 1000
[stats]
socket = "$DIR/stats.sock"
[log]
dir = "$DIR/log"
CFG
"$BIN" check-config --config "$DIR/ironhoard.toml"
"$BIN" run --config "$DIR/ironhoard.toml" 2> >(sed 's/^/  appliance: /' >&2) &
PID=$!
for _ in $(seq 50); do "$BIN" stats --socket "$DIR/stats.sock" --json >/dev/null 2>&1 && break; sleep 0.1; done

echo "== lab $NS: appliance ($BACKEND backend) on $A 198.18.200.1:7777 pinned to core 0; ironhoard-pktgen in $NS pinned to core 1"
echo "== ${RATE:=200000} moves/s for ${DURATION:=5} s from 1000 players, 8% hostile (forged tags, wrong key_id, junk lengths, replays)"
ip netns exec "$NS" "$PKTGEN" --target 198.18.200.1:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration "$DURATION" --games 10 --players 100 --board 16x16 --invalid-ratio 0.08 \
  --cpu 1 --rx-cpu 1 --report "$DIR/report.json" --quiet &
CPID=$!
while kill -0 "$CPID" 2>/dev/null; do
  sleep 1
  "$BIN" stats --socket "$DIR/stats.sock" --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  appliance: rx %(rx)d tx %(tx)d accepted %(accepted)d duplicate %(duplicate)d stale %(stale)d" % s, "dropped", sum(s["dropped"].values()))' || true
done
set +e
wait "$CPID"; RC=$?
set -e
echo "== appliance counters"
"$BIN" stats --socket "$DIR/stats.sock"
echo "== report ($DIR/report.json)"
python3 - "$DIR/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ns"]
print(f"  sent {r['sent']}  acked {r['acked']}  lost {r['lost']}  silently dropped by design {r['silently_dropped_expected']}")
print(f"  offered {r['offered_pps']:.0f}/s  acked {r['acked_pps']:.0f}/s  (asked {r['asked_pps']}/s)")
print(f"  RTT p50 {l['p50']/1e3:.1f} us  p99 {l['p99']/1e3:.1f} us  p99.9 {l['p999']/1e3:.1f} us  max {l['max']/1e3:.1f} us")
print("  statuses", r["by_status"])
h = r["hostile"]
print(f"  hostile sent {h['sent']}: answered when they must not be {h['acked_when_it_must_not']}, accepted twice {h['accepted_twice']}")
PY
exit $RC
