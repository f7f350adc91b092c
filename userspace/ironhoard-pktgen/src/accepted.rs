//! The seqs acked ACCEPTED, per player: a second ACCEPTED for the same
//! (key_id, game, player, seq) is a replay the appliance took as new, the
//! safety violation the report counts.
//!
//! The receiver records every ack it reads, so this is on its hot path. A
//! player's seqs grow by one per move from where they started, so each
//! player keeps a bitmap from its first seq (rounded down to a word): one
//! bit test-and-set per ack and no rehash of a growing set, which at a
//! million acks a second stalled the receiver long enough to overflow its
//! ring. A seq below the bitmap or too far above it (a capture replayed
//! with other seqs, a probe) goes to a per-player set.

use std::collections::{HashMap, HashSet};

/// Words a player's bitmap may grow to (64 Mi seqs, 8 MiB, per player).
const MAX_WORDS: u64 = 1 << 20;

#[derive(Default)]
pub struct Accepted {
    players: HashMap<(u8, u32, u32), Seqs>,
}

#[derive(Default)]
struct Seqs {
    base: u64,
    bits: Vec<u64>,
    others: HashSet<u64>,
}

impl Accepted {
    /// Records an ACCEPTED (key_id, game, player, seq); false if it was
    /// recorded before.
    pub fn insert(&mut self, key_id: u8, game: u32, player: u32, seq: u64) -> bool {
        self.players.entry((key_id, game, player)).or_default().insert(seq)
    }

    /// Every recorded move, sorted.
    pub fn sorted(&self) -> Vec<(u8, u32, u32, u64)> {
        let mut v: Vec<_> = self.players.iter().flat_map(|(&(k, g, p), s)| s.iter().map(move |seq| (k, g, p, seq))).collect();
        v.sort_unstable();
        v
    }
}

impl Seqs {
    fn insert(&mut self, seq: u64) -> bool {
        if self.bits.is_empty() && self.others.is_empty() {
            self.base = seq & !63;
        }
        let word = seq.checked_sub(self.base).map(|o| o / 64).filter(|&w| w < MAX_WORDS);
        let Some(w) = word else {
            return self.others.insert(seq);
        };
        let w = w as usize;
        if w >= self.bits.len() {
            // doubling, so a player's bitmap is copied O(log n) times
            self.bits.resize((w + 1).max(2 * self.bits.len()), 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.bits[w] & bit == 0;
        self.bits[w] |= bit;
        fresh
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let from_bits = self.bits.iter().enumerate().flat_map(move |(w, &word)| {
            (0..64u64).filter(move |b| word & (1 << b) != 0).map(move |b| self.base + 64 * w as u64 + b)
        });
        from_bits.chain(self.others.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitmaps_and_the_sets_record_the_same_as_a_plain_set() {
        // seqs near each player's start (the bitmap), far below and far
        // above it (the set), some twice; compared with a plain set
        let mut a = Accepted::default();
        let mut plain = HashSet::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, g, p) = ((x % 2) as u8, (x >> 8) as u32 % 3, (x >> 16) as u32 % 5);
            let seq = match (x >> 32) % 10 {
                0 => 1_000 - (x >> 40) % 1_000,               // below a later start
                1 => 1_000_000 + 64 * MAX_WORDS + (x >> 40) % 50, // beyond the bitmap
                _ => 1_000 + (x >> 40) % 3_000,               // the run's own seqs
            };
            assert_eq!(a.insert(k, g, p, seq), plain.insert((k, g, p, seq)), "{k} {g} {p} {seq}");
        }
        let mut want: Vec<_> = plain.into_iter().collect();
        want.sort_unstable();
        assert_eq!(a.sorted(), want);
    }

    #[test]
    fn a_player_whose_first_seq_is_high_starts_its_bitmap_there() {
        let mut a = Accepted::default();
        assert!(a.insert(0, 1, 1, u64::MAX - 3));
        assert!(a.insert(0, 1, 1, u64::MAX));
        assert!(!a.insert(0, 1, 1, u64::MAX));
        assert!(a.insert(0, 1, 1, 5));
        assert_eq!(a.sorted(), vec![(0, 1, 1, 5), (0, 1, 1, u64::MAX - 3), (0, 1, 1, u64::MAX)]);
        assert_eq!(a.players[&(0, 1, 1)].bits.len(), 1);
    }
}
