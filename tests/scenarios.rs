//! Protocol scenarios run against any backend (SPEC §1): every status,
//! every silent drop, key rotation, exact counters. The socket and XDP
//! test files call these with their backend.

use std::time::{Duration, Instant};

use ironhoard_wire::{MoveRepr, Status};
use serde_json::Value;

use crate::{Appliance, Client, Lab, Settings};

/// Counts what a scenario sent, to compare with the appliance's counters.
#[derive(Default, Debug)]
pub struct Expect {
    pub rx: u64,
    pub status: [u64; 6],
    pub dropped: [(&'static str, u64); 5],
}

impl Expect {
    pub fn new() -> Expect {
        Expect {
            dropped: [("wrong_length", 0), ("bad_magic", 0), ("bad_version", 0), ("unknown_key_id", 0), ("bad_tag", 0)],
            ..Default::default()
        }
    }
    fn drop(&mut self, reason: &str) {
        self.rx += 1;
        self.dropped.iter_mut().find(|(r, _)| *r == reason).unwrap().1 += 1;
    }
    fn ack(&mut self, s: Status) {
        self.rx += 1;
        self.status[s as usize] += 1;
    }
    pub fn tx(&self) -> u64 {
        self.status.iter().sum()
    }
}

/// Sends `r` and asserts the ack's status.
pub fn expect_status(c: &Client, e: &mut Expect, r: &MoveRepr, want: Status, what: &str) {
    let got = c.send(r);
    assert_eq!(got, Some(want), "{what}: seq {} player {} key_id {}", r.seq, r.player_id, r.key_id);
    e.ack(want);
}

/// Sends `r`, counts and returns whatever status came back.
pub fn send_counted(c: &Client, e: &mut Expect, r: &MoveRepr) -> Status {
    let got = c.send(r).unwrap_or_else(|| panic!("no ack for seq {} player {}", r.seq, r.player_id));
    e.ack(got);
    got
}

/// Sends raw bytes and asserts that nothing comes back.
pub fn expect_silence(c: &Client, e: &mut Expect, bytes: &[u8], reason: &'static str) {
    c.sock.set_read_timeout(Some(crate::SILENCE_WAIT)).unwrap();
    c.send_raw(bytes);
    let got = c.recv();
    c.sock.set_read_timeout(Some(crate::ACK_WAIT)).unwrap();
    if let Some(b) = got {
        panic!("{reason}: the appliance answered a datagram it must drop silently: {} bytes", b.len());
    }
    e.drop(reason);
}

/// Polls `ironhoard stats --json` until the totals equal `e` (the workers
/// publish after each batch), then checks the per-queue sums too.
pub fn assert_counters(a: &Appliance, e: &Expect) -> Value {
    let t0 = Instant::now();
    loop {
        let s = a.stats();
        let mut ok = s["rx"].as_u64() == Some(e.rx) && s["tx"].as_u64() == Some(e.tx());
        for st in Status::ALL {
            ok &= s[st.name()].as_u64() == Some(e.status[st as usize]);
        }
        for (r, n) in e.dropped {
            ok &= s["dropped"][r].as_u64() == Some(n);
        }
        if ok {
            // queues hold what the workers saw; the XDP program's early
            // drops (xdp backend) count only in the totals
            let xdp = |k: &str| s["xdp"][k].as_u64().unwrap_or(0);
            let xdp_drops = xdp("wrong_length") + xdp("bad_magic") + xdp("bad_version");
            let qs = s["queues"].as_array().expect("per-queue counters");
            for k in ["rx", "tx", "accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"] {
                let sum: u64 = qs.iter().map(|q| q[k].as_u64().unwrap()).sum();
                let extra = if k == "rx" { xdp_drops } else { 0 };
                assert_eq!(Some(sum + extra), s[k].as_u64(), "per-queue {k} adds up to the total");
            }
            for (r, _) in e.dropped {
                let sum: u64 = qs.iter().map(|q| q["dropped"][r].as_u64().unwrap()).sum();
                assert_eq!(Some(sum + xdp(r)), s["dropped"][r].as_u64(), "per-queue dropped.{r} adds up");
            }
            return s;
        }
        if t0.elapsed() > Duration::from_secs(3) {
            panic!("counters differ from the traffic sent\nexpected {e:?}\ngot {s:#}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every ack status, every silent drop, key rotation, exact counters.
pub fn every_status_and_drop(backend: &'static str, v6: bool) {
    let lab = Lab::new(1);
    let s = Settings { backend, key_ids: 2, rate_per_second: 1, rate_burst: 5, players_per_worker: 8, ..Default::default() };
    let a = Appliance::start(&lab, s.clone());
    let c = Client::new(&lab, v6, s.port);
    let mut e = Expect::new();
    let g = 100u32;
    let mv = Client::mv;

    // P1: accepted, duplicate, stale and the window edge
    expect_status(&c, &mut e, &mv(0, g, 1, 1), Status::Accepted, "first move");
    expect_status(&c, &mut e, &mv(0, g, 1, 1), Status::Duplicate, "retransmit");
    expect_status(&c, &mut e, &mv(0, g, 1, 2000), Status::Accepted, "jump ahead");
    expect_status(&c, &mut e, &mv(0, g, 1, 2000 - 1024), Status::Stale, "highest-1024");
    expect_status(&c, &mut e, &mv(0, g, 1, 2000 - 1023), Status::Accepted, "highest-1023 is judged");
    expect_status(&c, &mut e, &mv(0, g, 1, 1), Status::Stale, "old seq");
    // INVALID, each rule, checked before duplicate
    let invalid: [InvalidRule; 7] = [
        ("seq 0", |r| r.seq = 0),
        ("kind 0", |r| r.kind = 0),
        ("kind 4", |r| r.kind = 4),
        ("flags", |r| r.flags = 0x80),
        ("reserved", |r| r.reserved = 1),
        ("x off board", |r| r.x = 64),
        ("y off board", |r| r.y = 32),
    ];
    for (what, f) in invalid {
        let mut r = mv(0, g, 1, 2000);
        f(&mut r);
        expect_status(&c, &mut e, &r, Status::Invalid, what);
    }
    let mut edge = mv(0, g, 1, 1990);
    edge.x = 63;
    edge.y = 31;
    expect_status(&c, &mut e, &edge, Status::Accepted, "board edge is on the board");

    // P2: token bucket (burst 5, 1 token per second). Only a refill could
    // change these outcomes, and none can happen in under a second: a run
    // that took longer (a slow machine) proves nothing and is repeated with
    // a new player, never judged.
    let mut p2 = None;
    for attempt in 0..5u32 {
        let p = 2 + 1000 * attempt;
        let t0 = Instant::now();
        let got: Vec<Status> = [(1, "within burst"), (2, ""), (3, ""), (4, "1 token left"), (4, "duplicate"), (5, "last token"), (6, "over burst"), (5, "dup, empty")]
            .iter()
            .map(|&(seq, _)| send_counted(&c, &mut e, &mv(0, g, p, seq)))
            .collect();
        if t0.elapsed() < Duration::from_millis(900) {
            p2 = Some((p, got));
            break;
        }
        eprintln!("token bucket: attempt {attempt} took {:?}, a token may have been refilled meanwhile: inconclusive, again", t0.elapsed());
    }
    let (p2, got) = p2.expect("5 attempts at 8 round trips each took over 900 ms");
    use Status::{Accepted as A, Duplicate as D, RateLimited as R};
    // the duplicate at 1 token left cost nothing: seq 5 still got the last one
    assert_eq!(got, [A, A, A, A, D, A, R, D], "burst 5: duplicates cost no token, the 6th new seq is RATE_LIMITED");
    std::thread::sleep(Duration::from_millis(1100)); // at least one token's worth; longer only refills more
    expect_status(&c, &mut e, &mv(0, g, p2, 6), Status::Accepted, "refilled");

    // key rotation: key_id 1 works alongside key_id 0, on the player's one
    // window whatever the key_id (SPEC §1)
    expect_status(&c, &mut e, &mv(0, g, 3, 1), Status::Accepted, "key_id 0");
    expect_status(&c, &mut e, &mv(1, g, 3, 1), Status::Duplicate, "the same seq under key_id 1");
    expect_status(&c, &mut e, &mv(1, g, 3, 2), Status::Accepted, "key_id 1");
    expect_status(&c, &mut e, &mv(0, g, 3, 2), Status::Duplicate, "the same seq back under key_id 0");

    // table: fill what is left of it (players_per_worker = 8)
    let have = (|| {
        let t0 = Instant::now();
        loop {
            let s = a.stats();
            if s["accepted"].as_u64() == Some(e.status[Status::Accepted as usize]) || t0.elapsed() > Duration::from_secs(3) {
                return s["players"].as_u64().unwrap() as u32;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    for p in 10..10 + (8 - have) {
        expect_status(&c, &mut e, &mv(0, g, p, 1), Status::Accepted, "filling the table");
    }
    // (a player beyond those the fill took, however many it took)
    expect_status(&c, &mut e, &mv(0, g, 99, 1), Status::Busy, "table full");
    expect_status(&c, &mut e, &mv(0, g, 99, 1), Status::Busy, "still full, nothing recorded");
    let mut r = mv(0, g, 99, 1);
    r.kind = 9;
    expect_status(&c, &mut e, &r, Status::Invalid, "invalid is judged before busy");
    expect_status(&c, &mut e, &mv(0, g, 1, 2001), Status::Accepted, "known players unaffected");

    // silent drops
    let good = mv(0, g, 1, 3000).to_bytes(&Client::mac(0, g, 1));
    for len in [0usize, 1, 47, 48, 63] {
        expect_silence(&c, &mut e, &good[..len], "wrong_length");
    }
    let mut long = good.to_vec();
    long.push(0);
    expect_silence(&c, &mut e, &long, "wrong_length");
    expect_silence(&c, &mut e, &[0u8; 1200], "wrong_length");
    let mut b = good;
    b[0] = b'X';
    expect_silence(&c, &mut e, &b, "bad_magic");
    let mut b = good;
    b[1] = b'A'; // an ack's magic
    expect_silence(&c, &mut e, &b, "bad_magic");
    let mut b = good;
    b[2] = 2;
    expect_silence(&c, &mut e, &b, "bad_version");
    let r = mv(7, g, 1, 3000);
    expect_silence(&c, &mut e, &r.to_bytes(&Client::mac(0, g, 1)), "unknown_key_id");
    let mut b = good;
    b[63] ^= 0x01;
    expect_silence(&c, &mut e, &b, "bad_tag");
    let mut b = good;
    b[20] ^= 0x01; // seq changed after signing
    expect_silence(&c, &mut e, &b, "bad_tag");
    // signed with key 1's player key but claiming key_id 0
    let r = mv(0, g, 1, 3000);
    expect_silence(&c, &mut e, &r.to_bytes(&Client::mac(1, g, 1)), "bad_tag");
    // a forged move for an unknown player takes no slot: P20 is still BUSY-free? no:
    // the table is full, so prove only that the known player still moves on.
    expect_status(&c, &mut e, &mv(0, g, 1, 3000), Status::Accepted, "the real move after forgeries");

    let stats = assert_counters(&a, &e);
    assert_eq!(stats["players"].as_u64(), Some(8), "table fill");
}

/// A replay from another source port (another socket) is still a
/// duplicate: the player's window is found whatever the 4-tuple.
pub fn replay_from_other_port_is_duplicate(backend: &'static str, queues: u32) {
    let lab = Lab::new(queues);
    let s = Settings { backend, queues, ..Default::default() };
    let a = Appliance::start(&lab, s.clone());
    let mut e = Expect::new();
    for p in 0..32u32 {
        let c1 = Client::new(&lab, false, s.port);
        expect_status(&c1, &mut e, &Client::mv(0, 5, p, 1), Status::Accepted, "first");
        for v6 in [false, true] {
            let c2 = Client::new(&lab, v6, s.port);
            expect_status(&c2, &mut e, &Client::mv(0, 5, p, 1), Status::Duplicate, "replay from another port");
        }
    }
    let s = assert_counters(&a, &e);
    if backend == "xdp" && queues > 1 {
        // the point of the test: moves arrived on a queue whose poller does
        // not own their player, and were handed to the owner
        let qs = s["queues"].as_array().unwrap();
        let handed: u64 = qs.iter().map(|q| q["handoffs"].as_u64().unwrap()).sum();
        assert!(handed > 0, "no move was handed between pollers: the test proved nothing: {s}");
        assert!(qs.iter().all(|q| q["rx"].as_u64().unwrap() > 0), "both queues received moves: {s}");
        assert_eq!(qs.iter().map(|q| q["handoffs_dropped"].as_u64().unwrap()).sum::<u64>(), 0);
        // one move at a time: the owner was asleep in poll(2) and was woken
        // by the handing poller, not left to its 10 ms timeout
        let wakes: u64 = qs.iter().map(|q| q["peer_wakes"].as_u64().unwrap()).sum();
        assert!(wakes > 0, "no owner was woken by a handoff: {s}");
        // each handed move was authenticated with its player's key looked
        // up in the handing poller's key cache, and a player's later moves
        // found it there (published with the counters)
        let hits: u64 = qs.iter().map(|q| q["key_cache_hits"].as_u64().unwrap()).sum();
        let misses: u64 = qs.iter().map(|q| q["key_cache_misses"].as_u64().unwrap()).sum();
        assert!(hits + misses >= handed, "{handed} handed moves, {hits} + {misses} key cache lookups: {s}");
        assert!(hits > 0, "no handed move found its player's key in the cache: {s}");

        // forgeries for players of the other poller never reach its mailbox:
        // dropped (bad_tag) by the poller they arrive on
        let before = handed;
        for p in 0..32u32 {
            let c = Client::new(&lab, false, 7777);
            c.sock.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
            let mut b = Client::mv(0, 5, p, 99).to_bytes(&Client::mac(0, 5, p));
            b[63] ^= 1;
            c.send_raw(&b);
            assert!(c.recv().is_none(), "a forgery was answered");
        }
        let s2 = a.stats();
        let handed2: u64 = s2["queues"].as_array().unwrap().iter().map(|q| q["handoffs"].as_u64().unwrap()).sum();
        assert_eq!(handed2, before, "forgeries were handed between pollers");
        assert!(s2["dropped"]["bad_tag"].as_u64().unwrap() >= 32, "{s2}");
    }
}

/// A rule a move can break: its name and how to break it.
type InvalidRule = (&'static str, fn(&mut MoveRepr));
