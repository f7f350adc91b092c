#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/),
from Python's standard library alone: correctly signed move frames (IPv4,
IPv6, 802.1Q) so mutations reach the engine, moves and acks, a small valid
move-log segment, and configs. Deterministic: rerunning rewrites the same
files. The fuzzers add what they find to the same directories."""
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from gen_test_vectors import ack_bytes, move_bytes, player_key  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"ironhoard fuzz corpus secret 01!"
assert len(SECRET) == 32


def put(target, name, data):
    if target == "frame":
        data = b"\x01" + data  # mode byte: recompute the IPv4 header checksum
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(payload, v6=False, vlan=None, sport=40000, dport=7777):
    eth = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])
    if vlan is not None:
        eth += struct.pack("!HH", 0x8100, vlan)
    udp_len = 8 + len(payload)
    if v6:
        src, dst = bytes.fromhex("20010002000000000000000000000002"), bytes.fromhex("20010002000000000000000000000001")
        pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
        udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
        udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
        ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + src + dst
        return eth + struct.pack("!H", 0x86DD) + ip + udp
    src, dst = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0) + src + dst
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return eth + struct.pack("!H", 0x0800) + ip + udp


def main():
    moves = []
    for i, (game, player, seq, kind, x, y) in enumerate([(1, 1, 1, 1, 3, 4), (7, 42, 2, 2, 0, 0), (0xFFFFFFFF, 9, 1 << 40, 3, 63, 63)]):
        key = player_key(SECRET, game, player)
        m = move_bytes(key, 0, kind, game, player, seq, seq * 1000 + 7, x, y, b"fuzz-payload")
        moves.append(m)
        put("wire", "move-%d" % i, m)
        put("wire", "ack-%d" % i, ack_bytes(key, 0, i, game, player, seq, seq * 1000 + 7))
        put("frame", "v4-%d" % i, frame(m))
        put("frame", "v6-%d" % i, frame(m, v6=True))
        put("frame", "vlan-%d" % i, frame(m, vlan=42))
    # a few frames the classifier drops, to seed its branches
    f = bytearray(frame(moves[0]))
    f[14] = 0x46
    put("frame", "ipv4-ihl6", bytes(f))
    f = bytearray(frame(moves[0]))
    f[20] = 0x20
    put("frame", "ipv4-mf", bytes(f))
    put("frame", "qinq", frame(moves[0])[:12] + bytes([0x88, 0xA8, 0, 5]) + frame(moves[0], vlan=7)[12:])

    # a valid segment: 64-byte header (format 2), three records, empty slots
    hdr = bytearray(64)
    hdr[0:8] = b"IHMLOG01"
    struct.pack_into("!IIQQH", hdr, 8, 2, 96, 0, 1_700_000_000_000_000_000, 0)
    seg_bytes = 64 + 96 * 8
    struct.pack_into("!Q", hdr, 40, seg_bytes)
    struct.pack_into("!I", hdr, 60, zlib.crc32(bytes(hdr[0:60])))
    seg = bytes(hdr)
    for off, m in enumerate(moves):
        r = bytearray(96)
        struct.pack_into("!QQH", r, 0, off, 1_700_000_000_000_000_000 + off, 0)
        r[24:88] = m
        struct.pack_into("!I", r, 20, zlib.crc32(bytes(r[0:20]) + bytes(r[24:96])))
        seg += bytes(r)
    seg += bytes(96 * (8 - len(moves)))
    put("movelog", "segment-3-records", seg)
    put("movelog", "segment-torn", seg[: 64 + 96 * 2 + 40])

    with open(os.path.join(HERE, "..", "..", "config", "ironhoard.example.toml"), "rb") as f:
        put("config", "example", f.read())
    put("config", "minimal", b"""[interface]
name = "eth0"
queues = [0, 3]
cores = [1, 2]
xdp_mode = "native"
zero_copy = "off"
backend = "socket"
[moves]
port = 7777
secrets = ["/etc/ironhoard/secrets/secret0.hex"]
board_width = 64
board_height = 64
rate_per_second = 50
rate_burst = 100
[stats]
socket = "/run/ironhoard/stats.sock"
prometheus_listen = "9477"
[log]
dir = "/var/lib/ironhoard/moves"
sync = "batch"
core = 0
""")


if __name__ == "__main__":
    main()
