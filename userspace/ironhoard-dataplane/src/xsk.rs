//! AF_XDP sockets: one per NIC queue, each with its own UMEM (on 2 MiB
//! hugepages when reserved) and rings, zero-copy where the driver allows it
//! and copy mode otherwise, preferred busy polling when configured
//! ([`BusyPoll`]), and the kernel's XDP_STATISTICS. Setup only: the loop
//! that serves a socket is the poller's ([`XskSocket::serve`], in
//! `poller`), the pollers' mailboxes are [`crate::mesh`], and the
//! generator's send and receive halves are [`crate::split`].

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;

use log::{debug, info, warn};
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::mesh::HANDOFF_RESERVE;
use crate::WorkerShared;

/// Descriptors taken from a ring (or put on one) at once: a poller's
/// batch, and the generator's.
pub const BATCH: usize = 64;

/// Default UMEM frames per socket (`[interface] umem_frames`): 8192 ×
/// 2048 B = 16 MiB, a whole number of 2 MiB pages.
pub const DEFAULT_FRAMES: u32 = 8192;
const FRAME_SIZE: u32 = 2048;
/// Default RX and TX ring size (`[interface] ring_size`): 4096 frames
/// absorb a 20 ms stall of the poller's core at 200 k moves/s per queue
/// (docs/performance.md: on the lab VM, 2048 lost 0.1-0.2 % at 200 k/s to
/// 10-12 ms stalls, 4096 nothing).
pub const DEFAULT_RING: u32 = 4096;
const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
/// Linux ≥ 6.17: descriptors one copy-mode sendto may transmit (default 32).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// SOL_SOCKET options for busy polling (asm-generic/socket.h).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// How long a poller spins on an empty RX ring before it sleeps in poll(2),
/// unless `[interface] idle_spin_us` says otherwise: spinning through short
/// lulls answers the next move without a wake-up.
pub const DEFAULT_IDLE_SPIN: std::time::Duration = std::time::Duration::from_millis(2);

/// Preferred busy polling for an AF_XDP socket (`[interface] busy_poll`):
/// SO_PREFER_BUSY_POLL = 1, SO_BUSY_POLL = `usecs`, SO_BUSY_POLL_BUDGET =
/// `budget`. The socket's poller then drives the NIC queue's NAPI loop
/// itself (a recvfrom when its RX ring is empty, a sendto per batch of
/// acks); with the NIC's napi_defer_hard_irqs and gro_flush_timeout set,
/// the queue's interrupts stay off while it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// SO_BUSY_POLL: microseconds a blocking busy poll may spin (nonzero
    /// is what turns busy polling on for the socket).
    pub usecs: u32,
    /// SO_BUSY_POLL_BUDGET: packets per NAPI poll (above the kernel's
    /// default needs CAP_NET_ADMIN).
    pub budget: u32,
}

/// The busy-polling options a socket holds: SO_PREFER_BUSY_POLL and
/// SO_BUSY_POLL read back from the kernel, the budget as set (it cannot be
/// read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BusyPollState {
    pub prefer: bool,
    pub usecs: u32,
    pub budget: u32,
}

/// `[interface] zero_copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopyWant {
    Auto,
    On,
    Off,
}

/// Errors opening an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("AF_XDP on {iface} queue {queue}: {what}: {detail}")]
    Open { iface: String, queue: u32, what: &'static str, detail: String },
    #[error("AF_XDP on {iface} queue {queue}: busy polling: setsockopt(SOL_SOCKET, {option}, {value}): {err}{hint}")]
    BusyPoll { iface: String, queue: u32, option: &'static str, value: u32, err: io::Error, hint: &'static str },
}

/// A socket's UMEM and ring sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskSizes {
    /// UMEM frames of 2 KiB; also the fill and completion ring sizes.
    pub frames: u32,
    /// RX and TX ring entries.
    pub ring: u32,
}

impl Default for XskSizes {
    fn default() -> Self {
        XskSizes { frames: DEFAULT_FRAMES, ring: DEFAULT_RING }
    }
}

impl XskSizes {
    /// Why these sizes cannot work, if they cannot: both powers of two,
    /// frames 1024..=65536, ring 64..=frames/2 (the TX ring's frames come
    /// from the same UMEM as the fill ring's).
    pub fn check(&self) -> Result<(), String> {
        if !self.frames.is_power_of_two() || !(1024..=65536).contains(&self.frames) {
            return Err(format!("umem_frames = {}: must be a power of two from 1024 to 65536", self.frames));
        }
        if !self.ring.is_power_of_two() || self.ring < 64 || self.ring > self.frames / 2 {
            return Err(format!("ring_size = {}: must be a power of two from 64 to umem_frames/2 ({})", self.ring, self.frames / 2));
        }
        Ok(())
    }

    /// UMEM bytes.
    pub fn umem_bytes(&self) -> u64 {
        self.frames as u64 * FRAME_SIZE as u64
    }
}

/// What an opened socket got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskMode {
    pub zero_copy: bool,
    pub hugepages: bool,
}

/// One AF_XDP socket with its UMEM and rings, ready to be served.
pub struct XskSocket {
    pub(crate) umem: Umem,
    /// Frames in no ring yet (those not put on the fill ring at open).
    pub(crate) frames: Vec<FrameDesc>,
    pub(crate) rx: RxQueue,
    pub(crate) tx: TxQueue,
    pub(crate) fq: FillQueue,
    pub(crate) cq: CompQueue,
    pub queue: u32,
    pub iface: String,
    pub mode: XskMode,
    pub sizes: XskSizes,
    /// Preferred busy polling, as the kernel holds it, once
    /// [`set_busy_poll`](Self::set_busy_poll) set it.
    pub busy_poll: Option<BusyPollState>,
    /// How long the poller spins on an empty RX ring before it sleeps in
    /// poll(2) (`[interface] idle_spin_us`).
    pub idle_spin: std::time::Duration,
}

/// An open socket's UMEM, frames in no ring, and rings, for a loop of its
/// own (the bench reflector: the appliance's socket setup, another loop).
pub struct XskParts {
    pub umem: Umem,
    pub frames: Vec<FrameDesc>,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
}

impl XskSocket {
    pub fn into_parts(self) -> XskParts {
        XskParts { umem: self.umem, frames: self.frames, rx: self.rx, tx: self.tx, fq: self.fq, cq: self.cq }
    }
}

/// The soft RLIMIT_MEMLOCK in KiB (u64::MAX when unlimited), for error messages.
fn memlock_kib() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur == libc::RLIM_INFINITY { u64::MAX } else { r.rlim_cur / 1024 }
}

impl XskSocket {
    /// Opens a socket on `iface`/`queue` with libxdp's own XDP program
    /// inhibited (ours steers into our XSKMAP), need_wakeup, zero-copy per
    /// `zc`, UMEM on 2 MiB hugepages when some are reserved.
    pub fn open(iface: &str, queue: u32, zc: ZeroCopyWant, sizes: XskSizes) -> Result<XskSocket, XskError> {
        // Frames for moves handed over by other pollers stay off the fill
        // ring (a lone poller gives them to it when it starts serving).
        Self::open_with_fill(iface, queue, zc, sizes.frames as usize - HANDOFF_RESERVE, sizes)
    }

    /// Like [`open`](Self::open), putting only `fill` frames on the fill
    /// ring (the rest stay free for transmitting: see [`split`](Self::split)).
    pub fn open_with_fill(iface: &str, queue: u32, zc: ZeroCopyWant, fill: usize, sizes: XskSizes) -> Result<XskSocket, XskError> {
        let err = |what: &'static str, detail: String| XskError::Open { iface: iface.into(), queue, what, detail };
        sizes.check().map_err(|e| err("sizes", e))?;
        let (umem, mut frames, hugepages) = new_umem(iface, queue, sizes)?;
        let (tx, rx, fqcq) = bind(&umem, iface, queue, sizes.ring, zc)?;
        let (mut fq, cq) = fqcq.ok_or_else(|| err("rings", "fill/completion rings already taken".into()))?;
        // Fill the fill ring now, before the program can redirect anything
        // here, so the first frames find buffers waiting.
        let k = (fq.nb_free(frames.len() as u32) as usize).min(frames.len()).min(fill);
        // SAFETY: fresh frames from Umem::new, in no ring yet.
        if unsafe { fq.produce(&frames[frames.len() - k..]) } == k {
            frames.truncate(frames.len() - k);
        }
        let fd = rx.fd().as_raw_fd();
        let zero_copy = xdp_options(fd).map(|f| f & XDP_OPTIONS_ZEROCOPY != 0).unwrap_or(false);
        raise_tx_budget(fd, sizes.ring);
        let mode = XskMode { zero_copy, hugepages };
        info!(
            "AF_XDP {iface} queue {queue}: {} mode, UMEM {} frames ({} MiB) on {}, rings {}",
            if zero_copy { "zero-copy" } else { "copy" },
            sizes.frames,
            sizes.umem_bytes() >> 20,
            if hugepages { "2 MiB hugepages" } else { "4 KiB pages" },
            sizes.ring
        );
        Ok(XskSocket { umem, frames, rx, tx, fq, cq, queue, iface: iface.into(), mode, sizes, busy_poll: None, idle_spin: DEFAULT_IDLE_SPIN })
    }

    /// Turns on preferred busy polling: SO_PREFER_BUSY_POLL = 1,
    /// SO_BUSY_POLL = `bp.usecs`, SO_BUSY_POLL_BUDGET = `bp.budget` (the
    /// first and, above the kernel's default, the last need
    /// CAP_NET_ADMIN; Linux >= 5.11). Reads the first two back and returns
    /// (and keeps, for the poller and `show info`) what the kernel holds.
    /// From then on the poller drives the NAPI loop (see [`crate::poller`]).
    pub fn set_busy_poll(&mut self, bp: BusyPoll) -> Result<BusyPollState, XskError> {
        let fd = self.fd();
        for (option, name, value) in [
            (SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL", 1u32),
            (SO_BUSY_POLL, "SO_BUSY_POLL", bp.usecs),
            (SO_BUSY_POLL_BUDGET, "SO_BUSY_POLL_BUDGET", bp.budget),
        ] {
            let v = value as libc::c_int;
            // SAFETY: fd is our AF_XDP socket; the value is a c_int of the length passed.
            let rc = unsafe {
                libc::setsockopt(fd, libc::SOL_SOCKET, option, (&v as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
            };
            if rc != 0 {
                let err = io::Error::last_os_error();
                let hint = match err.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => " (needs CAP_NET_ADMIN)",
                    Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) => {
                        " (needs Linux >= 5.11 built with CONFIG_NET_RX_BUSY_POLL; or set [interface] busy_poll = false)"
                    }
                    _ => "",
                };
                return Err(XskError::BusyPoll { iface: self.iface.clone(), queue: self.queue, option: name, value, err, hint });
            }
        }
        let get = |option: libc::c_int, name: &'static str| -> Result<u32, XskError> {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: fd is our AF_XDP socket; `v` is a writable c_int of the length passed.
            let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, option, (&mut v as *mut libc::c_int).cast(), &mut len) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                return Err(XskError::BusyPoll { iface: self.iface.clone(), queue: self.queue, option: name, value: 0, err, hint: " (reading it back)" });
            }
            Ok(v.max(0) as u32)
        };
        // the kernel has no getsockopt for SO_BUSY_POLL_BUDGET (ENOPROTOOPT
        // on 6.18): the budget is the one just set
        let st = BusyPollState {
            prefer: get(SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL")? != 0,
            usecs: get(SO_BUSY_POLL, "SO_BUSY_POLL")?,
            budget: bp.budget,
        };
        info!(
            "AF_XDP {} queue {}: preferred busy polling on (SO_BUSY_POLL {} us, budget {}): the poller drives the NAPI loop",
            self.iface, self.queue, st.usecs, st.budget
        );
        self.busy_poll = Some(st);
        Ok(st)
    }

    /// With preferred busy polling: one non-blocking recvfrom, in which the
    /// kernel runs the queue's NAPI poll (RX frames onto our RX ring, TX
    /// completions) on this core. Errors are ignored: the next turn tries
    /// again (EAGAIN, ENOBUFS and the like are normal here).
    #[inline]
    pub(crate) fn busy_poll_rx(&self) {
        // SAFETY: a zero-length, non-blocking recvfrom on our AF_XDP socket
        // with no buffer and no address (the kernel writes nothing).
        let _ = unsafe { libc::recvfrom(self.fd(), std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut()) };
    }

    /// The socket's fd, for the XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// The kernel's XDP_STATISTICS for this socket.
    pub fn statistics(&self) -> io::Result<[u64; 6]> {
        statistics_of(self.rx.fd())
    }

    /// One getsockopt(XDP_STATISTICS), published for the control plane
    /// (called about once a second, never per packet).
    pub(crate) fn publish_xsk_stats(&self, shared: &WorkerShared) {
        if let Ok(s) = self.statistics() {
            for (cell, v) in shared.xsk_stats.iter().zip(s) {
                cell.store(v, Ordering::Relaxed);
            }
        }
    }
}

/// The kernel's XDP_STATISTICS for the AF_XDP socket `fd`, in the order
/// of [`crate::XSK_STAT_NAMES`].
pub(crate) fn statistics_of(fd: &xsk_rs::socket::Fd) -> io::Result<[u64; 6]> {
    let s = fd.xdp_statistics()?;
    Ok([
        s.rx_dropped(),
        s.rx_invalid_descs(),
        s.tx_invalid_descs(),
        s.rx_ring_full(),
        s.rx_fill_ring_empty_descs(),
        s.tx_ring_empty_descs(),
    ])
}

/// The socket's UMEM: `sizes.frames` frames of FRAME_SIZE, on 2 MiB
/// hugepages when some are reserved, else on 4 KiB pages (and whether it
/// got hugepages).
fn new_umem(iface: &str, queue: u32, sizes: XskSizes) -> Result<(Umem, Vec<FrameDesc>, bool), XskError> {
    let err = |what: &'static str, detail: String| XskError::Open { iface: iface.into(), queue, what, detail };
    let frames_n = sizes.frames;
    let ucfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| err("frame size", e.to_string()))?)
        .fill_queue_size(QueueSize::new(frames_n).map_err(|e| err("fill ring size", e.to_string()))?)
        .comp_queue_size(QueueSize::new(frames_n).map_err(|e| err("completion ring size", e.to_string()))?)
        .build()
        .map_err(|e| err("UMEM config", e.to_string()))?;
    let count = NonZeroU32::new(frames_n).expect("nonzero");
    let (umem, frames, hugepages) = match Umem::new(ucfg, count, true) {
        Ok((u, f)) => (u, f, true),
        Err(e) => {
            warn!(
                "AF_XDP {iface} queue {queue}: no 2 MiB hugepages for the UMEM ({e}); using 4 KiB pages. \
                 Reserve some with: echo 64 > /proc/sys/vm/nr_hugepages (8 per queue at the default umem_frames)"
            );
            let (u, f) = Umem::new(ucfg, count, false).map_err(|e| {
                err(
                    "UMEM registration",
                    format!(
                        "{e}: the {} KiB area must be locked (the process needs CAP_IPC_LOCK, or RLIMIT_MEMLOCK above it: \
                         it is {} KiB; systemd: LimitMEMLOCK=infinity), and the AF_XDP socket needs CAP_NET_RAW",
                        sizes.umem_bytes() / 1024,
                        memlock_kib()
                    ),
                )
            })?;
            (u, f, false)
        }
    };
    Ok((umem, frames, hugepages))
}

type Rings = (TxQueue, RxQueue, Option<(FillQueue, CompQueue)>);

/// Binds an AF_XDP socket on `iface` queue `queue` to `umem`: zero-copy,
/// copy mode, or zero-copy where the driver allows it and copy otherwise.
fn bind(umem: &Umem, iface: &str, queue: u32, ring: u32, zc: ZeroCopyWant) -> Result<Rings, XskError> {
    let err = |what: &'static str, detail: String| XskError::Open { iface: iface.into(), queue, what, detail };
    let ifc: Interface = iface.parse().map_err(|_| err("interface name", iface.into()))?;
    let cfg = |b: BindFlags| {
        SocketConfig::builder()
            .rx_queue_size(QueueSize::new(ring).expect("power of two"))
            .tx_queue_size(QueueSize::new(ring).expect("power of two"))
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(b | BindFlags::XDP_USE_NEED_WAKEUP)
            .build()
    };
    // SAFETY: the UMEM lives as long as the queues (they are stored
    // together in XskSocket and the UMEM handle keeps the area mapped);
    // the program-load inhibit flag is set, as Socket::new requires when
    // the caller manages the XDP program.
    let open = |b: BindFlags| unsafe { Socket::new(cfg(b), umem, &ifc, queue) };
    Ok(match zc {
        ZeroCopyWant::On => open(BindFlags::XDP_ZEROCOPY).map_err(|e| err("bind zero-copy (zero_copy = on)", e.to_string()))?,
        ZeroCopyWant::Off => open(BindFlags::XDP_COPY).map_err(|e| err("bind copy mode", e.to_string()))?,
        ZeroCopyWant::Auto => match open(BindFlags::XDP_ZEROCOPY) {
            Ok(s) => s,
            Err(e) => {
                info!("AF_XDP {iface} queue {queue}: zero-copy not available ({e}); using copy mode");
                open(BindFlags::XDP_COPY).map_err(|e| err("bind copy mode", e.to_string()))?
            }
        },
    })
}

/// Lets one copy-mode sendto transmit a whole ring (Linux >= 6.17;
/// otherwise 32 per kick).
fn raise_tx_budget(fd: RawFd, ring: u32) {
    let budget = ring;
    // SAFETY: fd is our AF_XDP socket; the option value is a u32 read by the kernel.
    let rc = unsafe { libc::setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, (&budget as *const u32).cast(), 4) };
    if rc != 0 {
        debug!("XDP_MAX_TX_SKB_BUDGET not set ({}): copy-mode TX sends 32 per kick", io::Error::last_os_error());
    }
}

fn xdp_options(fd: RawFd) -> io::Result<u32> {
    let mut flags: u32 = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: fd is an AF_XDP socket; `flags` is a writable u32 of the given length.
    let rc = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&mut flags as *mut u32).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}
