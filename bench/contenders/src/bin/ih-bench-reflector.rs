//! `ih-bench-reflector`: the floor of the machine, for the lab benchmark
//! only. One AF_XDP socket on one queue, steered by IronHoard's own XDP
//! program; every move frame becomes an ACCEPTED ack signed with the
//! player's key (one HMAC-SHA256, the ack tag) and leaves from the UMEM frame
//! it arrived in. No tag verification, replay window, rules, rate limit or
//! move log: it acks forgeries too. See the crate documentation.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use ironhoard_contenders::read_secret;
use ironhoard_classify::{classify, rewrite_to_ack, Class};
use ironhoard_dataplane::xsk::{DEFAULT_FRAMES, DEFAULT_RING};
use ironhoard_dataplane::{affinity, monotonic_ns};
use ironhoard_loader::{Steering, WantMode};
use ironhoard_wire::{ack_in_place, MasterKey, Move, PlayerMac, Status, MOVE_LEN};
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{FrameDesc, Socket, Umem};

/// As the appliance's poller: frame size, batch, idle policy.
const FRAME_SIZE: u32 = 2048;
const BATCH: usize = 64;
const SPIN_IDLE_NS: u64 = 2_000_000;
const IDLE_POLL_MS: i32 = 10;
const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
/// Linux ≥ 6.17: descriptors one copy-mode sendto may transmit.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

#[derive(Parser)]
#[command(
    name = "ih-bench-reflector",
    version,
    about = "Bench only: a bare AF_XDP reflector that acks every move ACCEPTED (signed) without validating it",
    long_about = "Bench only: the floor of the machine for the lab benchmark. One AF_XDP socket on one queue, \
                  steered by IronHoard's XDP program; each move becomes an ACCEPTED ack signed with the player's key \
                  (one HMAC per packet) and is sent back from the frame it arrived in. It does NOT verify tags, \
                  keep replay windows, apply rules or rate limits, or log moves: never expose it to real traffic. \
                  Runs until SIGINT/SIGTERM, then prints the number of frames reflected."
)]
struct Args {
    /// Interface to attach to.
    #[arg(long)]
    iface: String,
    /// Receive queue of the AF_XDP socket.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// UDP port of the moves.
    #[arg(long, default_value_t = 7777)]
    port: u16,
    /// Master secret file for key_id 0 (the appliance's format); moves with
    /// another key_id are not answered.
    #[arg(long)]
    secret_file: PathBuf,
    /// Core to pin to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Player keys cached (table allocated at start); players beyond it are
    /// signed with a key derived for each packet.
    #[arg(long, default_value_t = 65_536)]
    players: usize,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("ih-bench-reflector: error: {e:#}");
        std::process::exit(1);
    }
}

/// Pre-keyed player MACs by (game_id, player_id) under key_id 0, derived on
/// first sight: open addressing over slots allocated at start.
struct KeyCache {
    master: MasterKey,
    slots: Vec<Option<(u64, PlayerMac)>>,
    len: usize,
    capacity: usize,
    /// Packets signed with a key derived on the spot (the table was full).
    uncached: u64,
}

impl KeyCache {
    fn new(master: MasterKey, capacity: usize) -> KeyCache {
        let capacity = capacity.max(1);
        // at most half the slots used: probes stay short and always end
        KeyCache { master, slots: vec![None; (2 * capacity).next_power_of_two()], len: 0, capacity, uncached: 0 }
    }

    /// Rewrites the move in `payload` into its ACCEPTED ack: the packet's
    /// one HMAC. `false` (nothing written) for what is not a key_id 0 move.
    #[inline]
    fn ack(&mut self, payload: &mut [u8]) -> bool {
        let m = Move::new_unchecked(&*payload);
        if m.check_header().is_err() || m.key_id() != 0 {
            return false;
        }
        let (game, player) = (m.game_id(), m.player_id());
        let key = (game as u64) << 32 | player as u64;
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        while let Some((k, mac)) = &self.slots[i] {
            if *k == key {
                ack_in_place(payload, Status::Accepted, mac);
                return true;
            }
            i = (i + 1) & mask;
        }
        let mac = self.master.player_mac(game, player);
        ack_in_place(payload, Status::Accepted, &mac);
        if self.len < self.capacity {
            self.slots[i] = Some((key, mac));
            self.len += 1;
        } else {
            self.uncached += 1;
        }
        true
    }
}

fn xdp_zero_copy(fd: RawFd) -> bool {
    let (mut flags, mut len) = (0u32, 4 as libc::socklen_t);
    // SAFETY: fd is an AF_XDP socket; `flags` is a writable u32 of the length passed.
    let rc = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&mut flags as *mut u32).cast(), &mut len) };
    rc == 0 && flags & XDP_OPTIONS_ZEROCOPY != 0
}

fn run(a: Args) -> Result<()> {
    affinity::pin_current_thread(a.core)?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handlers")?;
    }
    let mut keys = KeyCache::new(MasterKey::new(&read_secret(&a.secret_file)?), a.players);

    // UMEM and socket, sized as the appliance's defaults
    let ucfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE)?)
        .fill_queue_size(QueueSize::new(DEFAULT_FRAMES)?)
        .comp_queue_size(QueueSize::new(DEFAULT_FRAMES)?)
        .build()?;
    let count = NonZeroU32::new(DEFAULT_FRAMES).context("UMEM frames")?;
    let (umem, frames) = Umem::new(ucfg, count, true).or_else(|_| Umem::new(ucfg, count, false)).context("creating the UMEM")?;
    let ifc: Interface = a.iface.parse().map_err(|_| anyhow::anyhow!("interface name {}", a.iface))?;
    let scfg = |b: BindFlags| -> Result<SocketConfig> {
        Ok(SocketConfig::builder()
            .rx_queue_size(QueueSize::new(DEFAULT_RING)?)
            .tx_queue_size(QueueSize::new(DEFAULT_RING)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(b | BindFlags::XDP_USE_NEED_WAKEUP)
            .build())
    };
    let (zc, copy) = (scfg(BindFlags::XDP_ZEROCOPY)?, scfg(BindFlags::XDP_COPY)?);
    // SAFETY: the UMEM outlives the rings (declared before them, so dropped
    // after; each ring also holds a handle to it), and libxdp's own program
    // load is inhibited, as Socket::new requires: ours steers to the socket.
    let (mut tx, mut rx, rings) = unsafe { Socket::new(zc, &umem, &ifc, a.queue) }
        // SAFETY: as above.
        .or_else(|_| unsafe { Socket::new(copy, &umem, &ifc, a.queue) })
        .with_context(|| format!("AF_XDP socket on {} queue {}", a.iface, a.queue))?;
    let (mut fq, mut cq) = rings.context("fill/completion rings already taken")?;
    let fd = rx.fd().as_raw_fd();
    let budget = DEFAULT_RING;
    // SAFETY: fd is our AF_XDP socket; the option value is a u32 the kernel reads.
    unsafe { libc::setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, (&budget as *const u32).cast(), 4) };

    // Frames in no ring (the stash: never more than all of them, so pushes
    // never reallocate); all of them go on the fill ring first.
    let mut stash = frames;
    // SAFETY: fresh frames from Umem::new, in no ring yet.
    if unsafe { fq.produce(&stash) } == stash.len() {
        stash.clear();
    }

    let mut steering = Steering::load(a.port).context("loading the XDP program")?;
    steering.set_shield((0, 0), (0, 0))?; // off, as in the lab's appliance
    steering.insert_socket(a.queue, fd)?;
    let xdp = steering.attach(&a.iface, WantMode::Auto)?;
    eprintln!(
        "ih-bench-reflector: {} queue {} UDP port {}: AF_XDP {} mode, XDP {} mode, core {}; ready",
        a.iface,
        a.queue,
        a.port,
        if xdp_zero_copy(fd) { "zero-copy" } else { "copy" },
        xdp.name(),
        a.core
    );

    let mut rx_batch = [FrameDesc::default(); BATCH];
    let mut tx_batch = [FrameDesc::default(); BATCH];
    let mut comp = [FrameDesc::default(); 4 * BATCH];
    let (mut in_flight, mut reflected, mut not_reflected) = (0usize, 0u64, 0u64);
    let mut idle_since = None;
    while !term.load(Ordering::Relaxed) {
        // completed TX frames back to the stash, the stash to the fill ring
        // SAFETY: comp is ours to overwrite; the ring hands back frames we sent.
        let c = unsafe { cq.consume(&mut comp) };
        stash.extend_from_slice(&comp[..c]);
        in_flight -= c.min(in_flight);
        let k = (fq.nb_free(stash.len() as u32) as usize).min(stash.len());
        // SAFETY: stashed frames are in no ring.
        if k > 0 && unsafe { fq.produce(&stash[stash.len() - k..]) } == k {
            stash.truncate(stash.len() - k);
        }
        if fq.needs_wakeup() {
            let _ = fq.wakeup(rx.fd_mut(), 0);
        }
        // SAFETY: rx_batch is ours to overwrite.
        let n = unsafe { rx.consume(&mut rx_batch) };
        if n == 0 {
            if in_flight > 0 {
                let _ = tx.wakeup();
            }
            // busy-poll; after a 2 ms idle stretch sleep in poll(2), as the appliance does
            let t = monotonic_ns();
            if t - *idle_since.get_or_insert(t) >= SPIN_IDLE_NS && in_flight == 0 {
                let _ = rx.poll(IDLE_POLL_MS);
                idle_since = None;
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        idle_since = None;
        let mut acks = 0;
        for d in rx_batch[..n].iter_mut() {
            // SAFETY: the RX ring handed us this frame; it is in no ring
            // until we put it on the TX ring or back in the stash.
            let mut data = unsafe { umem.data_mut(d) };
            let f = data.contents_mut();
            let len = match classify(f, a.port, MOVE_LEN) {
                Class::Serve(u) if keys.ack(&mut f[u.payload()..u.payload() + MOVE_LEN]) => Some(rewrite_to_ack(f, &u)),
                _ => None,
            };
            match len {
                Some(len) => {
                    data.cursor().set_pos(len);
                    tx_batch[acks] = *d;
                    acks += 1;
                }
                None => {
                    not_reflected += 1;
                    stash.push(*d);
                }
            }
        }
        if acks > 0 {
            let mut sent = 0;
            for _ in 0..64 {
                // SAFETY: these frames hold finished acks and are in no ring.
                sent = unsafe { tx.produce(&tx_batch[..acks]) };
                if sent == acks {
                    break;
                }
                // TX ring full: kick the kernel, take completions, try again
                let _ = tx.wakeup();
                // SAFETY: as above.
                let c = unsafe { cq.consume(&mut comp) };
                stash.extend_from_slice(&comp[..c]);
                in_flight -= c.min(in_flight);
            }
            in_flight += sent;
            reflected += sent as u64;
            not_reflected += (acks - sent) as u64;
            stash.extend_from_slice(&tx_batch[sent..acks]);
        }
        if tx.needs_wakeup() && in_flight > 0 {
            let _ = tx.wakeup();
        }
    }
    drop(steering); // detach before the socket goes
    println!(
        "ih-bench-reflector: {reflected} frames reflected ({not_reflected} not: not a key_id 0 move, or TX ring full; \
         {} player keys cached, {} packets signed with an uncached key)",
        keys.len, keys.uncached
    );
    Ok(())
}
