#!/usr/bin/env bash
# What the move log costs the disk and the poller at a fixed rate: the XDP
# appliance (poller on core 0, the log's default interval sync, on the file
# system holding the lab directory) under ironhoard-pktgen at RATE moves/s
# (core 1, --catch-up 1.5), and over SECONDS after a 4 s warm-up: the bytes
# written to that file system's disk (/proc/diskstats) against the log's own
# (RATE x 96), the poller thread's page faults (perf stat -t), the TLB
# shootdowns its core received (/proc/interrupts), and the log's segments
# prefaulted in 2 MiB folios and in single pages. One JSON line.
# Nothing else should write to that disk meanwhile.
#   usage: bench/log-writes.sh [RATE] [SECONDS]   (root; make release first)
# Why: a 2 MiB folio is written back whole, so a slow writer's log in folios
# would be rewritten at every interval sync (docs/performance.md, "The log's
# page cache in 2 MiB folios, for a fast writer"); writing back a page still
# mapped interrupts the poller's core ("No TLB shootdowns from the log's
# writeback").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab-lib.sh
RATE=${1:-10000}
SECS=${2:-15}
[[ $RATE =~ ^[1-9][0-9]*$ ]] || { echo "RATE must be a positive integer (got '$RATE')" >&2; exit 2; }
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS must be a positive integer (got '$SECS')" >&2; exit 2; }
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
trap lab_down EXIT INT TERM
lab_up
appliance_up xdp
isolate_pollers
# the disk under the lab directory (the log's), as /proc/diskstats names it
DEV=$(lsblk -no PKNAME "$(df --output=source "$DIR" | tail -1)" 2>/dev/null || true)
[ -n "$DEV" ] || DEV=$(basename "$(df --output=source "$DIR" | tail -1)")
written() {
  local _a _b name _c _d _e _f _g _h sectors _rest
  while read -r _a _b name _c _d _e _f _g _h sectors _rest; do
    [ "$name" = "$DEV" ] && { echo $((sectors * 512)); return; }
  done < /proc/diskstats
}
[ -n "$(written)" ] || { echo "no /proc/diskstats line for $DEV (the disk under $DIR)" >&2; exit 1; }
ip netns exec "$NS" "$PKTGEN" --target $HOST_IP:7777 --secret-file "$DIR/secret0.hex" \
  --rate "$RATE" --duration $((SECS + 7)) --games 10 --players 1000 --board 16x16 --catch-up 1.5 \
  --cpu 1 --rx-cpu 1 --report "$DIR/r.json" --quiet 2>/dev/null &
GPID=$!
sleep 4
TID=$(ps -T -p "$APID" -o spid=,comm= | awk '$2 == "ih-poller-0" {print $1}')
[ -n "$TID" ] || { echo "no ih-poller-0 thread in pid $APID" >&2; exit 1; }
# TLB shootdowns received by the poller's core (the first of LAB_CORES)
CORE=${LAB_CORES%%,*}
tlb() { awk -v c=$((CORE + 2)) '$1 == "TLB:" { print $c }' /proc/interrupts; }
w0=$(written); t0=$(tlb)
perf stat -x, -e page-faults -t "$TID" -o "$DIR/faults.csv" -- sleep "$SECS" 2>/dev/null
w1=$(written); t1=$(tlb)
"$BIN" stats --socket "$DIR/stats.sock" --json > "$DIR/stats.json"
wait "$GPID" || true
python3 - "$DIR/stats.json" "$DIR/faults.csv" "$RATE" "$SECS" "$w0" "$w1" "$DEV" "$t0" "$t1" <<'PY'
import json, sys
st, faults, rate, secs, w0, w1, dev, t0, t1 = sys.argv[1:]
rate, secs = int(rate), int(secs)
log = json.load(open(st))["log"]
pf = next((int(l.split(",")[0]) for l in open(faults) if "page-faults" in l and l.split(",")[0].isdigit()), None)
disk = (int(w1) - int(w0)) / secs
print(json.dumps({"rate": rate, "seconds": secs, "disk": dev, "disk_kib_per_sec": round(disk / 1024),
                  "log_kib_per_sec": round(rate * 96 / 1024), "written_per_log_byte": round(disk / (rate * 96), 2),
                  "poller_page_faults": pf, "poller_core_tlb_shootdowns_per_sec": round((int(t1) - int(t0)) / secs),
                  "segments_in_folios": log.get("segments_in_folios"),
                  "segments_in_pages": log.get("segments_in_pages")}))
PY
