//! Per-player sequence tracking: flags moves that arrive out of order.

use std::collections::HashMap;

/// The last seq seen per (game, player).
///
/// [`check`](Self::check) says whether a seq is above the last one
/// committed; [`commit`](Self::commit) records a seq once the game applied
/// the move (so a move nak'ed and redelivered is not flagged twice).
#[derive(Debug, Default, Clone)]
pub struct OrderTracker {
    last: HashMap<(u32, u32), u64>,
}

impl OrderTracker {
    pub fn new() -> OrderTracker {
        OrderTracker::default()
    }

    /// Whether `seq` is above the last committed seq of the player (true
    /// for a player's first move).
    pub fn check(&self, game_id: u32, player_id: u32, seq: u64) -> bool {
        self.last.get(&(game_id, player_id)).is_none_or(|&last| seq > last)
    }

    /// Records `seq` as applied (the last seq only grows).
    pub fn commit(&mut self, game_id: u32, player_id: u32, seq: u64) {
        let last = self.last.entry((game_id, player_id)).or_insert(seq);
        *last = (*last).max(seq);
    }

    /// The last committed seq of a player.
    pub fn last(&self, game_id: u32, player_id: u32) -> Option<u64> {
        self.last.get(&(game_id, player_id)).copied()
    }

    /// Number of players tracked.
    pub fn players(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_seq_not_above_last() {
        let mut t = OrderTracker::new();
        assert!(t.check(7, 1, 5));
        t.commit(7, 1, 5);
        assert!(!t.check(7, 1, 5), "a repeat");
        assert!(!t.check(7, 1, 4), "an older one");
        assert!(t.check(7, 1, 6));
        assert!(t.check(7, 2, 1), "another player");
        assert!(t.check(8, 1, 1), "another game");
        t.commit(7, 1, 3); // an out-of-order move applied anyway
        assert_eq!(t.last(7, 1), Some(5), "the last seq never goes back");
        t.commit(7, 1, 9);
        assert!(!t.check(7, 1, 8));
        assert_eq!(t.players(), 1);
    }
}
