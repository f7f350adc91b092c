#!/usr/bin/env bash
# Saturation, contender against contender: each in turn under
# ironhoard-pktgen at full speed (--rate 0: sends through kernel UDP, acks
# received through AF_XDP, as GEN_MODE=xdp-rx in lab-bench) for SECONDS,
# ROUNDS times, alternating, so the host's drift over the minutes falls on
# every contender alike. The contender on core 0 (isolated), pktgen on
# core 1, one veth lab for all runs.
#   usage: bench/saturation-ab.sh [ROUNDS] [SECONDS] [OUT]   (root; make release
#          and cargo build --release -p ironhoard-contenders first)
# CONTENDERS (default "xdp reflector"): xdp, reflector, xdp=PATH (the XDP
# backend of another ironhoard binary, e.g. the commit before a change) or
# reflector=PATH (another ih-bench-reflector binary). Shares are of
# `reflector`'s ACCEPTED/s.
# WARMUP (default 4): seconds of the same load before the measured run, on
# other games (--game-base), so what a contender does once at start (the
# move log's first segments, its player table) is not in the figure.
# Per run: offered, acked and ACCEPTED/s (BUSY answers, load shed, are
# acks but not moves taken: the comparison is of ACCEPTED/s), each core's
# steal (ms), the log keeper's CPU
# (ms, XDP backend) and rx_ring_full (warm-up included; the reflector's from
# the counters it prints at exit); then each contender's median ACCEPTED/s
# and, when a reflector ran, each one's ACCEPTED/s as a share of the
# reflector's in the same round (the median of those). OUT: the runs as
# JSON lines.
# PROFILE=1: each measured run also samples the contender's core
# (`perf record -C 0 -g`, from 2 s in to 1 s before its end; SECONDS >= 5)
# and its JSON line gets the core's time per ack, split into user space,
# kernel and idle (ns: a symbol's share of the samples times 1 s over the
# run's acked/s); then a table of the symbols taking the most time per
# ack, each contender's median over its rounds side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
ROUNDS=${1:-4}
SECS=${2:-6}
OUT=${3:-}
[ -z "$OUT" ] || OUT=$(realpath -m "$OUT")
CONTENDERS=${CONTENDERS:-"xdp reflector"}
WARMUP=${WARMUP:-4}
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "WARMUP must be a whole number of seconds (got '$WARMUP')" >&2; exit 2; }
REFLECTOR_BIN=${REFLECTOR_BIN:-target/release/ih-bench-reflector}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer (got '$ROUNDS')" >&2; exit 2; }
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS must be a positive integer (got '$SECS')" >&2; exit 2; }
PROFILE=${PROFILE:-0}
if [ "$PROFILE" = 1 ]; then
  (( SECS >= 5 )) || { echo "PROFILE=1 needs SECONDS >= 5 (got $SECS)" >&2; exit 2; }
  command -v perf >/dev/null || { echo "PROFILE=1 needs perf (linux-perf)" >&2; exit 1; }
fi
[ -x "$BIN" ] || { echo "$BIN is missing: make release first" >&2; exit 1; }
for c in $CONTENDERS; do
  case $c in
    xdp) ;;
    xdp=*) [ -x "${c#xdp=}" ] || { echo "${c#xdp=} is not an executable" >&2; exit 1; } ;;
    reflector) [ -x "$REFLECTOR_BIN" ] || { echo "$REFLECTOR_BIN is missing: cargo build --release -p ironhoard-contenders" >&2; exit 1; } ;;
    reflector=*) [ -x "${c#reflector=}" ] || { echo "${c#reflector=} is not an executable" >&2; exit 1; } ;;
    *) echo "unknown contender '$c' (xdp, xdp=PATH, reflector, reflector=PATH)" >&2; exit 2 ;;
  esac
done
RUNS_FILE=$(mktemp /tmp/ih-satab.XXXXXX)
CPID=""
cleanup() {
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null || true
  appliance_down; lab_down; rm -f "$RUNS_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up
isolate_pollers

# cpu_ms PID COMM: the thread's user+system CPU so far, ms ("-" if none).
cpu_ms() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "$t/stat"; return; }
  done
  echo -
}

# one_run ROUND CONTENDER: the contender up, SECS of full-speed load, down;
# a JSON line appended to RUNS_FILE.
one_run() {
  local round=$1 c=$2 bin=$BIN keeper0=- keeper1=- ring=- s0 s1
  case $c in
    xdp|xdp=*)
      [ "$c" != xdp ] && bin=${c#xdp=}
      BIN=$bin appliance_up xdp ;;
    reflector|reflector=*)
      local rbin=$REFLECTOR_BIN
      [ "$c" != reflector ] && rbin=${c#reflector=}
      taskset -c 0 "$rbin" --iface "$A" --port 7777 --secret-file "$DIR/secret0.hex" --core 0 > "$DIR/reflector.log" 2>&1 &
      CPID=$!
      sleep 2
      kill -0 "$CPID" 2>/dev/null || { echo "reflector exited:" >&2; cat "$DIR/reflector.log" >&2; exit 1; } ;;
  esac
  if (( 10#$WARMUP > 0 )); then
    ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" --rate 0 --duration "$WARMUP" \
      --games 10 --players 100 --game-base 3000000000 --board 16x16 --mode socket --rx-mode xdp --iface "$B" --cpu 1 --rx-cpu 1 \
      --report "$DIR/warmup.json" --quiet > "$DIR/pktgen.log" 2>&1 || { echo "pktgen (warm-up) failed:" >&2; cat "$DIR/pktgen.log" >&2; exit 1; }
  fi
  s0=$(steal_ms)
  case $c in xdp|xdp=*) keeper0=$(cpu_ms "$APID" ih-logkeep) ;; esac
  local perf_data=- perf_pid=""
  if [ "$PROFILE" = 1 ]; then
    perf_data="$DIR/perf-$round-$(echo "$c" | tr -c 'a-z0-9\n' '_').data"
    # not on core 0: the sampler would take the contender's core
    (sleep 2; exec taskset -c 1 perf record -q -C 0 -g -o "$perf_data" -- sleep $((SECS - 3))) >/dev/null 2>&1 &
    perf_pid=$!
  fi
  ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" --rate 0 --duration "$SECS" \
    --games 10 --players 100 --board 16x16 --mode socket --rx-mode xdp --iface "$B" --cpu 1 --rx-cpu 1 \
    --report "$DIR/r.json" --quiet > "$DIR/pktgen.log" 2>&1 || { echo "pktgen failed:" >&2; cat "$DIR/pktgen.log" >&2; exit 1; }
  [ -n "$perf_pid" ] && { wait "$perf_pid" || { echo "perf record failed" >&2; exit 1; }; }
  s1=$(steal_ms)
  case $c in
    xdp|xdp=*)
      keeper1=$(cpu_ms "$APID" ih-logkeep)
      sleep 1.1 # the pollers publish XDP_STATISTICS about once a second
      ring=$("$bin" stats --socket "$DIR/stats.sock" --json | python3 -c 'import json,sys; print(sum(q["xsk"]["rx_ring_full"] for q in json.load(sys.stdin)["queues"]))')
      BIN=$bin appliance_down ;;
    reflector|reflector=*)
      kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; CPID=""
      # the counters it printed at exit: its socket's XDP_STATISTICS
      ring=$(grep '^ih-bench-reflector: counters ' "$DIR/reflector.log" | tail -1 | sed 's/^[^{]*//' |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["xsk"]["rx_ring_full"])' 2>/dev/null || echo -) ;;
  esac
  python3 - "$DIR/r.json" "$round" "$c" "$s0" "$s1" "$keeper0" "$keeper1" "$ring" "$perf_data" >> "$RUNS_FILE" <<'PY'
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
s0, s1 = [int(x) for x in sys.argv[4].split()], [int(x) for x in sys.argv[5].split()]
k0, k1 = sys.argv[6], sys.argv[7]
# ACCEPTED acks only: a BUSY answer (the log or a mailbox full: load shed)
# is an ack but not a move taken, and the reflector answers nothing else
bys = r.get("by_status") or {}
acc = r["acked_pps"] * bys.get("accepted", 0) / r["acked"] if r.get("acked") else 0
run = {"round": int(sys.argv[2]), "contender": sys.argv[3], "offered_pps": r["offered_pps"],
       "acked_pps": r["acked_pps"], "accepted_pps": round(acc), "busy": bys.get("busy", 0),
       "steal_ms": [b - a for a, b in zip(s0, s1)],
       "keeper_cpu_ms": None if "-" in (k0, k1) else round(float(k1) - float(k0)),
       "rx_ring_full": None if sys.argv[8] == "-" else int(sys.argv[8])}
if sys.argv[9] != "-":
    # every sample on core 0: a share of them is that share of each second
    out = subprocess.run(["perf", "report", "-i", sys.argv[9], "--no-children", "--sort", "comm,dso,sym",
                          "-q", "-g", "none", "--field-separator", "\t"], capture_output=True, text=True, check=True).stdout
    per_ack = 1e9 / max(r["acked_pps"], 1)
    split, syms = {"user": 0.0, "kernel": 0.0, "idle": 0.0}, {}
    for line in out.splitlines():
        f = [x.strip() for x in line.split("\t")]
        if len(f) < 4 or not f[0].endswith("%"):
            continue
        ns = float(f[0].rstrip("%")) / 100 * per_ack
        comm, dso, sym = f[1], f[2], f[3]
        part = "idle" if comm == "swapper" else "kernel" if dso.startswith("[kernel") or dso.startswith("bpf_") or dso.startswith("[bpf") else "user"
        split[part] += ns
        key = sym.split("] ", 1)[-1][:60]
        syms[key] = syms.get(key, 0.0) + ns
    run["ns_per_ack"] = {k: round(v, 1) for k, v in split.items()}
    run["top_ns_per_ack"] = {k: round(v, 1) for k, v in sorted(syms.items(), key=lambda kv: -kv[1])[:60]}
print(json.dumps(run))
PY
  tail -1 "$RUNS_FILE"
}

echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores; $ROUNDS rounds of $SECS s after $WARMUP s of warm-up; contenders: $CONTENDERS"
for round in $(seq "$ROUNDS"); do
  for c in $CONTENDERS; do one_run "$round" "$c"; done
done
[ -n "$OUT" ] && cp "$RUNS_FILE" "$OUT"
python3 - "$RUNS_FILE" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["contender"] for r in runs))
# the moves each took: ACCEPTED acks/s (acked/s in files from before that was recorded)
acked = {(r["round"], r["contender"]): r.get("accepted_pps", r["acked_pps"]) for r in runs}
for r in runs:
    if r.get("busy"):
        print(f"note: round {r['round']}, {r['contender']}: {r['busy']} moves answered BUSY (load shed), not counted")
print(f"{'contender':<40} {'ACCEPTED/s by round':<40} {'median':>8} {'share of reflector, by round':<32} {'median':>6}")
for n in names:
    rounds = sorted({r["round"] for r in runs if r["contender"] == n})
    a = [acked[(i, n)] for i in rounds]
    share = [acked[(i, n)] / acked[(i, "reflector")] for i in rounds if acked.get((i, "reflector"))]
    s = " ".join(f"{x:.0%}" for x in share) if share and n != "reflector" else ""
    m = f"{statistics.median(share):.0%}" if s else ""
    print(f"{n:<40} {' '.join(f'{x / 1000:.0f}k' for x in a):<40} {statistics.median(a) / 1000:>7.0f}k {s:<32} {m:>6}")
prof = {n: [r for r in runs if r["contender"] == n and "ns_per_ack" in r] for n in names}
prof = {n: v for n, v in prof.items() if v}
if prof:
    med = lambda rs, f: statistics.median(f(r) for r in rs)
    cols = list(prof)
    print(f"\ncontender's core, ns per ack (median over rounds): {' | '.join(f'{i + 1}: {n}' for i, n in enumerate(cols))}")
    print(f"{'':<60} " + " ".join(f"{i + 1:>8}" for i in range(len(cols))))
    for part in ("user", "kernel", "idle"):
        print(f"{part:<60} " + " ".join(f"{med(prof[n], lambda r: r['ns_per_ack'][part]):>8.0f}" for n in cols))
    syms = {s for n in cols for r in prof[n] for s in r["top_ns_per_ack"]}
    table = {s: [med(prof[n], lambda r: r["top_ns_per_ack"].get(s, 0.0)) for n in cols] for s in syms}
    for s, v in sorted(table.items(), key=lambda kv: -max(kv[1]))[:30]:
        print(f"{s:<60} " + " ".join(f"{x:>8.1f}" for x in v))
PY
