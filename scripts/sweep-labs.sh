#!/usr/bin/env bash
# Undoes what test processes that are gone left on the machine: a test
# killed by its time limit runs no destructor. The lab tests list each
# change they make in /run/ironhoard-labtests, one file per change named
# KIND.PID.RANDOM holding what to undo (tests/lab.rs: register, sweep_dead).
REG=/run/ironhoard-labtests
[ -d "$REG" ] || exit 0
for kind in immutable mount lab hugepages tempdir; do
  for f in "$REG"/"$kind".*; do
    [ -f "$f" ] || continue
    pid=$(basename "$f" | cut -d. -f2)
    kill -0 "$pid" 2>/dev/null && continue
    a1=$(sed -n 1p "$f"); a2=$(sed -n 2p "$f")
    case $kind in
      immutable) chattr -i "$a1" 2>/dev/null ;;
      mount) umount "$a1" 2>/dev/null ;;
      lab) ip link del "$a2" 2>/dev/null; ip netns del "$a1" 2>/dev/null ;;
      hugepages) echo "$a1" > /proc/sys/vm/nr_hugepages ;;
      tempdir) case $a1 in /tmp/ih-*) rm -rf "$a1" ;; esac ;;
    esac
    rm -f "$f"
    echo "sweep-labs: undid $kind ($a1) left by dead test process $pid"
  done
done
exit 0
