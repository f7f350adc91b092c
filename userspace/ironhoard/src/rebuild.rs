//! Rebuilding the workers' player tables from the move log at start.
//!
//! One entry per player, (game_id, player_id), whatever the key_id (SPEC
//! §1): its window holds the seqs of all its records. Only players with a
//! live key take a slot: for each (player, key_id) the newest record (by
//! receive time, then log order) is checked once under the configured
//! secret ([`Keyring::keyed_state`]); a key_id no longer configured, or
//! re-keyed since (its records are of a retired secret), fails, and its
//! records cannot be replayed. A player with no live key is left out.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ironhoard_engine::{Keyed, Keyring, PlayerId, ReplayWindow};
use ironhoard_movelog::Record;
use ironhoard_wire::{Move, MOVE_LEN};

/// A player rebuilt from the move log: its window (every seq it has in
/// the log, whatever the key_id) and its live keyed states, most recently
/// used first.
pub type Restored = (PlayerId, ReplayWindow, Vec<Keyed>);

/// The newest record of one (player, key_id): receive time and move.
#[derive(Clone, Copy)]
struct Newest {
    key_id: u8,
    recv_ns: u64,
    mv: [u8; MOVE_LEN],
}

/// What the log holds for one player: its window, and the newest record
/// per key_id (inline for the usual one or two key_ids, so a record costs
/// one map lookup).
#[derive(Default)]
struct Logged {
    window: ReplayWindow,
    newest: [Option<Newest>; 2],
    more: Vec<Newest>,
}

impl Logged {
    fn add(&mut self, key_id: u8, recv_ns: u64, mv: &[u8; MOVE_LEN]) {
        let n = Newest { key_id, recv_ns, mv: *mv };
        for slot in self.newest.iter_mut() {
            match slot {
                Some(s) if s.key_id == key_id => {
                    if recv_ns >= s.recv_ns {
                        *s = n;
                    }
                    return;
                }
                None => {
                    *slot = Some(n);
                    return;
                }
                Some(_) => {}
            }
        }
        match self.more.iter_mut().find(|s| s.key_id == key_id) {
            Some(s) if recv_ns >= s.recv_ns => *s = n,
            Some(_) => {}
            None => self.more.push(n),
        }
    }

    fn newest(&self) -> impl Iterator<Item = &Newest> {
        self.newest.iter().flatten().chain(self.more.iter())
    }
}

/// A fast hasher for player ids read from the log (authenticated moves:
/// no adversary chooses them at will).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// What [`Rebuild::finish`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Distinct players in the log.
    pub players: usize,
    /// Players restored (with a live key).
    pub restored: usize,
    /// (player, key_id) pairs in the log, and those no longer live.
    pub keyed_states: usize,
    pub dead_states: usize,
}

/// Collects the log's records (through [`visit`](Self::visit)), then
/// hands each worker its players.
#[derive(Default)]
pub struct Rebuild {
    players: HashMap<PlayerId, Logged, BuildHasherDefault<IdHasher>>,
}

impl Rebuild {
    /// One record read back from the log.
    pub fn visit(&mut self, r: &Record) {
        let m = Move::new_unchecked(&r.mv[..]);
        if m.check_header().is_err() {
            return;
        }
        let p = self.players.entry(PlayerId { game_id: m.game_id(), player_id: m.player_id() }).or_default();
        p.window.restore(m.seq());
        p.add(m.key_id(), r.recv_unix_ns, &r.mv);
    }

    /// Checks each (player, key_id)'s newest record under `keys` (on up to
    /// `threads` threads) and returns, per worker (a player belongs to
    /// worker `(game_id ^ player_id) % workers`, as the data path steers),
    /// the players with a live key.
    pub fn finish(self, keys: &Keyring, workers: usize, threads: usize) -> (Vec<Vec<Restored>>, Summary) {
        let mut sum = Summary { players: self.players.len(), ..Summary::default() };
        let all: Vec<(PlayerId, Logged)> = self.players.into_iter().collect();
        let chunk = all.len().div_ceil(threads.max(1)).max(1);
        let parts: Vec<(Vec<Restored>, usize, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = all
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        let (mut out, mut states, mut dead) = (Vec::new(), 0, 0);
                        for (id, p) in c {
                            let mut live: Vec<(u64, Keyed)> = Vec::new();
                            for n in p.newest() {
                                states += 1;
                                match keys.keyed_state(&n.mv) {
                                    Some(k) => live.push((n.recv_ns, k)),
                                    None => dead += 1,
                                }
                            }
                            if !live.is_empty() {
                                live.sort_by_key(|k| std::cmp::Reverse(k.0)); // most recent first
                                out.push((*id, p.window.clone(), live.into_iter().map(|(_, k)| k).collect()));
                            }
                        }
                        (out, states, dead)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("a key-check thread panicked")).collect()
        });
        let mut per_worker: Vec<Vec<Restored>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
        for (out, states, dead) in parts {
            sum.keyed_states += states;
            sum.dead_states += dead;
            sum.restored += out.len();
            for r in out {
                per_worker[((r.0.game_id ^ r.0.player_id) % workers.max(1) as u32) as usize].push(r);
            }
        }
        (per_worker, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_engine::window::WindowCheck;
    use ironhoard_wire::{MasterKey, MoveRepr};

    const S0: [u8; 32] = [0x11; 32];
    const S1: [u8; 32] = [0x22; 32];
    const S0_NEW: [u8; 32] = [0x33; 32];

    fn rec(secret: &[u8; 32], key_id: u8, player: u32, seq: u64, t: u64) -> Record {
        let r = MoveRepr { key_id, kind: 1, game_id: 7, player_id: player, seq, ..Default::default() };
        Record { offset: 0, recv_unix_ns: t, queue: 0, mv: r.to_bytes(&MasterKey::new(secret).player_mac(7, player)) }
    }

    fn rebuild(recs: &[Record], keys: &Keyring, threads: usize) -> (HashMap<u32, (ReplayWindow, Vec<u8>)>, Summary) {
        let mut b = Rebuild::default();
        recs.iter().for_each(|r| b.visit(r));
        let (w, s) = b.finish(keys, 2, threads);
        let mut m = HashMap::new();
        for (i, list) in w.into_iter().enumerate() {
            for (id, win, keyed) in list {
                assert_eq!(((id.game_id ^ id.player_id) % 2) as usize, i, "the owning worker");
                m.insert(id.player_id, (win, keyed.iter().map(|k| k.key_id).collect()));
            }
        }
        (m, s)
    }

    #[test]
    fn one_window_per_player_from_every_key_id_while_both_are_live() {
        let recs = [rec(&S0, 0, 1, 1, 10), rec(&S0, 0, 1, 2, 11), rec(&S1, 1, 1, 3, 12), rec(&S0, 0, 2, 1, 13)];
        for threads in [1, 3] {
            let (m, s) = rebuild(&recs, &Keyring::from_secrets(&[S0, S1]), threads);
            assert_eq!(s, Summary { players: 2, restored: 2, keyed_states: 3, dead_states: 0 });
            let (w, keys) = &m[&1];
            assert_eq!(keys, &[1, 0], "most recently used first");
            for seq in 1..=3 {
                assert_eq!(w.check(seq), WindowCheck::Duplicate, "seq {seq}");
            }
            assert_eq!(m[&2].1, [0]);
        }
    }

    #[test]
    fn players_of_retired_or_rekeyed_keys_take_no_slot() {
        // player 1 moved to key 1; player 2 stayed on key 0; player 3 only
        // ever under key 1; player 4 under key 0's new secret after the re-key
        let recs = [
            rec(&S0, 0, 1, 1, 10),
            rec(&S0, 0, 2, 1, 11),
            rec(&S1, 1, 1, 2, 12),
            rec(&S1, 1, 3, 1, 13),
            rec(&S0_NEW, 0, 4, 1, 14),
        ];
        // key 0 re-keyed
        let (m, s) = rebuild(&recs, &Keyring::from_secrets(&[S0_NEW, S1]), 2);
        assert_eq!(s, Summary { players: 4, restored: 3, keyed_states: 5, dead_states: 2 });
        assert!(!m.contains_key(&2), "no live key");
        assert_eq!(m[&1].1, [1]);
        assert_eq!(m[&1].0.check(1), WindowCheck::Duplicate, "the window keeps the seq of the retired key's record");
        assert_eq!(m[&3].1, [1]);
        assert_eq!(m[&4].1, [0]);
        // key 0 no longer configured at all
        let (m, s) = rebuild(&recs, &Keyring::from_secrets(&[[0x44; 32], S1]), 1);
        assert_eq!((s.restored, s.dead_states), (2, 3));
        assert!(m.contains_key(&1) && m.contains_key(&3));
    }

    #[test]
    fn the_newest_record_of_a_key_id_decides_across_a_rekey() {
        // player 1 under key 0's old secret, then under its new one: live
        let recs = [rec(&S0, 0, 1, 1, 10), rec(&S0_NEW, 0, 1, 2, 20), rec(&S0, 0, 1, 3, 20)];
        let (m, _) = rebuild(&recs[..2], &Keyring::from_secrets(&[S0_NEW]), 1);
        assert_eq!(m[&1].1, [0]);
        // the same receive time: the later record (log order) is the newest
        let (m, _) = rebuild(&recs, &Keyring::from_secrets(&[S0_NEW]), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn more_than_two_key_ids_per_player() {
        let s: Vec<[u8; 32]> = (0..4u8).map(|k| [0x50 + k; 32]).collect();
        let recs: Vec<Record> = (0..8u64).map(|i| rec(&s[(i % 4) as usize], (i % 4) as u8, 1, i + 1, i)).collect();
        let (m, sum) = rebuild(&recs, &Keyring::from_secrets(&s), 1);
        assert_eq!(m[&1].1, [3, 2, 1, 0]);
        assert_eq!((sum.keyed_states, sum.dead_states), (4, 0));
    }
}
