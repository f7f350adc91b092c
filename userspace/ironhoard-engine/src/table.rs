//! The per-worker player table: fixed capacity, allocated once at start,
//! open addressing with linear probing over a dense key array.
//!
//! One entry per player, `(game_id, player_id)`, whatever key_id it signs
//! with (SPEC §1): the anti-replay window and the token buckets are the
//! player's, so during a key rotation a seq ACCEPTED under one key_id is
//! DUPLICATE under another. What depends on the key_id is the entry's
//! *keyed state*: the set of key_ids the player has moves accepted under
//! ([`PlayerState::keys`]), and the pre-keyed HMAC states of up to
//! [`KEYED_SLOTS`] of them, most recently used first (a cache: a player
//! signing with a third key_id at once costs one key derivation per move
//! of the least recently used one, nothing else changes).
//!
//! Eviction policy: none while one of the player's keys is live. An entry
//! holds the player's anti-replay window; dropping it would let a captured
//! move be accepted a second time, so a player who goes quiet keeps its
//! slot. When every slot is taken, moves from players not in the table are
//! acked BUSY (players already in it are unaffected). A reload that retires
//! or re-keys a key_id drops that key's keyed state from every entry (its
//! moves no longer verify), and an entry left with no keyed state is freed:
//! key rotation is what frees slots (see docs/operations.md).

use crate::bucket::TokenBucket;
use crate::window::ReplayWindow;
use crate::slots::Slots;
use ironhoard_wire::PlayerMac;

/// Identity of a table entry: a player, whatever key_id it signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayerId {
    pub game_id: u32,
    pub player_id: u32,
}

/// Pre-keyed HMAC states an entry keeps: a rotation has at most a couple
/// of key_ids in use by one player at a time.
pub const KEYED_SLOTS: usize = 2;

/// A set of key_ids (256 bits, no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySet([u64; 4]);

impl KeySet {
    #[inline]
    pub fn insert(&mut self, key_id: u8) {
        self.0[(key_id >> 6) as usize] |= 1 << (key_id & 63);
    }
    #[inline]
    pub fn remove(&mut self, key_id: u8) {
        self.0[(key_id >> 6) as usize] &= !(1 << (key_id & 63));
    }
    #[inline]
    pub fn contains(&self, key_id: u8) -> bool {
        self.0[(key_id >> 6) as usize] & (1 << (key_id & 63)) != 0
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
    /// Keeps only the key_ids also in `other`.
    #[inline]
    pub fn retain_in(&mut self, other: &KeySet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a &= b;
        }
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// Keeps the key_ids for which `keep` is true (visits set bits only).
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(u8) -> bool) {
        for (i, w) in self.0.iter_mut().enumerate() {
            let mut bits = *w;
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                if !keep((i as u32 * 64 + b) as u8) {
                    *w &= !(1u64 << b);
                }
            }
        }
    }
    /// The key_ids, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&k| self.contains(k))
    }
}

impl FromIterator<u8> for KeySet {
    fn from_iter<I: IntoIterator<Item = u8>>(it: I) -> KeySet {
        let mut s = KeySet::default();
        it.into_iter().for_each(|k| s.insert(k));
        s
    }
}

/// A player's HMAC state pre-keyed with its player key under one key_id.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub key_id: u8,
    pub mac: PlayerMac,
}

/// Everything the engine keeps per player.
#[derive(Debug, Clone)]
pub struct PlayerState {
    pub window: ReplayWindow,
    pub bucket: TokenBucket,
    /// Answers to DUPLICATE and STALE moves, with the same rate and burst:
    /// a captured move replayed (from spoofed sources) is answered at most
    /// at the player's own rate, then dropped (`replay_over_limit`).
    pub replies: TokenBucket,
    /// The key_ids the player has a move ACCEPTED (recorded in the move
    /// log) under, each still configured with the secret it had then. The
    /// entry lives while this is not empty.
    pub keys: KeySet,
    /// Pre-keyed HMAC states, most recently used first; filled from the
    /// front.
    macs: [Option<Keyed>; KEYED_SLOTS],
    /// The engine's key epoch this entry's keyed state was last checked
    /// against (see [`PlayerState::revalidate`]).
    pub epoch: u32,
}

impl PlayerState {
    /// A state with no move accepted yet, `first` its only cached keyed
    /// HMAC state.
    pub fn new(first: Keyed, window: ReplayWindow, bucket: TokenBucket, replies: TokenBucket) -> PlayerState {
        let mut macs: [Option<Keyed>; KEYED_SLOTS] = Default::default();
        macs[0] = Some(first);
        PlayerState { window, bucket, replies, keys: KeySet::default(), macs, epoch: 0 }
    }

    /// The state of a player whose moves were accepted under the key_ids
    /// of `keyed` (most recently used first: the first [`KEYED_SLOTS`] are
    /// cached); `None` if `keyed` is empty.
    pub fn restored(keyed: &[Keyed], window: ReplayWindow, bucket: TokenBucket, replies: TokenBucket) -> Option<PlayerState> {
        let mut st = PlayerState::new(keyed.first()?.clone(), window, bucket, replies);
        for (slot, k) in st.macs.iter_mut().zip(keyed) {
            *slot = Some(k.clone());
        }
        st.keys = keyed.iter().map(|k| k.key_id).collect();
        Some(st)
    }

    /// Where the HMAC state for `key_id` is cached, if it is.
    #[inline]
    pub fn mac_slot(&self, key_id: u8) -> Option<usize> {
        self.macs.iter().position(|k| matches!(k, Some(k) if k.key_id == key_id))
    }

    /// The cached HMAC state in `slot` ([`mac_slot`](Self::mac_slot)).
    #[inline]
    pub fn mac(&self, slot: usize) -> &PlayerMac {
        &self.macs[slot].as_ref().expect("a filled keyed slot").mac
    }

    /// Makes `slot` the most recently used one (slot 0); returns 0.
    #[inline]
    pub fn touch(&mut self, slot: usize) -> usize {
        if slot != 0 {
            self.macs[..=slot].rotate_right(1);
        }
        0
    }

    /// Caches a keyed HMAC state as the most recently used, replacing the
    /// least recently used one when every slot is filled; returns its slot
    /// (0). No allocation.
    pub fn cache(&mut self, k: Keyed) -> usize {
        self.macs.rotate_right(1);
        self.macs[0] = Some(k);
        0
    }

    /// The cached keyed states' key_ids, most recently used first.
    pub fn cached(&self) -> impl Iterator<Item = u8> + '_ {
        self.macs.iter().flatten().map(|k| k.key_id)
    }

    /// Drops every keyed state whose key_id is not in `live` (a reload
    /// retired it or gave it another secret); returns whether any is left
    /// (whether the entry must stay).
    pub fn keep_keys(&mut self, live: &KeySet) -> bool {
        self.keys.retain_in(live);
        self.keep_macs(|k| live.contains(k));
        !self.keys.is_empty()
    }

    /// Brings the entry to key epoch `now`: drops every keyed state whose
    /// key_id was retired or re-keyed (`retired_at[key_id]`, the epoch that
    /// did it) after the entry was last checked. Returns whether any keyed
    /// state is left. Cheap when nothing changed: one compare.
    #[inline]
    pub fn revalidate(&mut self, now: u32, retired_at: &[u32; 256]) -> bool {
        if self.epoch != now {
            let e = self.epoch;
            self.keys.retain(|k| retired_at[k as usize] <= e);
            self.keep_macs(|k| retired_at[k as usize] <= e);
            self.epoch = now;
        }
        !self.keys.is_empty()
    }

    fn keep_macs(&mut self, keep: impl Fn(u8) -> bool) {
        for k in self.macs.iter_mut() {
            if matches!(k, Some(k) if !keep(k.key_id)) {
                *k = None;
            }
        }
        // filled slots first, in their order
        let mut w = 0;
        for r in 0..self.macs.len() {
            if self.macs[r].is_some() {
                self.macs.swap(w, r);
                w += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Key {
    game_id: u32,
    player_id: u32,
    used: bool,
}

impl Key {
    #[inline]
    fn is(&self, id: &PlayerId) -> bool {
        self.used && self.game_id == id.game_id && self.player_id == id.player_id
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
    keys: Slots<Key>,
    states: Slots<Option<PlayerState>>,
    mask: usize,
    len: usize,
    capacity: usize,
    seed: u64,
}

impl PlayerTable {
    /// Allocates room for `capacity` players (slots: the next power of two
    /// at or above 4/3 of it, so probes stay short). `seed` keys the hash.
    /// Both arrays are on transparent hugepages where the kernel has them
    /// ([`Slots`]); a failing mmap(2) panics, as a failing allocation
    /// would.
    pub fn new(capacity: usize, seed: u64) -> PlayerTable {
        let capacity = capacity.max(1);
        let slots = (capacity + capacity / 3 + 1).next_power_of_two();
        PlayerTable {
            keys: Slots::new(slots, Key::default()).unwrap_or_else(|e| panic!("{e}")),
            states: Slots::new(slots, None).unwrap_or_else(|e| panic!("{e}")),
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
    /// Whether the kernel took the transparent hugepage advice for both
    /// arrays ([`Slots::advised`]); `None` when /proc/self/smaps cannot tell.
    pub fn hugepage_advised(&self) -> Option<bool> {
        Some(self.keys.advised()? && self.states.advised()?)
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

    /// Asks the CPU to fetch the key-array line of `id`'s first probe: a
    /// hint that reads nothing. With a table larger than the cache a lookup
    /// misses twice, on that line and on the state's; a poller hints a
    /// whole batch's key lines, then each state a few moves ahead of its
    /// turn ([`prefetch_state`](Self::prefetch_state)), and the misses
    /// overlap instead of following one another.
    #[inline]
    pub fn prefetch_key(&self, id: &PlayerId) {
        prefetch(&self.keys[self.hash(id) as usize & self.mask]);
    }

    /// Looks `id` up (cheap once [`prefetch_key`](Self::prefetch_key)
    /// brought its key line) and asks the CPU to fetch its state's lines.
    #[inline]
    pub fn prefetch_state(&self, id: &PlayerId) {
        if let Slot::Found(slot) = self.lookup(id) {
            prefetch(&self.states[slot]);
        }
    }

    /// Stores a new player in the vacant slot `lookup` returned.
    pub fn insert(&mut self, slot: usize, id: PlayerId, state: PlayerState) -> Result<&mut PlayerState, TableFull> {
        if self.is_full() {
            return Err(TableFull(self.capacity));
        }
        debug_assert!(!self.keys[slot].used);
        self.keys[slot] = Key { game_id: id.game_id, player_id: id.player_id, used: true };
        self.len += 1;
        Ok(self.states[slot].insert(state))
    }

    /// Offers every stored player to `keep`, which may change its state,
    /// and removes those for which it returns false (backward-shift
    /// deletion: no tombstones, probes stay as short as before). Returns
    /// how many were removed. No allocation. An entry moved by a removal
    /// may be offered twice: `keep` must give the same answer again.
    pub fn retain(&mut self, keep: impl FnMut(&PlayerId, &mut PlayerState) -> bool) -> usize {
        self.retain_slice(0, usize::MAX, keep).1
    }

    /// Slots in the table (the walk of [`retain_slice`](Self::retain_slice)
    /// covers `0..slots()`).
    pub fn slots(&self) -> usize {
        self.mask + 1
    }

    /// Removes the player in `slot` (a slot `lookup` found).
    pub fn remove(&mut self, slot: usize) {
        debug_assert!(self.keys[slot].used);
        self.remove_at(slot);
    }

    /// [`retain`](Self::retain) over slots `from..from + n` only: the next
    /// slot to look at and how many players were removed. A walk in slices
    /// `0..slots()` offers every player that stayed in the table throughout
    /// at least once: a removal only moves entries from ahead of the
    /// cursor to it (backward shift), or, wrapping, from the table's start,
    /// already walked.
    pub fn retain_slice(&mut self, from: usize, n: usize, mut keep: impl FnMut(&PlayerId, &mut PlayerState) -> bool) -> (usize, usize) {
        let end = from.saturating_add(n).min(self.mask + 1);
        let mut removed = 0;
        let mut i = from;
        while i < end {
            let k = self.keys[i];
            if k.used {
                let id = PlayerId { game_id: k.game_id, player_id: k.player_id };
                let st = self.states[i].as_mut().expect("a used slot holds a state");
                if !keep(&id, st) {
                    self.remove_at(i);
                    removed += 1;
                    continue;
                }
            }
            i += 1;
        }
        (end, removed)
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
            let home = self.hash(&PlayerId { game_id: k.game_id, player_id: k.player_id }) as usize & self.mask;
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
                f(&PlayerId { game_id: k.game_id, player_id: k.player_id }, s);
            }
        }
    }

    /// The state in a slot `lookup` found.
    #[inline]
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut PlayerState> {
        self.states.get_mut(slot).and_then(|s| s.as_mut())
    }
}

/// Asks the CPU to bring every cache line of `*v` (a value or a slice)
/// into its caches. Only a hint: it reads nothing, cannot fault, and
/// changes no result.
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let len = size_of_val(v);
        let p = (v as *const T).cast::<i8>();
        let mut off = 0;
        while off < len {
            // SAFETY: SSE is in the x86-64 baseline, and PREFETCHT0 reads
            // no memory and never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
        // the last line, when `v` does not start on a line boundary
        // SAFETY: as above.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(len.saturating_sub(1))) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::BucketConfig;
    use ironhoard_wire::MasterKey;

    fn keyed(key_id: u8) -> Keyed {
        Keyed { key_id, mac: MasterKey::new(&[1 + key_id; 32]).player_mac(0, 0) }
    }

    #[test]
    fn a_default_sized_table_is_advised_for_hugepages() {
        let t = PlayerTable::new(65_536, 1);
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if thp.contains("[always]") || thp.contains("[madvise]") {
            assert_eq!(t.hugepage_advised(), Some(true));
        }
        assert_eq!(t.keys.as_ptr() as usize % crate::slots::HUGE, 0);
        assert_eq!(t.states.as_ptr() as usize % crate::slots::HUGE, 0);
    }

    fn state_under(key_id: u8) -> PlayerState {
        let b = TokenBucket::full(&BucketConfig { rate_per_second: 1, burst: 1 }, 0);
        let mut st = PlayerState::new(keyed(key_id), ReplayWindow::new(), b, b);
        st.keys.insert(key_id);
        st
    }

    fn state() -> PlayerState {
        state_under(0)
    }

    #[test]
    fn fills_to_capacity_then_refuses() {
        let mut t = PlayerTable::new(100, 42);
        for p in 0..100u32 {
            let id = PlayerId { game_id: 1, player_id: p };
            match t.lookup(&id) {
                Slot::Vacant(i) => {
                    t.insert(i, id, state()).unwrap();
                }
                Slot::Found(_) => panic!("dup"),
            }
        }
        assert!(t.is_full());
        let id = PlayerId { game_id: 1, player_id: 1000 };
        let Slot::Vacant(i) = t.lookup(&id) else { panic!() };
        assert_eq!(t.insert(i, id, state()).unwrap_err(), TableFull(100));
        for p in 0..100u32 {
            let id = PlayerId { game_id: 1, player_id: p };
            assert!(matches!(t.lookup(&id), Slot::Found(_)));
        }
    }

    #[test]
    fn one_entry_per_player_whatever_the_key_id() {
        let mut t = PlayerTable::new(4, 0);
        let a = PlayerId { game_id: 1, player_id: 2 };
        let Slot::Vacant(i) = t.lookup(&a) else { panic!() };
        t.insert(i, a, state_under(0)).unwrap();
        let Slot::Found(s) = t.lookup(&a) else { panic!() };
        let st = t.get_mut(s).unwrap();
        assert_eq!(st.mac_slot(0), Some(0));
        assert_eq!(st.mac_slot(1), None);
        assert!(matches!(t.lookup(&PlayerId { game_id: 2, player_id: 1 }), Slot::Vacant(_)));
    }

    #[test]
    fn keyed_slots_are_a_bounded_most_recently_used_cache() {
        let mut st = state_under(0);
        assert_eq!(st.cached().collect::<Vec<_>>(), [0]);
        assert_eq!(st.cache(keyed(1)), 0);
        assert_eq!(st.cached().collect::<Vec<_>>(), [1, 0]);
        assert_eq!(st.mac_slot(0), Some(1));
        assert_eq!(st.touch(1), 0);
        assert_eq!(st.cached().collect::<Vec<_>>(), [0, 1]);
        // a third key_id replaces the least recently used state (1)
        st.cache(keyed(2));
        assert_eq!(st.cached().collect::<Vec<_>>(), [2, 0]);
        assert_eq!(st.mac_slot(1), None);
        // the macs are the ones cached
        let probe = [7u8; 48];
        assert_eq!(st.mac(st.mac_slot(0).unwrap()).tag(&probe), keyed(0).mac.tag(&probe));
        assert_eq!(st.mac(st.mac_slot(2).unwrap()).tag(&probe), keyed(2).mac.tag(&probe));
    }

    #[test]
    fn keep_keys_drops_retired_keyed_states_and_says_when_none_is_left() {
        let mut st = state_under(0);
        st.cache(keyed(1));
        st.keys.insert(1);
        st.keys.insert(5); // accepted under 5, its mac no longer cached
        let live: KeySet = [1u8, 5].into_iter().collect();
        assert!(st.keep_keys(&live));
        assert_eq!(st.keys.iter().collect::<Vec<_>>(), [1, 5]);
        assert_eq!(st.cached().collect::<Vec<_>>(), [1]);
        assert!(st.keep_keys(&[5u8].into_iter().collect()), "key 5 holds the entry with no mac cached");
        assert_eq!(st.cached().count(), 0);
        // a mac is cached again from the front
        st.cache(keyed(5));
        assert_eq!(st.cached().collect::<Vec<_>>(), [5]);
        assert!(!st.keep_keys(&[0u8, 1].into_iter().collect()), "no keyed state left");
        assert_eq!(st.cached().count(), 0);
    }

    #[test]
    fn key_sets() {
        let mut s = KeySet::default();
        assert!(s.is_empty());
        for k in [0u8, 63, 64, 200, 255] {
            s.insert(k);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 63, 64, 200, 255]);
        assert_eq!(s.len(), 5);
        s.remove(63);
        assert!(!s.contains(63) && s.contains(64));
        s.retain_in(&[64u8, 255, 7].into_iter().collect());
        assert_eq!(s.iter().collect::<Vec<_>>(), [64, 255]);
    }

    #[test]
    fn retain_removes_and_keeps_every_other_player_findable() {
        // a small table, so clusters wrap around the end
        let mut t = PlayerTable::new(40, 7);
        let id = |n: u32| PlayerId { game_id: n % 5, player_id: n };
        for n in 0..40 {
            let Slot::Vacant(s) = t.lookup(&id(n)) else { panic!("dup") };
            t.insert(s, id(n), state_under((n % 3) as u8)).unwrap();
        }
        let live: KeySet = [0u8, 2].into_iter().collect();
        let removed = t.retain(|_, st| st.keep_keys(&live));
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
