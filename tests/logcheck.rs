//! Checking a move log against what the client saw: the set of moves
//! ironhoard-pktgen acked ACCEPTED (`--accepted-out`), compared exactly with
//! the records, whatever was lost on the way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use ironhoard_movelog::{LogReader, Record};
use ironhoard_wire::{MasterKey, Move};

use crate::secret;

/// (key_id, game, player, seq)
pub type MoveId = (u8, u32, u32, u64);

pub fn id_of(r: &Record) -> MoveId {
    let m = Move::new_unchecked(&r.mv[..]);
    (m.key_id(), m.game_id(), m.player_id(), m.seq())
}

/// Every record of every partition; panics on any reported damage or gap.
pub fn read_log(dir: &Path) -> Vec<Record> {
    let mut r = LogReader::open(dir, &[], None).expect("log opens");
    let mut v = Vec::new();
    loop {
        match r.next() {
            Ok(Some(x)) => v.push(x),
            Ok(None) => break,
            Err(e) => panic!("reading {}: {e}", dir.display()),
        }
    }
    v
}

/// Records unique per move, offsets dense per partition, tags verify (test
/// secrets 0 and 1), wall-clock timestamps. Returns the set of moves.
pub fn check_records(recs: &[Record]) -> HashSet<MoveId> {
    let mk = [MasterKey::new(&secret(0)), MasterKey::new(&secret(1))];
    let mut seen = HashSet::new();
    let mut next: HashMap<u16, u64> = HashMap::new();
    let mut by_q: Vec<&Record> = recs.iter().collect();
    by_q.sort_by_key(|r| (r.queue, r.offset));
    for r in by_q {
        let n = next.entry(r.queue).or_insert(r.offset);
        assert_eq!(r.offset, *n, "offsets dense in partition q{}", r.queue);
        *n += 1;
        let m = Move::new_checked(&r.mv[..]).unwrap();
        assert!(seen.insert(id_of(r)), "move {:?} recorded twice", id_of(r));
        assert!(m.verify_tag(&mk[m.key_id() as usize].player_mac(m.game_id(), m.player_id())), "record q{}:{} tag verifies", r.queue, r.offset);
        assert!(r.recv_unix_ns > 1_600_000_000_000_000_000, "server timestamp is wall-clock");
    }
    seen
}

/// The moves a pktgen `--accepted-out` file lists.
pub fn read_accepted(path: &Path) -> BTreeSet<MoveId> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0] as u8, v[1] as u32, v[2] as u32, v[3])
        })
        .collect()
}

/// The log against the client's view, exactly: every move the client saw
/// ACCEPTED is in the log; the log holds nothing else but accepted moves
/// whose ack was lost (at most `lost_acks` of them: equality when none was
/// lost). Returns (acked ACCEPTED, logged).
pub fn assert_log_matches_client(logdir: &Path, accepted_file: &Path, lost_acks: u64) -> (usize, usize) {
    let acked = read_accepted(accepted_file);
    let logged = check_records(&read_log(logdir));
    let missing: Vec<_> = acked.iter().filter(|m| !logged.contains(m)).take(5).collect();
    assert!(missing.is_empty(), "acked ACCEPTED but not in the log, e.g. {missing:?} (of {})", acked.len());
    let extra = logged.len() - acked.len();
    assert!(
        extra as u64 <= lost_acks,
        "{extra} logged moves the client never saw ACCEPTED, but only {lost_acks} acks were lost"
    );
    if lost_acks > 0 {
        eprintln!("log vs client: {lost_acks} acks lost, so the log may hold up to that many moves the client did not see ACCEPTED ({extra} do)");
    }
    (acked.len(), logged.len())
}
