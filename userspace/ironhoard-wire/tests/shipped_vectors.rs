//! The shipped-message vectors (clients/testdata/shipped-v1.json, written by
//! tools/gen_shipped_vectors.py from the docs, independently of this crate)
//! checked against `ironhoard_wire::shipped`.

use ironhoard_wire::{
    partition, MasterKey, MoveRepr, MsgId, PartitionStream, PartitionSubjects, Shipped, ShippedRepr, StreamName,
    Subject, PAYLOAD_LEN,
};

#[derive(serde::Deserialize)]
struct File {
    payload_len: usize,
    subject_prefix: String,
    stream: String,
    cases: Vec<Case>,
    forged: Vec<Forged>,
    malformed: Vec<Malformed>,
    partitions: Vec<Part>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    master_secret_hex: String,
    payload_hex: String,
    #[serde(rename = "move")]
    mv: MoveFields,
    recv_unix_ns: u64,
    queue: u16,
    offset: u64,
    msg_id: String,
    verifies: bool,
    routes: Vec<Route>,
}

#[derive(serde::Deserialize)]
struct MoveFields {
    key_id: u8,
    kind: u8,
    flags: u8,
    game_id: u32,
    player_id: u32,
    seq: u64,
    client_ts: u64,
    x: u16,
    y: u16,
    payload_hex: String,
    tag_hex: String,
}

#[derive(serde::Deserialize)]
struct Route {
    partitions: u16,
    subject: String,
    stream: String,
}

#[derive(serde::Deserialize)]
struct Forged {
    name: String,
    master_secret_hex: String,
    payload_hex: String,
}

#[derive(serde::Deserialize)]
struct Malformed {
    name: String,
    payload_hex: String,
}

#[derive(serde::Deserialize)]
struct Part {
    game_id: u32,
    n: u16,
    partition: u16,
}

fn file() -> File {
    let f: File = serde_json::from_str(include_str!("../../../clients/testdata/shipped-v1.json")).unwrap();
    assert_eq!(f.payload_len, PAYLOAD_LEN);
    assert!(f.cases.len() >= 6 && f.forged.len() >= 4 && f.malformed.len() >= 4 && f.partitions.len() >= 50);
    f
}

fn master(hex_secret: &str) -> MasterKey {
    MasterKey::new(&hex::decode(hex_secret).unwrap().try_into().unwrap())
}

/// Whether a payload's tag verifies under the master secret.
fn verifies(master: &MasterKey, payload: &[u8]) -> bool {
    let s = Shipped::new_checked(payload).unwrap();
    let m = s.mv();
    m.verify_tag(&master.player_mac(m.game_id(), m.player_id()))
}

#[test]
fn cases_parse_to_their_fields_and_reemit_identically() {
    for c in file().cases {
        let bytes = hex::decode(&c.payload_hex).unwrap();
        let s = Shipped::new_checked(&bytes[..]).unwrap_or_else(|e| panic!("case {}: {e}", c.name));
        let r = ShippedRepr::parse(&s).unwrap();
        assert_eq!((r.recv_unix_ns, r.queue, r.offset), (c.recv_unix_ns, c.queue, c.offset), "case {}", c.name);
        assert_eq!((s.recv_unix_ns(), s.queue(), s.offset()), (c.recv_unix_ns, c.queue, c.offset), "case {}", c.name);
        let m = MoveRepr::parse(&s.mv()).unwrap();
        let f = &c.mv;
        assert_eq!(
            (m.key_id, m.kind, m.flags, m.game_id, m.player_id, m.seq, m.client_ts, m.x, m.y),
            (f.key_id, f.kind, f.flags, f.game_id, f.player_id, f.seq, f.client_ts, f.x, f.y),
            "case {}",
            c.name
        );
        assert_eq!(hex::encode(m.payload), f.payload_hex, "case {}", c.name);
        assert_eq!(hex::encode(s.mv().tag()), f.tag_hex, "case {}", c.name);
        assert_eq!(&r.to_bytes()[..], &bytes[..], "case {}: re-emitted", c.name);
        assert_eq!(s.msg_id().to_string(), c.msg_id, "case {}", c.name);
        let id = MsgId { game_id: f.game_id, player_id: f.player_id, seq: f.seq };
        assert_eq!(id.to_string(), c.msg_id);
        assert_eq!(verifies(&master(&c.master_secret_hex), &bytes), c.verifies, "case {}", c.name);
        assert!(c.verifies, "case {}: every vector case is a valid move", c.name);
    }
}

#[test]
fn cases_route_as_listed() {
    let f = file();
    for c in &f.cases {
        let mut ns: Vec<u16> = c.routes.iter().map(|r| r.partitions).collect();
        ns.sort();
        assert_eq!(ns, [1, 3, 8], "case {}", c.name);
        for r in &c.routes {
            let game_id = c.mv.game_id;
            let subject = Subject { prefix: &f.subject_prefix, game_id, partitions: r.partitions };
            assert_eq!(subject.to_string(), r.subject, "case {} n={}", c.name, r.partitions);
            let stream = StreamName { stream: &f.stream, game_id, partitions: r.partitions };
            assert_eq!(stream.to_string(), r.stream, "case {} n={}", c.name, r.partitions);
            // the partition's stream and subject filter contain the game's
            let p = partition(game_id, r.partitions);
            let ps = PartitionStream { stream: &f.stream, partitions: r.partitions, partition: p };
            assert_eq!(ps.to_string(), r.stream);
            let filter = PartitionSubjects { prefix: &f.subject_prefix, partitions: r.partitions, partition: p }.to_string();
            let stem = filter.strip_suffix('*').unwrap();
            assert_eq!(r.subject, format!("{stem}{game_id}"), "case {} n={}", c.name, r.partitions);
        }
    }
}

#[test]
fn partition_table() {
    for p in file().partitions {
        assert_eq!(partition(p.game_id, p.n), p.partition, "game {} n {}", p.game_id, p.n);
    }
}

#[test]
fn malformed_payloads_are_refused() {
    for m in file().malformed {
        let bytes = hex::decode(&m.payload_hex).unwrap();
        assert!(Shipped::new_checked(&bytes[..]).is_err(), "{}", m.name);
        assert!(ShippedRepr::parse(&Shipped::new_unchecked(&bytes[..])).is_err(), "{}", m.name);
    }
}

#[test]
fn forged_payloads_fail_verification() {
    for f in file().forged {
        let bytes = hex::decode(&f.payload_hex).unwrap();
        assert!(!verifies(&master(&f.master_secret_hex), &bytes), "{}", f.name);
    }
}

/// The committed vectors are exactly what the independent Python generator
/// (written from docs/shipping.md, not from this crate) produces.
#[test]
fn committed_vectors_match_the_generator() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tools/gen_shipped_vectors.py"))
        .output()
        .unwrap_or_else(|e| panic!("python3 (scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read(format!("{root}/clients/testdata/shipped-v1.json")).unwrap();
    assert!(
        out.stdout == committed,
        "clients/testdata/shipped-v1.json differs from tools/gen_shipped_vectors.py's output: regenerate it with \
         python3 tools/gen_shipped_vectors.py > clients/testdata/shipped-v1.json"
    );
}
