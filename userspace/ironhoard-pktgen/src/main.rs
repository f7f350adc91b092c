//! `ironhoard-pktgen`: generates signed moves for many players (or replays
//! a capture), sends them at a controlled rate, receives and verifies every
//! ack, and reports rate, loss, statuses and RTT percentiles (SPEC §2).

mod accepted;
mod cli;
mod gen;
mod net;
mod pcap;
mod tstamp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use ironhoard_dataplane::split::{RxIdle, XskRx, XskTx};
use ironhoard_dataplane::xsk::{XskSocket, ZeroCopyWant};
use ironhoard_dataplane::{affinity, frame, monotonic_ns};
use ironhoard_loader::{Steering, WantMode};
use ironhoard_wire::{Ack, AckRepr, Move, MoveRepr, Status, MOVE_LEN};
use serde_json::json;
use socket2::SockAddr;

use cli::{Args, Mode, RxMode};
use gen::{Class, Generated, Generator, Keys, Mix, HOSTILE_TS};

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16)).collect::<Result<_, _>>().with_context(|| format!("MAC {s}"))?;
    v.try_into().map_err(|_| anyhow::anyhow!("MAC {s}: need 6 bytes"))
}

/// Live counters shared by the sender, receiver and progress threads.
/// Set by SIGINT/SIGTERM: sending ends early; the late acks are waited
/// for and the report is written as after a full run.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Live {
    sent: AtomicU64,
    /// Sends skipped behind schedule (`--max-lag-us`).
    skipped: AtomicU64,
    acked: AtomicU64,
    sending_done: AtomicBool,
    stop_rx: AtomicBool,
}

/// What the receiver learned.
struct RxResult {
    by_status: [u64; 6],
    acked: u64,
    hostile_acked: u64,
    double_accepted: u64,
    bad_acks: u64,
    /// RTT from the user-space clock (send stamp → receive thread's clock read).
    hist: Histogram<u64>,
    /// RTT from kernel timestamps (sendmsg's TX stamp → ack's RX stamp).
    hist_kernel: Histogram<u64>,
    /// Ack's kernel RX stamp → the receive thread's clock read: how long
    /// acks waited for the receive thread (its scheduling, not the appliance).
    hist_rx_wait: Histogram<u64>,
    /// Our send stamp → the kernel's TX stamp of that sendmsg.
    hist_tx_delay: Histogram<u64>,
    /// (send stamp, kernel RX stamp) of each verified ack, joined with the
    /// senders' TX stamps after the run.
    rx_stamps: Vec<(u64, u64)>,
    /// Acks the kernel dropped at our own receive socket (the UDP socket's
    /// buffer full; the AF_XDP socket's rx_ring_full + rx_dropped): the
    /// receive thread fell behind. They count as lost. None: unknown.
    socket_drops: Option<u64>,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC at the start.
    clock_offset: i64,
    /// The senders' kernel TX stamps, for the report.
    tx_stamped: (u64, u64, u64),
    /// Every move acked ACCEPTED: (key_id, game, player) -> seqs.
    accepted: accepted::Accepted,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("ironhoard-pktgen: error: {e:#}");
        std::process::exit(1);
    }
}

fn read_secret(p: &PathBuf) -> Result<[u8; 32]> {
    let t = std::fs::read_to_string(p).with_context(|| format!("secret file {}", p.display()))?;
    let mut s = [0u8; 32];
    hex::decode_to_slice(t.trim(), &mut s).with_context(|| format!("secret file {}: need 64 hex characters", p.display()))?;
    Ok(s)
}

fn mix_of(a: &Args) -> Result<Mix> {
    let each = a.invalid_ratio / 4.0;
    let m = Mix {
        forged: a.forged_ratio.unwrap_or(each),
        wrong_key: a.wrong_key_ratio.unwrap_or(each),
        junk: a.junk_ratio.unwrap_or(each),
        replay: a.replay_ratio.unwrap_or(each),
    };
    for (n, v) in [("forged", m.forged), ("wrong-key", m.wrong_key), ("junk", m.junk), ("replay", m.replay)] {
        if !(0.0..=1.0).contains(&v) {
            bail!("--{n}-ratio {v}: must be between 0 and 1");
        }
    }
    if m.forged + m.wrong_key + m.junk + m.replay > 1.0 {
        bail!("hostile ratios add up to more than 1");
    }
    Ok(m)
}

/// Where datagrams go out: a kernel socket (UDP GSO) or an AF_XDP socket.
enum Sender<'a> {
    Socket { sock: &'a std::net::UdpSocket, dst: &'a SockAddr, stamps: tstamp::TxStamps },
    Xsk { tx: Box<XskTx>, spec: frame::FrameSpec },
}

impl<'a> Sender<'a> {
    fn socket(sock: &'a std::net::UdpSocket, dst: &'a SockAddr) -> Sender<'a> {
        Sender::Socket { sock, dst, stamps: tstamp::TxStamps::new(sock) }
    }

    /// Sends `count` datagrams of `seg` bytes laid end to end in `buf`,
    /// the moves among them stamped `stamp` (0: not stamped by us).
    fn send(&mut self, buf: &[u8], seg: usize, count: usize, stamp: u64) -> Result<()> {
        match self {
            Sender::Socket { sock, dst, stamps } => {
                net::send_gso(sock, dst, buf, seg, count).context("send")?;
                stamps.sent(stamp);
                Ok(())
            }
            Sender::Xsk { tx, spec } => {
                let mut done = 0;
                let mut stalls = 0u32;
                while done < count {
                    let mut i = done;
                    let n = tx.send(count - done, |f| {
                        let n = frame::build_udp(f, spec, &buf[i * seg..(i + 1) * seg]);
                        i += 1;
                        n
                    });
                    done += n;
                    if n == 0 {
                        stalls += 1;
                        if stalls > 1_000_000 {
                            bail!("AF_XDP TX stalled: no frame completed");
                        }
                        std::thread::yield_now();
                    }
                }
                Ok(())
            }
        }
    }

    /// Waits for the last frames (AF_XDP) or the last TX timestamps (socket).
    fn finish(self, total: usize) -> tstamp::SendTimes {
        match self {
            Sender::Xsk { mut tx, .. } => {
                tx.flush(total, 10_000);
                tstamp::SendTimes::default()
            }
            Sender::Socket { stamps, .. } => stamps.finish(),
        }
    }
}

/// Source of acks for the receiver.
enum RxSource {
    Socket(std::net::UdpSocket),
    /// The AF_XDP receive half, the port acks come to, and what the
    /// receiver does when its ring is empty (`--rx-idle-us`).
    Xsk(Box<XskRx>, u16, RxIdle),
}

/// `--rx-idle-us`: 0 sleeps in poll(2), N > 0 on a timer for N µs.
fn rx_idle(a: &Args) -> RxIdle {
    match a.rx_idle_us {
        0 => RxIdle::Poll(20),
        us => RxIdle::Sleep(Duration::from_micros(us)),
    }
}

fn read_mac(iface: &str) -> Result<[u8; 6]> {
    let p = format!("/sys/class/net/{iface}/address");
    parse_mac(std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?.trim())
}

/// The neighbour table's MAC for `ip` on `iface`, resolving it if needed
/// (one datagram to the discard port, which the appliance passes to its
/// kernel, makes the kernel resolve the address).
fn neighbour_mac(iface: &str, ip: std::net::IpAddr) -> Result<[u8; 6]> {
    let lookup = || -> Option<[u8; 6]> {
        let out = std::process::Command::new("ip").args(["neigh", "show", &ip.to_string(), "dev", iface]).output().ok()?;
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let mut it = s.split_whitespace();
        while let Some(w) = it.next() {
            if w == "lladdr" {
                return parse_mac(it.next()?).ok();
            }
        }
        None
    };
    if let Some(m) = lookup() {
        return Ok(m);
    }
    let bind = if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = std::net::UdpSocket::bind(bind)?;
    let _ = s.send_to(b"", SocketAddr::new(ip, 9));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(m) = lookup() {
            return Ok(m);
        }
    }
    bail!("no neighbour entry for {ip} on {iface}; pass --dst-mac")
}

fn run(a: Args) -> Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { signal_hook::low_level::register(sig, || INTERRUPTED.store(true, Ordering::Relaxed)) }.context("installing signal handlers")?;
    }
    let secret = read_secret(&a.secret_file)?;
    let board = check_args(&a)?;
    let mix = mix_of(&a)?;
    let keys = Arc::new(Keys::with_base(&secret, a.key_id, a.games, a.players, a.game_base, a.first_seq));
    let live = Arc::new(Live::default());
    // keeps the XDP program (xdp mode) attached until the run ends
    let opened = open_mode(&a)?;
    let rx_handle = spawn_receiver(&a, &secret, opened.rx, &live)?;
    let t0 = Instant::now();
    let progress = if a.quiet { None } else { Some(spawn_progress(Arc::clone(&live), a.rate)) };
    let dst = SockAddr::from(a.target);
    let threads = a.threads.max(1);
    let mut sender = match (&opened.socks, opened.xsk) {
        (Some(socks), _) => Sender::socket(&socks[0], &dst),
        (None, Some((tx, spec))) => Sender::Xsk { tx: Box::new(tx), spec },
        _ => unreachable!("one sender per mode"),
    };
    let mut send_times = tstamp::SendTimes::default();
    let local = opened.local;
    let (generated, send_elapsed) = match &a.replay {
        Some(path) => replay(&a, path, &mut sender, &mut Keys::with_base(&secret, a.key_id, a.games, a.players, a.game_base, a.first_seq), &live)?,
        None if threads == 1 => generate(&a, mix, &keys, &mut sender, local, board, &live, Share { index: 0, of: 1 })?,
        None => {
            let socks = opened.socks.as_ref().expect("socket mode");
            let (g, el, st) = generate_threads(&a, mix, &keys, socks, &dst, local, board, &live)?;
            send_times.merge(st);
            (g, el)
        }
    };
    send_times.merge(sender.finish(2048));
    live.sending_done.store(true, Ordering::Relaxed);
    let mut rxr = rx_handle.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    rxr.join_kernel_stamps(&send_times);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let total_elapsed = t0.elapsed();
    drop(opened.steering);
    if let Some(path) = &a.accepted_out {
        write_accepted(path, &rxr.accepted)?;
    }
    report(&a, &generated, send_elapsed, total_elapsed, &rxr, live.skipped.load(Ordering::Relaxed))
}

/// Checks the arguments that clap cannot: the board (returned), the player
/// population, the first seq, the sender threads.
fn check_args(a: &Args) -> Result<(u16, u16)> {
    let board = a
        .board
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
        .filter(|(w, h)| *w > 0 && *h > 0)
        .with_context(|| format!("--board {}: want WIDTHxHEIGHT", a.board))?;
    if a.games == 0 || a.players == 0 {
        bail!("--games and --players must be at least 1");
    }
    if let Some(f) = a.catch_up {
        if f.is_nan() || f <= 1.0 || a.rate == 0 {
            bail!("--catch-up {f}: wants a factor above 1 and a --rate (above 0) to make up");
        }
    }
    if a.game_base == 0 || a.game_base.checked_add(a.games - 1).is_none() {
        bail!("--game-base {} with --games {}: game ids must be 1..=4294967295", a.game_base, a.games);
    }
    if a.first_seq == 0 || a.first_seq >= 1 << 62 {
        bail!("--first-seq {}: must be 1..2^62", a.first_seq);
    }
    if (a.games as u64) * (a.players as u64) > 10_000_000 {
        bail!("--games × --players must be at most 10000000 (one pre-keyed MAC each)");
    }
    let threads = a.threads.max(1);
    if threads > 1 && (a.mode != Mode::Socket || a.replay.is_some() || a.write_pcap.is_some()) {
        bail!("--threads works with --mode socket when generating, without --write-pcap");
    }
    if a.rx_mode == RxMode::Xdp && a.mode != Mode::Socket {
        bail!("--rx-mode xdp is for --mode socket (--mode xdp receives through AF_XDP already)");
    }
    if threads > 1 && a.rate > 0 && a.rate < threads as u64 {
        bail!("--rate {} is below one datagram per second per thread ({threads} threads)", a.rate);
    }
    if threads as u64 > a.games as u64 * a.players as u64 {
        bail!("--threads {threads}: more threads than players");
    }
    Ok(board)
}

/// What a mode opened: the sending sockets (socket mode) or the AF_XDP
/// socket's send half and frame spec (xdp mode), where acks come in, the
/// local address, and the XDP program steering acks to us (xdp mode).
struct Opened {
    socks: Option<Vec<std::net::UdpSocket>>,
    xsk: Option<(XskTx, frame::FrameSpec)>,
    rx: RxSource,
    local: SocketAddr,
    steering: Option<Steering>,
}

fn open_mode(a: &Args) -> Result<Opened> {
    match a.mode {
        Mode::Socket => {
            let (txs, rx) = net::socket_group(a.target, a.threads.max(1))?;
            let local = txs[0].local_addr()?;
            if a.rx_mode == RxMode::Xdp {
                // the acks to our port never reach the UDP socket: the XDP
                // program on --iface redirects them to an AF_XDP socket
                let iface = a.iface.as_deref().context("--rx-mode xdp needs --iface")?;
                let (st, sock) = steer_acks(iface, local.port())?;
                let (_, xrx) = sock.split();
                return Ok(Opened { socks: Some(txs), xsk: None, rx: RxSource::Xsk(Box::new(xrx), local.port(), rx_idle(a)), local, steering: Some(st) });
            }
            if let Err(e) = tstamp::enable_rx(&rx) {
                eprintln!("no kernel RX timestamps ({e}): only the user-space RTT is reported");
            }
            Ok(Opened { socks: Some(txs), xsk: None, rx: RxSource::Socket(rx), local, steering: None })
        }
        Mode::Xdp => {
            let iface = a.iface.clone().context("--mode xdp needs --iface")?;
            let port = 40_000 + (std::process::id() % 20_000) as u16;
            let local = SocketAddr::new(guess_source(a.target)?, port);
            let (st, sock) = steer_acks(&iface, port)?;
            let dst_mac = match &a.dst_mac {
                Some(m) => parse_mac(m)?,
                None => neighbour_mac(&iface, a.target.ip())?,
            };
            let spec = frame::FrameSpec { src_mac: read_mac(&iface)?, dst_mac, vlan: None, src: local, dst: a.target, ipv4_options: 0 };
            let (tx, rx) = sock.split();
            Ok(Opened { socks: None, xsk: Some((tx, spec)), rx: RxSource::Xsk(Box::new(rx), port, rx_idle(a)), local, steering: Some(st) })
        }
    }
}

/// Our XDP program on `iface`, steering acks to UDP port `port` into an
/// AF_XDP socket on its queue 0 (the generator's receive in xdp mode and
/// with --rx-mode xdp).
fn steer_acks(iface: &str, port: u16) -> Result<(Steering, XskSocket)> {
    let mut st = Steering::load(port).context("loading the XDP program")?;
    st.expect_acks()?;
    let sock = XskSocket::open_with_fill(iface, 0, ZeroCopyWant::Auto, 2048, ironhoard_dataplane::xsk::XskSizes::default())?;
    st.insert_socket(0, sock.fd())?;
    st.attach(iface, WantMode::Auto)?;
    Ok((st, sock))
}

/// The receiver thread: its own keys, pinned and SCHED_FIFO as asked.
fn spawn_receiver(a: &Args, secret: &[u8; 32], src: RxSource, live: &Arc<Live>) -> Result<std::thread::JoinHandle<Result<RxResult>>> {
    let live = Arc::clone(live);
    let mut keys_rx = Keys::with_base(secret, a.key_id, a.games, a.players, a.game_base, a.first_seq);
    let (rx_cpu, fifo, drain) = (a.rx_cpu, a.rx_fifo, Duration::from_millis(a.drain_ms));
    Ok(std::thread::Builder::new().name("pktgen-rx".into()).spawn(move || -> Result<RxResult> {
        if let Some(c) = rx_cpu {
            affinity::pin_current_thread(c)?;
        }
        if fifo {
            net::sched_fifo(50).context("SCHED_FIFO for the receiver (needs root or CAP_SYS_NICE)")?;
        }
        if let RxSource::Xsk(_, _, RxIdle::Sleep(_)) = src {
            // 1 µs timer slack: an idle sleep of N µs ends after N, not N + 50.
            // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0u64, 0u64, 0u64) };
        }
        receive(src, &mut keys_rx, &live, drain)
    })?)
}

/// `--threads N` (socket mode): N senders, each its own socket and share
/// of the players and the rate; their totals and send times merged.
#[allow(clippy::too_many_arguments)]
fn generate_threads(
    a: &Args,
    mix: Mix,
    keys: &Arc<Keys>,
    socks: &[std::net::UdpSocket],
    dst: &SockAddr,
    local: SocketAddr,
    board: (u16, u16),
    live: &Arc<Live>,
) -> Result<(Generated, Duration, tstamp::SendTimes)> {
    let threads = socks.len();
    let results: Vec<Result<(Generated, Duration, tstamp::SendTimes)>> = std::thread::scope(|sc| {
        let hs: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(t, sock)| {
                sc.spawn(move || {
                    let mut s = Sender::socket(sock, dst);
                    let (g, el) = generate(a, mix, keys, &mut s, local, board, live, Share { index: t, of: threads })?;
                    Ok((g, el, s.finish(0)))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a sender thread panicked")))).collect()
    });
    let mut total = Generated::default();
    let mut el = Duration::ZERO;
    let mut times = tstamp::SendTimes::default();
    for r in results {
        let (g, e, st) = r?;
        times.merge(st);
        total.valid += g.valid;
        total.replay += g.replay;
        total.forged += g.forged;
        total.wrong_key += g.wrong_key;
        total.junk += g.junk;
        el = el.max(e);
    }
    Ok((total, el, times))
}

/// `--accepted-out`: the moves acked ACCEPTED, sorted, one per line.
fn write_accepted(path: &std::path::Path, acc: &accepted::Accepted) -> Result<()> {
    use std::io::Write as _;
    let v = acc.sorted();
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for (k, g, p, s) in v {
        writeln!(w, "{k} {g} {p} {s}")?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// Which share of the players, rate and count a sender thread has.
#[derive(Clone, Copy)]
struct Share {
    index: usize,
    of: usize,
}

impl Share {
    /// This sender's part of `total` (a rate or a count): an equal share,
    /// the remainder to the first senders.
    fn of_total(&self, total: u64) -> u64 {
        total / self.of as u64 + u64::from((self.index as u64) < total % self.of as u64)
    }
}

#[allow(clippy::too_many_arguments)]
fn generate(
    a: &Args,
    mix: Mix,
    keys: &Arc<Keys>,
    tx: &mut Sender,
    local: SocketAddr,
    board: (u16, u16),
    live: &Live,
    share: Share,
) -> Result<(Generated, Duration)> {
    if let Some(c) = a.cpu {
        affinity::pin_current_thread((c + share.index) % affinity::online_cores())?;
    }
    let rate = share.of_total(a.rate);
    let limit = a.count.map(|c| share.of_total(c)).unwrap_or(u64::MAX);
    // 1 µs timer slack: sleeps between sends end when asked, not 50 µs later.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0u64, 0u64, 0u64) };
    let mut g = sender_generator(a, mix, keys, board, share)?;
    let mut pcap = match &a.write_pcap {
        Some(p) => Some(pcap::Writer::create(p)?),
        None => None,
    };
    let spec = pcap_spec(a, local)?;
    let wall0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let dur = Duration::from_secs_f64(a.duration);
    let burst = a.burst.max(1);
    let mut gso = vec![0u8; MOVE_LEN * net::GSO_MAX];
    let mut one = [0u8; 256];
    let mut frame_buf = [0u8; 512];
    // sent, skipped behind schedule (--max-lag-us), and told to `live`
    let (mut sent, mut skipped, mut reported) = (0u64, 0u64, 0u64);
    let mut catch_up = a.catch_up.and_then(|f| CatchUp::new(rate, f, burst));
    let (start, start_ns) = (Instant::now(), monotonic_ns());
    loop {
        let el = start.elapsed();
        if el >= dur || sent >= limit || INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        skipped += behind_over(rate, a.max_lag_us, sent + skipped, el);
        let due = CatchUp::limit(catch_up.as_mut(), el, due_now(rate, burst, sent + skipped, limit.saturating_add(skipped), el));
        if due == 0 {
            continue;
        }
        let mut todo = due.min(burst.max(net::GSO_MAX as u64) * 4);
        while todo > 0 {
            let now = monotonic_ns();
            let mut k = 0usize;
            while k < net::GSO_MAX && (k as u64) < todo {
                let (len, class) = g.next(&mut one, now);
                if let Some(w) = pcap.as_mut() {
                    let n = frame::build_udp(&mut frame_buf, &spec, &one[..len]);
                    w.write(wall0 + (now - start_ns), &frame_buf[..n])?;
                }
                if class == Class::Junk {
                    tx.send(&one[..len.max(1)], len.max(1), 1, now)?;
                    todo -= 1;
                    sent += 1;
                    continue;
                }
                gso[k * MOVE_LEN..(k + 1) * MOVE_LEN].copy_from_slice(&one[..MOVE_LEN]);
                k += 1;
            }
            if k > 0 {
                tx.send(&gso[..k * MOVE_LEN], MOVE_LEN, k, now).with_context(|| format!("send to {}", a.target))?;
                todo -= k as u64;
                sent += k as u64;
            }
            live.sent.fetch_add(sent - reported, Ordering::Relaxed);
            reported = sent;
        }
    }
    let elapsed = start.elapsed();
    if let Some(w) = pcap {
        w.finish().context("writing pcap")?;
    }
    live.sent.fetch_add(sent - reported, Ordering::Relaxed);
    live.skipped.fetch_add(skipped, Ordering::Relaxed);
    Ok((g.generated, elapsed))
}

/// This sender's generator: its share of the players (only those of one
/// poller with `--players-of-poller`), its own seed.
fn sender_generator(a: &Args, mix: Mix, keys: &Arc<Keys>, board: (u16, u16), share: Share) -> Result<Generator> {
    let seed = 0x1d2c_3b4a ^ std::process::id() as u64 ^ ((share.index as u64) << 40);
    let g = Generator::new_subset(Arc::clone(keys), mix, board, seed, share.index, share.of);
    match a.players_of_poller {
        None => Ok(g),
        Some((n, q)) => g.only_owned_by(n, q).ok_or_else(|| {
            anyhow::anyhow!("--players-of-poller {n}/{q}: sender {} of {} has none of that poller's players (more --players or --games)", share.index, share.of)
        }),
    }
}

/// With `--max-lag-us`: how many of the sends due `el` into a run at `rate`
/// (`scheduled` of them sent or skipped so far) lie more than `max_lag_us`
/// behind schedule, to be skipped rather than sent in one catch-up burst.
fn behind_over(rate: u64, max_lag_us: Option<u64>, scheduled: u64, el: Duration) -> u64 {
    let Some(lag) = max_lag_us.filter(|_| rate > 0) else { return 0 };
    let allowed = (rate as f64 * el.as_secs_f64()) as u64;
    let keep = (rate as f64 * lag as f64 / 1e6).max(1.0) as u64;
    allowed.saturating_sub(scheduled).saturating_sub(keep)
}

/// `--catch-up F`: a token bucket that lets the sender send at most F ×
/// rate datagrams a second, CATCH_UP_CAP, a burst or 50 µs of that rate
/// (the largest) at once. On schedule it never binds (the schedule sends
/// fewer); behind schedule it spreads what is owed instead of sending it at
/// full speed. What is still owed when the run ends is not sent (the
/// report's offered rate shows it).
struct CatchUp {
    per_sec: f64,
    /// Sends are granted in whole bursts of this many.
    unit: u64,
    cap: f64,
    tokens: f64,
    at: Duration,
}

/// How many sends `--catch-up` lets go back to back.
const CATCH_UP_CAP: u64 = 16;

impl CatchUp {
    /// None without a rate (full speed asked) or with F ≤ 1 (nothing could
    /// ever be made up); check_args refuses both with --catch-up.
    fn new(rate: u64, f: f64, burst: u64) -> Option<CatchUp> {
        if rate == 0 || f.is_nan() || f <= 1.0 {
            return None;
        }
        let (unit, per_sec) = (burst.max(1), f * rate as f64);
        let cap = (CATCH_UP_CAP.max(unit) as f64).max((per_sec * 50e-6).floor());
        Some(CatchUp { per_sec, unit, cap, tokens: cap, at: Duration::ZERO })
    }

    /// How many of the `due` sends may go `el` into the run (whole units).
    fn grant(&mut self, el: Duration, due: u64) -> u64 {
        let dt = el.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.cap);
        self.at = self.at.max(el);
        if due == 0 {
            return 0;
        }
        // whole bursts, or what is left when that is less than one
        let unit = self.unit.min(due);
        let k = (self.tokens as u64).min(due) / unit * unit;
        self.tokens -= k as f64;
        k
    }

    /// What of `due` may go now with the bucket, if any; when none may, it
    /// first sleeps until a few can (so the caller just tries again).
    fn limit(c: Option<&mut CatchUp>, el: Duration, due: u64) -> u64 {
        match c {
            Some(c) if due > 0 => {
                let k = c.grant(el, due);
                if k == 0 {
                    c.wait(due);
                }
                k
            }
            _ => due,
        }
    }

    /// Sleeps until a few of `due` sends may go (yields when that is soon).
    fn wait(&self, due: u64) {
        let want = due.min(self.unit.max(CATCH_UP_CAP / 2)) as f64;
        pause(Duration::from_secs_f64(((want - self.tokens) / self.per_sec).max(0.0)));
    }
}

/// How many datagrams are due `el` into a run at `rate` (0: unlimited),
/// `sent` of `limit` sent: only whole bursts when `burst` > 1 (each sent back
/// to back; the last may be shorter, when fewer than a burst remain). Ahead
/// of schedule it sleeps until the next datagram (or burst) is due, so a
/// receiver sharing this core runs meanwhile, and returns 0.
fn due_now(rate: u64, burst: u64, sent: u64, limit: u64, el: Duration) -> u64 {
    let allowed = if rate == 0 { u64::MAX } else { (rate as f64 * el.as_secs_f64()) as u64 };
    let mut due = allowed.saturating_sub(sent).min(limit - sent);
    if rate > 0 && burst > 1 {
        due = if due >= burst.min(limit - sent) { burst.min(limit - sent) } else { 0 };
    }
    if due == 0 {
        let next = (sent + burst.min(limit - sent).max(1)) as f64 / rate as f64;
        pause(Duration::from_secs_f64(next).saturating_sub(el));
    }
    due
}

/// The sender's wait for its next send: a sleep ending 10 µs early (the
/// timer's slack is 1 µs), or a yield when that is under 20 µs away.
fn pause(wait: Duration) {
    if wait > Duration::from_micros(20) {
        std::thread::sleep(wait - Duration::from_micros(10));
    } else {
        std::thread::yield_now();
    }
}

/// The frames `--write-pcap` wraps the generated datagrams in.
fn pcap_spec(a: &Args, local: SocketAddr) -> Result<frame::FrameSpec> {
    Ok(frame::FrameSpec {
        src_mac: parse_mac(&a.pcap_src_mac)?,
        dst_mac: parse_mac(&a.pcap_dst_mac)?,
        vlan: None,
        src: match (local, a.target) {
            (SocketAddr::V4(l), SocketAddr::V4(_)) if l.ip().is_unspecified() => SocketAddr::new(guess_source(a.target)?, l.port()),
            (SocketAddr::V6(l), SocketAddr::V6(_)) if l.ip().is_unspecified() => SocketAddr::new(guess_source(a.target)?, l.port()),
            (l, _) => l,
        },
        dst: a.target,
        ipv4_options: 0,
    })
}

/// The local address the kernel would use to reach `target` (for pcap frames).
fn guess_source(target: SocketAddr) -> Result<std::net::IpAddr> {
    let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(target)?;
    Ok(s.local_addr()?.ip())
}

fn replay(a: &Args, path: &std::path::Path, tx: &mut Sender, keys: &mut Keys, live: &Live) -> Result<(Generated, Duration)> {
    if let Some(c) = a.cpu {
        affinity::pin_current_thread(c)?;
    }
    let (all, skipped) = pcap::read_udp(path)?;
    // datagrams to the target's port; if none are, every UDP datagram
    let mut ds: Vec<_> = all.iter().filter(|d| d.dst.port() == a.target.port()).cloned().collect();
    if ds.is_empty() {
        ds = all;
    }
    if ds.is_empty() {
        bail!("{}: no UDP datagrams to replay ({skipped} other records)", path.display());
    }
    eprintln!("replaying {} datagrams from {} ({} other records skipped), {} time(s)", ds.len(), path.display(), skipped, a.loops);
    // classify once: what the appliance must answer and what it must not
    let classes: Vec<Class> = ds
        .iter()
        .map(|d| match Move::new_checked(&d.payload[..]).ok().and_then(|m| MoveRepr::parse(&m).ok().map(|r| (m, r))) {
            Some((m, r)) if r.key_id == keys.key_id && m.verify_tag(keys.mac(r.game_id, r.player_id)) => Class::Replay,
            Some(_) => Class::Forged,
            None => Class::Junk,
        })
        .collect();
    let mut g = Generated::default();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut skipped_big = 0u64;
    let limit = a.count.unwrap_or(u64::MAX);
    'outer: for lp in 0..a.loops {
        let loop_start = Instant::now();
        for (i, d) in ds.iter().enumerate() {
            if sent >= limit || start.elapsed() >= Duration::from_secs_f64(a.duration.max(0.0)) && a.duration > 0.0 && lp > 0 || INTERRUPTED.load(Ordering::Relaxed) {
                break 'outer;
            }
            let due = match a.replay_rate {
                Some(r) if r > 0 => Duration::from_secs_f64((i as f64) / r as f64),
                _ => Duration::from_nanos((d.rel_ns as f64 / a.speed.max(1e-9)) as u64),
            };
            while loop_start.elapsed() < due {
                let left = due.saturating_sub(loop_start.elapsed());
                if left > Duration::from_micros(200) {
                    std::thread::sleep(left - Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
            }
            if d.payload.is_empty() || (a.mode == Mode::Xdp && d.payload.len() > 1400) {
                // nothing to send, or more than one AF_XDP frame can carry
                skipped_big += 1;
                continue;
            }
            tx.send(&d.payload, d.payload.len(), 1, 0)?;
            g.count(classes[i]);
            sent += 1;
            live.sent.store(sent, Ordering::Relaxed);
        }
    }
    if skipped_big > 0 {
        eprintln!("replay: skipped {skipped_big} empty (or, in xdp mode, over-1400-byte) datagrams");
    }
    Ok((g, start.elapsed()))
}

impl RxResult {
    /// One ack received at `now` (`stamp`: its kernel RX timestamp, or 0):
    /// verified, counted by status, its RTT recorded, an ACCEPTED seq
    /// remembered (a second one is a replay accepted twice).
    fn take(&mut self, b: &[u8], stamp: u64, now: u64, keys: &mut Keys) {
        let Ok(a) = Ack::new_checked(b) else {
            self.bad_acks += 1;
            return;
        };
        let Ok(ar) = AckRepr::parse(&a) else {
            self.bad_acks += 1;
            return;
        };
        if !a.verify_tag(keys.mac(ar.game_id, ar.player_id)) {
            self.bad_acks += 1;
            return;
        }
        self.acked += 1;
        self.by_status[ar.status as usize] += 1;
        if ar.client_ts & HOSTILE_TS != 0 {
            self.hostile_acked += 1;
        }
        let sent_ns = ar.client_ts & !HOSTILE_TS;
        let rtt = now.saturating_sub(sent_ns).max(1);
        let _ = self.hist.record(rtt.min(60_000_000_000));
        let rx_k = stamp;
        if rx_k != 0 && ar.client_ts & HOSTILE_TS == 0 {
            let wait = (now as i64 + self.clock_offset - rx_k as i64).max(1) as u64;
            let _ = self.hist_rx_wait.record(wait.min(60_000_000_000));
            if self.rx_stamps.len() < tstamp::MAX_ACKS {
                self.rx_stamps.push((sent_ns, rx_k));
            }
        }
        // accepted seqs per player, for "accepted twice" (a replay acked as new)
        if ar.status == Status::Accepted && !self.accepted.insert(ar.key_id, ar.game_id, ar.player_id, ar.seq) {
            self.double_accepted += 1;
        }
    }
}

fn receive(mut src: RxSource, keys: &mut Keys, live: &Live, drain: Duration) -> Result<RxResult> {
    let mut r = RxResult {
        by_status: [0; 6],
        acked: 0,
        hostile_acked: 0,
        double_accepted: 0,
        bad_acks: 0,
        hist: new_hist(),
        hist_kernel: new_hist(),
        hist_rx_wait: new_hist(),
        hist_tx_delay: new_hist(),
        rx_stamps: Vec::new(),
        clock_offset: tstamp::realtime_minus_monotonic(),
        tx_stamped: (0, 0, 0),
        socket_drops: None,
        accepted: Default::default(),
    };
    let mut stamps = [0u64; 64];
    let mut bufs = vec![[0u8; 128]; 64];
    let mut lens = [0usize; 64];
    let mut done_at: Option<Instant> = None;
    loop {
        if live.sending_done.load(Ordering::Relaxed) {
            let d = *done_at.get_or_insert_with(Instant::now);
            if d.elapsed() >= drain || live.stop_rx.load(Ordering::Relaxed) {
                break;
            }
        }
        let n = match &mut src {
            RxSource::Socket(rx) => net::recv_batch(rx, &mut bufs, &mut lens, Some(&mut stamps)).context("receiving acks")?,
            RxSource::Xsk(rx, port, idle) => {
                let mut k = 0;
                let offset = r.clock_offset;
                rx.recv(*idle, |f| {
                    if let Some(u) = frame::parse_udp(f, *port, ironhoard_wire::ACK_LEN) {
                        let l = u.payload_len.min(128);
                        bufs[k][..l].copy_from_slice(&f[u.payload()..u.payload() + l]);
                        lens[k] = l;
                        stamps[k] = arrival_stamp(f, u.payload() + u.payload_len, offset);
                        k += 1;
                    }
                });
                k
            }
        };
        let now = monotonic_ns();
        for i in 0..n {
            r.take(&bufs[i][..lens[i].min(128)], stamps[i], now, keys);
        }
        live.acked.store(r.acked, Ordering::Relaxed);
    }
    r.socket_drops = match &src {
        RxSource::Socket(rx) => net::socket_drops(rx).ok(),
        // the AF_XDP socket's own: ring full, or no frame to copy into
        RxSource::Xsk(rx, ..) => rx.statistics().ok().map(|s| s[0] + s[3]),
    };
    Ok(r)
}

/// The kernel receive time of an ack that came through AF_XDP: our XDP
/// program appends its arrival (CLOCK_MONOTONIC ns, big-endian) past the
/// end of the IP packet, `end` here. As CLOCK_REALTIME ns (`offset`:
/// REALTIME − MONOTONIC), like a socket's RX timestamp; 0 if it has none.
fn arrival_stamp(f: &[u8], end: usize, offset: i64) -> u64 {
    const N: usize = ironhoard_common::ARRIVAL_STAMP_LEN;
    if f.len() != end + N {
        return 0;
    }
    let mono = u64::from_be_bytes(f[end..].try_into().expect("8 bytes"));
    if mono == 0 {
        return 0;
    }
    (mono as i64 + offset).max(0) as u64
}

/// Percentiles of a latency histogram, ns.
fn summary(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return json!({"min": 0, "p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0, "mean": 0.0});
    }
    let q = |x: f64| h.value_at_quantile(x);
    json!({"min": h.min(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": h.max(), "mean": h.mean().round()})
}

/// Log buckets (×1.25 from 1 µs): [upper bound ns, count], for plotting.
fn buckets(h: &Histogram<u64>) -> Vec<serde_json::Value> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(1000, 1.25).filter(|v| v.count_since_last_iteration() > 0).map(|v| json!([v.value_iterated_to(), v.count_since_last_iteration()])).collect()
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

impl RxResult {
    /// Kernel RTT of each stamped ack: its RX stamp minus the kernel TX
    /// stamp of the sendmsg that carried its move.
    fn join_kernel_stamps(&mut self, tx: &tstamp::SendTimes) {
        self.tx_stamped = (tx.at_driver, tx.at_qdisc_only, tx.unreported);
        for &(sent, rx_k) in &self.rx_stamps {
            if let Some(tx_k) = tx.kernel_tx(sent) {
                let _ = self.hist_kernel.record(rx_k.saturating_sub(tx_k).clamp(1, 60_000_000_000));
                let d = (tx_k as i64 - self.clock_offset - sent as i64).max(1) as u64;
                let _ = self.hist_tx_delay.record(d.min(60_000_000_000));
            }
        }
        self.rx_stamps = Vec::new();
    }
}

fn spawn_progress(live: Arc<Live>, rate: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let pb = indicatif::ProgressBar::new_spinner();
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let (mut last_s, mut last_a, mut last_t) = (0u64, 0u64, Instant::now());
        while !live.sending_done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(if tty { 250 } else { 1000 }));
            let (s, a) = (live.sent.load(Ordering::Relaxed), live.acked.load(Ordering::Relaxed));
            let dt = last_t.elapsed().as_secs_f64().max(1e-6);
            let line = format!(
                "sent {s} ({:.0}/s of {}/s asked)  acks {a} ({:.0}/s)  unanswered so far {:.2}%",
                (s - last_s) as f64 / dt,
                if rate == 0 { "max".to_string() } else { rate.to_string() },
                (a - last_a) as f64 / dt,
                if s > 0 { 100.0 * (s.saturating_sub(a)) as f64 / s as f64 } else { 0.0 }
            );
            if tty {
                pb.set_message(line);
                pb.tick();
            } else {
                eprintln!("  {line}");
            }
            (last_s, last_a, last_t) = (s, a, Instant::now());
        }
        pb.finish_and_clear();
    })
}

fn report(a: &Args, g: &Generated, send_el: Duration, total_el: Duration, r: &RxResult, skipped: u64) -> Result<()> {
    let t = Totals::of(a, g, send_el, r, skipped);
    let rep = report_json(a, g, &t, send_el, total_el, r);
    std::fs::write(&a.report, serde_json::to_string_pretty(&rep)? + "\n").with_context(|| format!("writing report {}", a.report.display()))?;
    print_report(a, &t, r)
}

/// What the report's figures are derived from.
struct Totals {
    sent: u64,
    /// Hostile datagrams that must go unanswered.
    silent: u64,
    expect_ack: u64,
    lost: u64,
    secs: f64,
    offered: f64,
    asked: u64,
    /// The sender offered less than 95 % of the rate asked.
    shortfall: bool,
    /// Sends skipped behind schedule (`--max-lag-us`).
    skipped: u64,
}

impl Totals {
    fn of(a: &Args, g: &Generated, send_el: Duration, r: &RxResult, skipped: u64) -> Totals {
        let sent = g.total();
        let silent = g.expected_silent();
        let expect_ack = sent - silent;
        let legit_acked = r.acked - r.hostile_acked;
        let lost = expect_ack.saturating_sub(legit_acked);
        let secs = send_el.as_secs_f64().max(1e-9);
        let offered = sent as f64 / secs;
        let asked = if a.replay.is_some() { a.replay_rate.unwrap_or(0) } else { a.rate };
        let shortfall = asked > 0 && offered < 0.95 * asked as f64;
        Totals { sent, silent, expect_ack, lost, secs, offered, asked, shortfall, skipped }
    }
}

/// Whether the acks come in through AF_XDP (`--mode xdp`, or `--rx-mode xdp`).
fn receives_through_xdp(a: &Args) -> bool {
    a.mode == Mode::Xdp || a.rx_mode == RxMode::Xdp
}

/// The `--report` file.
fn report_json(a: &Args, g: &Generated, t: &Totals, send_el: Duration, total_el: Duration, r: &RxResult) -> serde_json::Value {
    let Totals { sent, silent, lost, secs, offered, asked, shortfall, skipped, .. } = *t;
    let h = &r.hist;
    let hk = &r.hist_kernel;
    let mut by_status = serde_json::Map::new();
    for s in Status::ALL {
        by_status.insert(s.name().into(), r.by_status[s as usize].into());
    }
    json!({
        "mode": if a.replay.is_some() { "replay" } else { "generate" },
        "io": {"send": if a.mode == Mode::Xdp { "xdp" } else { "socket" }, "receive": if receives_through_xdp(a) { "xdp" } else { "socket" }},
        "target": a.target.to_string(),
        "sent": sent,
        "acked": r.acked,
        "lost": lost,
        "silently_dropped_expected": silent,
        "by_status": by_status,
        "asked_pps": asked,
        "offered_pps": offered.round() as u64,
        "acked_pps": (r.acked as f64 / secs).round() as u64,
        "rate_shortfall": shortfall,
        "max_lag_us": a.max_lag_us,
        "catch_up": a.catch_up,
        "skipped_behind": skipped,
        "duration_s": send_el.as_secs_f64(),
        "wall_s": total_el.as_secs_f64(),
        "latency_ns": summary(h),
        "latency_kernel_ns": if hk.is_empty() { serde_json::Value::Null } else { summary(hk) },
        "latency_source": {
            "latency_ns": "user space: the send stamp written into the move (CLOCK_MONOTONIC, just before sendmsg) to the receive thread's clock read after recvmmsg returned (or the AF_XDP RX ring gave the ack); includes the generator's own scheduling",
            "latency_kernel_ns": if hk.is_empty() {
                (if a.mode == Mode::Xdp { "none: AF_XDP sends have no kernel timestamps" } else { "none: the kernel gave no timestamps" }).to_string()
            } else {
                let (kind, rx) = if receives_through_xdp(a) {
                    ("kernel timestamps", "the ack's arrival as our XDP program stamped it (bpf_ktime_get_ns, before the AF_XDP socket)")
                } else {
                    ("kernel software timestamps", "the ack's software RX timestamp")
                };
                format!("{kind}: the move's sendmsg as handed to the device driver (SCM_TSTAMP_SND; the qdisc entry SCM_TSTAMP_SCHED where the driver gave none) to {rx}; the generator's scheduling is not in it")
            },
        },
        "kernel_stamped_acks": hk.len(),
        "rx_socket_drops": r.socket_drops,
        "tx_stamps": {"at_driver": r.tx_stamped.0, "at_qdisc_only": r.tx_stamped.1, "unreported": r.tx_stamped.2},
        "rx_wait_ns": if r.hist_rx_wait.is_empty() { serde_json::Value::Null } else { summary(&r.hist_rx_wait) },
        "tx_delay_ns": if r.hist_tx_delay.is_empty() { serde_json::Value::Null } else { summary(&r.hist_tx_delay) },
        "generated": g,
        "hostile": {
            "sent": silent + g.replay,
            "acked_when_it_must_not": r.hostile_acked,
            "accepted_twice": r.double_accepted,
        },
        "unverifiable_acks": r.bad_acks,
        "games": a.games,
        "players": a.players,
        "histogram_ns": buckets(h),
        "histogram_kernel_ns": buckets(hk),
    })
}

/// The summary on stderr; exits 3 on a safety violation.
fn print_report(a: &Args, t: &Totals, r: &RxResult) -> Result<()> {
    let Totals { sent, silent, expect_ack, lost, secs, offered, asked, shortfall, skipped } = *t;
    let (h, hk) = (&r.hist, &r.hist_kernel);
    eprintln!(
        "\n{} datagrams in {:.2}s: offered {:.0}/s{}, acked {} ({:.0}/s), lost {} of {} expecting an ack ({:.3}%), {} hostile dropped silently as they must be",
        sent,
        secs,
        offered,
        if shortfall { format!(" — SHORT of the {asked}/s asked: this sender could not keep up") } else { String::new() },
        r.acked,
        r.acked as f64 / secs,
        lost,
        expect_ack,
        if expect_ack > 0 { 100.0 * lost as f64 / expect_ack as f64 } else { 0.0 },
        silent,
    );
    if skipped > 0 {
        eprintln!(
            "  {skipped} sends skipped behind schedule (--max-lag-us {}): this sender's core was taken for longer, and it did not catch up in one burst",
            a.max_lag_us.unwrap_or(0)
        );
    }
    if let Some(d) = r.socket_drops.filter(|&d| d > 0) {
        eprintln!("  of the lost: {d} acks dropped by this generator's own receive socket (its receive thread fell behind)");
    }
    let st: Vec<String> = Status::ALL.iter().map(|s| format!("{} {}", s.name(), r.by_status[*s as usize])).collect();
    eprintln!("statuses: {}", st.join(", "));
    let line = |h: &Histogram<u64>| {
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1e3;
        format!("p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs", q(0.5), q(0.99), q(0.999), h.max() as f64 / 1e3)
    };
    if !h.is_empty() {
        eprintln!("RTT (user-space clock): {}", line(h));
    }
    if !hk.is_empty() {
        eprintln!("RTT (kernel timestamps, {} acks): {}", hk.len(), line(hk));
    }
    if !r.hist_rx_wait.is_empty() {
        eprintln!("  acks waiting for the receive thread: {}", line(&r.hist_rx_wait));
    }
    if r.hostile_acked == 0 && r.double_accepted == 0 && r.bad_acks == 0 {
        eprintln!("safety: no forged, wrong-key or junk datagram was answered, no move was accepted twice, every ack tag verified");
    } else {
        eprintln!(
            "SAFETY VIOLATION: {} hostile datagrams answered, {} moves accepted twice, {} acks failed verification",
            r.hostile_acked, r.double_accepted, r.bad_acks
        );
        std::process::exit(3);
    }
    eprintln!("report: {}", a.report.display());
    Ok(())
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn a_sender_behind_schedule_skips_what_lies_beyond_its_lag() {
        let ms = Duration::from_millis;
        // 200 k/s, 20 ms in, 2 000 sent: 2 000 due, at most 100 µs (20) kept
        assert_eq!(behind_over(200_000, Some(100), 2_000, ms(20)), 1_980);
        // on schedule, or within the lag: nothing skipped
        assert_eq!(behind_over(200_000, Some(100), 4_000, ms(20)), 0);
        assert_eq!(behind_over(200_000, Some(100), 3_990, ms(20)), 0);
        // no --max-lag-us, or no rate: catch up in full
        assert_eq!(behind_over(200_000, None, 0, ms(20)), 0);
        assert_eq!(behind_over(0, Some(100), 0, ms(20)), 0);
        // what is skipped counts as scheduled: the sends then due are the lag's
        let skipped = behind_over(200_000, Some(100), 2_000, ms(20));
        assert_eq!(due_now(200_000, 1, 2_000 + skipped, u64::MAX, ms(20)), 20);
    }
}

/// The flags of a test run (target, secret and report filled in), parsed.
#[cfg(test)]
fn test_args(extra: &[&str]) -> Args {
    let mut v = vec!["ironhoard-pktgen", "--target", "198.18.200.1:7777", "--secret-file", "s.hex", "--report", "r.json"];
    v.extend_from_slice(extra);
    Args::parse_from(v)
}

#[cfg(test)]
mod catch_up_tests {
    use super::*;

    /// Behind schedule, the owed sends go at F × rate, not at once; on
    /// schedule the bucket never binds.
    #[test]
    fn a_sender_behind_schedule_makes_up_at_the_catch_up_rate() {
        let us = Duration::from_micros;
        // 200 k/s, F 1.5: 300 k/s, 16 at once
        let mut c = CatchUp::new(200_000, 1.5, 1).unwrap();
        // a 10 ms stall: 2 000 owed, only the bucket's 16 go now
        assert_eq!(c.grant(us(10_000), 2_000), 16);
        assert_eq!(c.grant(us(10_000), 1_984), 0);
        // 100 µs later: 30 more tokens at 300 k/s (the cap is 16)
        assert_eq!(c.grant(us(10_100), 1_984), 16);
        // over 1 ms of catching up, ~300 sends
        let mut sent = 0;
        for t in (10_110..=11_100).step_by(10) {
            sent += c.grant(us(t), 10_000);
        }
        assert!((290..=310).contains(&sent), "{sent} sent in ~1 ms at 300 k/s");
        // on schedule at 200 k/s, a few every 20 µs: every one granted
        let mut c = CatchUp::new(200_000, 1.5, 1).unwrap();
        for t in (20..100_000).step_by(20) {
            assert_eq!(c.grant(us(t), 4), 4, "at {t} µs");
        }
        // bursts are granted whole, and the last short one too
        let mut c = CatchUp::new(200_000, 1.5, 40).unwrap();
        assert_eq!(c.grant(us(10_000), 2_000), 40);
        assert_eq!(c.grant(us(10_100), 2_000), 0);
        assert_eq!(c.grant(us(10_140), 2_000), 40);
        assert_eq!(c.grant(us(10_240), 25), 25);
        assert_eq!(c.grant(us(10_240), 0), 0);
        // at 1 M/s the bucket holds 50 µs of the catch-up rate
        let mut c = CatchUp::new(1_000_000, 1.5, 1).unwrap();
        assert_eq!(c.grant(us(10_000), 10_000), 75);
        // no rate, or F ≤ 1: no bucket
        assert!(CatchUp::new(0, 1.5, 1).is_none());
        assert!(CatchUp::new(200_000, 1.0, 1).is_none());
        assert!(CatchUp::new(200_000, f64::NAN, 1).is_none());
    }

    /// A factor the bucket would ignore is refused, not run at full speed.
    #[test]
    fn catch_up_wants_a_factor_above_1_and_a_rate() {
        assert!(check_args(&test_args(&["--rate", "1000", "--catch-up", "1.5"])).is_ok());
        for bad in [&["--rate", "1000", "--catch-up", "1"][..], &["--rate", "1000", "--catch-up", "NaN"], &["--rate", "0", "--catch-up", "2"]] {
            let e = check_args(&test_args(bad)).unwrap_err().to_string();
            assert!(e.contains("--catch-up"), "{bad:?}: {e}");
        }
    }
}

#[cfg(test)]
mod rx_idle_tests {
    use super::*;

    /// The AF_XDP receiver sleeps on a timer by default (no waiter on the
    /// socket for the target's core to wake), and in poll(2) at 0.
    #[test]
    fn the_xdp_receiver_sleeps_on_a_timer_unless_asked_to_poll() {
        assert_eq!(rx_idle(&test_args(&[])), RxIdle::Sleep(Duration::from_micros(20)));
        assert_eq!(rx_idle(&test_args(&["--rx-idle-us", "150"])), RxIdle::Sleep(Duration::from_micros(150)));
        assert_eq!(rx_idle(&test_args(&["--rx-idle-us", "0"])), RxIdle::Poll(20));
    }
}

#[cfg(test)]
mod arrival_tests {
    use super::*;

    /// The stamp is read only where the XDP program puts it (8 bytes right
    /// past the packet's end), converted to CLOCK_REALTIME.
    #[test]
    fn the_arrival_stamp_is_the_8_bytes_past_the_packet() {
        let mut f = vec![0xEEu8; 90];
        f.extend_from_slice(&1_000_000u64.to_be_bytes());
        assert_eq!(arrival_stamp(&f, 90, 5_000), 1_005_000);
        assert_eq!(arrival_stamp(&f[..90], 90, 5_000), 0, "no stamp appended");
        assert_eq!(arrival_stamp(&f, 86, 5_000), 0, "12 trailing bytes are not a stamp");
        let mut z = vec![0u8; 98];
        z[..90].fill(1);
        assert_eq!(arrival_stamp(&z, 90, 5_000), 0, "a zero stamp is none");
    }
}
