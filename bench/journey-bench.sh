#!/usr/bin/env bash
# A move's whole journey (not a test): from the appliance's receive time
# (in every shipped message) to the moment a game server's callback gets
# the move, measured by the consumer libraries' own histogram
# (clients/go, userspace/ironhoard-consumer) in the example game servers.
#
# For each topology (a one-node stream, an R3 stream on a local 3-node
# cluster), each offered rate and each consumer (Rust, Go): a fresh log and
# stream, the appliance (XDP backend, poller on core 0), the shipper (core
# 1), the generator (core 1, 16 games), and one game server consuming all
# 16 games (16 durable pull consumers, unpinned, as are the nats-servers),
# for SECONDS seconds. Recorded per run: the consumer's journey p50/p90/
# p99/p99.9/max, the shipper's receive → PubAck lag, the generator's ack
# round trip, moves offered/accepted/consumed, and the CPU each process
# used.
#
# Usage: bash bench/journey-bench.sh
#   knobs (environment): RATES="10000 25000 50000" TOPOLOGIES="1 3"
#   CONSUMERS="rust go" PARTITIONS="1" SECONDS_PER_RUN=5 RUNS=1
#   OUT=bench/journey-results
# Writes $OUT/results.json, results.md and journey.svg (bench/journey-report.py).
# Needs root (netns, XDP), the release build and `bash scripts/go.sh build`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lab-lib.sh
RATES=${RATES:-"10000 25000 50000"}
TOPOLOGIES=${TOPOLOGIES:-"1 3"}
CONSUMERS=${CONSUMERS:-"rust go"}
PARTITIONS=${PARTITIONS:-1}
SECS=${SECONDS_PER_RUN:-5}
# the generator sends bursts of BURST moves back to back: one timer wake-up
# per burst instead of per move keeps its own cost (about 15 us of CPU per
# wake-up on these VMs) off the core it shares with the shipper
BURST=${BURST:-16}
RUNS=${RUNS:-1}
OUT=${OUT:-bench/journey-results}
SHIP_CORE=${SHIP_CORE-}
# REST_CORES=1: the nats-servers and the game server run there too (taskset),
# off the poller's core (as in production, where the poller's core is its own)
REST_CORES=${REST_CORES-}
# the appliance's backend: xdp (its poller spins on core 0 while moves come,
# as deployed: that core is its own) or socket (recvmmsg workers that sleep
# when there is nothing to read)
BACKEND=${BACKEND:-xdp}
GEN_MODE=(--mode xdp --iface "$B"); [ "$BACKEND" = socket ] && GEN_MODE=()
PIN=(); [ -n "$REST_CORES" ] && PIN=(taskset -c "$REST_CORES")
NATS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
[ -x "$NATS" ] || { echo "nats-server not found at $NATS: run scripts/setup.sh" >&2; exit 1; }
RUST_GS=${RUST_GS:-target/release/ironhoard-game-server}
GO_GS=${GO_GS:-target/go/bin/ironhoard-go-game-server}
for c in $CONSUMERS; do
  case $c in
    rust) [ -x "$RUST_GS" ] || { echo "$RUST_GS missing: cargo build --release -p ironhoard-game-server" >&2; exit 1; } ;;
    go) [ -x "$GO_GS" ] || { echo "$GO_GS missing: bash scripts/go.sh build" >&2; exit 1; } ;;
    *) echo "unknown consumer $c (rust, go)" >&2; exit 1 ;;
  esac
done
mkdir -p "$OUT"
NPIDS=(); SPID=""; CPID=""
nats_down() {
  for p in "${NPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NPIDS=()
}
cleanup() {
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null || true
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
  appliance_down
  nats_down
  lab_down
}
trap cleanup EXIT
lab_up
BASE=24300

nats_up() { # nodes
  nats_down
  rm -rf "$DIR/nats"
  if [ "$1" = 1 ]; then
    "${PIN[@]}" "$NATS" -n j0 -a 127.0.0.1 -p $BASE -js -sd "$DIR/nats/j0" 2>"$DIR/nats-j0.log" & NPIDS+=($!)
    SERVERS="[\"nats://127.0.0.1:$BASE\"]"; URLS=(--server "nats://127.0.0.1:$BASE")
  else
    local routes="nats://127.0.0.1:$((BASE+10)),nats://127.0.0.1:$((BASE+11)),nats://127.0.0.1:$((BASE+12))"
    for i in 0 1 2; do
      "${PIN[@]}" "$NATS" -n "j$i" -a 127.0.0.1 -p $((BASE+i)) -js -sd "$DIR/nats/j$i" --cluster_name ihjourney \
        --cluster "nats://127.0.0.1:$((BASE+10+i))" --routes "$routes" 2>"$DIR/nats-j$i.log" & NPIDS+=($!)
    done
    SERVERS="[\"nats://127.0.0.1:$BASE\", \"nats://127.0.0.1:$((BASE+1))\", \"nats://127.0.0.1:$((BASE+2))\"]"
    URLS=(--server "nats://127.0.0.1:$BASE" --server "nats://127.0.0.1:$((BASE+1))" --server "nats://127.0.0.1:$((BASE+2))")
  fi
}
ship_section() { # stream replicas partitions
  cat <<CFG

[ship]
servers = $SERVERS
stream = "$1"
subject_prefix = "ih.$1"
host_id = "journey"
checkpoint = "$DIR/$1.ckpt"
stats_socket = "$DIR/ship.sock"
replicas = $2
$([ "$3" != 1 ] && echo "partitions = $3")
${SHIP_CORE:+core = $SHIP_CORE}
${SHIP_EXTRA:-}
CFG
}
ship_stats() { "$BIN" stats --socket "$DIR/ship.sock" --json; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "busy idle" jiffies of the whole machine (all cores) from /proc/stat
machine_busy() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
busy_frac() { # "b0 i0" "b1 i1"
  echo "$1 $2" | awk '{b = $3 - $1; i = $4 - $2; t = b + i; printf "%.3f", (t > 0 ? b / t : 0)}'
}
nats_cpu_s() { local t=0; for p in "${NPIDS[@]}"; do t=$(echo "$t + $(cpu_s "$p")" | bc); done; echo "$t"; }

ROWS='[]'
for nodes in $TOPOLOGIES; do
  nats_up "$nodes"
  for parts in $PARTITIONS; do
  for rate in $RATES; do
  for cons in $CONSUMERS; do
  for run in $(seq "$RUNS"); do
    stream="J${nodes}P${parts}R${rate}${cons}${run}"
    rm -rf "$DIR/log"
    appliance_up "$BACKEND" 1000000
    ship_section "$stream" "$nodes" "$parts" >> "$DIR/ironhoard.toml"
    # the cluster elects its meta leader first
    for _ in $(seq 60); do "$BIN" ship --config "$DIR/ironhoard.toml" --ensure-stream >/dev/null 2>&1 && break; sleep 0.5; done
    "$BIN" ship --config "$DIR/ironhoard.toml" --ensure-stream >/dev/null || { echo "the streams could not be created"; exit 1; }
    "$BIN" ship --config "$DIR/ironhoard.toml" 2>>"$DIR/ship.log" & SPID=$!
    for _ in $(seq 100); do ship_stats >/dev/null 2>&1 && break; sleep 0.1; done
    games=(); for g in $(seq 1 16); do games+=(--game "$g"); done
    gs=$RUST_GS; [ "$cons" = go ] && gs=$GO_GS
    "${PIN[@]}" "$gs" "${URLS[@]}" --stream "$stream" --prefix "ih.$stream" --partitions "$parts" "${games[@]}" \
      --durable gs --secret "0=$DIR/secret0.hex" --idle 0 --metrics-listen "127.0.0.1:$((BASE + 50))" --report "$DIR/consumer.json" 2>"$DIR/consumer.log" & CPID=$!
    sleep 1.5 # the 16 durable consumers are made
    count=$((rate * SECS))
    S0=$(cpu_s "$SPID"); C0=$(cpu_s "$CPID"); N0=$(nats_cpu_s); A0=$(cpu_s "$APID"); M0=$(machine_busy)
    # PERF=DIR: perf profiles of the shipper, the game server and the first nats-server while the moves come
    PERF_PIDS=()
    if [ -n "${PERF:-}" ]; then
      mkdir -p "$PERF"
      for who in "ship:$SPID" "gs:$CPID" "nats:${NPIDS[0]}"; do
        perf record -q -F 999 -g -p "${who#*:}" -o "$PERF/${who%%:*}-$stream.data" 2>/dev/null & PERF_PIDS+=($!)
      done
    fi
    ip netns exec "$NS" taskset -c 1 "$PKTGEN" --target "$HOST_IP:7777" --secret-file "$DIR/secret0.hex" \
      "${GEN_MODE[@]}" --board 16x16 --games 16 --players 2000 --first-seq "$(date +%s%3N)" \
      --rate "$rate" --burst "$BURST" --count "$count" --duration 600 --quiet --report "$DIR/gen.json" >/dev/null
    M1=$(machine_busy)
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ACCEPTED=$(jq '.by_status.accepted' "$DIR/gen.json")
    # until the game server has every logged move (or 60 s)
    LOGGED=$("$BIN" stats --socket "$DIR/stats.sock" --json | jq '.accepted')
    for _ in $(seq 600); do
      got=$(curl -s "http://127.0.0.1:$((BASE + 50))/metrics" | awk '/^ironhoard_consumer_moves_total/ {s += $2} END {print s + 0}')
      [ "$got" -ge "$LOGGED" ] && break
      sleep 0.1
    done
    S1=$(cpu_s "$SPID"); C1=$(cpu_s "$CPID"); N1=$(nats_cpu_s); A1=$(cpu_s "$APID")
    SH=$(ship_stats)
    kill -TERM "$CPID"; wait "$CPID" || true; CPID=""
    kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
    appliance_down
    C=$(cat "$DIR/consumer.json")
    echo "nodes $nodes partitions $parts rate $rate $cons run $run: accepted $ACCEPTED logged $LOGGED consumed $(jq .consumed <<<"$C") refused $(jq .refused <<<"$C"); journey µs p50 $(jq .journey_us.p50 <<<"$C") p99 $(jq .journey_us.p99 <<<"$C") p99.9 $(jq .journey_us.p999 <<<"$C") max $(jq .journey_us.max <<<"$C"); receive→PubAck p99 $(jq .ack_lag_us.p99 <<<"$SH") µs"
    ROWS=$(jq --argjson nodes "$nodes" --argjson parts "$parts" --argjson rate "$rate" --arg cons "$cons" --argjson run "$run" \
      --argjson g "$(cat "$DIR/gen.json")" --argjson c "$C" --argjson s "$SH" --argjson logged "$LOGGED" \
      --arg scpu "$(echo "$S1 - $S0" | bc)" --arg ccpu "$(echo "$C1 - $C0" | bc)" --arg ncpu "$(echo "$N1 - $N0" | bc)" --arg acpu "$(echo "$A1 - $A0" | bc)" --arg busy "$(busy_frac "$M0" "$M1")" \
      '. + [{nodes: $nodes, partitions: $parts, offered_rate: $rate, consumer: $cons, run: $run,
             accepted: $g.by_status.accepted, lost_acks: $g.lost, logged: $logged, consumed: $c.consumed, refused: $c.refused,
             out_of_order: $c.out_of_order, journey_us: $c.journey_us, ship_ack_lag_us: $s.ack_lag_us, ship_read_lag_us: $s.read_lag_us,
             ack_rtt_ns: ($g.latency_kernel_ns // $g.latency_ns), ack_rtt_source: (if $g.latency_kernel_ns then "kernel" else "user" end),
             cpu_s: {shipper: ($scpu|tonumber), consumer: ($ccpu|tonumber), nats: ($ncpu|tonumber), appliance: ($acpu|tonumber)},
             machine_busy_while_sending: ($busy|tonumber),
             seconds: '"$SECS"'}]' <<<"$ROWS")
  done; done; done; done
done
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
jq -n --argjson rows "$ROWS" --arg cpu "$CPU" --arg cores "$(nproc)" --arg cmd "${IRONHOARD_BIN:+IRONHOARD_BIN=$IRONHOARD_BIN }BACKEND=$BACKEND SHIP_CORE=${SHIP_CORE} REST_CORES=${REST_CORES} RATES=\"$RATES\" TOPOLOGIES=\"$TOPOLOGIES\" CONSUMERS=\"$CONSUMERS\" PARTITIONS=\"$PARTITIONS\" SECONDS_PER_RUN=$SECS RUNS=$RUNS BURST=$BURST bash bench/journey-bench.sh" \
  '{rows: $rows, backend: "'"$BACKEND"'", machine: {cpu: $cpu, cores: ($cores|tonumber), appliance_core: 0, generator_core: 1, shipper_core: "'"${SHIP_CORE:-unpinned}"'", consumer: "'"${REST_CORES:-unpinned}"'", nats: "nats-server 2.15, file storage, cores '"${REST_CORES:-unpinned}"'"}, command: $cmd}' > "$OUT/results.json"
python3 bench/journey-report.py "$OUT"
echo "results: $OUT/results.json, $OUT/results.md, $OUT/journey.svg"
