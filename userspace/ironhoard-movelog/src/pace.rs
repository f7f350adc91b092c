//! The keeper's runs on its core, bounded.
//!
//! The keeper's work comes in long stretches of CPU: taking the write faults
//! of a new 64 MiB segment (the kernel zeroes each page; ~36 µs a page on a
//! VM whose host backs guest memory lazily), and writing back the records of
//! an interval sync. The scheduler lets a thread that slept a while run for
//! several milliseconds before it hands the core to another runnable one,
//! and a `yield` between steps does not hand it over. On a core the keeper
//! shares (the shipper, the stats, in the lab the generator), that meant
//! runs of 10–18 ms: a stalled shipper, or in the lab a generator that then
//! sent its backlog in one burst. The keeper therefore works in small steps
//! and, once it has run [`RUN_MAX`] since it last slept, sleeps [`BREATH`]:
//! whatever else is runnable on its core gets the core at least that often.

use std::time::{Duration, Instant};

/// The longest the keeper works without sleeping (while paced).
pub(crate) const RUN_MAX: Duration = Duration::from_micros(500);
/// How long it then sleeps (plus the timer's slack, 50 µs by default).
pub(crate) const BREATH: Duration = Duration::from_micros(100);
/// The step of the keeper's prefaulting (MADV_POPULATE_WRITE) and of its
/// writeback: 16 pages, ~0.6 ms where a page costs ~36 µs to fault in
/// (far less where the host backs guest memory up front). The pacer looks
/// at the clock between steps, so a run lasts up to [`RUN_MAX`] plus one
/// step; single calls (a new segment's fallocate and fsync, a retired
/// segment's fsync) are not split.
pub(crate) const STEP: usize = 64 << 10;

/// Sleeps between steps of work once [`RUN_MAX`] has passed since the last
/// sleep. Unpaced (at start, before the keeper's thread runs and nothing
/// else needs the core) it never sleeps.
#[derive(Debug)]
pub(crate) struct Pacer {
    paced: bool,
    run_max: Duration,
    since: Instant,
    /// Breaths taken (read by the tests).
    breaths: u64,
}

impl Pacer {
    pub(crate) fn unpaced() -> Pacer {
        Pacer { paced: false, run_max: RUN_MAX, since: Instant::now(), breaths: 0 }
    }

    pub(crate) fn paced() -> Pacer {
        Pacer { paced: true, run_max: RUN_MAX, since: Instant::now(), breaths: 0 }
    }

    /// A breath between every two steps, however short (tests: where the
    /// steps are is then exact, not a matter of the machine's speed).
    #[cfg(test)]
    pub(crate) fn every_step() -> Pacer {
        Pacer { paced: true, run_max: Duration::ZERO, since: Instant::now(), breaths: 0 }
    }

    /// Between two steps of work: a breath if this run has lasted RUN_MAX.
    pub(crate) fn step(&mut self) {
        if self.paced && self.since.elapsed() >= self.run_max {
            std::thread::sleep(BREATH);
            self.breaths += 1;
            self.since = Instant::now();
        }
    }

    /// The keeper slept anyway (its nap between turns): a new run starts.
    pub(crate) fn slept(&mut self) {
        self.since = Instant::now();
    }

    #[cfg(test)]
    pub(crate) fn breaths(&self) -> u64 {
        self.breaths
    }
}

/// `f(off, n)` over `0..len` in [`STEP`]-sized pieces, with a
/// [`Pacer::step`] between them; stops at the first error and returns it.
pub(crate) fn in_steps<E>(len: usize, pacer: &mut Pacer, mut f: impl FnMut(usize, usize) -> Result<(), E>) -> Result<(), E> {
    let mut off = 0;
    while off < len {
        let n = STEP.min(len - off);
        f(off, n)?;
        off += n;
        if off < len {
            pacer.step();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that outlasts RUN_MAX is broken by breaths; every step is done,
    /// in order, exactly once.
    #[test]
    fn a_long_run_of_steps_breathes_and_covers_the_range() {
        let mut p = Pacer::paced();
        let mut seen = Vec::new();
        let len = 40 * STEP + 100;
        let r: Result<(), ()> = in_steps(len, &mut p, |off, n| {
            seen.push((off, n));
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(100) {}
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(seen.len(), 41);
        assert_eq!(seen.last(), Some(&(40 * STEP, 100)));
        assert!(seen.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        // 41 steps of 100 µs: a breath about every 5 steps
        assert!(p.breaths() >= 5, "{} breaths in ~4 ms of work", p.breaths());
    }

    /// Unpaced, or in short work, no breath; an error stops the steps.
    #[test]
    fn unpaced_never_sleeps_and_errors_stop() {
        let mut p = Pacer::unpaced();
        let r: Result<(), usize> = in_steps(10 * STEP, &mut p, |off, _| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(200) {}
            if off == 3 * STEP {
                Err(off)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(3 * STEP));
        assert_eq!(p.breaths(), 0);
        let mut q = Pacer::paced();
        in_steps::<()>(STEP, &mut q, |_, _| Ok(())).unwrap();
        assert_eq!(q.breaths(), 0);
    }
}
