#!/usr/bin/env python3
"""Generate the IronHoard wire-protocol v1 test vectors (SPEC section 1).

This is deliberately an independent implementation (Python standard library
only: struct, hmac, hashlib) so that the Rust wire crate is checked against
something it did not produce itself.  Output is deterministic: secrets are
SHA-256 of fixed labels, so re-running the tool reproduces the same file.

Usage:
    python3 tools/gen_test_vectors.py > userspace/ironhoard-wire/testdata/vectors-v1.json

`make test` regenerates the file and fails if it differs from the committed
one (userspace/ironhoard-wire/tests/vectors.rs), so the two never drift.

Besides the per-status cases, "scenarios" give a stated engine config and a
datagram sequence that really produces each status and each silent-drop
reason; the engine's tests replay them (userspace/ironhoard-engine/tests/).

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
        # distinct nonzero flags and reserved bytes, so their positions are
        # checked too (such a move is INVALID)
        ("flags-reserved-invalid", "ironhoard test secret 0", 0, 0x11223344, 0x55667788, 0x0102030405060708, 99, 2, 5, 6, b"\x5a" * 12, 3, 0xA5, 0x5AC3),
    ]
    for spec in specs:
        name, label, key_id, game, player, seq, ts, kind, x, y, payload, status = spec[:12]
        flags, reserved = (spec[12], spec[13]) if len(spec) > 12 else (0, 0)
        master = secret(label)
        pk = player_key(master, game, player)
        mv = move_bytes(pk, key_id, kind, game, player, seq, ts, x, y, payload, flags, reserved)
        ak = ack_bytes(pk, key_id, status, game, player, seq, ts)
        cases.append({
            "move_field_hex": field_values(mv, MOVE_FIELDS),
            "ack_field_hex": field_values(ak, ACK_FIELDS),
            "name": name,
            "note": "ack encoding for this status byte; whether the move earns it is in scenarios",
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
        "move_fields": MOVE_FIELDS,
        "ack_fields": ACK_FIELDS,
        "cases": cases,
        "scenarios": scenarios(),
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")


# SPEC section 1 field tables: name -> (offset, size). Every case's move
# and ack carry each field's value, so a consumer checks every position.
MOVE_FIELDS = {
    "magic": [0, 2], "version": [2, 1], "key_id": [3, 1], "kind": [4, 1], "flags": [5, 1],
    "reserved": [6, 2], "game_id": [8, 4], "player_id": [12, 4], "seq": [16, 8],
    "client_ts": [24, 8], "x": [32, 2], "y": [34, 2], "payload": [36, 12], "tag": [48, 16],
}
ACK_FIELDS = {
    "magic": [0, 2], "version": [2, 1], "key_id": [3, 1], "status": [4, 1], "zero": [5, 3],
    "game_id": [8, 4], "player_id": [12, 4], "seq": [16, 8], "client_ts": [24, 8], "tag": [32, 16],
}


def field_values(b: bytes, table) -> dict:
    """Each field's bytes (hex) at its SPEC position."""
    return {name: b[off:off + size].hex() for name, (off, size) in table.items()}


# ---------------------------------------------------------------------------
# Scenarios: a stated engine configuration and a datagram sequence that
# really produces every status and every silent-drop reason, judged in the
# SPEC's order (tag; INVALID; STALE/DUPLICATE; RATE_LIMITED; BUSY; ACCEPTED).
# The expected outcome of each step follows from SPEC section 1 alone; the
# Rust engine must reproduce outcome and ack bytes exactly.

class Sender:
    def __init__(self, masters, key_id, game, player):
        self.master = masters[key_id]
        self.key = player_key(self.master, game, player)
        self.key_id, self.game, self.player = key_id, game, player

    def move(self, seq, kind=1, x=1, y=1, flags=0, reserved=0, ts=None, payload=b"vector-move!"):
        ts = seq * 1000 + 7 if ts is None else ts
        return move_bytes(self.key, self.key_id, kind, self.game, self.player, seq, ts, x, y, payload, flags, reserved)


def step(t_ns, dgram, expect, sender=None):
    """expect: a status name (acked) or "drop:<reason>" (no answer)."""
    out = {"t_ns": t_ns, "datagram_hex": dgram.hex(), "expect": expect}
    if expect.startswith("drop:"):
        out["ack_hex"] = None
    else:
        m = dgram
        game, player = struct.unpack(">II", m[8:16])
        seq, ts = struct.unpack(">QQ", m[16:32])
        out["ack_hex"] = ack_bytes(sender.key, m[3], STATUS.index(expect), game, player, seq, ts).hex()
    return out


SEC = 1_000_000_000


def scenarios():
    masters = [secret("ironhoard test secret 0"), secret("ironhoard test secret 1")]
    cfg = {"board_width": 64, "board_height": 32, "rate_per_second": 1000, "rate_burst": 1000, "players": 16}
    out = []
    a = Sender(masters, 0, 10, 1)
    b = Sender(masters, 1, 10, 2)

    # every INVALID cause, each after the tag verified; then the same player is fine
    steps = [
        step(0, a.move(0), "invalid", a),                 # seq 0
        step(0, a.move(1, kind=0), "invalid", a),         # unknown kind
        step(0, a.move(1, kind=4), "invalid", a),
        step(0, a.move(1, flags=1), "invalid", a),        # nonzero flags
        step(0, a.move(1, reserved=0x0100), "invalid", a),  # nonzero reserved, either byte
        step(0, a.move(1, reserved=0x0001), "invalid", a),
        step(0, a.move(1, x=64), "invalid", a),           # x = board_width
        step(0, a.move(1, y=32), "invalid", a),           # y = board_height
        step(0, a.move(1, x=63, y=31, kind=3), "accepted", a),
        step(0, b.move(1, kind=2), "accepted", b),        # key_id 1
    ]
    out.append({"name": "invalid-causes", "master_secrets_hex": [m.hex() for m in masters], "config": cfg, "steps": steps})

    # the anti-replay window: 1024 wide, RFC 6479 style
    steps = [
        step(0, a.move(2000), "accepted", a),
        step(0, a.move(2000), "duplicate", a),
        step(0, a.move(2000 - 1024), "stale", a),         # at highest - 1024
        step(0, a.move(2000 - 1023), "accepted", a),      # inside, never seen
        step(0, a.move(2000 - 1023), "duplicate", a),
        step(0, a.move(1), "stale", a),
        step(0, a.move(1, x=99), "invalid", a),           # INVALID is judged before STALE
        step(0, a.move(3100), "accepted", a),             # the window slides past 2000
        step(0, a.move(2000), "stale", a),
        step(0, a.move(3100 + 130), "accepted", a),       # two 64-seq words ahead ...
        step(0, a.move(3100), "duplicate", a),            # ... and 3100 is still remembered
        step(0, a.move(3101), "accepted", a),             # never seen, inside the window
    ]
    out.append({"name": "window", "master_secrets_hex": [m.hex() for m in masters], "config": cfg, "steps": steps})

    # token bucket: 1 move/s, burst 2; duplicates and stale moves cost no token
    rl = dict(cfg, rate_per_second=1, rate_burst=2)
    c = Sender(masters, 0, 10, 3)
    steps = [
        step(0, a.move(1), "accepted", a),                # 1 token left
        step(0, a.move(1), "duplicate", a),               # costs no token ...
        step(0, a.move(1, x=99), "invalid", a),           # ... nor does INVALID ...
        step(0, a.move(2), "accepted", a),                # ... so this one still gets the last
        step(0, a.move(3), "rate_limited", a),
        step(0, a.move(1), "duplicate", a),               # judged before RATE_LIMITED
        step(SEC // 2, a.move(3), "rate_limited", a),     # half a token
        step(SEC - 1, a.move(3), "rate_limited", a),      # 1 ns short of a token
        step(SEC, a.move(3), "accepted", a),              # one token after 1 s
        step(SEC, a.move(4), "rate_limited", a),
        step(SEC, b.move(1), "accepted", b),              # another player's own bucket
        step(SEC, c.move(2000), "accepted", c),           # a new player: full bucket, 1 token left after
        step(SEC, c.move(1), "stale", c),                 # costs no token ...
        step(SEC, c.move(2001), "accepted", c),           # ... so this one still gets the last
        step(SEC, c.move(2002), "rate_limited", c),
    ]
    out.append({"name": "rate-limit", "master_secrets_hex": [m.hex() for m in masters], "config": rl, "steps": steps})

    # replies to DUPLICATE/STALE take a reply token (same rate and burst,
    # separate from the move tokens); without one the replay is dropped
    # unanswered, so a captured move cannot be used to reflect signed acks
    steps = [
        step(0, a.move(1), "accepted", a),                # move tokens: 1 left
        step(0, a.move(1), "duplicate", a),               # reply tokens: 1 left
        step(0, a.move(1), "duplicate", a),               # reply tokens: 0 left
        step(0, a.move(1), "drop:replay_over_limit"),     # no answer
        step(0, a.move(2000), "accepted", a),             # move tokens are separate
        step(0, a.move(1), "drop:replay_over_limit"),     # stale, no reply token
        step(SEC, a.move(1), "stale", a),                 # one reply token after 1 s
        step(SEC, a.move(2000), "drop:replay_over_limit"),
        step(SEC, a.move(2001), "accepted", a),           # one move token after 1 s
        step(SEC, b.move(1), "accepted", b),              # another player's own buckets
        step(SEC, b.move(1), "duplicate", b),
    ]
    out.append({"name": "replay-reply-budget", "master_secrets_hex": [m.hex() for m in masters], "config": rl, "steps": steps})

    # BUSY: the player table is full (room for 1 player); nothing recorded
    busy = dict(cfg, players=1)
    steps = [
        step(0, a.move(1), "accepted", a),
        step(0, b.move(1), "busy", b),
        step(0, b.move(1), "busy", b),                    # still not recorded: judged again
        step(0, b.move(1, x=200), "invalid", b),          # INVALID before BUSY
        step(0, a.move(2), "accepted", a),
    ]
    out.append({"name": "busy-table-full", "master_secrets_hex": [m.hex() for m in masters], "config": busy, "steps": steps})

    # silent drops, one per reason: nothing is sent back
    good = a.move(5)
    forged = bytearray(good)
    forged[63] ^= 0x01
    wrong_key = Sender([masters[0]] * 10, 9, 10, 1).move(5)   # key_id 9: not configured
    steps = [
        step(0, good[:63], "drop:wrong_length"),
        step(0, good + b"\0", "drop:wrong_length"),
        step(0, b"", "drop:wrong_length"),
        step(0, b"IA" + good[2:], "drop:bad_magic"),
        step(0, good[:2] + b"\x02" + good[3:], "drop:bad_version"),
        step(0, wrong_key, "drop:unknown_key_id"),
        step(0, bytes(forged), "drop:bad_tag"),
        step(0, good[:40] + b"\x01" + good[41:], "drop:bad_tag"),  # payload changed, tag kept
        step(0, good, "accepted", a),
    ]
    out.append({"name": "silent-drops", "master_secrets_hex": [m.hex() for m in masters], "config": cfg, "steps": steps})
    return out


if __name__ == "__main__":
    main()
