#!/usr/bin/env bash
# Removes the labs (network namespace + veth) of test processes that are
# gone: a test killed by its time limit runs no destructor. The lab tests
# list each lab they make in /run/ironhoard-labtests (tests/lab.rs).
REG=/run/ironhoard-labtests
[ -d "$REG" ] || exit 0
for f in "$REG"/*; do
  [ -f "$f" ] || continue
  pid=$(sed -n 1p "$f"); host_if=$(sed -n 2p "$f"); ns=$(basename "$f")
  if ! kill -0 "$pid" 2>/dev/null; then
    ip link del "$host_if" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -f "$f"
    echo "sweep-labs: removed lab $ns left by dead test process $pid"
  fi
done
# tmpfs mounts of the full-disk test (source "ihlogfull", under a temp dir
# named after the test process's pid)
awk '$1 == "ihlogfull" {print $2}' /proc/mounts | while read -r mnt; do
  pid=$(echo "$mnt" | sed -n 's/.*ih-log-full-\([0-9]*\)-.*/\1/p')
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    umount "$mnt" && echo "sweep-labs: unmounted $mnt left by dead test process $pid"
  fi
done
exit 0
