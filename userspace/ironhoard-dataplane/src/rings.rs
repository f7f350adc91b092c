//! An AF_XDP socket's four rings, driven the way every loop over them
//! must: completed TX frames back ([`reclaim`](XskRings::reclaim)), free
//! frames to the fill ring ([`refill`](XskRings::refill)), a batch from the
//! RX ring ([`receive`](XskRings::receive)), acks onto the TX ring and the
//! kernel kicked ([`send`](XskRings::send)), and, on a turn that found
//! nothing, spin then sleep ([`idle`](XskRings::idle)).
//!
//! The appliance's poller (module `poller`) runs on it, and so does the
//! lab benchmark's reflector (`ih-bench-reflector`), the floor the XDP
//! backend is measured against: the same ring and UMEM sizes, batch,
//! fill-ring policy, TX kicks and wake-up policy by construction, so the
//! two differ in what they do to each frame and in the poller's
//! once-a-turn bookkeeping (reload, capture, stats).
//!
//! Every frame of the UMEM is, at any moment, in exactly one place: the
//! `FramePool` (free), the fill or RX ring (the kernel's, for receiving),
//! the caller's batch, or in flight (on the TX ring until completed). The
//! pool counts the kernel's shares, and debug builds check
//! ([`XskRings::check`]) that the four add up to the UMEM's frame count.

use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::{FrameDesc, Umem};

use crate::monotonic_ns;
use crate::xsk::{XskSocket, BATCH};

/// poll(2) timeout when idle: bounds both the stop-flag check and the wake
/// latency should a wakeup be missed.
pub const IDLE_POLL_MS: i32 = 10;
/// While frames are in flight and nothing else happens, the TX ring is
/// kicked again after this long (copy mode sends only when kicked).
const TX_REKICK_NS: u64 = 50_000;
/// A full TX ring is kicked and its completions taken at most this many
/// times before the acks that did not fit go back to the pool.
const TX_FULL_TRIES: usize = 64;

/// The frames of one UMEM that are in no kernel ring: the loop's own.
pub(crate) struct FramePool {
    /// Free frames. Capacity is the UMEM's frame count: pushes never allocate.
    free: Vec<FrameDesc>,
    /// Frames kept off the fill ring for moves handed over by other pollers.
    reserve: usize,
    /// Frames on the fill ring or the RX ring (the kernel's, for receiving).
    receiving: usize,
    /// Frames on the TX ring, not yet completed.
    in_flight: usize,
    /// The UMEM's frame count.
    total: usize,
}

impl FramePool {
    /// A pool owning `free`, with `receiving` frames already on the fill
    /// ring, out of `total`.
    pub(crate) fn new(free: Vec<FrameDesc>, receiving: usize, total: usize, reserve: usize) -> FramePool {
        let mut v = Vec::with_capacity(total);
        v.extend_from_slice(&free);
        FramePool { free: v, reserve, receiving, in_flight: 0, total }
    }

    /// A free frame (for a handed-over move).
    fn take(&mut self) -> Option<FrameDesc> {
        self.free.pop()
    }

    /// A frame of this turn's batch goes back unused (dropped datagram).
    fn put_back(&mut self, d: FrameDesc) {
        self.free.push(d);
    }

    /// Frames the fill ring may have now.
    fn fillable(&self) -> usize {
        self.free.len().saturating_sub(self.reserve)
    }

    /// The last `k` free frames, put on the fill ring by `produce` (which
    /// returns how many it took: all of them or none).
    fn give_to_fill(&mut self, k: usize, produce: impl FnOnce(&[FrameDesc]) -> usize) {
        let from = self.free.len() - k;
        if produce(&self.free[from..]) == k {
            self.free.truncate(from);
            self.receiving += k;
        }
    }

    /// `n` frames arrived on the RX ring: this turn's batch holds them.
    fn received(&mut self, n: usize) {
        debug_assert!(n <= self.receiving, "received {n} frames, the kernel had {}", self.receiving);
        self.receiving -= n;
    }

    /// `n` acks went on the TX ring.
    fn sent(&mut self, n: usize) {
        self.in_flight += n;
    }

    /// Frames the completion ring handed back.
    fn completed(&mut self, frames: &[FrameDesc]) {
        debug_assert!(frames.len() <= self.in_flight, "{} completions, {} in flight", frames.len(), self.in_flight);
        self.free.extend_from_slice(frames);
        self.in_flight -= frames.len().min(self.in_flight);
    }

    /// Between turns, when no batch holds a frame: none is lost.
    fn check(&self) {
        debug_assert_eq!(
            self.free.len() + self.receiving + self.in_flight,
            self.total,
            "frames lost: {} free + {} receiving + {} in flight != {}",
            self.free.len(),
            self.receiving,
            self.in_flight,
            self.total
        );
    }
}

/// What [`XskRings::send`] did with a batch of acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// On the TX ring.
    pub sent: usize,
    /// Did not fit (the TX ring stayed full): back in the pool, unsent.
    pub refused: usize,
}

/// An AF_XDP socket's rings and the frames between them (the module's
/// documentation).
pub struct XskRings {
    pub(crate) sock: XskSocket,
    pool: FramePool,
    comp: [FrameDesc; 4 * BATCH],
    /// Preferred busy polling: this loop drives the NAPI loop.
    busy_poll: bool,
    /// Spin this long on an empty ring before sleeping in poll(2).
    idle_spin_ns: u64,
    /// Acks produced on the TX ring since the last kick.
    tx_unkicked: bool,
    last_kick: u64,
    idle_since: Option<u64>,
    /// Kernel wake-ups (fill and TX kicks, sleeps) not yet taken by
    /// [`Self::take_wakeups`].
    wakeups: u64,
    /// Busy-poll recvfrom calls not yet taken by [`Self::take_busy_polls`].
    busy_polls: u64,
}

impl XskRings {
    /// The rings of `sock`, keeping `reserve` free frames off the fill ring
    /// (for moves other pollers hand over; 0 without a mesh). The socket's
    /// idle spin and busy-poll state decide [`Self::idle`] and
    /// [`Self::receive`].
    pub fn new(mut sock: XskSocket, reserve: usize) -> XskRings {
        let total = sock.sizes.frames as usize;
        let free = std::mem::take(&mut sock.frames);
        let receiving = total - free.len();
        let busy_poll = sock.busy_poll.is_some();
        let idle_spin_ns = u64::try_from(sock.idle_spin.as_nanos()).unwrap_or(u64::MAX);
        XskRings {
            pool: FramePool::new(free, receiving, total, reserve),
            sock,
            comp: [FrameDesc::default(); 4 * BATCH],
            busy_poll,
            idle_spin_ns,
            tx_unkicked: false,
            last_kick: 0,
            idle_since: None,
            wakeups: 0,
            busy_polls: 0,
        }
    }

    /// The UMEM the frames are in.
    pub fn umem(&self) -> &Umem {
        &self.sock.umem
    }

    /// The kernel's XDP_STATISTICS for the socket, in the order of
    /// [`crate::XSK_STAT_NAMES`] (one getsockopt: not for every turn).
    pub fn statistics(&self) -> std::io::Result<[u64; 6]> {
        self.sock.statistics()
    }

    /// The socket's descriptor (what poll(2) waits on).
    pub fn fd(&self) -> RawFd {
        self.sock.rx.fd().as_raw_fd()
    }

    /// Completed TX frames come back to the pool.
    pub fn reclaim(&mut self) {
        // SAFETY: comp is ours to overwrite; the ring hands back frames we sent.
        let c = unsafe { self.sock.cq.consume(&mut self.comp) };
        self.pool.completed(&self.comp[..c]);
    }

    /// The fill ring gets every free frame but the reserve (and the kernel
    /// a wake-up when it asks for one).
    pub fn refill(&mut self) {
        let k = (self.sock.fq.nb_free(self.pool.fillable() as u32) as usize).min(self.pool.fillable());
        if k > 0 {
            let fq = &mut self.sock.fq;
            // SAFETY: pool frames are in no ring and no one else holds them.
            self.pool.give_to_fill(k, |frames| unsafe { fq.produce(frames) });
        }
        if self.sock.fq.needs_wakeup() {
            let _ = self.sock.fq.wakeup(self.sock.rx.fd_mut(), 0);
            self.wakeups += 1;
        }
    }

    /// What waits in the RX ring now (the producer's own index, not the
    /// cached one).
    pub fn rx_level(&mut self) -> u32 {
        self.sock.rx.nb_avail_exact()
    }

    /// A batch from the RX ring into `batch`; each of those frames is then
    /// the caller's until it goes to [`Self::send`] or [`Self::put_back`].
    /// With preferred busy polling, an empty ring is followed by one
    /// recvfrom (the kernel runs the queue's NAPI poll in it) and a second
    /// look.
    pub fn receive(&mut self, batch: &mut [FrameDesc; BATCH]) -> usize {
        // SAFETY: batch is ours to overwrite.
        let mut n = unsafe { self.sock.rx.consume(batch) };
        if n == 0 && self.busy_poll {
            self.sock.busy_poll_rx();
            self.busy_polls += 1;
            // SAFETY: as above.
            n = unsafe { self.sock.rx.consume(batch) };
        }
        self.pool.received(n);
        n
    }

    /// A free frame, the caller's until it goes to [`Self::send`] or
    /// [`Self::put_back`] (a move handed over by another poller is copied
    /// into one).
    pub fn take(&mut self) -> Option<FrameDesc> {
        self.pool.take()
    }

    /// A frame of the caller's goes back unused (a dropped datagram).
    ///
    /// # Safety
    /// `d` is a frame [`Self::receive`] or [`Self::take`] gave the caller,
    /// in no ring, and neither sent nor put back since: a frame in the pool
    /// twice would be on two rings at once, where the kernel and this
    /// process both write it.
    pub unsafe fn put_back(&mut self, d: FrameDesc) {
        self.pool.put_back(d);
    }

    /// The caller's finished acks go on the TX ring, from the frames they
    /// are in (a full ring is kicked and its completions taken, a few
    /// times at most; what still does not fit goes back to the pool). Then
    /// the kernel is kicked if it asks for it, or always with busy polling
    /// (every batch's sendto drives the NAPI loop). An empty `acks` only
    /// kicks what an earlier call left unkicked.
    ///
    /// # Safety
    /// Each of `acks` is a frame [`Self::receive`] or [`Self::take`] gave
    /// the caller, holding a finished ack, in no ring, listed once, and
    /// neither sent nor put back since.
    pub unsafe fn send(&mut self, acks: &[FrameDesc]) -> Sent {
        let mut out = Sent { sent: 0, refused: 0 };
        if !acks.is_empty() {
            let mut sent = 0;
            for _ in 0..TX_FULL_TRIES {
                // SAFETY: the caller's frames hold finished acks and are in
                // no ring (this function's contract).
                sent = unsafe { self.sock.tx.produce(acks) };
                if sent == acks.len() {
                    break;
                }
                // TX ring full: kick the kernel and take completions.
                self.kick_tx();
                self.reclaim();
            }
            // produce is all-or-nothing, but account for a partial one
            // anyway: what went on the ring is in flight, the rest goes
            // back to the pool (never both).
            let sent = sent.min(acks.len());
            self.pool.sent(sent);
            for &d in &acks[sent..] {
                self.pool.put_back(d);
            }
            self.tx_unkicked |= sent > 0;
            out = Sent { sent, refused: acks.len() - sent };
        }
        if self.tx_unkicked && (self.busy_poll || self.sock.tx.needs_wakeup()) {
            self.kick_tx();
        }
        out
    }

    fn kick_tx(&mut self) {
        let _ = self.sock.tx.wakeup();
        self.wakeups += 1;
        self.tx_unkicked = false;
        self.last_kick = monotonic_ns();
    }

    /// A turn that found nothing, at `now`: frames still in flight get a
    /// kick now and then (copy mode sends only when kicked). True when the
    /// loop has spun `idle_spin` with nothing in flight and should now sleep
    /// ([`Self::sleep`], or its own wait and then [`Self::woke`]); false:
    /// spin on. `stay_awake`: never sleep (draining, or watching another
    /// source).
    pub fn idle(&mut self, now: u64, stay_awake: bool) -> bool {
        if self.pool.in_flight > 0 && (self.tx_unkicked || now.saturating_sub(self.last_kick) >= TX_REKICK_NS) {
            self.kick_tx();
        }
        let since = *self.idle_since.get_or_insert(now);
        !(now - since < self.idle_spin_ns || self.pool.in_flight > 0 || stay_awake)
    }

    /// Sleeps in poll(2) until the socket has something (or
    /// [`IDLE_POLL_MS`]).
    pub fn sleep(&mut self) {
        // an error is taken as an event: spin before sleeping again (xsk-rs
        // reports EINTR as a timeout)
        let event = self.sock.rx.poll(IDLE_POLL_MS).unwrap_or(true);
        self.woke(event);
    }

    /// The loop slept (its own way) and woke. `event`: something woke it
    /// (the socket, a peer), and the idle spin starts over; after the
    /// timeout, with nothing come, the next idle turn sleeps again at once:
    /// an idle loop wakes every [`IDLE_POLL_MS`] and does not spin.
    pub fn woke(&mut self, event: bool) {
        self.wakeups += 1;
        if event {
            self.idle_since = None;
        }
    }

    /// A turn that served something (received, or handed over): the idle
    /// spin starts over.
    pub fn busy(&mut self) {
        self.idle_since = None;
    }

    /// Acks on the TX ring, not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight
    }

    /// Kernel wake-ups made since the last call.
    pub fn take_wakeups(&mut self) -> u64 {
        std::mem::take(&mut self.wakeups)
    }

    /// Busy-poll recvfrom calls made since the last call.
    pub fn take_busy_polls(&mut self) -> u64 {
        std::mem::take(&mut self.busy_polls)
    }

    /// Between turns, when the caller holds no frame: none is lost (debug
    /// builds; nothing in release).
    pub fn check(&self) {
        self.pool.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: u64) -> Vec<FrameDesc> {
        (0..n).map(|_| FrameDesc::default()).collect()
    }

    #[test]
    fn the_pool_accounts_for_every_frame() {
        let mut p = FramePool::new(frames(100), 28, 128, 10);
        p.check();
        assert_eq!(p.fillable(), 90);
        p.give_to_fill(90, |f| f.len());
        assert_eq!((p.free.len(), p.receiving), (10, 118));
        p.check();
        // a batch of 5 arrives: 3 become acks, 2 are dropped
        p.received(5);
        p.put_back(FrameDesc::default());
        p.put_back(FrameDesc::default());
        p.sent(3);
        p.check();
        p.completed(&frames(3));
        assert_eq!(p.in_flight, 0);
        p.check();
        // a refused produce leaves the frames in the pool
        p.give_to_fill(2, |_| 0);
        assert_eq!(p.free.len(), 15);
        p.check();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "frames lost")]
    fn a_frame_not_given_back_is_caught() {
        let mut p = FramePool::new(frames(64), 0, 64, 0);
        p.give_to_fill(64, |f| f.len());
        p.received(4);
        p.put_back(FrameDesc::default());
        p.sent(2); // one of the four forgotten
        p.check();
    }
}
