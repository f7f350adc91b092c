#!/usr/bin/env bash
# Page faults in the poller's hot loop. Runs the appliance (XDP backend,
# poller on core 0, the log's default interval sync) under ironhoard-pktgen
# load (core 1) for SECONDS, counts the poller thread's page faults with
# `perf stat -t` over the run (after a 2 s warm-up), and prints them with
# the batch time's max and the run's loss, as one JSON line (also written
# to OUT if given).
#   usage: bench/poller-faults.sh [RATE] [SECONDS] [OUT]   (root; make release first)
# Why: a write to a log page the kernel has written back (the flusher after
# dirty_expire, or an msync) takes a page_mkwrite fault in the poller,
# which can wait on the file system's journal (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
RATE=${1:-200000}
SECS=${2:-60}
OUT=${3:-}
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
trap lab_down EXIT INT TERM
lab_up
appliance_up xdp
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration $((SECS + 3)) --games 10 --players 1000 --board 16x16 \
  --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet 2>/dev/null &
GPID=$!
sleep 2
TID=$(ps -T -p "$APID" -o spid=,comm= | awk '$2 == "ih-poller-0" {print $1}')
[ -n "$TID" ] || { echo "no ih-poller-0 thread in pid $APID" >&2; exit 1; }
KTID=$(ps -T -p "$APID" -o spid=,comm= | awk '$2 == "ih-logkeep" {print $1}')
perf stat -x, -e page-faults,major-faults -t "$TID" -o "$DIR/faults.csv" -- sleep "$SECS" 2>/dev/null
perf stat -x, -e page-faults -t "$KTID" -o "$DIR/kfaults.csv" -- sleep 1 2>/dev/null || true
wait "$GPID" || true
"$BIN" stats --socket "$DIR/stats.sock" --command "show latency" > "$DIR/lat.json"
python3 - "$DIR/faults.csv" "$DIR/r.json" "$DIR/lat.json" "$RATE" "$SECS" "${OUT:-/dev/null}" <<'PY'
import json, sys
csv, rep, lat, rate, secs, out = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
faults = {}
for line in open(csv):
    f = line.strip().split(",")
    if len(f) > 2 and f[2] in ("page-faults", "major-faults"):
        faults[f[2]] = int(f[0]) if f[0].isdigit() else f[0]
b = lat["batch_ns"]
r = {"rate": rate, "seconds": secs, "poller_page_faults": faults.get("page-faults"), "poller_major_faults": faults.get("major-faults"),
     "batch_max_us": round(b["max"] / 1e3, 1), "batch_p999_us": round(b["p999"] / 1e3, 1), "batch_p99_us": round(b["p99"] / 1e3, 1),
     "sent": rep.get("sent"), "lost": rep.get("lost")}
print(json.dumps(r))
open(out, "a").write(json.dumps(r) + "\n")
PY
