//! The pollers' mesh: each player is owned by one poller, and a move that
//! arrives on another poller's queue is handed to its owner through the
//! owner's lock-free mailbox (a copy of the frame, [`Handoff`]), with an
//! eventfd to wake an owner asleep in poll(2).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// Largest frame handed between pollers. Only frames the classifier serves
/// are handed over (one VLAN tag at most, no IP options or extension
/// headers): Ethernet + VLAN + IPv6 + UDP + a move is 130 bytes.
pub(crate) const HANDOFF_MAX: usize = 160;
const _: () = assert!(14 + 4 + 40 + 8 + 64 <= HANDOFF_MAX);
/// Frames a poller keeps off the fill ring for moves handed to it.
pub(crate) const HANDOFF_RESERVE: usize = 256;

/// A move that arrived on a queue whose poller does not own its player, on
/// its way to the poller that does (a copy of the frame: frames belong to
/// one UMEM).
#[derive(Clone, Copy)]
pub struct Handoff {
    len: u16,
    recv_ns: u64,
    /// The reload generation of the poller that authenticated the move: the
    /// owner trusts that check only under the same keys (the same
    /// generation applied).
    keys_gen: u64,
    frame: [u8; HANDOFF_MAX],
}

impl Handoff {
    /// A copy of `frame` (at most HANDOFF_MAX bytes: the classifier serves
    /// nothing longer) received at `recv_ns`.
    pub(crate) fn new(frame: &[u8], recv_ns: u64, keys_gen: u64) -> Handoff {
        let mut h = Handoff { len: frame.len() as u16, recv_ns, keys_gen, frame: [0; HANDOFF_MAX] };
        h.frame[..frame.len()].copy_from_slice(frame);
        h
    }

    /// The copied frame's bytes.
    pub(crate) fn frame(&self) -> &[u8] {
        &self.frame[..self.len()]
    }

    pub(crate) fn keys_gen(&self) -> u64 {
        self.keys_gen
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn recv_ns(&self) -> u64 {
        self.recv_ns
    }

    /// Copies the frame to the start of `out`.
    pub(crate) fn copy_into(&self, out: &mut [u8]) {
        out[..self.len()].copy_from_slice(&self.frame[..self.len()]);
    }
}

/// The pollers' mailboxes. Every player is owned by exactly one poller —
/// `(game_id ^ player_id) % pollers`, the socket backend's steering — so its
/// anti-replay window is in one table whichever queue the NIC's RSS picks
/// for a datagram (a replay from another address or port included).
pub struct Mesh {
    inboxes: Vec<ArrayQueue<Handoff>>,
    /// One eventfd per poller: written by a poller that handed moves to a
    /// sleeping owner, polled by the owner beside its socket.
    wakers: Vec<std::os::fd::OwnedFd>,
    /// Set by a poller about to sleep in poll(2), cleared when it wakes.
    sleeping: Vec<std::sync::atomic::AtomicBool>,
}

impl Mesh {
    /// Mailboxes of `depth` frames for `pollers` pollers (allocated once).
    pub fn new(pollers: usize, depth: usize) -> Arc<Mesh> {
        use std::os::fd::FromRawFd;
        let wakers = (0..pollers)
            .map(|_| {
                // SAFETY: eventfd(2) with valid flags; the fd is owned below.
                let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
                // SAFETY: a fresh fd nobody else owns.
                unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
            })
            .collect();
        Arc::new(Mesh {
            inboxes: (0..pollers).map(|_| ArrayQueue::new(depth.max(1))).collect(),
            wakers,
            sleeping: (0..pollers).map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
        })
    }

    /// Wakes poller `o` if it sleeps (one write to its eventfd).
    pub(crate) fn wake(&self, o: usize) {
        use std::os::fd::AsRawFd;
        // the push before, then the flag: ordered against the sleeper's
        // flag-then-mailbox (both sequentially consistent)
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping[o].load(Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a u64 to our eventfd.
            let _ = unsafe { libc::write(self.wakers[o].as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Poller `o`'s mailbox.
    pub(crate) fn inbox(&self, o: usize) -> &ArrayQueue<Handoff> {
        &self.inboxes[o]
    }

    pub fn pollers(&self) -> usize {
        self.inboxes.len()
    }

    /// The poller owning a move payload's player (the classifier has
    /// checked the payload's length; its header is not checked here: a
    /// non-owner authenticates a move before handing it over, an owner
    /// validates it, and junk is dropped either way, counted by reason).
    #[inline]
    pub fn owner(&self, payload: &[u8]) -> usize {
        let g = u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
        let p = u32::from_be_bytes([payload[12], payload[13], payload[14], payload[15]]);
        owner_of(g, p, self.inboxes.len())
    }
}

/// Which of `pollers` pollers owns a player: its window and rate bucket
/// live there, and a move that arrives on another poller's queue is handed
/// to it (the generator uses this to aim at one poller's players).
#[inline]
pub fn owner_of(game_id: u32, player_id: u32, pollers: usize) -> usize {
    ((game_id ^ player_id) % pollers.max(1) as u32) as usize
}

/// How [`Mesh::sleep_or_wake`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Woke {
    /// A peer that handed this poller a move woke it.
    pub by_peer: bool,
    /// Something happened (the socket readable, a peer's wake-up, a move
    /// already waiting), not the timeout.
    pub event: bool,
}

impl Mesh {
    /// Sleeps in poll(2) on `rx` (poller `me`'s AF_XDP socket) and the
    /// poller's eventfd (a peer that hands it a move writes there), up to
    /// `timeout_ms`. The sleeping flag is raised before the mailbox is
    /// looked at one last time, so a move pushed meanwhile is either seen
    /// here or wakes the poll.
    pub(crate) fn sleep_or_wake(&self, me: usize, rx: RawFd, timeout_ms: i32) -> Woke {
        self.sleeping[me].store(true, Ordering::SeqCst);
        // a move already waiting, or poll(2) ended by an event (or failed,
        // e.g. EINTR: taken as one), not by its timeout
        let mut event = true;
        if self.inboxes[me].is_empty() {
            let mut fds = [
                libc::pollfd { fd: rx, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.wakers[me].as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two valid pollfds of the count passed.
            event = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) } != 0;
        }
        self.sleeping[me].store(false, Ordering::SeqCst);
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a u64 from our non-blocking eventfd (drains it).
        let n = unsafe { libc::read(self.wakers[me].as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        let by_peer = n == 8 && v > 0;
        Woke { by_peer, event: event || by_peer }
    }
}
