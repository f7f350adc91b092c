#!/usr/bin/env python3
"""A game server's consumer of IronHoard moves from NATS JetStream.

Pulls one game's moves (subject <prefix>.<game_id>) with a durable pull
consumer, decodes each message (docs/shipping.md), verifies the move's tag
with the master secret of its key_id (the same derivation as the clients',
docs/protocol.md), applies it, and acks it. A durable consumer remembers
what was acked: stop and start again, and it goes on where it left off.

    pip install nats-py==2.16.0
    python3 examples/consumer.py --server nats://10.0.0.5:4222 --stream MOVES \\
        --game 7 --secret 0=/etc/ironhoard/secret0.hex --durable game-7

Exits when --count moves were consumed, or after --idle seconds with no
new message. Prints one JSON line per move with --json, and a summary.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import struct
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

PAYLOAD_LEN = 82  # 64 move bytes, server receive time u64, queue u16, log offset u64
KINDS = {1: "step", 2: "dig", 3: "claim"}


def player_key(master, game, player):
    return hmac.new(master, b"ironhoard/v1/player" + struct.pack(">II", game, player), hashlib.sha256).digest()


def decode(payload):
    """The move and where it was recorded; None if it is not a move record."""
    if len(payload) != PAYLOAD_LEN or payload[0:2] != b"IH":
        return None
    mv = payload[:64]
    key_id, kind = mv[3], mv[4]
    game, player, seq, client_ts = struct.unpack(">IIQQ", mv[8:32])
    x, y = struct.unpack(">HH", mv[32:36])
    recv_ns, queue, offset = struct.unpack(">QHQ", payload[64:82])
    return {
        "key_id": key_id, "kind": KINDS.get(kind, kind), "game_id": game, "player_id": player,
        "seq": seq, "client_ts": client_ts, "x": x, "y": y, "payload": mv[36:48].hex(),
        "server_ts_ns": recv_ns, "queue": queue, "offset": offset, "_move": mv,
    }


def verify(m, secrets):
    master = secrets.get(m["key_id"])
    if master is None:
        return False
    key = player_key(master, m["game_id"], m["player_id"])
    tag = hmac.new(key, m["_move"][:48], hashlib.sha256).digest()[:16]
    return hmac.compare_digest(tag, m["_move"][48:64])


def read_secret(path):
    with open(path) as f:
        return bytes.fromhex(f.read().strip())


async def run(a):
    secrets = {}
    for s in a.secret:
        k, _, path = s.partition("=")
        secrets[int(k)] = read_secret(path)
    nc = await nats.connect(servers=a.server, name=f"ironhoard-example-consumer {a.durable}")
    js = nc.jetstream()
    subject = f"{a.prefix}.{a.game}"
    sub = await js.pull_subscribe(
        subject, durable=a.durable, stream=a.stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_ack_pending=10000),
    )
    seen, bad, dup, last_seq = 0, 0, 0, {}
    while a.count == 0 or seen < a.count:
        try:
            msgs = await sub.fetch(batch=min(1000, a.count - seen) if a.count else 1000, timeout=a.idle)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            # nats-py raises asyncio's own TimeoutError when the deadline
            # runs out between two pull requests of one fetch
            break
        for msg in msgs:
            m = decode(msg.data)
            if m is None or not verify(m, secrets):
                # never apply it; term it so it is not redelivered, and say so
                bad += 1
                print(f"REFUSED stream seq {msg.metadata.sequence.stream}: bad record or tag", file=sys.stderr)
                await msg.term()
                continue
            # per player (one game per subject), whatever the key_id, seq
            # only grows: a move out of order was retried after a failure
            # and may be applied by seq, or skipped if older
            p = m["player_id"]
            if last_seq.get(p, 0) >= m["seq"]:
                dup += 1
            last_seq[p] = max(last_seq.get(p, 0), m["seq"])
            seen += 1
            if a.json:
                m.pop("_move")
                m["host"] = (msg.headers or {}).get("Ironhoard-Host")
                print(json.dumps(m))
            await msg.ack()
    await nc.close()
    print(json.dumps({"consumed": seen, "verified": seen, "refused": bad, "out_of_order": dup}), file=sys.stderr)
    return 0 if bad == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, help="nats://HOST:PORT (repeatable)")
    ap.add_argument("--stream", default="MOVES")
    ap.add_argument("--prefix", default="ih.moves", help="[ship] subject_prefix")
    ap.add_argument("--game", type=int, required=True)
    ap.add_argument("--secret", action="append", required=True, help="KEY_ID=FILE (64 hex), repeatable")
    ap.add_argument("--durable", required=True, help="durable consumer name (one per game server)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many moves (0: until idle)")
    ap.add_argument("--idle", type=float, default=2.0, help="stop after this many seconds without a message")
    ap.add_argument("--json", action="store_true", help="print each move as a JSON line")
    sys.exit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
