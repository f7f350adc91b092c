#!/usr/bin/env bash
# Undoes what test processes that are gone left on the machine: a test
# killed by its time limit runs no destructor. The lab tests list each
# change they make in /run/ironhoard-labtests, one file per change named
# KIND.PID.RANDOM holding what to undo (tests/lab.rs: register, sweep_dead).
REG=/run/ironhoard-labtests
[ -d "$REG" ] || exit 0
for kind in immutable mount lab hugepages tempdir nspawn; do
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
      nspawn) # a deploy-test scratch host: a2 = machine name, a1 = its work dir
        pkill -KILL -f "systemd-nspawn .*-M $a2 " 2>/dev/null; sleep 1
        case $a1 in /var/tmp/ihdeploy-*)
          mountpoint -q "$a1/root" && { umount "$a1/root" || umount -l "$a1/root"; }
          # the root is a bind mount of /: only ever rmdir'ed, and only once unmounted
          if ! mountpoint -q "$a1/root"; then
            rmdir "$a1/root" 2>/dev/null; rm -rf "$a1/art" "$a1/console.log"; rmdir "$a1" 2>/dev/null
          fi ;;
        esac ;;
    esac
    rm -f "$f"
    echo "sweep-labs: undid $kind ($a1) left by dead test process $pid"
  done
done
exit 0
