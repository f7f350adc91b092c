#!/usr/bin/env bash
# What an idle shipper costs (not a test): the lab appliance (XDP backend)
# up with no moves, a one-node nats-server, `ironhoard ship` left alone for
# 30 s; prints its CPU over that time (utime + stime from /proc/<pid>/stat).
# EXTRA='wake_interval_us = 500' adds [ship] keys; IRONHOARD_BIN=… another build.
# Usage: bash bench/ship-idle.sh      (root: netns, XDP)
set -euo pipefail
cd "$(dirname "$0")/.."
SP=""
source scripts/lab-lib.sh
NATS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
"$NATS" -a 127.0.0.1 -p 24400 -js -sd /tmp/idle-nats 2>/dev/null & NP=$!
trap 'kill ${SP:-} $NP 2>/dev/null; appliance_down; lab_down; rm -rf /tmp/idle-nats' EXIT
lab_up
appliance_up xdp 1000000
cat >> "$DIR/ironhoard.toml" <<CFG
[ship]
servers = ["nats://127.0.0.1:24400"]
stream = "IDLE"
subject_prefix = "ih.idle"
host_id = "idle"
checkpoint = "$DIR/idle.ckpt"
stats_socket = "$DIR/ship.sock"
replicas = 1
${EXTRA:-}
CFG
sleep 1
"$BIN" ship --config "$DIR/ironhoard.toml" --ensure-stream >/dev/null
"$BIN" ship --config "$DIR/ironhoard.toml" 2>/dev/null & SP=$!
sleep 3
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$1/stat; }
c0=$(cpu $SP); sleep 30; c1=$(cpu $SP)
echo "idle shipper (${EXTRA:-defaults}): $(echo "($c1 - $c0) * 100 / 30" | bc -l | cut -c1-6) % of a core over 30 s"
