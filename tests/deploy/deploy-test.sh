#!/usr/bin/env bash
# Deployment test (make test-deploy, part of make test): the Ansible role
# applied to a booted systemd host, then checked from outside and inside.
#
# The scratch host is systemd-nspawn booting over a bind mount of / with
# --volatile=overlay: its writes go to a tmpfs overlay and never reach this
# machine; --private-network gives it its own network namespace, where it
# gets a veth pair and a client namespace (198.18.220.0/24). The scratch
# host is torn down on every exit path (trap), and scripts/sweep-labs.sh
# removes one left by a killed run.
#
# Never boot systemd over the real root without the overlay: its boot jobs
# would clean this machine's own /tmp.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

[ "$(id -u)" = 0 ] || { echo "deploy-test: needs root (systemd-nspawn, XDP)" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || { echo "deploy-test: systemd-nspawn missing (make setup installs systemd-container)" >&2; exit 1; }
PY=$(python3 -c "import sys; print(sys.executable)")
ANSIBLE_BIN=$(dirname "$PY")
[ -x "$ANSIBLE_BIN/ansible-playbook" ] || { echo "deploy-test: ansible-playbook not next to $PY (make setup installs it)" >&2; exit 1; }

ID=$$
NAME=ihdeploy$ID
WORK=/var/tmp/ihdeploy-$ID
ROOT=$WORK/root
ART=$WORK/art
NSPAWN_PID=""
mkdir -p "$ROOT" "$ART"
# what sweep-labs.sh needs to undo this run if it is killed
mkdir -p /run/ironhoard-labtests
printf '%s\n%s\n' "$WORK" "$NAME" > /run/ironhoard-labtests/nspawn.$ID.0

teardown() {
    local rc=$?
    set +e
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID"            # nspawn powers the container off
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    # the bind mount of / must be gone before anything under $WORK is
    # removed; $ROOT itself is only ever rmdir'ed (never rm -r)
    if mountpoint -q "$ROOT"; then umount "$ROOT" || umount -l "$ROOT"; fi
    if mountpoint -q "$ROOT"; then
        echo "deploy-test: $ROOT still mounted; left in place" >&2
    else
        [ $rc = 0 ] || { echo "--- scratch host console (last 20 lines)"; tail -20 "$WORK/console.log"; } >&2
        rmdir "$ROOT" && rm -rf "$ART" && rm -f "$WORK/console.log" && rmdir "$WORK"
        rm -f /run/ironhoard-labtests/nspawn.$ID.0
    fi
    if [ $rc = 0 ]; then echo "deploy-test: PASS"; else echo "deploy-test: FAIL (rc $rc)" >&2; fi
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- artifacts: two package versions, a vaulted secret, the inventory -------
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
DEB1=$(bash scripts/build-deb.sh)
cp "$DEB1" "$ART/"
DEB2=$(IH_DEB_VERSION="$VERSION+upgrade1" bash scripts/build-deb.sh)
mv "$DEB2" "$ART/"
DEB1=$ART/$(basename "$DEB1"); DEB2=$ART/$(basename "$DEB2")
target/release/ironhoard keygen --out "$ART/secret0.hex"
head -c 24 /dev/urandom | base64 > "$ART/vault-pass"
"$ANSIBLE_BIN/ansible-vault" encrypt --vault-password-file "$ART/vault-pass" --output "$ART/secret0.hex.vault" "$ART/secret0.hex" >/dev/null
grep -q '^\$ANSIBLE_VAULT' "$ART/secret0.hex.vault"
cat > "$ART/inventory.yml" <<INV
---
ironhoard:
  hosts:
    scratch:
      ansible_connection: local
      ansible_python_interpreter: $PY
      ironhoard_package: /srv/ihdeploy/$(basename "$DEB1")
      ironhoard_interface: ihdA
      ironhoard_queues: 1
      ironhoard_cores: [0]
      ironhoard_log_core: 1
      ironhoard_port: 7777
      ironhoard_backend: xdp
      ironhoard_secret_files: [/srv/ihdeploy/secret0.hex.vault]
      ironhoard_board_width: 32
      ironhoard_board_height: 32
      ironhoard_rate_per_second: 100000
      ironhoard_rate_burst: 100000
      # one generator address stands for many clients here: the upgrade's
      # load (LOAD_RATE) would meet the 50 000/s per-address shield
      ironhoard_shield_rate_per_address: 0
      ironhoard_stats_users: [ihops]
      ironhoard_probe_netns: ihdc
      ironhoard_ship_servers: ["nats://127.0.0.1:4222"]
      ironhoard_ship_replicas: 1
      ironhoard_grafana_dashboards_dir: /var/tmp/ihgrafana/dashboards
      # This sandbox runs everything without CAP_SYS_RESOURCE under an 8 MiB
      # hard RLIMIT_MEMLOCK, so the scratch host's systemd cannot honour the
      # unit's LimitMEMLOCK=infinity as a booted host's does: the UMEM here
      # is the 8 MiB that fits (the default is 16 MiB).
      ironhoard_umem_frames: 4096
      ironhoard_ring_size: 2048
INV
cp tests/deploy/inside.sh "$ART/inside.sh"
chmod 755 "$ART/inside.sh"

# --- the scratch host -------------------------------------------------------
mount --bind / "$ROOT"
mount --make-private "$ROOT"
echo "deploy-test: booting scratch host $NAME (systemd-nspawn over an overlay of /)"
systemd-nspawn -q -D "$ROOT" --volatile=overlay --private-network --register=no --keep-unit \
    --link-journal=no -M "$NAME" -b \
    --capability=CAP_BPF,CAP_PERFMON,CAP_IPC_LOCK,CAP_NET_ADMIN,CAP_SYS_ADMIN \
    --system-call-filter='bpf perf_event_open' \
    --bind-ro="$ART:/srv/ihdeploy" --bind-ro="$REPO:/srv/ihrepo" \
    </dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
LEADER=""
for _ in $(seq 150); do
    LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
    [ -n "$LEADER" ] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$WORK/console.log"; exit 1; }
    sleep 0.2
done
[ -n "$LEADER" ] || { echo "deploy-test: no systemd in the scratch host"; cat "$WORK/console.log"; exit 1; }
state=""
for _ in $(seq 120); do
    state=$(nsenter -t "$LEADER" -a systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 0.5
done
echo "deploy-test: scratch host is $state (systemd pid $LEADER here)"
case $state in
    running) ;;
    degraded) nsenter -t "$LEADER" -a systemctl --failed --no-legend --no-pager | sed 's/^/  failed unit (not ours): /' ;;
    *) echo "deploy-test: scratch host did not boot"; tail -30 "$WORK/console.log"; exit 1 ;;
esac

# --- everything else runs inside ---------------------------------------------
nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LOAD_RATE="${LOAD_RATE:-20000}" \
    ANSIBLE_BIN="$ANSIBLE_BIN" NATS_BIN="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server" DEB2_NAME="$(basename "$DEB2")" /srv/ihdeploy/inside.sh
