//! `ih-bench-reflector`: the floor of the machine, for the lab benchmark
//! only. One AF_XDP socket on one queue, opened by the appliance's own
//! socket setup (`ironhoard_dataplane::xsk`: its UMEM and ring sizes,
//! hugepages, zero-copy fallback, TX budget) and steered by IronHoard's own
//! XDP program; every move frame becomes an ACCEPTED ack signed with the
//! player's key (one HMAC-SHA256, the ack tag) and leaves from the UMEM frame
//! it arrived in, batched and woken as the appliance's poller does. No tag
//! verification, replay window, rules, rate limit or move log: it acks
//! forgeries too. See the crate documentation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use ironhoard_contenders::read_secret;
use ironhoard_classify::{classify, rewrite_to_ack, Class};
use ironhoard_dataplane::xsk::{XskParts, XskSizes, XskSocket, ZeroCopyWant, BATCH};
use ironhoard_dataplane::{affinity, monotonic_ns};
use ironhoard_loader::{Steering, WantMode};
use ironhoard_wire::{ack_in_place, MasterKey, Move, PlayerMac, Status, MOVE_LEN};
use xsk_rs::FrameDesc;

/// As the appliance's poller: spin `--idle-spin-us` (its default,
/// DEFAULT_IDLE_SPIN: 2 ms), then poll(2).
const IDLE_POLL_MS: i32 = 10;

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
    /// Microseconds of empty RX ring it spins through before it sleeps in
    /// poll(2), as the appliance's `[interface] idle_spin_us`.
    #[arg(long, default_value_t = ironhoard_dataplane::xsk::DEFAULT_IDLE_SPIN.as_micros() as u64)]
    idle_spin_us: u64,
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

fn run(a: Args) -> Result<()> {
    affinity::pin_current_thread(a.core)?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handlers")?;
    }
    let mut keys = KeyCache::new(MasterKey::new(&read_secret(&a.secret_file)?), a.players);
    // the appliance's socket, at its default sizes, every frame on the fill ring
    let sizes = XskSizes::default();
    let sock = XskSocket::open_with_fill(&a.iface, a.queue, ZeroCopyWant::Auto, sizes.frames as usize, sizes)
        .with_context(|| format!("AF_XDP socket on {} queue {}", a.iface, a.queue))?;
    let mut steering = Steering::load(a.port).context("loading the XDP program")?;
    steering.set_shield((0, 0), (0, 0))?; // off, as in the lab's appliance
    steering.insert_socket(a.queue, sock.fd())?;
    let xdp = steering.attach(&a.iface, WantMode::Auto)?;
    eprintln!(
        "ih-bench-reflector: {} queue {} UDP port {}: AF_XDP {} mode, XDP {} mode, core {}; ready",
        a.iface,
        a.queue,
        a.port,
        if sock.mode.zero_copy { "zero-copy" } else { "copy" },
        xdp.name(),
        a.core
    );
    let mut r = Reflector::new(sock.into_parts());
    let spin_idle_ns = a.idle_spin_us.saturating_mul(1000);
    let mut idle_since = None;
    while !term.load(Ordering::Relaxed) {
        r.recycle();
        if r.reflect(&mut keys, a.port) > 0 {
            idle_since = None;
            continue;
        }
        // busy-poll; after an idle stretch of idle_spin_us sleep in poll(2), as the appliance does
        let t = monotonic_ns();
        if t - *idle_since.get_or_insert(t) >= spin_idle_ns && r.in_flight == 0 {
            let _ = r.p.rx.poll(IDLE_POLL_MS);
            idle_since = None;
        } else {
            std::hint::spin_loop();
        }
    }
    drop(steering); // detach before the socket goes
    println!(
        "ih-bench-reflector: {} frames reflected ({} not: not a key_id 0 move, or TX ring full; \
         {} player keys cached, {} packets signed with an uncached key)",
        r.reflected, r.not_reflected, keys.len, keys.uncached
    );
    Ok(())
}

/// The reflector's loop state over the socket's parts.
struct Reflector {
    p: XskParts,
    /// Frames in no ring (never more than all of them: pushes never
    /// reallocate).
    stash: Vec<FrameDesc>,
    rx_batch: [FrameDesc; BATCH],
    tx_batch: [FrameDesc; BATCH],
    comp: [FrameDesc; 4 * BATCH],
    in_flight: usize,
    reflected: u64,
    not_reflected: u64,
}

impl Reflector {
    fn new(mut p: XskParts) -> Reflector {
        // (the socket put every frame on the fill ring: an empty Vec with
        // room for all of them)
        let stash = std::mem::take(&mut p.frames);
        let d = FrameDesc::default();
        Reflector { p, stash, rx_batch: [d; BATCH], tx_batch: [d; BATCH], comp: [d; 4 * BATCH], in_flight: 0, reflected: 0, not_reflected: 0 }
    }

    /// Completed TX frames back to the stash, the stash to the fill ring.
    fn recycle(&mut self) {
        self.complete();
        let k = (self.p.fq.nb_free(self.stash.len() as u32) as usize).min(self.stash.len());
        // SAFETY: stashed frames are in no ring.
        if k > 0 && unsafe { self.p.fq.produce(&self.stash[self.stash.len() - k..]) } == k {
            self.stash.truncate(self.stash.len() - k);
        }
        if self.p.fq.needs_wakeup() {
            let _ = self.p.fq.wakeup(self.p.rx.fd_mut(), 0);
        }
    }

    fn complete(&mut self) {
        // SAFETY: comp is ours to overwrite; the ring hands back frames we sent.
        let c = unsafe { self.p.cq.consume(&mut self.comp) };
        self.stash.extend_from_slice(&self.comp[..c]);
        self.in_flight -= c.min(self.in_flight);
    }

    /// One RX batch: each key_id 0 move rewritten into its signed ack and
    /// put on the TX ring; the rest back to the stash. The frames received.
    fn reflect(&mut self, keys: &mut KeyCache, port: u16) -> usize {
        // SAFETY: rx_batch is ours to overwrite.
        let n = unsafe { self.p.rx.consume(&mut self.rx_batch) };
        if n == 0 {
            if self.in_flight > 0 {
                let _ = self.p.tx.wakeup();
            }
            return 0;
        }
        let mut acks = 0;
        for i in 0..n {
            let d = self.rx_batch[i];
            // SAFETY: the RX ring handed us this frame; it is in no ring
            // until we put it on the TX ring or back in the stash.
            let mut data = unsafe { self.p.umem.data_mut(&mut self.rx_batch[i]) };
            let f = data.contents_mut();
            let len = match classify(f, port, MOVE_LEN) {
                Class::Serve(u) if keys.ack(&mut f[u.payload()..u.payload() + MOVE_LEN]) => Some(rewrite_to_ack(f, &u)),
                _ => None,
            };
            match len {
                Some(len) => {
                    data.cursor().set_pos(len);
                    self.tx_batch[acks] = self.rx_batch[i];
                    acks += 1;
                }
                None => {
                    self.not_reflected += 1;
                    self.stash.push(d);
                }
            }
        }
        self.send(acks);
        n
    }

    /// Puts `acks` frames of the TX batch on the TX ring (kicking the kernel
    /// and taking completions while it is full, 64 tries at most).
    fn send(&mut self, acks: usize) {
        if acks > 0 {
            let mut sent = 0;
            for _ in 0..64 {
                // SAFETY: these frames hold finished acks and are in no ring.
                sent = unsafe { self.p.tx.produce(&self.tx_batch[..acks]) };
                if sent == acks {
                    break;
                }
                // TX ring full: kick the kernel, take completions, try again
                let _ = self.p.tx.wakeup();
                self.complete();
            }
            self.in_flight += sent;
            self.reflected += sent as u64;
            self.not_reflected += (acks - sent) as u64;
            self.stash.extend_from_slice(&self.tx_batch[sent..acks]);
        }
        if self.p.tx.needs_wakeup() && self.in_flight > 0 {
            let _ = self.p.tx.wakeup();
        }
    }
}
