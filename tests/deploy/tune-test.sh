#!/usr/bin/env bash
# packaging/libexec/ironhoard-tune against a fake /proc and a stub ethtool
# (no NIC with channels or IRQs here): it changes only what differs, says
# each change, --check changes nothing and exits 2 when something would
# change, a second run changes nothing, other devices' IRQs are untouched;
# --busy-poll / --no-busy-poll set and reset the NIC's napi_defer_hard_irqs
# and gro_flush_timeout in a fake /sys the same way; --isolate narrows every
# thread allowed on a poller core and elsewhere (and the unbound workqueues)
# to the other cores, leaves threads pinned within the pollers' cores, is
# idempotent, refuses to leave the host no core, and --restore puts back
# what --save recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
TUNE=$PWD/packaging/libexec/ironhoard-tune
T=$(mktemp -d /tmp/ih-tune.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "tune-test: FAIL: $*" >&2; exit 1; }

mkdir -p "$T/proc/irq/24" "$T/proc/irq/25" "$T/proc/irq/26" "$T/bin" "$T/sys/class/net/ihfake0"
echo 0 > "$T/sys/class/net/ihfake0/napi_defer_hard_irqs"
echo 0 > "$T/sys/class/net/ihfake0/gro_flush_timeout"
cat > "$T/proc/interrupts" <<'IRQ'
           CPU0       CPU1       CPU2       CPU3
  24:          5          0          0          0  IR-PCI-MSI 1-edge      ihfake0-TxRx-0
  25:          7          0          0          0  IR-PCI-MSI 2-edge      ihfake0-TxRx-1
  26:          1          0          0          0  IR-PCI-MSI 3-edge      other0-TxRx-0
 NMI:          0          0          0          0   Non-maskable interrupts
IRQ
for i in 24 25 26; do echo 0-3 > "$T/proc/irq/$i/smp_affinity_list"; done
echo 4 > "$T/channels"
cat > "$T/bin/ethtool" <<STUB
#!/bin/bash
# stub: -l IF shows "$T/channels" as the current combined count (max 8); -L IF combined N sets it
case "\$1" in
-l) printf 'Channel parameters for %s:\nPre-set maximums:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\t1\nCombined:\t8\nCurrent hardware settings:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\t1\nCombined:\t%s\n' "\$2" "\$(cat $T/channels)" ;;
-L) [ "\$3" = combined ] && echo "\$4" > "$T/channels" ;;
*) exit 1 ;;
esac
STUB
chmod +x "$T/bin/ethtool"
run() { PATH="$T/bin:$PATH" IH_PROC="$T/proc" IH_SYS="$T/sys" "$TUNE" --iface ihfake0 --queues 2 --cores 2,3 "$@"; }
napi() { echo "$(cat "$T/sys/class/net/ihfake0/napi_defer_hard_irqs")/$(cat "$T/sys/class/net/ihfake0/gro_flush_timeout")"; }

rc=0; out=$(run --check 2>/dev/null) || rc=$?
[ $rc = 2 ] || fail "--check on an untuned host exited $rc, want 2"
[ "$(grep -c '^would change:' <<<"$out")" = 3 ] || fail "--check should list 3 changes: $out"
[ "$(cat "$T/channels")" = 4 ] && [ "$(cat "$T/proc/irq/24/smp_affinity_list")" = 0-3 ] || fail "--check changed something"

out=$(run 2>/dev/null) || fail "apply failed"
grep -qx 'changed: ihfake0 combined channels 4 -> 2' <<<"$out" || fail "no channel change line: $out"
grep -qx 'changed: ihfake0 queue 0 IRQ 24 affinity 0-3 -> 2' <<<"$out" || fail "no IRQ 24 line: $out"
grep -qx 'changed: ihfake0 queue 1 IRQ 25 affinity 0-3 -> 3' <<<"$out" || fail "no IRQ 25 line: $out"
[ "$(cat "$T/channels")" = 2 ] || fail "channels not set"
[ "$(cat "$T/proc/irq/24/smp_affinity_list")" = 2 ] && [ "$(cat "$T/proc/irq/25/smp_affinity_list")" = 3 ] || fail "IRQs not pinned"
[ "$(cat "$T/proc/irq/26/smp_affinity_list")" = 0-3 ] || fail "another device's IRQ was moved"

out=$(run 2>/dev/null) || fail "second apply failed"
[ -z "$out" ] || fail "second run changed something: $out"
run --check >/dev/null 2>&1 || fail "--check on a tuned host should exit 0"

[ "$(napi)" = 0/0 ] || fail "without --busy-poll the NAPI settings were changed: $(napi)"

# busy polling: NAPI interrupt deferral on, idempotent, and back off
rc=0; out=$(run --busy-poll --check 2>/dev/null) || rc=$?
[ $rc = 2 ] || fail "--busy-poll --check exited $rc, want 2"
[ "$(grep -c '^would change:' <<<"$out")" = 2 ] || fail "--busy-poll --check should list 2 changes: $out"
[ "$(napi)" = 0/0 ] || fail "--check changed the NAPI settings"
out=$(run --busy-poll 2>/dev/null) || fail "--busy-poll failed"
grep -qx 'changed: ihfake0 napi_defer_hard_irqs 0 -> 2' <<<"$out" || fail "no napi_defer_hard_irqs line: $out"
grep -qx 'changed: ihfake0 gro_flush_timeout 0 -> 200000' <<<"$out" || fail "no gro_flush_timeout line: $out"
[ "$(napi)" = 2/200000 ] || fail "--busy-poll left $(napi)"
out=$(run --busy-poll 2>/dev/null) || fail "second --busy-poll failed"
[ -z "$out" ] || fail "second --busy-poll changed something: $out"
run --busy-poll --check >/dev/null 2>&1 || fail "--busy-poll --check on a tuned host should exit 0"
out=$(run 2>/dev/null) || fail "run without a busy-poll flag failed"
[ -z "$out" ] && [ "$(napi)" = 2/200000 ] || fail "without a busy-poll flag the NAPI settings must stay: $out $(napi)"
out=$(IH_GRO_FLUSH_TIMEOUT=100000 run --busy-poll 2>/dev/null) || fail "--busy-poll with IH_GRO_FLUSH_TIMEOUT failed"
grep -qx 'changed: ihfake0 gro_flush_timeout 200000 -> 100000' <<<"$out" && [ "$(grep -c '^changed:' <<<"$out")" = 1 ] || fail "only gro_flush_timeout should change: $out"
out=$(run --no-busy-poll 2>/dev/null) || fail "--no-busy-poll failed"
[ "$(grep -c '^changed:' <<<"$out")" = 2 ] && [ "$(napi)" = 0/0 ] || fail "--no-busy-poll should restore 0/0: $out $(napi)"
out=$(run --no-busy-poll 2>/dev/null) || fail "second --no-busy-poll failed"
[ -z "$out" ] || fail "second --no-busy-poll changed something: $out"
rm "$T/sys/class/net/ihfake0/gro_flush_timeout"
rc=0; run --busy-poll >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "--busy-poll without gro_flush_timeout in sysfs exited $rc, want 1"
run --no-busy-poll >/dev/null 2>&1 || fail "--no-busy-poll without gro_flush_timeout in sysfs should only note it"

rc=0; PATH="$T/bin:$PATH" IH_PROC="$T/proc" "$TUNE" --iface ihfake0 --queues 9 --cores 0,1,2,3,4,5,6,7,8 >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "9 channels on an 8-channel NIC exited $rc, want 1"

# isolation: threads in a fake /proc, a stub taskset that rewrites their masks
mkdir -p "$T/sys/devices/system/cpu" "$T/sys/devices/virtual/workqueue"
echo 0-3 > "$T/sys/devices/system/cpu/online"; echo f > "$T/sys/devices/virtual/workqueue/cpumask"
thread() { mkdir -p "$T/proc/$1/task/$2"; printf 'Name:\t%s\nUmask:\t0022\nCpus_allowed:\tf\nCpus_allowed_list:\t%s\nMems_allowed_list:\t0\n' "$3" "$4" > "$T/proc/$1/task/$2/status"; }
mask() { awk -F'\t' '$1 == "Cpus_allowed_list:" { print $2 }' "$T/proc/$1/task/$2/status"; }
thread 1 1 init 0-3; thread 1 7 agent 0-3; thread 30 30 ksoftirqd/2 2; thread 40 40 pinned 0,1; thread 50 50 wide 1-2
cat > "$T/bin/taskset" <<STUB
#!/bin/bash
# stub: -pc LIST TID sets TID's Cpus_allowed_list in the fake /proc; "kthread" takes no mask
[ "\$1" = -pc ] || exit 1
f=\$(echo $T/proc/*/task/"\$3"/status)
grep -q '^Name:.kthread' "\$f" && exit 1
sed -i "s/^Cpus_allowed_list:.*/Cpus_allowed_list:\t\$2/" "\$f"
STUB
chmod +x "$T/bin/taskset"
thread 60 60 kthread 0-3
rc=0; out=$(run --isolate --check 2>/dev/null) || rc=$?
[ $rc = 2 ] || fail "--isolate --check exited $rc, want 2"
[ "$(grep -c '^would change: thread' <<<"$out")" = 4 ] && grep -qx 'would change: unbound workqueues cpumask f -> 3' <<<"$out" || fail "--isolate --check should list 4 threads and the workqueues: $out"
[ "$(mask 1 7)" = 0-3 ] || fail "--isolate --check moved a thread"
out=$(run --isolate --save "$T/isolate.saved" 2>/dev/null) || fail "--isolate failed"
grep -qx "changed: 3 threads moved off the pollers' cores to 0,1" <<<"$out" || fail "--isolate should move 3 threads (the kernel thread takes no mask): $out"
[ "$(mask 1 1)/$(mask 1 7)/$(mask 50 50)" = "0,1/0,1/1" ] || fail "threads not narrowed: $(mask 1 1)/$(mask 1 7)/$(mask 50 50)"
[ "$(mask 30 30)/$(mask 40 40)" = "2/0,1" ] || fail "a thread pinned within the pollers' cores, or on none, was moved"
[ "$(cat "$T/sys/devices/virtual/workqueue/cpumask")" = 3 ] || fail "unbound workqueues not narrowed"
out=$(run --isolate 2>/dev/null) || fail "second --isolate failed"
[ -z "$out" ] || fail "second --isolate changed something: $out"
rc=0; IH_SYS="$T/sys" IH_PROC="$T/proc" PATH="$T/bin:$PATH" "$TUNE" --iface ihfake0 --queues 4 --cores 0,1,2,3 --isolate >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "--isolate of every online core exited $rc, want 1"
out=$(PATH="$T/bin:$PATH" IH_SYS="$T/sys" "$TUNE" --restore "$T/isolate.saved" 2>/dev/null) || fail "--restore failed"
[ "$(mask 1 1)/$(mask 1 7)/$(mask 50 50)" = "0-3/0-3/1-2" ] && [ "$(cat "$T/sys/devices/virtual/workqueue/cpumask")" = f ] || fail "--restore left $(mask 1 1)/$(mask 1 7)/$(mask 50 50): $out"

echo "tune-test: PASS (channels 4 -> 2, IRQs 24/25 -> cores 2/3, IRQ 26 untouched, busy-poll NAPI 0/0 -> 2/200000 -> 0/0, isolation of cores 2,3 and its restore, rerun and --check idempotent)"
