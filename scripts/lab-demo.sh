#!/usr/bin/env bash
# `make lab`: a veth/netns lab (SPEC §3), the appliance on the root-namespace
# end pinned to core 0, a client in the namespace pinned to core 1, live
# stats while it runs, a final report, and the lab removed at the end (also
# on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make lab needs root (network namespaces, XDP)"; exit 1; }
BIN=${IRONHOARD_BIN:-target/release/ironhoard}
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

echo "== lab $NS: appliance ($BACKEND backend) on $A 198.18.200.1:7777, core 0; client in $NS on core 1"
ip netns exec "$NS" taskset -c 1 python3 scripts/demo_client.py --target 198.18.200.1:7777 \
  --secret-file "$DIR/secret0.hex" --players 50 --moves "${MOVES:-5000}" --hostile 0.1 --report "$DIR/client.json" &
CPID=$!
while kill -0 "$CPID" 2>/dev/null; do
  "$BIN" stats --socket "$DIR/stats.sock" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  live: rx %(rx)d tx %(tx)d accepted %(accepted)d duplicate %(duplicate)d" % s, "dropped", sum(s["dropped"].values()))'
  sleep 1
done
wait "$CPID"; RC=$?
echo "== appliance counters"
"$BIN" stats --socket "$DIR/stats.sock"
exit $RC
