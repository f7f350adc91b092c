//! The AF_XDP poller's loop, as its steps. Each turn:
//!
//! 1. [`reclaim`](XskRings::reclaim): frames whose acks the kernel has sent
//!    come back from the completion ring to the pool;
//! 2. [`refill`](XskRings::refill): the fill ring gets every free frame but
//!    the reserve kept for moves handed over by other pollers;
//! 3. [`receive`](Poller::receive): a batch from the RX ring, each frame
//!    through [`serve_frame`](Poller::serve_frame) (first, once a
//!    millisecond, the ring's level into
//!    [`rx_level`](crate::WorkerShared::rx_level));
//! 4. [`serve_handoffs`](Poller::serve_handoffs): moves other pollers handed
//!    to this one, copied into its own frames, through the same routine;
//! 5. [`transmit`](Poller::transmit): once the batch's accepted moves are
//!    recorded, its acks go on the TX ring from the frames they are in;
//! 6. [`idle`](Poller::idle), when a turn found nothing: spin, then sleep
//!    in poll(2).
//!
//! With preferred busy polling (`XskSocket::set_busy_poll`) the poller also
//! drives the NIC queue's NAPI loop, which then no longer runs from
//! interrupts (napi_defer_hard_irqs, gro_flush_timeout): step 3 makes one
//! non-blocking recvfrom whenever the RX ring is empty (the kernel polls the
//! NIC in it, and the frames it brought are taken in the same turn), and
//! step 5 kicks the TX ring with sendto after every batch of acks, need_wakeup
//! or not (a sendto busy-polls too, and reaps the TX completions). Spinning
//! in step 6 is thus spinning in the kernel's NAPI poll; after the spin
//! budget the poller still sleeps in poll(2), and the kernel's
//! gro_flush_timeout watchdog (or, after napi_defer_hard_irqs empty polls,
//! the interrupt) takes the queue back until it wakes.
//!
//! The ring steps (1, 2, 3's batch, 5's TX ring, 6) are [`XskRings`]'s,
//! shared with the lab benchmark's reflector; which accounts for every
//! frame of the UMEM between turns (`XskRings::check`).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironhoard_common::DropReason;
use ironhoard_engine::{Dispatch, Engine, Verdict};
use ironhoard_wire::MOVE_LEN;
use ironhoard_classify::{classify, rewrite_to_ack, Class};
use xsk_rs::FrameDesc;

use crate::capture::{ack_status, CaptureRing, Record, RecordKind, NO_STATUS};
use crate::mesh::{Handoff, Mesh, HANDOFF_RESERVE};
use crate::trace::TRACE_PERIOD_NS;
use crate::rings::{XskRings, IDLE_POLL_MS};
use crate::xsk::{XskSocket, BATCH};
use crate::{monotonic_ns, WorkerShared};

/// Counters are published for the control plane at most this often
/// (every batch would bounce their cache lines to the stats thread).
const PUBLISH_NS: u64 = 1_000_000;
/// Stopping: a poller has drained once nothing arrived for this long and
/// every ack has left...
const DRAIN_QUIET_NS: u64 = 3_000_000;
/// ...or after this long whatever arrives (a stop under a flood).
const DRAIN_MAX_NS: u64 = 1_000_000_000;
/// After the control plane's own program steers the moves, a bridge empty
/// for this long is no longer watched.
const BRIDGE_QUIET_NS: u64 = 200_000_000;

/// One poller serving one socket.
pub(crate) struct Poller<'a, D: Dispatch> {
    rings: XskRings,
    engine: &'a mut Engine,
    dispatch: &'a mut D,
    shared: &'a WorkerShared,
    port: u16,
    mesh: Option<(&'a Mesh, usize)>,
    rx_batch: [FrameDesc; BATCH],
    /// This turn's acks (received and handed-over moves).
    tx_batch: [FrameDesc; 2 * BATCH],
    acks: usize,
    /// Owners handed moves this turn (bit o % 64), woken after the batch.
    woken: u64,
    /// When the RX ring's level is next sampled (`shared.rx_level`).
    next_level: u64,
    next_stats: u64,
    next_publish: u64,
    /// Counters changed since the last publish.
    dirty: bool,
    reload_seen: u64,
    /// The bridge, while watched: the UDP socket (of the SO_REUSEPORT
    /// group, steered by player like the mesh) where the moves of a
    /// handover queued.
    bridge: Option<crate::socket::SocketServer>,
    bridge_quiet_since: Option<u64>,
    /// The capture ring while `ironhoard capture` runs on this poller.
    capture: Option<Arc<CaptureRing>>,
    capture_seen: u64,
}

/// What became of a frame [`Poller::serve_frame`] served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// Rewritten into an ack of this many bytes, in this turn's acks.
    Ack(usize),
    /// Dropped unanswered (back in the pool).
    Dropped,
    /// Copied to the poller owning its player (this frame back in the pool).
    HandedOver,
}

impl XskSocket {
    /// Serves moves until `shared.stop` is set: the poller's hot loop
    /// (its steps: [`crate::poller`]). `mesh` (several pollers): this
    /// poller's index in it; moves for players it does not own go to their
    /// owner's mailbox, and moves handed to it are served from its own frames.
    pub fn serve<D: Dispatch>(
        self,
        engine: &mut Engine,
        dispatch: &mut D,
        shared: &Arc<WorkerShared>,
        port: u16,
        mesh: Option<(Arc<Mesh>, usize)>,
        bridge: Option<RawFd>,
    ) -> io::Result<()> {
        let mesh = mesh.as_ref().map(|(m, me)| (&**m, *me));
        let mut p = Poller::new(self, engine, dispatch, shared, port, mesh);
        if let Some(fd) = bridge {
            p.watch_bridge(fd);
        }
        p.run();
        Ok(())
    }
}

impl<'a, D: Dispatch> Poller<'a, D> {
    pub(crate) fn new(
        sock: XskSocket,
        engine: &'a mut Engine,
        dispatch: &'a mut D,
        shared: &'a WorkerShared,
        port: u16,
        mesh: Option<(&'a Mesh, usize)>,
    ) -> Self {
        let reserve = if mesh.is_some() { HANDOFF_RESERVE } else { 0 };
        Poller {
            rings: XskRings::new(sock, reserve),
            engine,
            dispatch,
            shared,
            port,
            mesh,
            rx_batch: [FrameDesc::default(); BATCH],
            tx_batch: [FrameDesc::default(); 2 * BATCH],
            acks: 0,
            woken: 0,
            next_level: 0,
            next_stats: 0,
            next_publish: 0,
            dirty: false,
            reload_seen: 0,
            bridge: None,
            bridge_quiet_since: None,
            capture: None,
            capture_seen: 0,
        }
    }

    /// Serves the bridge socket `fd` beside the AF_XDP socket until the
    /// control plane's program steers the moves and the bridge is empty.
    pub(crate) fn watch_bridge(&mut self, fd: std::os::fd::RawFd) {
        self.bridge = Some(crate::socket::SocketServer::new(fd));
    }

    /// Serves until the control plane asks to stop, then drains: answers
    /// what the RX ring, the mailbox and the bridge still hold and waits
    /// for its acks to leave, says so, and returns when released.
    pub(crate) fn run(mut self) {
        self.shared.has_xsk_stats.store(true, Ordering::Relaxed);
        while !self.shared.stop_requested() {
            self.turn(false);
        }
        let start = monotonic_ns();
        let mut busy_at = start;
        loop {
            let now = monotonic_ns();
            if self.turn(true) {
                busy_at = now;
            }
            let drained = now - busy_at >= DRAIN_QUIET_NS && self.rings.in_flight() == 0;
            if drained || now - start >= DRAIN_MAX_NS {
                self.shared.drained.store(true, Ordering::Release);
                if self.shared.exit.load(Ordering::Acquire) {
                    break;
                }
            }
        }
        self.publish(monotonic_ns(), true);
        self.capture = None;
        self.shared.capture_gone();
    }

    /// One turn of the loop; true if it served anything.
    fn turn(&mut self, draining: bool) -> bool {
        self.shared.apply_reload(&mut self.reload_seen, self.engine);
        self.shared.poll_capture(&mut self.capture_seen, &mut self.capture);
        self.rings.reclaim();
        self.rings.refill();
        let now = monotonic_ns();
        let n = self.receive(now);
        let handed = self.serve_handoffs();
        let bridged = self.serve_bridge(now);
        let busy = n + handed + bridged > 0;
        if n == 0 && handed == 0 {
            if bridged == 0 {
                self.idle(now, draining);
            } else {
                self.dirty = true;
                self.publish(now, false);
            }
        } else {
            self.rings.busy();
            self.wake_owners();
            self.transmit();
            let end = monotonic_ns();
            self.shared.record_batch(n + handed, end.saturating_sub(now));
            self.dirty = true;
            self.publish(end, false);
        }
        self.count_ring_calls();
        self.rings.check();
        busy
    }

    /// The kernel wake-ups and busy-poll calls the rings made this turn,
    /// into the stats.
    #[inline]
    fn count_ring_calls(&mut self) {
        let w = self.rings.take_wakeups();
        if w > 0 {
            self.shared.count_wakeups(w);
        }
        let b = self.rings.take_busy_polls();
        if b > 0 {
            self.shared.count_busy_polls(b);
        }
    }

    /// Step 4b, while a handover's bridge is watched: one batch from it,
    /// judged by the same engine and log, acked through the kernel.
    fn serve_bridge(&mut self, now: u64) -> usize {
        let Some(b) = self.bridge.as_mut() else { return 0 };
        let n = match b.turn(self.engine, self.dispatch, self.shared, libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("poller: bridge socket: {e}; no longer watched");
                self.bridge = None;
                return 0;
            }
        };
        if n > 0 {
            self.shared.bridged.fetch_add(n as u64, Ordering::Relaxed);
            self.bridge_quiet_since = None;
        } else if self.shared.bridge_closing.load(Ordering::Relaxed) {
            let since = *self.bridge_quiet_since.get_or_insert(now);
            if now - since >= BRIDGE_QUIET_NS {
                log::debug!("poller: bridge empty since the program was swapped in: no longer watched");
                self.bridge = None;
            }
        }
        n
    }

    /// Step 3: a batch from the RX ring ([`XskRings::receive`]: with
    /// preferred busy polling, an empty ring is followed by one recvfrom and
    /// a second look), each frame served.
    fn receive(&mut self, now: u64) -> usize {
        if now >= self.next_level {
            // what waits in the ring as the poller comes to it
            self.shared.rx_level.push(now, self.rings.rx_level());
            self.next_level = now + TRACE_PERIOD_NS;
        }
        let n = self.rings.receive(&mut self.rx_batch);
        self.engine.counters.rx += n as u64;
        // the player table's cache misses overlapped across the batch
        self.engine.prefetch_batch(n, |i| self.move_tail(i));
        for i in 0..n {
            self.engine.prefetch_ahead(i, n, |j| self.move_tail(j));
            let d = self.rx_batch[i];
            self.serve_frame(d, now, Origin::Received);
        }
        n
    }

    /// Where the move in received frame `rx_batch[i]` is, if it is one: its
    /// last MOVE_LEN bytes (a served frame ends with the UDP payload). For
    /// prefetch hints only; serving classifies the frame properly.
    #[inline]
    fn move_tail(&self, i: usize) -> &[u8] {
        // SAFETY: the frame came from the RX ring this turn and is in no
        // ring until it is served; it is only read here.
        let f = unsafe { self.rings.umem().data(&self.rx_batch[i]) }.contents();
        &f[f.len().saturating_sub(MOVE_LEN)..]
    }

    /// Step 4: moves handed to this poller, each copied into a free frame
    /// and served like a received one. Returns how many.
    fn serve_handoffs(&mut self) -> usize {
        let Some((m, me)) = self.mesh else { return 0 };
        let inbox = m.inbox(me);
        let mut k = 0;
        while self.acks < self.tx_batch.len() {
            let Some(mut d) = self.rings.take() else { break };
            let Some(h) = inbox.pop() else {
                // SAFETY: taken from the pool just now, in no ring.
                unsafe { self.rings.put_back(d) };
                break;
            };
            // SAFETY: a pool frame is in no ring; we own it.
            let mut data = unsafe { self.rings.umem().data_mut(&mut d) };
            let mut cur = data.cursor();
            let cap = cur.buf_len();
            cur.set_pos(cap);
            h.copy_into(data.contents_mut());
            data.cursor().set_pos(h.len());
            // the sender authenticated the move; trusted under the same keys
            let authenticated = h.keys_gen() == self.reload_seen;
            self.serve_frame(d, h.recv_ns(), Origin::Handed { authenticated });
            k += 1;
        }
        k
    }

    /// The per-frame routine, for received and handed-over moves alike:
    /// classify, then either hand the move to the poller owning its player
    /// (received frames only), or validate it in place and rewrite the frame
    /// into its ack. The frame ends in this turn's acks or back in the pool.
    /// While a capture runs, the same through [`Self::serve_frame_captured`]
    /// (without one, this costs one branch).
    #[inline]
    fn serve_frame(&mut self, d: FrameDesc, recv_ns: u64, origin: Origin) {
        if self.capture.is_some() {
            self.serve_frame_captured(d, recv_ns, origin);
        } else {
            self.serve_frame_inner(d, recv_ns, origin);
        }
    }

    /// [`Self::serve_frame`] with a copy of the frame as received (and of
    /// its ack, if the capture wants acks) pushed to the capture ring. A
    /// move handed to another poller is recorded there, where it is served.
    /// A full ring loses the record (counted) and nothing waits.
    #[cold]
    #[inline(never)]
    fn serve_frame_captured(&mut self, d: FrameDesc, recv_ns: u64, origin: Origin) {
        let Some(ring) = self.capture.take() else {
            self.serve_frame_inner(d, recv_ns, origin);
            return;
        };
        // SAFETY: the frame came from the RX ring or the pool and is in no
        // ring; it is only read here, before serve_frame_inner touches it.
        let mut rec = Record::new(RecordKind::Move, NO_STATUS, recv_ns, unsafe { self.rings.umem().data(&d) }.contents());
        match self.serve_frame_inner(d, recv_ns, origin) {
            Served::HandedOver => {}
            Served::Dropped => {
                if ring.wants(NO_STATUS) && !ring.push(rec) {
                    self.shared.count_capture_skipped();
                }
            }
            Served::Ack(_) => {
                // the ack is the last frame of this turn's acks (not yet on TX)
                let a = self.tx_batch[self.acks - 1];
                // SAFETY: that frame is in no ring until transmit(); read only.
                let ack = unsafe { self.rings.umem().data(&a) };
                rec.status = ack_status(ack.contents());
                if ring.wants(rec.status) {
                    if !ring.push(rec) {
                        self.shared.count_capture_skipped();
                    }
                    if ring.acks && !ring.push(Record::new(RecordKind::Ack, rec.status, recv_ns, ack.contents())) {
                        self.shared.count_capture_skipped();
                    }
                }
            }
        }
        self.capture = Some(ring);
    }

    fn serve_frame_inner(&mut self, mut d: FrameDesc, recv_ns: u64, origin: Origin) -> Served {
        // SAFETY: the frame came from the RX ring or the pool and is in no
        // ring until we put it on TX or back in the pool.
        let mut data = unsafe { self.rings.umem().data_mut(&mut d) };
        let f = data.contents_mut();
        let served = match classify(f, self.port, MOVE_LEN) {
            Class::Serve(u) => {
                let p = u.payload();
                let owner = match self.mesh {
                    Some((m, me)) if origin == Origin::Received => Some(m.owner(&f[p..p + u.payload_len])).filter(|&o| o != me),
                    _ => None,
                };
                match owner {
                    Some(o) => {
                        let (m, _) = self.mesh.expect("an owner implies a mesh");
                        let keys_gen = self.reload_seen;
                        match hand_over(self.engine, self.shared, m, &mut self.woken, &mut f[..p + u.payload_len], p, o, recv_ns, keys_gen) {
                            HandOver::Busy => Served::Ack(rewrite_to_ack(f, &u)),
                            HandOver::Handed => Served::HandedOver,
                            HandOver::Forged => Served::Dropped,
                        }
                    }
                    None => match self.engine.process_handed(&mut f[p..p + u.payload_len], recv_ns, self.dispatch, origin == Origin::Handed { authenticated: true }) {
                        Verdict::Ack(_) => Served::Ack(rewrite_to_ack(f, &u)),
                        Verdict::Drop(_) => Served::Dropped,
                    },
                }
            }
            // The XDP program made the same decision before redirecting; a
            // frame it served and this did not would be a bug in one of
            // them: counted, never acked.
            Class::Drop(r) => {
                self.engine.counters.count_drop(r);
                Served::Dropped
            }
            Class::Pass => {
                self.engine.counters.count_drop(DropReason::WrongLength);
                Served::Dropped
            }
        };
        match served {
            Served::Ack(len) => {
                data.cursor().set_pos(len);
                self.tx_batch[self.acks] = d;
                self.acks += 1;
            }
            // SAFETY: the frame came from the RX ring or the pool this
            // turn, is in no ring, and goes nowhere else.
            Served::Dropped | Served::HandedOver => unsafe { self.rings.put_back(d) },
        }
        served
    }

    /// Owners handed moves this turn get one wake-up each.
    fn wake_owners(&mut self) {
        if let Some((m, _)) = self.mesh {
            for o in 0..m.pollers() {
                if self.woken & (1u64 << (o % 64)) != 0 {
                    m.wake(o);
                }
            }
        }
        self.woken = 0;
    }

    /// Step 5: once this turn's accepted moves are recorded (synced, per
    /// policy), its acks go on the TX ring from the frames they are in, and
    /// the kernel is kicked ([`XskRings::send`]).
    fn transmit(&mut self) {
        let acks = std::mem::take(&mut self.acks);
        if acks > 0 {
            self.dispatch.commit();
        }
        // SAFETY: the frames of this turn's acks came from the RX ring or
        // the pool this turn and are in no ring; each is in tx_batch once.
        let sent = unsafe { self.rings.send(&self.tx_batch[..acks]) };
        self.engine.counters.tx += sent.sent as u64;
        self.engine.counters.tx_errors += sent.refused as u64;
    }

    /// Step 6, a turn that found nothing: frames still in flight get a kick
    /// now and then; stats are published; after `idle_spin` of nothing the
    /// poller sleeps in poll(2) (woken by the socket, or by a peer that
    /// handed it a move) ([`XskRings::idle`]).
    /// While draining or watching a bridge it never sleeps. With preferred
    /// busy polling each spinning turn has made a recvfrom (step 3), so the
    /// spin is the kernel's NAPI poll; the sleep is the same.
    fn idle(&mut self, now: u64, draining: bool) {
        let sleep = self.rings.idle(now, draining || self.bridge.is_some());
        self.publish(now, false);
        if !sleep {
            std::hint::spin_loop();
            return;
        }
        match self.mesh {
            None => self.rings.sleep(),
            Some((m, me)) => {
                let w = m.sleep_or_wake(me, self.rings.fd(), IDLE_POLL_MS);
                if w.by_peer {
                    self.shared.peer_wakes.fetch_add(1, Ordering::Relaxed);
                }
                self.rings.woke(w.event);
            }
        }
    }

    /// Counters and the players gauge for the control plane (at most every
    /// PUBLISH_NS, or now when `force`), XDP_STATISTICS about once a second.
    fn publish(&mut self, now: u64, force: bool) {
        if force || (self.dirty && now >= self.next_publish) {
            self.shared.counters.publish(&self.engine.counters);
            self.shared.players.store(self.engine.players() as u64, Ordering::Relaxed);
            let (hits, misses) = self.engine.key_cache_stats();
            self.shared.key_cache_hits.store(hits, Ordering::Relaxed);
            self.shared.key_cache_misses.store(misses, Ordering::Relaxed);
            self.next_publish = now + PUBLISH_NS;
            self.dirty = false;
        }
        if force || now >= self.next_stats {
            self.rings.sock.publish_xsk_stats(self.shared);
            self.next_stats = now + 1_000_000_000;
        }
    }
}

/// A move for a player poller `o` owns: authenticated first (a forgery
/// never reaches another poller's mailbox), then copied to its owner.
/// `Busy` when the frame must be answered here instead: BUSY, written in
/// place, because the owner's mailbox is full (a move is never dropped
/// unanswered).
///
/// The copy is authenticated, not the frame: the owner trusts the check of
/// exactly the bytes it receives (when both pollers have applied the same
/// reload, `keys_gen`).
#[allow(clippy::too_many_arguments)]
fn hand_over(engine: &mut Engine, shared: &WorkerShared, m: &Mesh, woken: &mut u64, frame: &mut [u8], p: usize, o: usize, recv_ns: u64, keys_gen: u64) -> HandOver {
    let h = Handoff::new(frame, recv_ns, keys_gen);
    match engine.authenticate(&h.frame()[p..]) {
        Err(r) => {
            engine.counters.count_drop(r);
            HandOver::Forged
        }
        Ok(()) => {
            if m.inbox(o).push(h).is_ok() {
                shared.count_handoff();
                *woken |= 1u64 << (o % 64);
                HandOver::Handed
            } else {
                shared.count_handoff_dropped();
                engine.answer_busy(&mut frame[p..]);
                HandOver::Busy
            }
        }
    }
}

/// Where a frame [`Poller::serve_frame`] serves comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This poller's RX ring.
    Received,
    /// A peer's mailbox; `authenticated`: the peer verified the tag under
    /// the keys this poller has (the same reload applied).
    Handed { authenticated: bool },
}

/// What [`hand_over`] did with a move.
enum HandOver {
    /// Not authentic: dropped (counted).
    Forged,
    /// In the owner's mailbox.
    Handed,
    /// Answered BUSY in place (the owner's mailbox full).
    Busy,
}
