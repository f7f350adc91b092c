//! The keyed HMAC states of players a poller does not own.
//!
//! A move that arrives on a queue whose poller does not own its player is
//! authenticated there before it is handed to the owner (a forgery never
//! reaches another poller's mailbox). Deriving the player's key for each
//! such move costs four SHA-256 compressions before the two of the check
//! itself; with n queues, (n-1)/n of the moves are such moves. This cache
//! keeps the keyed state of the players seen lately, so a hit pays only the
//! check.
//!
//! Direct-mapped, allocated once (no allocation per packet), indexed by a
//! seeded hash of (game, player, key_id). Only a key whose move verified is
//! stored, so forgeries cannot evict genuine entries. An entry is valid for
//! one key epoch: a reload that retires or re-keys a key_id bumps the epoch
//! and so empties the cache at once.

use ironhoard_wire::PlayerMac;

/// Slots of the default cache (an engine made without a size): 4096.
pub const DEFAULT_KEY_CACHE_SLOTS: usize = 4096;

/// The most slots [`slots_for`] gives a poller's cache (2^17).
pub const MAX_KEY_CACHE_SLOTS: usize = 1 << 17;

/// Slots for the cache of one of `pollers` pollers with room for
/// `players_per_worker` players each: every player of the others (a game's
/// players all move all the time, so a cache smaller than the players
/// another poller owns is cycled through and misses nearly always), at
/// least [`DEFAULT_KEY_CACHE_SLOTS`], at most [`MAX_KEY_CACHE_SLOTS`]; none
/// with one poller (no move is ever handed over).
pub fn slots_for(players_per_worker: usize, pollers: usize) -> usize {
    if pollers <= 1 {
        return 0;
    }
    players_per_worker
        .saturating_mul(pollers - 1)
        .clamp(DEFAULT_KEY_CACHE_SLOTS, MAX_KEY_CACHE_SLOTS)
        .next_power_of_two()
}

struct Entry {
    /// game_id << 32 | player_id
    id: u64,
    key_id: u8,
    epoch: u32,
    mac: PlayerMac,
}

/// See the module documentation.
pub struct KeyCache {
    slots: Box<[Option<Entry>]>,
    seed: u64,
    hits: u64,
    misses: u64,
}

impl KeyCache {
    /// A cache of `slots` entries (rounded up to a power of two; 0: no
    /// cache, every lookup misses).
    pub fn new(slots: usize, seed: u64) -> KeyCache {
        let n = if slots == 0 { 0 } else { slots.next_power_of_two() };
        KeyCache { slots: (0..n).map(|_| None).collect(), seed, hits: 0, misses: 0 }
    }

    fn index(&self, id: u64, key_id: u8) -> usize {
        // splitmix64 finaliser (as the player table), keyed per process
        let mut z = id ^ ((key_id as u64) << 56).rotate_left(7) ^ self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) as usize) & (self.slots.len() - 1)
    }

    /// The keyed state of (game, player) under `key_id`, if cached in this
    /// key `epoch`.
    #[inline]
    pub fn get(&mut self, game_id: u32, player_id: u32, key_id: u8, epoch: u32) -> Option<&PlayerMac> {
        if self.slots.is_empty() {
            self.misses += 1;
            return None;
        }
        let id = (game_id as u64) << 32 | player_id as u64;
        let i = self.index(id, key_id);
        match &self.slots[i] {
            Some(e) if e.id == id && e.key_id == key_id && e.epoch == epoch => {
                self.hits += 1;
                self.slots[i].as_ref().map(|e| &e.mac)
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `mac`, whose move just verified, replacing what held its slot.
    #[inline]
    pub fn put(&mut self, game_id: u32, player_id: u32, key_id: u8, epoch: u32, mac: &PlayerMac) {
        if self.slots.is_empty() {
            return;
        }
        let id = (game_id as u64) << 32 | player_id as u64;
        let i = self.index(id, key_id);
        self.slots[i] = Some(Entry { id, key_id, epoch, mac: mac.clone() });
    }

    /// Slots (a power of two, or 0: no cache).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes a cache of `slots` slots takes.
    pub fn bytes(slots: usize) -> usize {
        slots.next_power_of_two() * std::mem::size_of::<Option<Entry>>()
    }

    /// Lookups that found the key, and that did not, since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_wire::MasterKey;

    fn mac(g: u32, p: u32) -> PlayerMac {
        MasterKey::new(&[7; 32]).player_mac(g, p)
    }

    #[test]
    fn a_key_is_found_only_for_its_player_key_id_and_epoch() {
        let mut c = KeyCache::new(64, 1);
        assert!(c.get(1, 2, 0, 0).is_none());
        c.put(1, 2, 0, 0, &mac(1, 2));
        let m = c.get(1, 2, 0, 0).expect("cached");
        assert_eq!(m.tag(b"x"), mac(1, 2).tag(b"x"));
        assert!(c.get(1, 2, 1, 0).is_none(), "another key_id");
        assert!(c.get(2, 1, 0, 0).is_none(), "another player");
        assert!(c.get(1, 2, 0, 1).is_none(), "a later key epoch");
        assert_eq!(c.stats(), (1, 4));
    }

    #[test]
    fn a_poller_caches_the_other_pollers_players_within_bounds() {
        assert_eq!(slots_for(65_536, 1), 0, "one poller hands nothing over");
        assert_eq!(slots_for(65_536, 2), 65_536);
        assert_eq!(slots_for(65_536, 4), MAX_KEY_CACHE_SLOTS);
        assert_eq!(slots_for(100, 2), DEFAULT_KEY_CACHE_SLOTS);
        assert_eq!(slots_for(5_000, 2), 8192);
        assert_eq!(slots_for(usize::MAX, 2), MAX_KEY_CACHE_SLOTS);
    }

    #[test]
    fn a_collision_replaces_and_no_slots_means_no_cache() {
        let mut c = KeyCache::new(1, 1);
        c.put(1, 1, 0, 0, &mac(1, 1));
        c.put(1, 2, 0, 0, &mac(1, 2));
        assert!(c.get(1, 1, 0, 0).is_none());
        assert!(c.get(1, 2, 0, 0).is_some());
        let mut none = KeyCache::new(0, 1);
        none.put(1, 1, 0, 0, &mac(1, 1));
        assert!(none.get(1, 1, 0, 0).is_none());
    }
}
