//! The move generator: N games × M players, each player with its own
//! increasing seq, kinds and coordinates varied, and a hostile mix by ratio.
//! Every move is built and signed by the shared wire crate.

use std::collections::HashMap;

use ironhoard_wire::{MasterKey, Move, MoveRepr, PlayerMac, MOVE_LEN};

/// Bit 63 of client_ts marks a hostile datagram: an ack carrying it means
/// the appliance answered something it must have dropped.
pub const HOSTILE_TS: u64 = 1 << 63;

/// What a generated datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A fresh, valid move: expects ACCEPTED (or RATE_LIMITED/BUSY).
    Valid,
    /// A valid move with an already-sent seq: expects DUPLICATE or STALE
    /// (ACCEPTED only if the original was never accepted).
    Replay,
    /// Tag broken: must be dropped silently.
    Forged,
    /// Signed with the player's key but naming another key_id: silent.
    WrongKey,
    /// Not 64 bytes: silent.
    Junk,
}

impl Class {
    #[cfg(test)]
    pub fn expects_ack(self) -> bool {
        matches!(self, Class::Valid | Class::Replay)
    }
}

/// Fractions of all datagrams that are hostile, by kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Mix {
    pub forged: f64,
    pub wrong_key: f64,
    pub junk: f64,
    pub replay: f64,
}

/// Player keys: pre-keyed MACs for the generated population, derived on
/// demand (and cached) for anyone else, e.g. players in a foreign capture.
pub struct Keys {
    master: MasterKey,
    pub key_id: u8,
    pub games: u32,
    pub players: u32,
    macs: Vec<PlayerMac>,
    extra: HashMap<(u32, u32), PlayerMac>,
    /// The first game id (games are game_base..game_base+games).
    pub game_base: u32,
    /// Each player's first seq.
    pub first_seq: u64,
}

impl Keys {
    #[cfg(test)]
    pub fn new(secret: &[u8; 32], key_id: u8, games: u32, players: u32) -> Keys {
        Self::with_base(secret, key_id, games, players, 1, 1)
    }

    /// The same population with game ids from `game_base` and seqs from
    /// `first_seq` (a probe: its own game id, seqs no earlier run used).
    pub fn with_base(secret: &[u8; 32], key_id: u8, games: u32, players: u32, game_base: u32, first_seq: u64) -> Keys {
        let master = MasterKey::new(secret);
        let mut macs = Vec::with_capacity((games * players) as usize);
        for g in 0..games {
            for p in 0..players {
                macs.push(master.player_mac(game_base + g, p + 1));
            }
        }
        Keys { master, key_id, games, players, macs, extra: HashMap::new(), game_base, first_seq }
    }

    /// Index of a generated player (games and players count from 1).
    pub fn index(&self, game: u32, player: u32) -> Option<usize> {
        if (self.game_base..self.game_base.saturating_add(self.games)).contains(&game) && (1..=self.players).contains(&player) {
            Some(((game - self.game_base) * self.players + (player - 1)) as usize)
        } else {
            None
        }
    }

    /// (game_id, player_id) of the generated player at index `i`.
    pub fn ids_at(&self, i: usize) -> (u32, u32) {
        ((i as u32 / self.players) + self.game_base, (i as u32 % self.players) + 1)
    }

    pub fn mac_at(&self, i: usize) -> &PlayerMac {
        &self.macs[i]
    }

    /// The MAC of any player (derived and cached if not generated here).
    pub fn mac(&mut self, game: u32, player: u32) -> &PlayerMac {
        match self.index(game, player) {
            Some(i) => &self.macs[i],
            None => {
                let m = &self.master;
                self.extra.entry((game, player)).or_insert_with(|| m.player_mac(game, player))
            }
        }
    }

    pub fn population(&self) -> usize {
        self.macs.len()
    }
}

/// xorshift64*: fast, deterministic per seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Counts of what was generated, by class.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Generated {
    pub valid: u64,
    pub replay: u64,
    pub forged: u64,
    pub wrong_key: u64,
    pub junk: u64,
}

impl Generated {
    pub fn total(&self) -> u64 {
        self.valid + self.replay + self.forged + self.wrong_key + self.junk
    }
    pub fn expected_silent(&self) -> u64 {
        self.forged + self.wrong_key + self.junk
    }
    pub fn count(&mut self, c: Class) {
        match c {
            Class::Valid => self.valid += 1,
            Class::Replay => self.replay += 1,
            Class::Forged => self.forged += 1,
            Class::WrongKey => self.wrong_key += 1,
            Class::Junk => self.junk += 1,
        }
    }
}

/// Builds datagrams for one sender thread.
pub struct Generator {
    keys: std::sync::Arc<Keys>,
    next_seq: Vec<u64>,
    cursor: usize,
    first: usize,
    stride: usize,
    /// Only the players poller `.0` of `.1` owns (`--players-of-poller`).
    owned_by: Option<(usize, usize)>,
    rng: Rng,
    mix: Mix,
    board: (u16, u16),
    pub generated: Generated,
}

impl Generator {
    #[cfg(test)]
    pub fn new(keys: std::sync::Arc<Keys>, mix: Mix, board: (u16, u16), seed: u64) -> Generator {
        Self::new_subset(keys, mix, board, seed, 0, 1)
    }

    /// A generator for the players `first, first + stride, ...` only (one
    /// per sender thread: each player's seqs stay in one thread, in order).
    pub fn new_subset(keys: std::sync::Arc<Keys>, mix: Mix, board: (u16, u16), seed: u64, first: usize, stride: usize) -> Generator {
        let n = keys.population();
        let first_seq = keys.first_seq;
        Generator {
            keys,
            next_seq: vec![first_seq; n],
            cursor: first % n,
            first: first % n,
            stride: stride.max(1),
            owned_by: None,
            rng: Rng::new(seed),
            mix,
            board,
            generated: Generated::default(),
        }
    }

    /// Keeps only the players that poller `poller` of an appliance with
    /// `pollers` queues owns; None if this generator names none of them.
    pub fn only_owned_by(mut self, poller: usize, pollers: usize) -> Option<Generator> {
        let owned = |i: usize| self.owns(i, poller, pollers);
        let any = (self.first..self.next_seq.len()).step_by(self.stride).any(owned);
        self.owned_by = Some((poller, pollers));
        any.then_some(self)
    }

    fn owns(&self, i: usize, poller: usize, pollers: usize) -> bool {
        let (game, player) = self.keys.ids_at(i);
        ironhoard_dataplane::mesh::owner_of(game, player, pollers) == poller
    }

    /// The next player in this generator's share (and owner, if set).
    fn next_player(&mut self) -> usize {
        loop {
            let i = self.cursor;
            self.cursor += self.stride;
            if self.cursor >= self.next_seq.len() {
                self.cursor = self.first;
            }
            match self.owned_by {
                Some((o, n)) if !self.owns(i, o, n) => continue,
                _ => return i,
            }
        }
    }

    fn pick_class(&mut self) -> Class {
        let u = self.rng.unit();
        let m = self.mix;
        if u < m.forged {
            Class::Forged
        } else if u < m.forged + m.wrong_key {
            Class::WrongKey
        } else if u < m.forged + m.wrong_key + m.junk {
            Class::Junk
        } else if u < m.forged + m.wrong_key + m.junk + m.replay {
            Class::Replay
        } else {
            Class::Valid
        }
    }

    /// Writes the next datagram into `out` (at least 256 bytes) stamped
    /// with `now_ns`; returns its length and class.
    pub fn next(&mut self, out: &mut [u8], now_ns: u64) -> (usize, Class) {
        let mut class = self.pick_class();
        let i = self.next_player();
        if class == Class::Junk {
            let len = loop {
                let l = (self.rng.next() % 200) as usize;
                if l != MOVE_LEN {
                    break l;
                }
            };
            for b in out[..len].iter_mut() {
                *b = self.rng.next() as u8;
            }
            if len >= 2 && self.rng.next().is_multiple_of(2) {
                out[0] = 0x49; // sometimes with the right magic
                out[1] = 0x48;
            }
            self.generated.count(class);
            return (len, class);
        }
        let seq = match class {
            Class::Replay if self.next_seq[i] > self.keys.first_seq => {
                let back = 1 + self.rng.next() % (self.next_seq[i] - self.keys.first_seq).min(64);
                self.next_seq[i] - back
            }
            Class::Replay => {
                class = Class::Valid;
                self.take_seq(i)
            }
            Class::Valid => self.take_seq(i),
            // hostile moves use fresh-looking seqs that the player never sends
            _ => self.next_seq[i] + 1_000_000_000,
        };
        let r = self.rng.next();
        let (game, player) = self.keys.ids_at(i);
        let hostile = matches!(class, Class::Forged | Class::WrongKey);
        let repr = MoveRepr {
            key_id: if class == Class::WrongKey { self.keys.key_id.wrapping_add(1 + (r % 254) as u8) } else { self.keys.key_id },
            kind: 1 + (r % 3) as u8,
            flags: 0,
            reserved: 0,
            game_id: game,
            player_id: player,
            seq,
            client_ts: if hostile { now_ns | HOSTILE_TS } else { now_ns & !HOSTILE_TS },
            x: ((r >> 8) % self.board.0 as u64) as u16,
            y: ((r >> 24) % self.board.1 as u64) as u16,
            payload: (r ^ seq).to_be_bytes().repeat(2)[..12].try_into().expect("12 bytes"),
        };
        repr.emit(&mut Move::new_unchecked(&mut out[..MOVE_LEN]), self.keys.mac_at(i));
        if class == Class::Forged {
            out[MOVE_LEN - 1 - (r % 16) as usize] ^= 1 << (r % 8);
        }
        self.generated.count(class);
        (MOVE_LEN, class)
    }

    fn take_seq(&mut self, i: usize) -> u64 {
        let s = self.next_seq[i];
        self.next_seq[i] += 1;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_wire::MoveRepr;
    use std::sync::Arc;

    #[test]
    fn valid_moves_verify_and_hostile_ones_do_not() {
        let keys = Arc::new(Keys::new(&[3; 32], 0, 2, 5));
        let mix = Mix { forged: 0.1, wrong_key: 0.1, junk: 0.1, replay: 0.1 };
        let mut g = Generator::new(Arc::clone(&keys), mix, (16, 16), 42);
        let mut buf = [0u8; 256];
        let mut seqs = std::collections::HashMap::new();
        for n in 0..5000u64 {
            let (len, class) = g.next(&mut buf, n);
            if class == Class::Junk {
                assert_ne!(len, 64);
                continue;
            }
            let m = Move::new_checked(&buf[..len]).unwrap();
            let r = MoveRepr::parse(&m).unwrap();
            let i = keys.index(r.game_id, r.player_id).unwrap();
            let ok = m.verify_tag(keys.mac_at(i)) && r.key_id == 0;
            assert_eq!(ok, class.expects_ack(), "{class:?}");
            assert!(r.x < 16 && r.y < 16 && (1..=3).contains(&r.kind));
            if class == Class::Valid {
                let last = seqs.insert((r.game_id, r.player_id), r.seq);
                assert!(last.map_or(r.seq == 1, |l| r.seq == l + 1), "seq increases by one per player");
            }
            if class == Class::Replay {
                assert!(r.seq < *seqs.get(&(r.game_id, r.player_id)).unwrap() + 1);
            }
        }
        let gn = g.generated;
        assert_eq!(gn.total(), 5000);
        // a subset generator only names its own players
        let mut h = Generator::new_subset(Arc::clone(&keys), Mix::default(), (16, 16), 1, 1, 3);
        for n in 0..30 {
            let (len, _) = h.next(&mut buf, n);
            let r = MoveRepr::parse(&Move::new_checked(&buf[..len]).unwrap()).unwrap();
            assert_eq!(keys.index(r.game_id, r.player_id).unwrap() % 3, 1);
        }
        // aimed at one poller's players: only those, and all of them
        let mut seen = std::collections::HashSet::new();
        let mut o = Generator::new_subset(Arc::clone(&keys), Mix::default(), (16, 16), 1, 0, 1).only_owned_by(1, 2).unwrap();
        for n in 0..100 {
            let (len, _) = o.next(&mut buf, n);
            let r = MoveRepr::parse(&Move::new_checked(&buf[..len]).unwrap()).unwrap();
            assert_eq!(ironhoard_dataplane::mesh::owner_of(r.game_id, r.player_id, 2), 1, "{r:?}");
            seen.insert((r.game_id, r.player_id));
        }
        let owned = (1..=2u32).flat_map(|g| (1..=5u32).map(move |p| (g, p))).filter(|&(g, p)| (g ^ p) % 2 == 1).count();
        assert_eq!(seen.len(), owned);
        // a share with none of the poller's players is refused
        assert!(Generator::new_subset(Arc::clone(&keys), Mix::default(), (16, 16), 1, 0, 1).only_owned_by(999_999, 1_000_000).is_none());
        assert!(gn.forged > 300 && gn.junk > 300 && gn.wrong_key > 300 && gn.replay > 300, "{gn:?}");
    }

    #[test]
    fn a_probe_population_has_its_own_game_ids_and_seqs() {
        let keys = Arc::new(Keys::with_base(&[5; 32], 0, 2, 3, 4_000_000_000, 1_000_000));
        let mut g = Generator::new(Arc::clone(&keys), Mix::default(), (8, 8), 7);
        let mut buf = [0u8; 256];
        let master = MasterKey::new(&[5; 32]);
        for n in 0..12u64 {
            let (len, _) = g.next(&mut buf, n);
            let m = ironhoard_wire::Move::new_checked(&buf[..len]).unwrap();
            assert!((4_000_000_000..4_000_000_002).contains(&m.game_id()), "game {}", m.game_id());
            assert!(m.seq() >= 1_000_000 && m.seq() < 1_000_002, "seq {}", m.seq());
            assert!(m.verify_tag(&master.player_mac(m.game_id(), m.player_id())));
        }
    }
}
