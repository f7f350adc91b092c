#!/usr/bin/env bash
# packaging/libexec/ironhoard-tune against a fake /proc and a stub ethtool
# (no NIC with channels or IRQs here): it changes only what differs, says
# each change, --check changes nothing and exits 2 when something would
# change, a second run changes nothing, other devices' IRQs are untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
TUNE=$PWD/packaging/libexec/ironhoard-tune
T=$(mktemp -d /tmp/ih-tune.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "tune-test: FAIL: $*" >&2; exit 1; }

mkdir -p "$T/proc/irq/24" "$T/proc/irq/25" "$T/proc/irq/26" "$T/bin"
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
run() { PATH="$T/bin:$PATH" IH_PROC="$T/proc" "$TUNE" --iface ihfake0 --queues 2 --cores 2,3 "$@"; }

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

rc=0; PATH="$T/bin:$PATH" IH_PROC="$T/proc" "$TUNE" --iface ihfake0 --queues 9 --cores 0,1,2,3,4,5,6,7,8 >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "9 channels on an 8-channel NIC exited $rc, want 1"
echo "tune-test: PASS (channels 4 -> 2, IRQs 24/25 -> cores 2/3, IRQ 26 untouched, rerun and --check idempotent)"
