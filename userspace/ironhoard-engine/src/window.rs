//! Anti-replay window, RFC 6479 style.
//!
//! Remembers the highest accepted seq and which of the 1024 seqs below and
//! including it were accepted. The bitmap is a ring of 17 words (1088 bits,
//! one word more than the window) so that moving the window forward only
//! clears whole words, never shifts.

use ironhoard_wire::REPLAY_WINDOW;

const WORD_BITS: u64 = 64;
const WORDS: usize = (REPLAY_WINDOW / WORD_BITS) as usize + 1;

/// Verdict of the window on a seq (seq 0 never reaches the window: it is
/// INVALID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowCheck {
    /// Never accepted and inside (or above) the window: may be accepted.
    Fresh,
    /// Already accepted.
    Duplicate,
    /// At or below highest - 1024: too old to judge.
    Stale,
}

/// Per-player anti-replay state: 8 + 136 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest accepted seq; 0 = nothing accepted yet (seq 0 is invalid).
    highest: u64,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub const fn new() -> ReplayWindow {
        ReplayWindow { highest: 0, ring: [0; WORDS] }
    }

    /// Highest accepted seq (0 if none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    #[inline]
    fn slot(seq: u64) -> (usize, u64) {
        (((seq / WORD_BITS) % WORDS as u64) as usize, 1u64 << (seq % WORD_BITS))
    }

    /// Judges `seq` (> 0) without changing anything.
    #[inline]
    pub fn check(&self, seq: u64) -> WindowCheck {
        debug_assert!(seq != 0);
        if seq > self.highest {
            return WindowCheck::Fresh;
        }
        if self.highest - seq >= REPLAY_WINDOW {
            return WindowCheck::Stale;
        }
        let (w, bit) = Self::slot(seq);
        if self.ring[w] & bit != 0 {
            WindowCheck::Duplicate
        } else {
            WindowCheck::Fresh
        }
    }

    /// Replays a seq read back from the move log (in any order): recorded
    /// if the window would still take it, ignored if it is stale or already
    /// recorded. Rebuilds after a restart the window the live engine had.
    pub fn restore(&mut self, seq: u64) {
        if seq != 0 && self.check(seq) == WindowCheck::Fresh {
            self.accept(seq);
        }
    }

    /// Records `seq` as accepted. Call only after [`check`](Self::check)
    /// returned [`WindowCheck::Fresh`] for it.
    #[inline]
    pub fn accept(&mut self, seq: u64) {
        debug_assert_eq!(self.check(seq), WindowCheck::Fresh);
        if seq > self.highest {
            let cur = self.highest / WORD_BITS;
            let new = seq / WORD_BITS;
            let gap = new - cur;
            if gap >= WORDS as u64 || self.highest == 0 {
                self.ring = [0; WORDS];
            } else {
                for i in 1..=gap {
                    self.ring[((cur + i) % WORDS as u64) as usize] = 0;
                }
            }
            self.highest = seq;
        }
        let (w, bit) = Self::slot(seq);
        self.ring[w] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn boundaries() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(1), WindowCheck::Fresh);
        w.accept(5000);
        assert_eq!(w.check(5000), WindowCheck::Duplicate);
        // highest - 1024 is STALE, highest - 1023 is judged
        assert_eq!(w.check(5000 - 1024), WindowCheck::Stale);
        assert_eq!(w.check(5000 - 1023), WindowCheck::Fresh);
        w.accept(5000 - 1023);
        assert_eq!(w.check(5000 - 1023), WindowCheck::Duplicate);
        assert_eq!(w.check(1), WindowCheck::Stale);
        assert_eq!(w.check(4999), WindowCheck::Fresh);
        assert_eq!(w.check(5001), WindowCheck::Fresh);
    }

    #[test]
    fn small_seqs_are_never_stale_before_1025() {
        let mut w = ReplayWindow::new();
        w.accept(1024);
        assert_eq!(w.check(1), WindowCheck::Fresh);
        w.accept(1025);
        assert_eq!(w.check(1), WindowCheck::Stale);
        assert_eq!(w.check(2), WindowCheck::Fresh);
    }

    #[test]
    fn jump_larger_than_window_forgets_everything_below() {
        let mut w = ReplayWindow::new();
        for s in 1..=100 {
            w.accept(s);
        }
        w.accept(100 + 5000);
        for s in 1..=100 {
            assert_eq!(w.check(s), WindowCheck::Stale);
        }
        assert_eq!(w.check(5100 - 1), WindowCheck::Fresh);
        assert_eq!(w.check(5100 - 1023), WindowCheck::Fresh);
    }

    #[test]
    fn jump_just_inside_ring_clears_reused_words() {
        let mut w = ReplayWindow::new();
        w.accept(64); // word 1
        w.accept(64 + 17 * 64 - 1); // wraps onto word 0 of the ring
        // 64 is now 1087 below: stale
        assert_eq!(w.check(64), WindowCheck::Stale);
        // seqs in the re-entered words must be fresh
        for s in (64 + 17 * 64 - 1 - 1023)..(64 + 17 * 64 - 1) {
            assert_eq!(w.check(s), WindowCheck::Fresh, "seq {s}");
        }
    }

    #[test]
    fn seq_near_u64_max() {
        let mut w = ReplayWindow::new();
        w.accept(u64::MAX - 1);
        assert_eq!(w.check(u64::MAX), WindowCheck::Fresh);
        w.accept(u64::MAX);
        assert_eq!(w.check(u64::MAX), WindowCheck::Duplicate);
        assert_eq!(w.check(u64::MAX - 1), WindowCheck::Duplicate);
        assert_eq!(w.check(u64::MAX - 1023), WindowCheck::Fresh);
        assert_eq!(w.check(u64::MAX - 1024), WindowCheck::Stale);
        assert_eq!(w.check(1), WindowCheck::Stale);
    }

    /// The obvious model: a set of accepted seqs and their maximum.
    #[derive(Default)]
    struct Model {
        accepted: BTreeSet<u64>,
    }
    impl Model {
        fn check(&self, seq: u64) -> WindowCheck {
            let hi = self.accepted.iter().next_back().copied().unwrap_or(0);
            if seq <= hi && hi - seq >= 1024 {
                WindowCheck::Stale
            } else if self.accepted.contains(&seq) {
                WindowCheck::Duplicate
            } else {
                WindowCheck::Fresh
            }
        }
    }

    fn seq_strategy() -> impl Strategy<Value = Vec<u64>> {
        // mostly small steps around a moving point, some large jumps, some
        // near the top of u64
        let base = prop_oneof![Just(1u64), Just(u64::MAX - 5000), 1u64..1_000_000];
        (base, prop::collection::vec((-1500i64..1500, 0u8..20), 1..400)).prop_map(|(b, steps)| {
            let mut cur = b;
            let mut out = Vec::new();
            for (d, big) in steps {
                let d = if big == 0 { d * 7 } else { d };
                cur = if d >= 0 { cur.saturating_add(d as u64) } else { cur.saturating_sub((-d) as u64) };
                out.push(cur.max(1));
            }
            out
        })
    }

    proptest! {
        #[test]
        fn window_matches_model(seqs in seq_strategy()) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for s in seqs {
                let got = w.check(s);
                prop_assert_eq!(got, m.check(s), "seq {}", s);
                if got == WindowCheck::Fresh {
                    w.accept(s);
                    m.accepted.insert(s);
                }
            }
        }
    }
}
