#!/usr/bin/env bash
# Side-by-side lab benchmark (`make lab-bench`). One generator,
# ironhoard-pktgen (socket mode, sender and receiver pinned to core 1, in the
# lab namespace), steps the offered rate against each contender in turn, the
# contender pinned to core 0 on the root-namespace end of the veth pair:
#   socket     the appliance, kernel UDP backend      (ironhoard run, backend = "socket")
#   xdp        the appliance, AF_XDP backend          (ironhoard run, backend = "xdp")
#   reflector  bare AF_XDP reflector, no engine: the floor (ih-bench-reflector, crate bench/contenders)
#   tokio      plain tokio UDP server with the engine  (ih-bench-tokio, crate bench/contenders)
# Each step starts the contender afresh, sends for SECONDS_PER_STEP, reads the
# appliance's own counters (stats socket) just before stopping it, and keeps
# the whole pktgen report. WARMUP (seconds, default 0) first sends the step's
# rate to other games for that long, unmeasured: what a contender does once
# at start (the move log's first segments, its player table) is then not in
# the step, which measures the steady state. Writes $OUT_DIR (default bench/results/):
# results.json, then bench/report.py makes results.md and the SVG plots from it.
#   usage: bench/lab-bench.sh [SECONDS_PER_STEP]   (root; make release first)
# IDLE_SPIN_US (default: each one's own, 2000) sets how long the XDP
# backend's poller and the reflector spin on an empty RX ring before they
# sleep (the appliance's [interface] idle_spin_us): on this lab the
# generator pauses for milliseconds behind whatever else runs on its core,
# and a poller that slept then wakes late on a VM (docs/performance.md,
# "Sustained rate on the lab VM: sleeps, steal and the log's disk").
# Knobs (environment): CONTENDERS, SECONDS_PER_STEP, WARMUP, IDLE_SPIN_US, RUNS, SOCKET_RATES,
# XDP_RATES, REFLECTOR_RATES, TOKIO_RATES, OUT_DIR, IRONHOARD_BIN, PKTGEN_BIN,
# REFLECTOR_BIN, TOKIO_BIN (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

# The command line as given, with the knobs that were set (results.json).
quote() { if [[ $1 =~ ^[A-Za-z0-9_./:=,+-]+$ ]]; then printf '%s' "$1"; elif [[ $1 =~ ^[A-Za-z0-9_./:=,+\ -]*$ ]]; then printf '"%s"' "$1"; else printf '%q' "$1"; fi; }
CMDLINE=""
for v in CONTENDERS GEN_MODE SECONDS_PER_STEP WARMUP IDLE_SPIN_US RUNS SOCKET_RATES XDP_RATES REFLECTOR_RATES TOKIO_RATES OUT_DIR LAB_ISOLATE \
         IRONHOARD_BIN PKTGEN_BIN REFLECTOR_BIN TOKIO_BIN; do
  [ -n "${!v+x}" ] && CMDLINE+="$v=$(quote "${!v}") "
done
CMDLINE+="bash bench/lab-bench.sh"
for a in "$@"; do CMDLINE+=" $(quote "$a")"; done

# The contender's core is its own for the sweep (ironhoard-tune --isolate;
# masks restored after), as in `make lab`; LAB_ISOLATE=0 shares it (the
# sweeps before 2026-12-04 did).
. scripts/lab-lib.sh
SECONDS_PER_STEP=${SECONDS_PER_STEP:-${1:-3}}
RUNS=${RUNS:-1}
WARMUP=${WARMUP:-0}
CONTENDERS=${CONTENDERS:-"socket xdp reflector tokio"}
# finer steps near each contender's knee on the lab VM (the max sustained rate
# is a step, so the ratios between contenders are only as fine as these)
SOCKET_RATES=${SOCKET_RATES:-"50000 100000 150000 175000 200000 225000 250000"}
TOKIO_RATES=${TOKIO_RATES:-"25000 50000 75000 100000 125000 150000"}
XDP_RATES=${XDP_RATES:-"100000 200000 300000 375000 400000 425000 450000 475000 500000"}
REFLECTOR_RATES=${REFLECTOR_RATES:-"100000 200000 300000 375000 400000 425000 450000 475000 500000"}
REFLECTOR_BIN=${REFLECTOR_BIN:-target/release/ih-bench-reflector}
TOKIO_BIN=${TOKIO_BIN:-target/release/ih-bench-tokio}
OUT_DIR=${OUT_DIR:-bench/results}
APP_CORE=0; GEN_CORE=1; PORT=7777
# GEN_MODE=socket (default), xdp or xdp-rx: how pktgen sends and receives
# (xdp: AF_XDP on the lab's peer end; see docs/performance.md, "The
# generator's ceiling"; xdp-rx: sends through kernel UDP, receives the acks
# through AF_XDP, user-space RTT only: "Saturation: sweep I")
GEN_MODE=${GEN_MODE:-socket}
case $GEN_MODE in
  socket) GEN_ARGS=(--games 10 --players 100 --board 16x16 --mode socket --cpu $GEN_CORE --rx-cpu $GEN_CORE) ;;
  xdp) GEN_ARGS=(--games 10 --players 100 --board 16x16 --mode xdp --iface "$B" --cpu $GEN_CORE --rx-cpu $GEN_CORE) ;;
  xdp-rx) GEN_ARGS=(--games 10 --players 100 --board 16x16 --mode socket --rx-mode xdp --iface "$B" --cpu $GEN_CORE --rx-cpu $GEN_CORE) ;;
  *) echo "GEN_MODE must be socket, xdp or xdp-rx (got '$GEN_MODE')" >&2; exit 2 ;;
esac

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer (got '$RUNS')" >&2; exit 2; }
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "WARMUP must be a whole number of seconds (got '$WARMUP')" >&2; exit 2; }
IDLE_SPIN_US=${IDLE_SPIN_US:-}
[[ -z $IDLE_SPIN_US || $IDLE_SPIN_US =~ ^[0-9]+$ ]] || { echo "IDLE_SPIN_US must be a whole number of microseconds (got '$IDLE_SPIN_US')" >&2; exit 2; }
[[ $SECONDS_PER_STEP =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$SECONDS_PER_STEP" != 0 ] ||
  { echo "SECONDS_PER_STEP must be a positive number (got '$SECONDS_PER_STEP')" >&2; exit 2; }
for f in "$BIN" "$PKTGEN"; do
  [ -x "$f" ] || { echo "$f is missing: make release (or cargo build --release --bins) first" >&2; exit 1; }
done

rates_of() {
  case $1 in
    socket) echo "$SOCKET_RATES" ;; xdp) echo "$XDP_RATES" ;;
    reflector) echo "$REFLECTOR_RATES" ;; tokio) echo "$TOKIO_RATES" ;;
  esac
}

# Which contenders run; a bench binary that is not built is skipped, not fatal.
ACTIVE=""; SKIPPED=""
for c in $CONTENDERS; do
  case $c in
    socket|xdp) ACTIVE+="$c " ;;
    reflector|tokio)
      b=$REFLECTOR_BIN; [ "$c" = tokio ] && b=$TOKIO_BIN
      if [ -x "$b" ]; then ACTIVE+="$c "
      else
        echo "skipping contender $c: $b not found (cargo build --release -p ironhoard-contenders)" >&2
        SKIPPED+="$c=$b not found;"
      fi ;;
    *) echo "unknown contender '$c' (socket, xdp, reflector, tokio)" >&2; exit 2 ;;
  esac
done
[ -n "$ACTIVE" ] || { echo "no contender to run" >&2; exit 1; }
for c in $ACTIVE; do
  for r in $(rates_of "$c"); do
    [[ $r =~ ^[1-9][0-9]*$ ]] || { echo "${c^^}_RATES: '$r' is not a rate (moves/s, a positive integer)" >&2; exit 2; }
  done
  [ -n "$(rates_of "$c")" ] || echo "note: ${c^^}_RATES is empty: $c runs no step" >&2
done

CPID=""; CNAME=""
# Stops a bench binary: SIGTERM, then SIGKILL after 5 s.
bench_bin_down() {
  [ -n "$CPID" ] || return 0
  if kill -TERM "$CPID" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$CPID" 2>/dev/null; then
      echo "  $CNAME ignored SIGTERM for 5 s: SIGKILL" >&2
      kill -KILL "$CPID" 2>/dev/null || true
    fi
  fi
  wait "$CPID" 2>/dev/null || true
  CPID=""
}

cleanup() { bench_bin_down; lab_down; }
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up
isolate_pollers

# Something answers moves on $HOST_IP:$PORT: a few moves from a game of
# their own (4000000000+) so they never touch the measured players.
probe_ready() {
  local i
  for i in $(seq 30); do
    kill -0 "$CPID" 2>/dev/null || return 1
    rm -f "$DIR/probe.json"
    ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:$PORT --secret-file "$DIR/secret0.hex" \
      --rate 1000 --count 20 --duration 1 --games 1 --players 1 --game-base 4000000000 --first-seq $((i * 100)) \
      --board 16x16 --drain-ms 200 --cpu $GEN_CORE --rx-cpu $GEN_CORE --report "$DIR/probe.json" --quiet >/dev/null 2>&1 || true
    [ -f "$DIR/probe.json" ] && python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["acked"] > 0 else 1)' "$DIR/probe.json" && return 0
    sleep 0.2
  done
  return 1
}

REFLECTOR_CMD=(taskset -c $APP_CORE "$REFLECTOR_BIN" --iface "$A" --port $PORT --secret-file "$DIR/secret0.hex" --core $APP_CORE)
if [ -n "$IDLE_SPIN_US" ]; then
  REFLECTOR_CMD+=(--idle-spin-us "$IDLE_SPIN_US")
  # the appliance's config (appliance_up); the socket backend ignores it
  LAB_INTERFACE_EXTRA="${LAB_INTERFACE_EXTRA:+$LAB_INTERFACE_EXTRA
}idle_spin_us = $IDLE_SPIN_US"
fi
TOKIO_CMD=(taskset -c $APP_CORE "$TOKIO_BIN" --listen $HOST_IP:$PORT --secret-file "$DIR/secret0.hex" --board 16x16
           --rate-per-second 100000 --rate-burst 100000)

# contender_up NAME: started and answering (0), or not (1, its log printed).
contender_up() {
  CNAME=$1
  case $1 in
    socket|xdp) appliance_up "$1" ;;
    reflector|tokio)
      local -a cmd=("${REFLECTOR_CMD[@]}"); [ "$1" = tokio ] && cmd=("${TOKIO_CMD[@]}")
      "${cmd[@]}" > "$DIR/$1.log" 2>&1 &
      CPID=$!
      sleep 0.2
      probe_ready && return 0
      if kill -0 "$CPID" 2>/dev/null; then echo "  $1 did not answer within ~10 s:" >&2
      else echo "  $1 exited before it answered:" >&2; fi
      sed 's/^/    /' "$DIR/$1.log" | tail -20 >&2
      return 1 ;;
  esac
}

# contender_down NAME: stopped; an XDP program left on $A is reported and removed.
contender_down() {
  case $1 in socket|xdp) appliance_down ;; *) bench_bin_down ;; esac
  if [[ $(ip link show dev "$A" 2>/dev/null) == *prog/xdp* ]]; then
    echo "  WARNING: $1 left an XDP program on $A after it stopped: removing it" >&2
    ip link set dev "$A" xdpgeneric off 2>/dev/null || true
    ip link set dev "$A" xdp off 2>/dev/null || true
  fi
}

# The reflector's counters (its socket's XDP_STATISTICS) as a line in its
# log, printed on SIGUSR1: after the warm-up, so the step's own rx_ring_full
# is the exit line's less this one. Waits up to 1 s for the line.
reflector_counters_line() {
  local log=$DIR/reflector.log n0
  n0=$(grep -c '^ih-bench-reflector: counters ' "$log" || true)
  kill -USR1 "$CPID" 2>/dev/null || return 0
  for _ in $(seq 100); do
    (( $(grep -c '^ih-bench-reflector: counters ' "$log" || true) > n0 )) && return 0
    sleep 0.01
  done
  echo "  the reflector printed no counters within 1 s of SIGUSR1" >&2
}

udp_rcvbuf_errors() { awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp; }

ROWS=$DIR/rows.jsonl; : > "$ROWS"
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Is something else using the cores? (share of CPU time not idle over 1 s, all cores)
cpu_busy_pct() {
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { n = split(a, x); split(b, y); t = 0
    for (i = 2; i <= n; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%.1f", t ? 100 * (t - idle) / t : 0 }'
}
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY0=$(cpu_busy_pct)
if awk -v b="$BUSY0" 'BEGIN { exit !(b > 10) }'; then
  echo "WARNING: the cores were $BUSY0 % busy before the sweep: something else runs on them, the figures will show it" >&2
fi
# The table printed as the sweep goes (results.md has the full one).
printf >&2 '%-9s %3s %8s %8s %8s %8s %8s %9s %9s %9s %9s %9s\n' \
  contender run asked offered acked busy loss% p50_us p99_us p999_us kp99_us ringfull
step() {  # step CONTENDER RATE RUN
  local c=$1 rate=$2 run=$3 rc=0 err="" u0 u1 s0 s1
  rm -f "$DIR"/{r,stats,stats0,latency,info}.json "$DIR/pktgen.err"
  u0=$(udp_rcvbuf_errors)
  # every step starts with an empty move log (appliance_up): the appliance
  # restores each player's window from its log, and pktgen starts every
  # player at seq 1 again, so on the last step's log every move would be
  # answered STALE or DUPLICATE (no log append, no state change): the step
  # would measure rejects, not moves
  if contender_up "$c"; then
    if (( 10#$WARMUP > 0 )); then
      # the same rate on other games (every move a new one in the step), unmeasured
      ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:$PORT --secret-file "$DIR/secret0.hex" \
        --rate "$rate" --duration "$WARMUP" "${GEN_ARGS[@]}" --game-base 3000000000 \
        --report "$DIR/warmup.json" --quiet 2>/dev/null || true
      if [ "$c" = socket ] || [ "$c" = xdp ]; then
        "$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/stats0.json" 2>"$DIR/stats0.err" || { cat "$DIR/stats0.err" >&2; rm -f "$DIR/stats0.json"; }
      elif [ "$c" = reflector ]; then
        reflector_counters_line
      fi
    fi
    u0=$(udp_rcvbuf_errors)
    s0=$(steal_ms)
    ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:$PORT --secret-file "$DIR/secret0.hex" \
      --rate "$rate" --duration "$SECONDS_PER_STEP" "${GEN_ARGS[@]}" \
      --report "$DIR/r.json" --quiet 2> "$DIR/pktgen.err" || rc=$?
    s1=$(steal_ms)
    if [ "$c" = socket ] || [ "$c" = xdp ]; then
      "$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/stats.json" 2>/dev/null || rm -f "$DIR/stats.json"
      "$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/latency.json" 2>/dev/null || rm -f "$DIR/latency.json"
      "$BIN" stats --socket "$DIR/stats.sock" --command "show info" > "$DIR/info.json" 2>/dev/null || rm -f "$DIR/info.json"
    fi
  else
    err="$c did not start"
  fi
  contender_down "$c"
  u1=$(udp_rcvbuf_errors)
  python3 - "$DIR" "$c" "$rate" "$run" "$rc" "$err" "$((u1 - u0))" "${s0:-}" "${s1:-}" >> "$ROWS" <<'PY'
import json, os, sys
d, c, rate, run, rc, err, rcvbuf = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
# steal over pktgen's run, per core (none when the contender did not start)
steal = [int(b) - int(a) for a, b in zip(sys.argv[8].split(), sys.argv[9].split())] or None
def load(name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
r, st, lat, info = load("r.json"), load("stats.json"), load("latency.json"), load("info.json")
def since(now, then):
    # the step's own counts: every number less its value after the warm-up
    if isinstance(now, dict) and isinstance(then, dict):
        return {k: since(v, then.get(k)) for k, v in now.items()}
    if isinstance(now, list) and isinstance(then, list) and len(now) == len(then):
        return [since(a, b) for a, b in zip(now, then)]
    if isinstance(now, int) and not isinstance(now, bool) and isinstance(then, int):
        return now - then
    return now
st0 = load("stats0.json")
if st is not None and st0 is not None:
    st = since(st, st0)
row = {"contender": c, "run": run, "asked_pps": rate, "pktgen_rc": rc, "error": err or None,
       "offered_pps": None, "acked_pps": None, "loss_pct": None, "busy": None, "rate_limited": None,
       "rx_ring_full": None, "rx_dropped": None, "udp_rcvbuf_errors": rcvbuf, "steal_ms": steal, "pktgen": r, "appliance": None}
if r is None and not err:
    try:
        tail = open(os.path.join(d, "pktgen.err")).read().strip().splitlines()[-3:]
    except OSError:
        tail = []
    row["error"] = "pktgen wrote no report (exit %d): %s" % (rc, " | ".join(tail))
elif r is not None:
    exp = r["sent"] - r["silently_dropped_expected"]
    row.update(offered_pps=r["offered_pps"], acked_pps=r["acked_pps"], busy=r["by_status"].get("busy"),
               rate_limited=r["by_status"].get("rate_limited"),
               loss_pct=round(100.0 * r["lost"] / exp, 4) if exp else None)
    # what the step measured: moves the contender accepted (and logged), or
    # answers to moves it had seen (a step that reused the last one's state)
    legit = r["acked"] - r.get("hostile", {}).get("acked_when_it_must_not", 0)
    row["accepted_pct"] = round(100.0 * r["by_status"].get("accepted", 0) / legit, 3) if legit else None
    if rc == 3:
        row["error"] = "pktgen: SAFETY VIOLATION (exit 3)"
    elif rc:
        row["error"] = "pktgen exit %d" % rc
    elif row["accepted_pct"] is not None and row["accepted_pct"] < 99.0:
        others = {k: v for k, v in r["by_status"].items() if v and k != "accepted"}
        # BUSY is load shed (the move log or a handoff mailbox full), STALE
        # and DUPLICATE are answers to moves the contender had seen
        why = ("the contender shed load (BUSY: its move log or a handoff mailbox was full)"
               if max(others, key=others.get, default="") == "busy" else "the step measured answers to old moves")
        row["error"] = "only %.1f %% of the acks ACCEPTED (%s): %s" % (
            row["accepted_pct"], ", ".join("%s %d" % kv for kv in others.items()), why)
if st is not None:
    xsk = {}
    for q in st.get("queues", []):
        for k, v in (q.get("xsk") or {}).items():
            xsk[k] = xsk.get(k, 0) + v
    app = {k: st.get(k) for k in ("backend", "rx", "tx", "accepted", "duplicate", "stale", "invalid", "rate_limited", "busy", "tx_errors")}
    app["dropped"] = {k: v for k, v in (st.get("dropped") or {}).items() if v}
    app["xsk"] = xsk or None
    app["xdp"] = {k: v for k, v in (st.get("xdp") or {}).items() if v} or None
    lg = st.get("log") or {}
    app["log"] = {k: lg.get(k) for k in ("records", "refused", "write_errors", "syncs", "healthy")}
    app["wakeups"] = sum(q.get("wakeups", 0) for q in st.get("queues", []))
    if lat is not None:
        app["move_ns"] = lat.get("move_ns")
        app["batch_ns"] = lat.get("batch_ns")
    if info is not None:
        app["xdp_mode"] = info.get("xdp")
    row["appliance"] = app
    if xsk:
        row["rx_ring_full"] = xsk.get("rx_ring_full")
        row["rx_dropped"] = xsk.get("rx_dropped")
if c == "reflector":
    # its socket's XDP_STATISTICS: the line printed after the warm-up
    # (SIGUSR1) and the one at exit; the step's own is their difference
    try:
        with open(os.path.join(d, "reflector.log"), errors="replace") as f:
            cs = [json.loads(l.split(" counters ", 1)[1]) for l in f if l.startswith("ih-bench-reflector: counters ")]
    except (OSError, ValueError):
        cs = []
    if cs and "xsk" in cs[-1]:
        x = cs[-1]["xsk"]
        if len(cs) >= 2 and "xsk" in cs[0]:
            x = since(x, cs[0]["xsk"])
        row["rx_ring_full"], row["rx_dropped"] = x.get("rx_ring_full"), x.get("rx_dropped")
if c not in ("socket", "xdp"):
    try:
        row["contender_log_tail"] = open(os.path.join(d, c + ".log"), errors="replace").read().strip().splitlines()[-10:]
    except OSError:
        pass
print(json.dumps(row))
def us(v):
    return "-" if v is None else "%.1f" % (v / 1e3)
l = (r or {}).get("latency_ns") or {}
k = (r or {}).get("latency_kernel_ns") or {}
show = lambda v: "-" if v is None else str(v)
print("%-9s %3d %8d %8s %8s %8s %8s %9s %9s %9s %9s %9s%s" % (
    c, run, rate, show(row["offered_pps"]), show(row["acked_pps"]), show(row["busy"]),
    "-" if row["loss_pct"] is None else "%.3f" % row["loss_pct"], us(l.get("p50")), us(l.get("p99")), us(l.get("p999")),
    us(k.get("p99")), show(row["rx_ring_full"]), "  " + row["error"] if row["error"] else ""), file=sys.stderr)
PY
}

for run in $(seq "$RUNS"); do
  for c in $ACTIVE; do
    for rate in $(rates_of "$c"); do
      step "$c" "$rate" "$run"
    done
  done
done

# results.json: the machine, the setup and one row per contender/rate/run.
mkdir -p "$OUT_DIR"
IH_LOAD0=$LOAD0 IH_BUSY0=$BUSY0 IH_ROWS=$ROWS IH_OUT=$OUT_DIR/results.json IH_STARTED=$STARTED IH_CMDLINE=$CMDLINE IH_ACTIVE=$ACTIVE \
IH_SKIPPED=$SKIPPED IH_STEP_S=$SECONDS_PER_STEP IH_WARMUP_S=$WARMUP IH_RUNS=$RUNS IH_APP_CORE=$APP_CORE IH_GEN_CORE=$GEN_CORE \
IH_RATES_socket=$SOCKET_RATES IH_RATES_xdp=$XDP_RATES IH_RATES_reflector=$REFLECTOR_RATES IH_RATES_tokio=$TOKIO_RATES \
IH_CMD_socket="$BIN run --config $DIR/ironhoard.toml   (appliance_config, backend = \"socket\")" \
IH_CMD_xdp="$BIN run --config $DIR/ironhoard.toml   (appliance_config, backend = \"xdp\")" \
IH_CMD_reflector="${REFLECTOR_CMD[*]}" IH_CMD_tokio="${TOKIO_CMD[*]}" \
IH_GEN="ip netns exec $NS $PKTGEN --target $HOST_IP:$PORT --secret-file $DIR/secret0.hex --rate RATE --duration $SECONDS_PER_STEP ${GEN_ARGS[*]} --report r.json --quiet" \
IH_LAB="veth pair $A (root namespace, $HOST_IP:$PORT, the contender) <-> $B (namespace $NS, $PEER_IP, the generator)" \
IH_CONFIG=$DIR/ironhoard.toml IH_GEN_MODE=$GEN_MODE IH_ISOLATED=$LAB_ISOLATE \
python3 - <<'PY'
import datetime, json, os, re, subprocess
E = os.environ
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
cpu = None
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
with open(E["IH_ROWS"]) as f:
    rows = [json.loads(l) for l in f if l.strip()]
what = {
    "socket": "the appliance, kernel UDP backend",
    "xdp": "the appliance, AF_XDP backend",
    "reflector": "bare AF_XDP reflector on queue 0, steered by the appliance's XDP program and driven by the "
                 "poller's own ring code: an ACCEPTED ack signed per move, no tag check, no engine, no log "
                 "(the floor of the machine)",
    "tokio": "plain tokio UdpSocket, each move through the appliance's engine (tag, window, rules, "
             "rate limit), no move log",
}
dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
app, gen = int(E["IH_APP_CORE"]), int(E["IH_GEN_CORE"])
try:
    with open(E["IH_CONFIG"]) as f:
        config = re.sub(r'(?m)^backend = ".*"$', 'backend = "socket"  # or "xdp": the contender\'s name', f.read())
except OSError:
    config = None
out = {
    "schema": 1,
    "machine": {"kernel": sh("uname", "-r"), "nproc": int(sh("nproc", "--all") or 0), "cpu_model": cpu,
                "virtualization": sh("systemd-detect-virt"),
                "cpu_busy_pct_before": float(E["IH_BUSY0"]), "loadavg_before": E["IH_LOAD0"], "loadavg_after": " ".join(open("/proc/loadavg").read().split()[:3])},
    "date": E["IH_STARTED"],
    "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git": {"commit": sh("git", "rev-parse", "HEAD"), "dirty": None if dirty is None else bool(dirty)},
    "command": E["IH_CMDLINE"],
    "cores": {"appliance": app, "generator": gen,
              "note": f"contender (appliance poller, reflector, tokio runtime) pinned to core {app}; "
                      f"pktgen sender and receiver pinned to core {gen}"},
    "seconds_per_step": float(E["IH_STEP_S"]),
    "warmup_s": int(E["IH_WARMUP_S"]),
    "runs": int(E["IH_RUNS"]),
    "loss_threshold_pct": 0.1,
    "contenders": {c: {"what": what[c], "command": E["IH_CMD_" + c], "rates": [int(x) for x in E["IH_RATES_" + c].split()]}
                   for c in E["IH_ACTIVE"].split()},
    "skipped": dict(s.split("=", 1) for s in E["IH_SKIPPED"].split(";") if s),
    "generator": {"command": E["IH_GEN"], "lab": E["IH_LAB"], "mode": E["IH_GEN_MODE"]},
    "contender_core_isolated": E["IH_ISOLATED"] == "1",
    "appliance_config": config,
    "rows": rows,
}
tmp = E["IH_OUT"] + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
os.replace(tmp, E["IH_OUT"])
PY
python3 bench/report.py "$OUT_DIR/results.json"
echo "(contender pinned to core $APP_CORE, pktgen ($GEN_MODE mode) sender and receiver to core $GEN_CORE; $SECONDS_PER_STEP s per step after $WARMUP s of warm-up, $RUNS run(s))"
echo "results: $OUT_DIR/results.json, $OUT_DIR/results.md, $OUT_DIR/*.svg"
