//! `ih-bench-reflector`: the floor of the machine, for the lab benchmark
//! only. One AF_XDP socket on one queue, opened by the appliance's own
//! socket setup (`ironhoard_dataplane::xsk`: its UMEM and ring sizes,
//! hugepages, zero-copy fallback, TX budget) and steered by IronHoard's own
//! XDP program, and driven by the poller's own ring code
//! (`ironhoard_dataplane::rings::XskRings`: the same batch, fill-ring
//! policy, TX kicks, idle spin and sleep); every move frame becomes an
//! ACCEPTED ack signed with the player's key (one HMAC-SHA256, the ack tag)
//! and leaves from the UMEM frame it arrived in. No tag verification,
//! replay window, rules, rate limit or move log: it acks forgeries too.
//! See the crate documentation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use ironhoard_contenders::read_secret;
use ironhoard_classify::{classify, rewrite_to_ack, Class};
use ironhoard_dataplane::rings::XskRings;
use ironhoard_dataplane::xsk::{XskSizes, XskSocket, ZeroCopyWant, BATCH};
use ironhoard_dataplane::{affinity, monotonic_ns, XSK_STAT_NAMES};
use ironhoard_loader::{Steering, WantMode};
use ironhoard_wire::{ack_in_place, MasterKey, Move, PlayerMac, Status, MOVE_LEN};
use xsk_rs::FrameDesc;

#[derive(Parser)]
#[command(
    name = "ih-bench-reflector",
    version,
    about = "Bench only: a bare AF_XDP reflector that acks every move ACCEPTED (signed) without validating it",
    long_about = "Bench only: the floor of the machine for the lab benchmark. One AF_XDP socket on one queue, \
                  steered by IronHoard's XDP program; each move becomes an ACCEPTED ack signed with the player's key \
                  (one HMAC per packet) and is sent back from the frame it arrived in. It does NOT verify tags, \
                  keep replay windows, apply rules or rate limits, or log moves: never expose it to real traffic. \
                  Runs until SIGINT/SIGTERM, then prints its counters (frames reflected, the socket's XDP_STATISTICS); \
                  SIGUSR1 prints them without stopping."
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
    let report = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&report)).context("installing the SIGUSR1 handler")?;
    let mut keys = KeyCache::new(MasterKey::new(&read_secret(&a.secret_file)?), a.players);
    // the appliance's socket, at its default sizes and idle spin
    let mut sock = XskSocket::open(&a.iface, a.queue, ZeroCopyWant::Auto, XskSizes::default())
        .with_context(|| format!("AF_XDP socket on {} queue {}", a.iface, a.queue))?;
    sock.idle_spin = Duration::from_micros(a.idle_spin_us);
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
    // one queue, no mesh: no frames kept back for handed-over moves
    let mut r = Reflector::new(XskRings::new(sock, 0));
    while !term.load(Ordering::Relaxed) {
        r.turn(&mut keys, a.port);
        if report.load(Ordering::Relaxed) {
            report.store(false, Ordering::Relaxed);
            println!("{}", r.counters());
        }
    }
    let last = r.counters(); // before the detach: the socket's statistics as the load left them
    drop(steering); // detach before the socket goes
    println!(
        "ih-bench-reflector: {} frames reflected ({} not: not a key_id 0 move, or TX ring full; \
         {} player keys cached, {} packets signed with an uncached key)",
        r.reflected, r.not_reflected, keys.len, keys.uncached
    );
    println!("{last}");
    Ok(())
}

/// The reflector's loop: the poller's turn (`ironhoard_dataplane::poller`)
/// with one HMAC per frame in place of the engine and the log.
struct Reflector {
    rings: XskRings,
    rx_batch: [FrameDesc; BATCH],
    tx_batch: [FrameDesc; BATCH],
    reflected: u64,
    not_reflected: u64,
}

impl Reflector {
    fn new(rings: XskRings) -> Reflector {
        let d = FrameDesc::default();
        Reflector { rings, rx_batch: [d; BATCH], tx_batch: [d; BATCH], reflected: 0, not_reflected: 0 }
    }

    /// One turn, as the poller's: completions back, the fill ring
    /// refilled, one RX batch, each key_id 0 move rewritten into its signed
    /// ack (the rest back to the pool), the acks sent; or, when the ring
    /// was empty, spin then sleep.
    fn turn(&mut self, keys: &mut KeyCache, port: u16) {
        self.rings.reclaim();
        self.rings.refill();
        let n = self.rings.receive(&mut self.rx_batch);
        if n == 0 {
            if self.rings.idle(monotonic_ns(), false) {
                self.rings.sleep();
            } else {
                std::hint::spin_loop();
            }
            return;
        }
        self.rings.busy();
        let mut acks = 0;
        for i in 0..n {
            let mut d = self.rx_batch[i];
            // SAFETY: the RX ring handed us this frame; it is in no ring
            // until we send it or put it back.
            let mut data = unsafe { self.rings.umem().data_mut(&mut d) };
            let f = data.contents_mut();
            let len = match classify(f, port, MOVE_LEN) {
                Class::Serve(u) if keys.ack(&mut f[u.payload()..u.payload() + MOVE_LEN]) => Some(rewrite_to_ack(f, &u)),
                _ => None,
            };
            match len {
                Some(len) => {
                    data.cursor().set_pos(len);
                    self.tx_batch[acks] = d;
                    acks += 1;
                }
                None => {
                    self.not_reflected += 1;
                    // SAFETY: received this turn, in no ring, going nowhere else.
                    unsafe { self.rings.put_back(d) };
                }
            }
        }
        // SAFETY: each ack's frame was received this turn, is in no ring,
        // and is in tx_batch once.
        let sent = unsafe { self.rings.send(&self.tx_batch[..acks]) };
        self.reflected += sent.sent as u64;
        self.not_reflected += sent.refused as u64;
        self.rings.check();
    }

    /// One line for the bench scripts: `ih-bench-reflector: counters` and a
    /// JSON object of the frames reflected and not, and the socket's
    /// XDP_STATISTICS (`xsk`, by [`XSK_STAT_NAMES`]; absent when the
    /// getsockopt failed). `rx_ring_full` is what tells whether the floor
    /// itself fell behind, or what it was offered was all it got.
    fn counters(&self) -> String {
        let xsk = match self.rings.statistics() {
            Ok(v) => {
                let kv: Vec<String> = XSK_STAT_NAMES.iter().zip(v).map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!(", \"xsk\": {{{}}}", kv.join(", "))
            }
            Err(_) => String::new(),
        };
        format!(
            "ih-bench-reflector: counters {{\"reflected\": {}, \"not_reflected\": {}{xsk}}}",
            self.reflected, self.not_reflected
        )
    }
}
