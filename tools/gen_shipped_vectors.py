#!/usr/bin/env python3
"""Writes clients/testdata/shipped-v1.json: the JetStream messages the
shipper makes of the wire test vectors' moves (docs/shipping.md), for the
consumer libraries (Go, Rust) and the shipper to agree on byte for byte.

Independent of the Rust code on purpose: the layout is computed here from
the documentation (payload, Nats-Msg-Id, subject, partition, stream name).

    python3 tools/gen_shipped_vectors.py > clients/testdata/shipped-v1.json
"""
import hashlib
import hmac
import json
import os
import struct

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "userspace/ironhoard-wire/testdata/vectors-v1.json")


def fnv1a32(b):
    h = 0x811C9DC5
    for x in b:
        h ^= x
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def partition(game, n):
    # what NATS's subject mapping {{partition(n,1)}} computes of the decimal token
    return fnv1a32(str(game).encode()) % n


def subject(prefix, game, n):
    return f"{prefix}.{game}" if n == 1 else f"{prefix}.{partition(game, n)}.{game}"


def stream(name, game, n):
    return name if n == 1 else f"{name}_{partition(game, n)}"


def verify(master, mv):
    game, player = struct.unpack(">II", mv[8:16])
    key = hmac.new(master, b"ironhoard/v1/player" + mv[8:16], hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, mv[:48], hashlib.sha256).digest()[:16], mv[48:64])


def main():
    wire = json.load(open(WIRE))
    cases = []
    for i, c in enumerate(wire["cases"]):
        mv = bytes.fromhex(c["move_hex"])
        master = bytes.fromhex(c["master_secret_hex"])
        recv_ns = 1_764_000_000_000_000_000 + i * 1_000_003
        queue = i % 3
        offset = 1000 * i + 7
        payload = mv + struct.pack(">QHQ", recv_ns, queue, offset)
        game, player, seq = struct.unpack(">IIQ", mv[8:24])
        key_id = mv[3]
        x, y = struct.unpack(">HH", mv[32:36])
        cases.append({
            "name": c["name"],
            "master_secret_hex": c["master_secret_hex"],
            "payload_hex": payload.hex(),
            "move": {
                "key_id": key_id, "kind": mv[4], "flags": mv[5], "game_id": game, "player_id": player,
                "seq": seq, "client_ts": struct.unpack(">Q", mv[24:32])[0], "x": x, "y": y,
                "payload_hex": mv[36:48].hex(), "tag_hex": mv[48:64].hex(),
            },
            "recv_unix_ns": recv_ns, "queue": queue, "offset": offset,
            "msg_id": f"ih1.{game}.{player}.{seq}",
            "verifies": verify(master, mv),
            "routes": [
                {"partitions": n, "subject": subject("ih.moves", game, n), "stream": stream("MOVES", game, n)}
                for n in (1, 3, 8)
            ],
        })
    base = bytes.fromhex(cases[0]["payload_hex"])
    forged = []
    for name, at in (("tag bit", 50), ("payload bit", 40), ("game_id bit", 11), ("seq bit", 23)):
        p = bytearray(base)
        p[at] ^= 1
        forged.append({"name": f"{cases[0]['name']} with a flipped {name} (byte {at})", "master_secret_hex": cases[0]["master_secret_hex"], "payload_hex": p.hex()})
    malformed = [
        {"name": "81 bytes", "payload_hex": base[:81].hex()},
        {"name": "83 bytes", "payload_hex": (base + b"\0").hex()},
        {"name": "bad magic", "payload_hex": (b"XX" + base[2:]).hex()},
        {"name": "empty", "payload_hex": ""},
    ]
    games = [0, 1, 7, 9, 42, 1000, 65535, 70000, 4000000000, 4294967295]
    partitions = [{"game_id": g, "n": n, "partition": partition(g, n)} for g in games for n in (1, 2, 3, 8, 64)]
    out = {
        "protocol": "ironhoard shipped message v1 (docs/shipping.md)",
        "generator": "tools/gen_shipped_vectors.py",
        "payload_len": 82,
        "subject_prefix": "ih.moves",
        "stream": "MOVES",
        "partition_rule": "fnv1a32(ascii decimal game_id) % partitions, as NATS's {{partition(n,1)}}; "
                          "partitions = 1: subject <prefix>.<game>, stream <stream>; "
                          "else subject <prefix>.<partition>.<game>, stream <stream>_<partition>",
        "cases": cases,
        "forged": forged,
        "malformed": malformed,
        "partitions": partitions,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
