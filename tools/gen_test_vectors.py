#!/usr/bin/env python3
"""Generate the IronHoard wire-protocol v1 test vectors (SPEC section 1).

This is deliberately an independent implementation (Python standard library
only: struct, hmac, hashlib) so that the Rust wire crate is checked against
something it did not produce itself.  Output is deterministic: secrets are
SHA-256 of fixed labels, so re-running the tool reproduces the same file.

Usage:
    python3 tools/gen_test_vectors.py > userspace/ironhoard-wire/testdata/vectors-v1.json

Each case holds: the master secret (hex), key_id, game_id, player_id, the
derived player key (hex), the 64 move bytes (hex) with a valid tag, the ack
status, and the 48 ack bytes (hex) the appliance must send for that status.
"""
import hashlib
import hmac
import json
import struct
import sys

STATUS = ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"]
PLAYER_LABEL = b"ironhoard/v1/player"  # 19 bytes, no terminator


def player_key(master: bytes, game_id: int, player_id: int) -> bytes:
    assert len(PLAYER_LABEL) == 19
    return hmac.new(master, PLAYER_LABEL + struct.pack(">II", game_id, player_id), hashlib.sha256).digest()


def tag16(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:16]


def move_bytes(key, key_id, kind, game_id, player_id, seq, client_ts, x, y, payload, flags=0, reserved=0):
    head = struct.pack(">2sBBBBHIIQQHH12s", b"IH", 1, key_id, kind, flags, reserved,
                       game_id, player_id, seq, client_ts, x, y, payload)
    assert len(head) == 48
    return head + tag16(key, head)


def ack_bytes(key, key_id, status, game_id, player_id, seq, client_ts):
    head = struct.pack(">2sBBB3sIIQQ", b"IA", 1, key_id, status, b"\0\0\0",
                       game_id, player_id, seq, client_ts)
    assert len(head) == 32
    return head + tag16(key, head)


def secret(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def main():
    cases = []
    specs = [
        # (name, secret label, key_id, game, player, seq, client_ts, kind, x, y, payload, status)
        ("basic-step-accepted", "ironhoard test secret 0", 0, 1, 1, 1, 0x0102030405060708, 1, 3, 4, b"\0" * 12, 0),
        ("dig-duplicate", "ironhoard test secret 0", 0, 7, 42, 2, 123456789, 2, 0, 0, bytes(range(12)), 1),
        ("claim-stale", "ironhoard test secret 0", 0, 0xFFFFFFFF, 0xFFFFFFFF, 5, 0, 3, 63, 63, b"\xff" * 12, 2),
        ("key1-invalid", "ironhoard test secret 1", 1, 1000, 2000, 77, 0xDEADBEEF, 1, 9, 10, b"payload-1234", 3),
        ("key1-rate-limited", "ironhoard test secret 1", 1, 3, 4, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 2, 65535, 65535, b"\x01" * 12, 4),
        ("key255-busy", "ironhoard test secret 255", 255, 0x01020304, 0x0A0B0C0D, 1 << 40, 42, 3, 1, 2, b"abcdefghijkl", 5),
    ]
    for name, label, key_id, game, player, seq, ts, kind, x, y, payload, status in specs:
        master = secret(label)
        pk = player_key(master, game, player)
        mv = move_bytes(pk, key_id, kind, game, player, seq, ts, x, y, payload)
        ak = ack_bytes(pk, key_id, status, game, player, seq, ts)
        cases.append({
            "name": name,
            "master_secret_hex": master.hex(),
            "key_id": key_id,
            "game_id": game,
            "player_id": player,
            "player_key_hex": pk.hex(),
            "move_hex": mv.hex(),
            "status": status,
            "status_name": STATUS[status],
            "ack_hex": ak.hex(),
        })
    json.dump({
        "protocol": "ironhoard wire v1",
        "generator": "tools/gen_test_vectors.py",
        "cases": cases,
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
