# Shared by scripts/lab-demo.sh (`make lab`) and bench/lab-bench.sh: a
# veth/netns lab (SPEC §3) and an appliance on its root-namespace end.
# Source it, then: lab_up; appliance_up BACKEND; ...; lab_down (the caller
# traps lab_down on EXIT so the lab goes away also on failure or Ctrl-C).

BIN=${IRONHOARD_BIN:-target/release/ironhoard}
PKTGEN=${PKTGEN_BIN:-target/release/ironhoard-pktgen}
LAB_ID=$$
NS=ihlab$LAB_ID; A=ih${LAB_ID}a; B=ih${LAB_ID}b
HOST_IP=198.18.200.1; PEER_IP=198.18.200.2
DIR=""; APID=""
# LAB_QUEUES: queues on the veth pair and the appliance (default 1);
# LAB_CORES: their pollers' cores (default: all on core 0)
LAB_QUEUES=${LAB_QUEUES:-1}
LAB_CORES=${LAB_CORES:-$(for _ in $(seq "$LAB_QUEUES"); do printf "0, "; done | sed "s/, $//")}

# Each core's steal time so far, ms, space-separated (/proc/stat's steal
# column, in USER_HZ ticks): the hypervisor running something else on this
# VM's vCPUs, e.g. a host CPU quota stopping them all (docs/performance.md,
# "The generator's catch-up and the host's quota"). Subtract two readings.
steal_ms() { awk -v hz="$(getconf CLK_TCK)" '$1 ~ /^cpu[0-9]+$/ { printf "%d ", $9 * 1000 / hz }' /proc/stat; }

lab_up() {
  [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, XDP)" >&2; exit 1; }
  DIR=$(mktemp -d /tmp/ih-lab.XXXXXX)
  ip netns add "$NS"
  ip link add "$A" numtxqueues "$LAB_QUEUES" numrxqueues "$LAB_QUEUES" type veth \
    peer name "$B" numtxqueues "$LAB_QUEUES" numrxqueues "$LAB_QUEUES"
  ip link set "$B" netns "$NS"
  ip addr add $HOST_IP/24 dev "$A"; ip link set "$A" up
  ip netns exec "$NS" ip addr add $PEER_IP/24 dev "$B"
  ip netns exec "$NS" ip link set "$B" up
  ip netns exec "$NS" ip link set lo up
  "$BIN" keygen --out "$DIR/secret0.hex"
}

# appliance_up BACKEND [RATE_PER_PLAYER]: starts ironhoard on $A pinned to core 0
# (LAB_INTERFACE_EXTRA: more [interface] lines, e.g. "ring_size = 4096";
# LAB_MOVES_EXTRA: more [moves] lines, e.g. "players_per_worker = 1048576";
# LAB_LOG_EXTRA: more [log] lines, e.g. 'sync = "none"').
appliance_up() {
  # an empty move log unless LAB_KEEP_LOG=1: the appliance restores each
  # player's window from its log and pktgen starts every player at seq 1, so
  # a restart on the last run's log answers every move STALE or DUPLICATE
  local logdir=${LAB_LOG_DIR:-$DIR/log}
  if [ "${LAB_KEEP_LOG:-0}" != 1 ]; then
    case $logdir in /tmp/ih-*|/dev/shm/ih-*|/mnt/ih-*) rm -rf "$logdir" ;; *) echo "lab: $logdir kept (not a lab directory)" >&2 ;; esac
  fi
  cat > "$DIR/ironhoard.toml" <<CFG
[interface]
name = "$A"
queues = $LAB_QUEUES
cores = [$LAB_CORES]
xdp_mode = "auto"
zero_copy = "auto"
backend = "$1"
${LAB_INTERFACE_EXTRA:-}
[moves]
port = 7777
secrets = ["secret0.hex"]
board_width = 16
board_height = 16
rate_per_second = ${2:-100000}
rate_burst = ${2:-100000}
${LAB_MOVES_EXTRA:-}
[stats]
socket = "$DIR/stats.sock"
[log]
dir = "${LAB_LOG_DIR:-$DIR/log}"
${LAB_LOG_EXTRA:-}
[shield]
# the lab's one generator address stands for many clients: no shield
rate_per_source = 0
rate_per_address = 0
CFG
  # every online core allowed, as the unit's CPUAffinity= does on a host whose
  # poller cores are isolated: the lab's shell may already be moved off them
  local all; all=$(cat /sys/devices/system/cpu/online)
  taskset -c "$all" "$BIN" check-config --config "$DIR/ironhoard.toml" >/dev/null
  local n0=0; [ -f "$DIR/appliance.log" ] && n0=$(wc -l < "$DIR/appliance.log")
  taskset -c "$all" "$BIN" run --config "$DIR/ironhoard.toml" 2> >(sed -u 's/^/  appliance: /' >> "$DIR/appliance.log") &
  APID=$!
  # ready = every worker in its serve loop (a large player table takes a
  # moment to allocate after the stats socket answers)
  for _ in $(seq 300); do [ "$(tail -n +$((n0 + 1)) "$DIR/appliance.log" 2>/dev/null | grep -c "ready: serving")" != 0 ] && return 0; sleep 0.1; done
  echo "appliance did not start:"; cat "$DIR/appliance.log"; return 1
}

appliance_down() {
  [ -n "$APID" ] && kill "$APID" 2>/dev/null && wait "$APID" 2>/dev/null || true
  APID=""
}

# isolate_pollers: gives the pollers' cores (LAB_CORES) to the pollers alone
# while the lab runs, as `ironhoard-tune --isolate` does on a deployed host
# (every other movable thread, and the unbound workqueues, to the other
# cores); lab_down puts every mask back. LAB_ISOLATE=0 skips it.
TUNE=${IRONHOARD_TUNE:-packaging/libexec/ironhoard-tune}
LAB_ISOLATE=${LAB_ISOLATE:-1}
ISOLATED=""
isolate_pollers() {
  [ "$LAB_ISOLATE" = 1 ] || return 0
  ISOLATED="$DIR/isolate.saved"
  "$TUNE" --iface "$A" --queues "$LAB_QUEUES" --cores "$(tr -d ' ' <<<"$LAB_CORES")" --isolate --save "$ISOLATED" 2>/dev/null \
    | grep -v "channels\|IRQ" | sed 's/^/  isolate: /' || true
}

lab_down() {
  [ -n "$ISOLATED" ] && [ -f "$ISOLATED" ] && { "$TUNE" --restore "$ISOLATED" >/dev/null 2>&1 || true; }
  ISOLATED=""
  appliance_down
  ip link del "$A" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  [ -n "$DIR" ] && rm -rf "$DIR"
}
