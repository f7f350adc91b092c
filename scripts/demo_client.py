#!/usr/bin/env python3
"""A small, independent game client for `make lab` (standard library only).

It derives player keys from the master secret exactly as SPEC §1 says,
sends signed moves for several players (with retransmits, replays of old
moves and forged tags mixed in), verifies every ack's tag, and prints what
came back. It is a demo and a cross-check of the appliance against a second
implementation of the protocol, not a load generator (that is
ironhoard-pktgen).
"""
import argparse
import hashlib
import hmac
import json
import random
import socket
import struct
import sys
import time

STATUS = ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"]


def player_key(master, game, player):
    return hmac.new(master, b"ironhoard/v1/player" + struct.pack(">II", game, player), hashlib.sha256).digest()


def move(key, key_id, game, player, seq, ts):
    head = struct.pack(">2sBBBBHIIQQHH12s", b"IH", 1, key_id, 1 + seq % 3, 0, 0, game, player, seq, ts,
                       seq % 16, seq % 16, b"demo-payload")
    return head + hmac.new(key, head, hashlib.sha256).digest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--players", type=int, default=50)
    ap.add_argument("--moves", type=int, default=5000)
    ap.add_argument("--hostile", type=float, default=0.1)
    ap.add_argument("--report")
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    master = bytes.fromhex(open(a.secret_file).read().strip())
    keys = {p: player_key(master, 1, p) for p in range(a.players)}
    seqs = {p: 0 for p in range(a.players)}
    sent_moves = {p: [] for p in range(a.players)}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    rng = random.Random(7)
    counts = {k: 0 for k in STATUS}
    forged_sent = forged_acked = replays_sent = replays_accepted = bad_ack_tags = lost = 0
    t0 = time.time()
    for i in range(a.moves):
        p = rng.randrange(a.players)
        kind = "good"
        if rng.random() < a.hostile:
            kind = rng.choice(["forged", "replay"]) if sent_moves[p] else "forged"
        if kind == "forged":
            seqs[p] += 1
            m = bytearray(move(keys[p], 0, 1, p, seqs[p], time.monotonic_ns()))
            m[48 + rng.randrange(16)] ^= 1 << rng.randrange(8)
            forged_sent += 1
            s.sendto(bytes(m), (host, int(port)))
            s.settimeout(0.02)  # a forged move must get no answer at all
            try:
                s.recv(2048)
                forged_acked += 1
            except socket.timeout:
                pass
            s.settimeout(0.5)
            continue
        if kind == "replay":
            m = rng.choice(sent_moves[p])
            replays_sent += 1
        else:
            seqs[p] += 1
            m = move(keys[p], 0, 1, p, seqs[p], time.monotonic_ns())
            sent_moves[p].append(m)
        s.sendto(m, (host, int(port)))
        try:
            ack = s.recv(2048)
        except socket.timeout:
            lost += 1
            continue
        tag = hmac.new(keys[p], ack[:32], hashlib.sha256).digest()[:16]
        # every field of the ack (SPEC section 1): magic, version, key_id
        # echo, status, three zero bytes, game/player/seq/client_ts echoed
        if (len(ack) != 48 or not hmac.compare_digest(tag, ack[32:48]) or ack[0:3] != b"IA\x01"
                or ack[3] != m[3] or ack[4] >= len(STATUS) or ack[5:8] != b"\0\0\0" or ack[8:32] != m[8:32]):
            bad_ack_tags += 1
            continue
        st = STATUS[ack[4]]
        counts[st] += 1
        if kind == "replay" and st == "accepted":
            replays_accepted += 1
    el = time.time() - t0
    rep = {"sent": a.moves, "elapsed_s": round(el, 3), "by_status": counts, "lost": lost,
           "forged_sent": forged_sent, "forged_acked": forged_acked, "replays_sent": replays_sent,
           "replays_accepted": replays_accepted, "bad_ack_tags": bad_ack_tags,
           "fresh_sent": a.moves - forged_sent - replays_sent}
    print(json.dumps(rep, indent=2))
    if a.report:
        json.dump(rep, open(a.report, "w"))
    ok = forged_acked == 0 and replays_accepted == 0 and bad_ack_tags == 0
    print("no forged move acked, no replay accepted, every ack tag valid" if ok else "PROTOCOL VIOLATION")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
