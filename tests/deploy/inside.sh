#!/usr/bin/env bash
# Runs inside the booted scratch host (deploy-test.sh): a veth lab, the
# playbook, and every check the deployment issue names. /srv/ihdeploy holds
# the artifacts (read-only), /srv/ihrepo the repository (read-only).
set -euo pipefail
ART=/srv/ihdeploy
export ANSIBLE_CONFIG=/srv/ihrepo/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP=/root/.ansible/tmp ANSIBLE_REMOTE_TEMP=/root/.ansible/tmp
OUT=/root/ihdeploy; mkdir -p "$OUT"
# moves/s offered during the upgrade (deploy-test.sh passes LOAD_RATE through)
LOAD_RATE=${LOAD_RATE:-20000}
# moves/s during the upgrade through the play: what the shipper keeps up
# with on the test VM (the play's verify step waits for it to ship)
UPGRADE_RATE=${UPGRADE_RATE:-5000}
SECRET_HEX=$(cat $ART/secret0.hex)
step() { printf '\n=== deploy-test: %s\n' "$*"; }
ok() { printf '  ok: %s\n' "$*"; }
fail() {
    printf '  FAIL: %s\n' "$*" >&2
    echo "--- journalctl -u ironhoard (last 40 lines)" >&2
    journalctl -u ironhoard.service --no-pager -n 40 >&2 || true
    echo "--- limits: the unit's, systemd's own" >&2
    systemctl show ironhoard.service -p LimitMEMLOCK -p LimitMEMLOCKSoft >&2 || true
    grep -i "locked memory" /proc/1/limits >&2 || true
    grep -E "^Cap(Eff|Bnd)" /proc/1/status >&2 || true
    echo "--- journalctl -u ironhoard-ship (last 20 lines)" >&2
    journalctl -u ironhoard-ship.service --no-pager -n 20 >&2 || true
    exit 1
}

play() { # play NAME [ansible-playbook args...]: the output goes to $OUT/NAME.log
    local name=$1; shift
    ( cd /srv/ihrepo && "$ANSIBLE_BIN/ansible-playbook" -i $ART/inventory.yml ansible/site.yml \
        --skip-tags tune --vault-password-file $ART/vault-pass "$@" ) >"$OUT/$name.log" 2>&1
}
recap() { grep -A1 '^PLAY RECAP' "$OUT/$1.log" | tail -1; }
no_secret_in() { if grep -q "$SECRET_HEX" "$OUT/$1.log"; then fail "the master secret appears in the output of $1"; fi; }

# moves NAME FIRST_SEQ COUNT: sends COUNT moves from the client namespace,
# prints "acked accepted"
moves() {
    ip netns exec ihdc ironhoard-pktgen --target 198.18.220.1:7777 --secret-file /etc/ironhoard/secrets/secret0.hex \
        --games 2 --players 50 --board 32x32 --first-seq "$2" --count "$3" --rate 2000 --duration 20 --quiet \
        --report "$OUT/$1.json" >/dev/null 2>"$OUT/$1.err" || { cat "$OUT/$1.err"; fail "pktgen $1"; }
    jq -r '"\(.acked) \(.by_status.accepted)"' "$OUT/$1.json"
}
main_pid() { systemctl show -p MainPID --value ironhoard.service; }

# load_start NAME RATE GAME_BASE: moves at RATE/s in the background (games
# GAME_BASE.., apart from the probes' games 1-2, whose seqs the checks
# replay) until load_check; SIGINT ends it, then the generator waits up to
# 10 s for late acks and reports.
load_start() {
    ip netns exec ihdc ironhoard-pktgen --target 198.18.220.1:7777 --secret-file /etc/ironhoard/secrets/secret0.hex \
        --game-base "$3" --games 4 --players 4000 --board 32x32 --first-seq 1 --rate "$2" --duration 600 \
        --drain-ms 10000 --quiet --report "$OUT/$1.json" --accepted-out "$OUT/$1-accepted.txt" >/dev/null 2>"$OUT/$1.err" &
    LOADPID=$!
    LOADBASE=$3
}
# load_check NAME: ends the load; checks that nothing sent went unanswered,
# that the restart handed over (the moves of the swap served from the
# bridge) and that every move the client saw ACCEPTED is in the log once.
load_check() {
    kill -INT "$LOADPID"; wait "$LOADPID" || { cat "$OUT/$1.err"; fail "the load generator failed"; }
    local journal lost sent bridged missing
    journal=$(journalctl -u ironhoard.service --no-pager -o cat --since "@$LOADSINCE")
    grep -q "workers drained in" <<< "$journal" && grep -q "took over from systemd fd store" <<< "$journal" \
        || { grep -E "drained|took over|stopped|bridge" <<< "$journal" || true; fail "$1: the restart did not hand over (drain, then take over from the fd store)"; }
    lost=$(jq '.lost' "$OUT/$1.json"); sent=$(jq '.generated.valid' "$OUT/$1.json")
    bridged=$(grep -o 'handover complete: [0-9]* move' <<< "$journal" | tail -1 | grep -o '[0-9]*' || true)
    [ "$lost" = 0 ] || { cat "$OUT/$1.err"; fail "$1: $lost of $sent moves went unanswered"; }
    [ "${bridged:-0}" -gt 0 ] || fail "$1: no move was served from the bridge: the restart was not under load"
    ironhoard tail --dir /var/lib/ironhoard/moves --json \
        | jq -r --argjson b "$LOADBASE" 'select(.game_id >= $b and .game_id < $b + 4) | "\(.game_id) \(.player_id) \(.seq)"' | sort > "$OUT/$1-logged.txt"
    awk '{print $2, $3, $4}' "$OUT/$1-accepted.txt" | sort > "$OUT/$1-acked.txt"
    [ -z "$(uniq -d "$OUT/$1-logged.txt")" ] || fail "$1: moves logged twice: $(uniq -d "$OUT/$1-logged.txt" | head -3)"
    missing=$(comm -23 "$OUT/$1-acked.txt" "$OUT/$1-logged.txt" | wc -l)
    [ "$missing" = 0 ] || fail "$1: $missing moves acked ACCEPTED are not in the log"
    LOADMSG="$sent moves, lost 0, $bridged served from the bridge during the swap, $(wc -l < "$OUT/$1-acked.txt") ACCEPTED each once in the log"
}
# ship_caught_up SECS: the shipper has shipped the whole log
ship_caught_up() {
    for _ in $(seq $(( $1 * 5 ))); do ship_json | jq -e '.lag_records == 0' >/dev/null && return 0; sleep 0.2; done
    return 1
}

# This machine's image carries Docker's /usr/sbin/policy-rc.d ("exit 101":
# no service may be started or restarted by a package), and the scratch
# host is an overlay of it. A fleet host has none: remove it here (in the
# overlay only), so the package's maintainer scripts act as they would there.
rm -f /usr/sbin/policy-rc.d

step "lab: veth ihdA (host side, 198.18.220.1) and client namespace ihdc (198.18.220.2)"
ip link add ihdA type veth peer name ihdB
ip netns add ihdc
ip link set ihdB netns ihdc
ip addr add 198.18.220.1/24 dev ihdA && ip link set ihdA up
ip netns exec ihdc ip addr add 198.18.220.2/24 dev ihdB
ip netns exec ihdc ip link set ihdB up && ip netns exec ihdc ip link set lo up
useradd --system --no-create-home ihops
ok "lab up; operator user ihops"

step "a NATS JetStream server for the shipper (127.0.0.1:4222, inside the scratch host)"
systemd-run --quiet --unit ihnats "$NATS_BIN" -js -a 127.0.0.1 -p 4222 -sd /var/tmp/ihnats
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
ok "$("$NATS_BIN" --version) listening"

step "first run of the playbook"
play run1 --diff || { tail -40 "$OUT/run1.log"; fail "first run failed"; }
recap run1
no_secret_in run1
ok "play succeeded; the secret is nowhere in its output"

step "the service"
[ "$(systemctl is-active ironhoard.service)" = active ] || fail "ironhoard.service is not active"
[ "$(systemctl is-enabled ironhoard.service)" = enabled ] || fail "ironhoard.service is not enabled"
PID=$(main_pid)
uid=$(awk '/^Uid:/{print $2}' /proc/$PID/status)
[ "$uid" = "$(id -u ironhoard)" ] && [ "$uid" != 0 ] || fail "the appliance runs as uid $uid"
capeff=$(awk '/^CapEff:/{print $2}' /proc/$PID/status)
# CAP_NET_ADMIN(12) CAP_NET_RAW(13) CAP_BPF(39) CAP_PERFMON(38)
[ "$capeff" = 000000c000003000 ] || fail "effective capabilities $capeff, want 000000c000003000"
ok "active, enabled, pid $PID runs as ironhoard (uid $uid) with CapEff $capeff (NET_ADMIN NET_RAW PERFMON BPF)"
stat -c '%U %a' /etc/ironhoard/secrets/secret0.hex | grep -qx 'ironhoard 600' || fail "secret file is $(stat -c '%U %a' /etc/ironhoard/secrets/secret0.hex)"
ok "secret0.hex: owner ironhoard, mode 600"
ironhoard stats --command "show info" | jq -e '.xdp.xdp_mode == "native"' >/dev/null || fail "XDP not native"
ok "XDP attached in native mode"

step "moves from the client namespace"
read -r acked accepted < <(moves m1 1 400)
[ "$acked" = 400 ] && [ "$accepted" = 400 ] || fail "400 sent: $acked acked, $accepted accepted"
ok "400 moves sent, 400 acked ACCEPTED"
runuser -u ihops -- ironhoard stats --json | jq -e '.accepted >= 400' >/dev/null || fail "ihops (group ironhoard) cannot read stats"
if runuser -u nobody -- ironhoard stats --json >/dev/null 2>&1; then fail "nobody can read the stats socket"; fi
ok "stats readable by group member ihops, refused to nobody"

step "the shipper"
[ "$(systemctl is-active ironhoard-ship.service)" = active ] || { journalctl -u ironhoard-ship --no-pager -n 30; fail "ironhoard-ship.service is not active"; }
[ "$(systemctl is-enabled ironhoard-ship.service)" = enabled ] || fail "ironhoard-ship.service is not enabled"
SPID=$(systemctl show -p MainPID --value ironhoard-ship.service)
suid=$(awk '/^Uid:/{print $2}' /proc/$SPID/status)
scap=$(awk '/^CapEff:/{print $2}' /proc/$SPID/status)
[ "$suid" = "$(id -u ironhoard)" ] && [ "$scap" = 0000000000000000 ] || fail "the shipper runs as uid $suid with CapEff $scap"
ship_json() { ironhoard stats --socket /run/ironhoard-ship/ship.sock --json; }
for _ in $(seq 50); do ship_json | jq -e '.lag_records == 0 and .published >= 405' >/dev/null && break; sleep 0.2; done
ship_json | jq -e '.connected and .lag_records == 0 and .published >= 405 and .rejected == 0' >/dev/null || fail "not shipped: $(ship_json)"
ironhoard ship --ensure-stream --config /etc/ironhoard/ironhoard.toml | grep -q 'exists and matches' || fail "the stream does not match the inventory"
stat -c '%U' /var/lib/ironhoard/ship.checkpoint | grep -qx ironhoard || fail "no checkpoint owned by ironhoard"
runuser -u ihops -- ironhoard stats --socket /run/ironhoard-ship/ship.sock >/dev/null || fail "ihops cannot read the shipper's stats"
exposure=$(systemctl show -p Id ironhoard-ship.service >/dev/null; systemd-analyze security ironhoard-ship.service 2>/dev/null | tail -1 | sed 's/.*exposure level for ironhoard-ship.service: //')
ok "ironhoard-ship.service active, enabled, pid $SPID as ironhoard with no capability (systemd-analyze security: $exposure); $(ship_json | jq -r '.published') moves (400 + the probes) in stream MOVES, lag 0"

jq -e '.uid == "ironhoard" and (.panels | length) > 10' /var/tmp/ihgrafana/dashboards/ironhoard.json >/dev/null || fail "the Grafana dashboard was not provisioned"
ok "Grafana dashboard provisioned in /var/tmp/ihgrafana/dashboards"

# what the package adds for the operator: man pages, completions, debug info apart
for page in ironhoard ironhoard-run ironhoard-capture ironhoard-reload ironhoard-pktgen; do
    man -w "$page" >/dev/null 2>&1 || fail "no man page $page"
done
man ironhoard-run 2>/dev/null | grep -q 'SIGHUP' || fail "man ironhoard-run does not say what SIGHUP does"
bash -c 'source /usr/share/bash-completion/completions/ironhoard && complete -p ironhoard' >/dev/null || fail "no bash completion for ironhoard"
[ -s /usr/share/zsh/vendor-completions/_ironhoard ] && [ -s /usr/share/fish/vendor_completions.d/ironhoard.fish ] || fail "no zsh or fish completion"
file -L /usr/bin/ironhoard | grep -q ', stripped' || fail "/usr/bin/ironhoard is not stripped"
ok "man pages (ironhoard, ironhoard-run, ...), bash/zsh/fish completions, stripped binaries"

step "second run: nothing changes"
play run2 || { tail -40 "$OUT/run2.log"; fail "second run failed"; }
recap run2
recap run2 | grep -q 'changed=0 ' || { grep -B3 '^changed:' "$OUT/run2.log" | head -30; fail "second run changed something"; }
[ "$(main_pid)" = "$PID" ] || fail "second run restarted the appliance"
[ "$(systemctl show -p MainPID --value ironhoard-ship.service)" = "$SPID" ] || fail "second run restarted the shipper"
ok "changed=0, same pids"

step "a limit change and a second key_id are applied by a reload, not a restart"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /root/secret1.hex; echo >> /root/secret1.hex
"$ANSIBLE_BIN/ansible-vault" encrypt --vault-password-file $ART/vault-pass --output /root/secret1.hex.vault /root/secret1.hex >/dev/null
CHANGE='{"ironhoard_rate_per_second": 5000, "ironhoard_secret_files": ["/srv/ihdeploy/secret0.hex.vault", "/root/secret1.hex.vault"]}'
play reload1 -e "$CHANGE" || { tail -40 "$OUT/reload1.log"; fail "the reload run failed"; }
recap reload1
no_secret_in reload1
grep -q "$(head -c 64 /root/secret1.hex)" "$OUT/reload1.log" && fail "the new secret appears in the output"
grep -q 'RUNNING HANDLER \[ironhoard : Reload ironhoard\]' "$OUT/reload1.log" || fail "no reload handler ran"
[ "$(main_pid)" = "$PID" ] || fail "the change restarted the appliance (pid $PID -> $(main_pid))"
info=$(ironhoard stats --command "show info")
jq -e '.key_ids == 2 and .config_in_force.rate_per_second == 5000 and .config_in_force.reloads >= 1' <<<"$info" >/dev/null || fail "not applied: $info"
read -r acked accepted < <(moves m1b 500 200)
[ "$acked" = 200 ] && [ "$accepted" = 200 ] || fail "after the reload: $acked acked, $accepted accepted of 200"
play reload2 -e "$CHANGE" || fail "rerun with the change failed"
recap reload2 | grep -q 'changed=0 ' || fail "rerun with the change changed something: $(recap reload2)"
play reload3 || fail "the run back to one key failed"
[ "$(main_pid)" = "$PID" ] || fail "going back restarted the appliance"
ironhoard stats --command "show info" | jq -e '.key_ids == 1 and .config_in_force.rate_per_second == 100000' >/dev/null || fail "not back to the inventory's values"
ok "rate 5000/s and key_id 1 applied by 'ironhoard reload' (same pid $PID), rerun changed=0, and back again"

step "a bad variable fails the play; the running appliance keeps serving"
sum=$(sha256sum /etc/ironhoard/ironhoard.toml)
if play bad1 -e '{"ironhoard_board_width": 0}'; then fail "a play with board_width 0 succeeded"; fi
grep -q 'moves.board_width' "$OUT/bad1.log" || { tail -20 "$OUT/bad1.log"; fail "the failure does not name moves.board_width"; }
grep -q 'check-config' "$OUT/bad1.log" || fail "the failure is not check-config's"
[ "$(sha256sum /etc/ironhoard/ironhoard.toml)" = "$sum" ] || fail "the config was replaced"
ok "check-config refused it (moves.board_width); config unchanged"
if play bad2 -e '{"ironhoard_port": "seventy"}'; then fail "a play with a non-numeric port succeeded"; fi
grep -q 'ironhoard_port' "$OUT/bad2.log" || { tail -20 "$OUT/bad2.log"; fail "the argument spec failure does not name ironhoard_port"; }
ok "argument spec refused ironhoard_port=seventy, naming it"
if play bad3 -e '{"ironhoard_cores": [0, 1]}'; then fail "a play with 2 cores for 1 queue succeeded"; fi
grep -q 'ironhoard_cores' "$OUT/bad3.log" || fail "the preflight failure does not name ironhoard_cores"
ok "preflight refused 2 cores for 1 queue, naming ironhoard_cores"
[ "$(systemctl is-active ironhoard.service)" = active ] && [ "$(main_pid)" = "$PID" ] || fail "the appliance did not keep running"
read -r acked accepted < <(moves m2 1000 400)
[ "$acked" = 400 ] && [ "$accepted" = 400 ] || fail "after the failed plays: $acked acked, $accepted accepted of 400"
ok "same pid $PID still acks: 400 of 400 ACCEPTED"

logged_before=$(ironhoard tail --dir /var/lib/ironhoard/moves | wc -l)
step "upgrade to $DEB2_NAME through the play, under load ($UPGRADE_RATE moves/s): nothing lost"
LOADSINCE=$(date +%s)
load_start upgrade-load "$UPGRADE_RATE" 100
sleep 2
play upgrade -e "{\"ironhoard_package\": \"$ART/$DEB2_NAME\"}" || { tail -40 "$OUT/upgrade.log"; fail "upgrade run failed"; }
recap upgrade
sleep 2
load_check upgrade-load
NEWPID=$(main_pid)
[ "$NEWPID" != "$PID" ] || fail "the upgrade did not restart the appliance"
dpkg-query -W -f='${Version}\n' ironhoard | grep -q '+upgrade1' || fail "the package was not upgraded"
ok "upgraded under load: $LOADMSG"
logged_after=$(ironhoard tail --dir /var/lib/ironhoard/moves | wc -l)
[ "$logged_after" -ge "$logged_before" ] || fail "records lost across the upgrade: $logged_before -> $logged_after"
read -r acked accepted < <(moves m3 1 400)
acked_dup=$(jq '.by_status.duplicate' "$OUT/m3.json")
[ "$acked" = 400 ] && [ "$acked_dup" = 400 ] || fail "replayed seqs after the upgrade: $acked acked, $acked_dup DUPLICATE of 400"
NEWSPID=$(systemctl show -p MainPID --value ironhoard-ship.service)
[ "$NEWSPID" != "$SPID" ] && [ "$(systemctl is-active ironhoard-ship.service)" = active ] || fail "the upgrade did not restart the shipper"
ship_caught_up 60 || fail "the upgraded shipper did not catch up: $(ship_json)"
ok "upgraded: pid $PID -> $NEWPID, log kept ($logged_before -> $logged_after records), replays of pre-upgrade moves DUPLICATE"
play run3 -e "{\"ironhoard_package\": \"$ART/$DEB2_NAME\"}" || fail "run after the upgrade failed"
recap run3 | grep -q 'changed=0 ' || fail "the run after the upgrade changed something: $(recap run3)"
ok "the next run changes nothing"

step "systemctl restart under load ($LOAD_RATE moves/s): nothing lost"
RPID=$(main_pid)
LOADSINCE=$(date +%s)
load_start restart-load "$LOAD_RATE" 200
sleep 3
systemctl restart ironhoard.service
sleep 3
load_check restart-load
[ "$(main_pid)" != "$RPID" ] || fail "systemctl restart did not restart the appliance"
ok "restarted under load: $LOADMSG"
NEWPID=$(main_pid)
ship_caught_up 120 || fail "the shipper did not catch up after the load: $(ship_json)"

step "roll back to the first package through the play"
DEB1_NAME=$(basename "$(awk '/ironhoard_package:/{print $2}' $ART/inventory.yml)")
if play rollback0; then fail "a downgrade went through without ironhoard_allow_downgrade"; fi
grep -q 'A later version is already installed' "$OUT/rollback0.log" || { tail -20 "$OUT/rollback0.log"; fail "the refused downgrade does not say why"; }
[ "$(main_pid)" = "$NEWPID" ] || fail "the refused downgrade restarted the appliance"
ok "without ironhoard_allow_downgrade the older package is refused, the appliance untouched"
play rollback -e ironhoard_allow_downgrade=true || { tail -40 "$OUT/rollback.log"; fail "rollback run failed"; }
dpkg-query -W -f='${Version}\n' ironhoard | grep -q '+upgrade1' && fail "still the upgraded version after the rollback"
OLDPID=$NEWPID; NEWPID=$(main_pid)
[ "$NEWPID" != "$OLDPID" ] || fail "the rollback did not restart the appliance"
read -r acked accepted < <(moves m4 1 400)
[ "$acked" = 400 ] && [ "$(jq '.by_status.duplicate' "$OUT/m4.json")" = 400 ] || fail "after the rollback: replays not all DUPLICATE"
ok "rolled back to $DEB1_NAME: pid $OLDPID -> $NEWPID, replays of earlier moves still DUPLICATE"

step "removal"
apt-get remove -y -q ironhoard >"$OUT/remove.log" 2>&1 || { cat "$OUT/remove.log"; fail "apt-get remove"; }
if systemctl is-active --quiet ironhoard.service; then fail "still running after removal"; fi
if systemctl is-active --quiet ironhoard-ship.service; then fail "the shipper still runs after removal"; fi
[ ! -e /usr/bin/ironhoard ] && [ ! -e /lib/systemd/system/ironhoard.service ] || fail "files left after removal"
[ -d /var/lib/ironhoard/moves ] || fail "the move log was removed"
if ip -d link show ihdA | grep -q 'prog/xdp'; then fail "XDP program still attached"; fi
ok "stopped, binary and unit gone, XDP detached, move log kept"

step "purge: the config goes; the move log and the user stay unless asked"
wants=/etc/systemd/system/multi-user.target.wants
[ -L $wants/ironhoard.service ] || fail "the role's enablement of ironhoard.service is not there to be purged"
apt-get purge -y -q ironhoard >"$OUT/purge.log" 2>&1 || { cat "$OUT/purge.log"; fail "apt-get purge"; }
if dpkg-query -W -f='${db:Status-Abbrev}' ironhoard 2>/dev/null | grep -q '^.[ic]'; then fail "dpkg still knows ironhoard after the purge"; fi
[ ! -e /etc/ironhoard ] || fail "/etc/ironhoard left after the purge"
[ ! -e $wants/ironhoard.service ] && [ ! -e $wants/ironhoard-ship.service ] || fail "the units' enablement left after the purge"
[ ! -e /var/lib/systemd/deb-systemd-helper-enabled/ironhoard.service.dsh-also ] || fail "deb-systemd-helper's state left after the purge"
[ -d /var/lib/ironhoard/moves ] && [ -n "$(ls -A /var/lib/ironhoard/moves)" ] || fail "the purge removed the move log"
getent passwd ironhoard >/dev/null || fail "the purge removed the ironhoard user (it owns the kept log)"
grep -q "kept /var/lib/ironhoard" "$OUT/purge.log" || fail "the purge did not say it kept the log"
ok "purged: /etc/ironhoard and the units' enablement gone, move log ($(du -sh /var/lib/ironhoard/moves | cut -f1)) and user kept"
# a fresh installation neither enables nor starts a unit; a purge asked to
# takes the log too
dpkg -i "$ART/$DEB1_NAME" >"$OUT/reinstall.log" 2>&1 || { cat "$OUT/reinstall.log"; fail "dpkg -i after the purge"; }
[ "$(systemctl is-enabled ironhoard.service 2>/dev/null)" = disabled ] || fail "a fresh installation enabled ironhoard.service"
if systemctl is-active --quiet ironhoard.service || systemctl is-active --quiet ironhoard-ship.service; then fail "a fresh installation started a unit"; fi
IRONHOARD_PURGE_MOVE_LOG=yes apt-get purge -y -q ironhoard >"$OUT/purge2.log" 2>&1 || { cat "$OUT/purge2.log"; fail "apt-get purge with IRONHOARD_PURGE_MOVE_LOG=yes"; }
[ ! -e /var/lib/ironhoard ] || fail "IRONHOARD_PURGE_MOVE_LOG=yes apt-get purge left /var/lib/ironhoard"
ok "reinstalled: neither unit enabled nor started; IRONHOARD_PURGE_MOVE_LOG=yes apt-get purge removed the log"
