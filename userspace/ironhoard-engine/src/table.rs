//! The per-worker player table: fixed capacity, allocated once at start,
//! open addressing with linear probing over a dense key array.
//!
//! Eviction policy: none while a player's key is live. An entry holds the
//! player's anti-replay window; dropping it would let a captured move be
//! accepted a second time, so a player who goes quiet keeps its slot. When
//! every slot is taken, moves from players not in the table are acked BUSY
//! (players already in it are unaffected). Size `players_per_worker` for the
//! players that can be active during one key period; retiring a key_id
//! (key rotation) is what frees entries (see docs/operations.md).

use crate::bucket::TokenBucket;
use crate::window::ReplayWindow;
use ironhoard_wire::PlayerMac;

/// Identity of a table entry: a player under one master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayerId {
    pub game_id: u32,
    pub player_id: u32,
    pub key_id: u8,
}

/// Everything the engine keeps per player.
#[derive(Debug, Clone)]
pub struct PlayerState {
    /// HMAC state pre-keyed with the player key.
    pub mac: PlayerMac,
    pub window: ReplayWindow,
    pub bucket: TokenBucket,
    /// Answers to DUPLICATE and STALE moves, with the same rate and burst:
    /// a captured move replayed (from spoofed sources) is answered at most
    /// at the player's own rate, then dropped (`replay_over_limit`).
    pub replies: TokenBucket,
}

#[derive(Debug, Clone, Copy, Default)]
struct Key {
    game_id: u32,
    player_id: u32,
    key_id: u8,
    used: bool,
}

impl Key {
    #[inline]
    fn is(&self, id: &PlayerId) -> bool {
        self.used && self.game_id == id.game_id && self.player_id == id.player_id && self.key_id == id.key_id
    }
}

/// Result of a lookup: the slot holding the player, or the free slot where
/// it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Found(usize),
    Vacant(usize),
}

/// Returned by [`PlayerTable::insert`] when `capacity` players are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("player table full ({0} players)")]
pub struct TableFull(pub usize);

/// Fixed-capacity open-addressing table of [`PlayerState`].
pub struct PlayerTable {
    keys: Vec<Key>,
    states: Vec<Option<PlayerState>>,
    mask: usize,
    len: usize,
    capacity: usize,
    seed: u64,
}

impl PlayerTable {
    /// Allocates room for `capacity` players (slots: the next power of two
    /// at or above 4/3 of it, so probes stay short). `seed` keys the hash.
    pub fn new(capacity: usize, seed: u64) -> PlayerTable {
        let capacity = capacity.max(1);
        let slots = (capacity + capacity / 3 + 1).next_power_of_two();
        PlayerTable {
            keys: vec![Key::default(); slots],
            states: vec![None; slots],
            mask: slots - 1,
            len: 0,
            capacity,
            seed,
        }
    }

    /// Players stored.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Players that fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    #[inline]
    fn hash(&self, id: &PlayerId) -> u64 {
        // splitmix64 finaliser over the packed id, keyed by a per-process
        // seed. Only authenticated players are ever inserted, so the seed
        // is defence in depth against crafted id collisions.
        let mut z = ((id.game_id as u64) << 32 | id.player_id as u64) ^ self.seed;
        z = z.wrapping_add((id.key_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Finds the player's slot, or the vacant slot it would take.
    #[inline]
    pub fn lookup(&self, id: &PlayerId) -> Slot {
        let mut i = self.hash(id) as usize & self.mask;
        loop {
            let k = &self.keys[i];
            if !k.used {
                return Slot::Vacant(i);
            }
            if k.is(id) {
                return Slot::Found(i);
            }
            // There is always a vacant slot (slots > capacity), so this ends.
            i = (i + 1) & self.mask;
        }
    }

    /// Stores a new player in the vacant slot `lookup` returned.
    pub fn insert(&mut self, slot: usize, id: PlayerId, state: PlayerState) -> Result<&mut PlayerState, TableFull> {
        if self.is_full() {
            return Err(TableFull(self.capacity));
        }
        debug_assert!(!self.keys[slot].used);
        self.keys[slot] = Key { game_id: id.game_id, player_id: id.player_id, key_id: id.key_id, used: true };
        self.len += 1;
        Ok(self.states[slot].insert(state))
    }

    /// Removes every player for which `keep` is false (backward-shift
    /// deletion: no tombstones, probes stay as short as before). Returns
    /// how many were removed. No allocation.
    pub fn retain(&mut self, mut keep: impl FnMut(&PlayerId) -> bool) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i <= self.mask {
            let k = self.keys[i];
            if k.used && !keep(&PlayerId { game_id: k.game_id, player_id: k.player_id, key_id: k.key_id }) {
                self.remove_at(i);
                removed += 1;
                // another entry may have moved into slot i: look again
                continue;
            }
            i += 1;
        }
        removed
    }

    fn remove_at(&mut self, mut hole: usize) {
        self.keys[hole].used = false;
        self.states[hole] = None;
        self.len -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let k = self.keys[j];
            if !k.used {
                return;
            }
            let home = self.hash(&PlayerId { game_id: k.game_id, player_id: k.player_id, key_id: k.key_id }) as usize & self.mask;
            // the entry at j stays if its home lies cyclically in (hole, j]
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if stays {
                continue;
            }
            self.keys[hole] = k;
            self.states[hole] = self.states[j].take();
            self.keys[j].used = false;
            hole = j;
        }
    }

    /// Every stored player's id and state.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&PlayerId, &mut PlayerState)) {
        for (k, s) in self.keys.iter().zip(self.states.iter_mut()) {
            if let (true, Some(s)) = (k.used, s.as_mut()) {
                f(&PlayerId { game_id: k.game_id, player_id: k.player_id, key_id: k.key_id }, s);
            }
        }
    }

    /// The state in a slot `lookup` found.
    #[inline]
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut PlayerState> {
        self.states.get_mut(slot).and_then(|s| s.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::BucketConfig;
    use ironhoard_wire::MasterKey;

    fn state() -> PlayerState {
        PlayerState {
            replies: crate::bucket::TokenBucket::full(&crate::bucket::BucketConfig { rate_per_second: 1, burst: 1 }, 0),
            mac: MasterKey::new(&[1; 32]).player_mac(0, 0),
            window: ReplayWindow::new(),
            bucket: TokenBucket::full(&BucketConfig { rate_per_second: 1, burst: 1 }, 0),
        }
    }

    #[test]
    fn fills_to_capacity_then_refuses() {
        let mut t = PlayerTable::new(100, 42);
        for p in 0..100u32 {
            let id = PlayerId { game_id: 1, player_id: p, key_id: 0 };
            match t.lookup(&id) {
                Slot::Vacant(i) => {
                    t.insert(i, id, state()).unwrap();
                }
                Slot::Found(_) => panic!("dup"),
            }
        }
        assert!(t.is_full());
        let id = PlayerId { game_id: 1, player_id: 1000, key_id: 0 };
        let Slot::Vacant(i) = t.lookup(&id) else { panic!() };
        assert_eq!(t.insert(i, id, state()).unwrap_err(), TableFull(100));
        for p in 0..100u32 {
            let id = PlayerId { game_id: 1, player_id: p, key_id: 0 };
            assert!(matches!(t.lookup(&id), Slot::Found(_)));
        }
    }

    #[test]
    fn key_id_is_part_of_the_identity() {
        let mut t = PlayerTable::new(4, 0);
        let a = PlayerId { game_id: 1, player_id: 2, key_id: 0 };
        let b = PlayerId { key_id: 1, ..a };
        let Slot::Vacant(i) = t.lookup(&a) else { panic!() };
        t.insert(i, a, state()).unwrap();
        assert!(matches!(t.lookup(&a), Slot::Found(_)));
        assert!(matches!(t.lookup(&b), Slot::Vacant(_)));
    }

    #[test]
    fn retain_removes_and_keeps_every_other_player_findable() {
        // a small table, so clusters wrap around the end
        let mut t = PlayerTable::new(40, 7);
        let id = |n: u32| PlayerId { game_id: n % 5, player_id: n, key_id: (n % 3) as u8 };
        for n in 0..40 {
            let Slot::Vacant(s) = t.lookup(&id(n)) else { panic!("dup") };
            t.insert(s, id(n), state()).unwrap();
        }
        let removed = t.retain(|p| p.key_id != 1);
        assert_eq!(removed, (0..40).filter(|n| n % 3 == 1).count());
        assert_eq!(t.len(), 40 - removed);
        for n in 0..40 {
            let found = matches!(t.lookup(&id(n)), Slot::Found(_));
            assert_eq!(found, n % 3 != 1, "player {n}");
        }
        // and the freed room is usable again
        for n in 100..100 + removed as u32 {
            let Slot::Vacant(s) = t.lookup(&id(n)) else { panic!("dup") };
            t.insert(s, id(n), state()).unwrap();
        }
        assert!(t.is_full());
        for n in (0..40).filter(|n| n % 3 != 1).chain(100..100 + removed as u32) {
            assert!(matches!(t.lookup(&id(n)), Slot::Found(_)), "player {n}");
        }
    }
}
