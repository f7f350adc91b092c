//! The kernel-socket backend: one UDP socket per worker in an SO_REUSEPORT
//! group on `[::]:port` (dual stack: IPv4 arrives as v4-mapped addresses),
//! bound to the configured interface, served with recvmmsg/sendmmsg batches.
//!
//! A classic-BPF reuseport program steers every datagram by the
//! (game_id, player_id) in its payload, so a player is always judged by the
//! same worker (and the same anti-replay window) whatever its source address
//! or port: a replay from a new port cannot reach a worker that has not seen
//! the player.

use std::io;
use std::mem;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use ironhoard_engine::{DropReason, Dispatch, Engine, Verdict};
use ironhoard_wire::ACK_LEN;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{monotonic_ns, WorkerShared};

/// Datagrams per recvmmsg/sendmmsg call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram. A move is 64 bytes; anything longer is a
/// wrong length whatever its size, so 128 bytes tell every case apart.
const BUF_LEN: usize = 128;
/// Control buffer per datagram: room for one IPV6_PKTINFO.
const CTRL_LEN: usize = 64;
/// How often a blocked worker wakes to look at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Errors setting up the socket backend.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{what} on UDP port {port} (interface {iface}): {source}")]
    Setup { what: &'static str, port: u16, iface: String, source: io::Error },
}

/// Creates `workers` sockets on `[::]:port`, bound to `iface` (if given),
/// in one SO_REUSEPORT group steered by player.
pub fn bind_group(iface: Option<&str>, port: u16, workers: usize) -> Result<Vec<Socket>, SocketError> {
    let err = |what: &'static str| {
        let iface = iface.unwrap_or("*").to_string();
        move |source| SocketError::Setup { what, port, iface, source }
    };
    let mut out = Vec::with_capacity(workers);
    for i in 0..workers {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket(AF_INET6)"))?;
        s.set_only_v6(false).map_err(err("IPV6_V6ONLY=0"))?;
        s.set_reuse_port(true).map_err(err("SO_REUSEPORT"))?;
        s.set_recv_buffer_size(WORKER_RCVBUF).map_err(err("SO_RCVBUF"))?;
        s.set_send_buffer_size(4 << 20).map_err(err("SO_SNDBUF"))?;
        s.set_read_timeout(Some(POLL)).map_err(err("SO_RCVTIMEO"))?;
        // Learn each datagram's destination address, to send the ack from
        // it (a host with several addresses must answer from the one asked).
        // IPV6_PKTINFO covers IPv4 too: v4-mapped on receive, and accepted
        // back by the IPv4 send path of a dual-stack socket.
        set_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO).map_err(err("IPV6_RECVPKTINFO"))?;
        if let Some(ifn) = iface {
            s.bind_device(Some(ifn.as_bytes())).map_err(err("SO_BINDTODEVICE"))?;
        }
        let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
        s.bind(&addr.into()).map_err(err("bind"))?;
        if i == 0 && workers > 1 {
            attach_player_steering(&s, workers as u32).map_err(err("SO_ATTACH_REUSEPORT_CBPF"))?;
        }
        out.push(s);
    }
    Ok(out)
}

/// The XDP backend's sink: a UDP socket on the move port of `iface`,
/// never read, with the smallest receive buffer. Datagrams to the port that
/// the XDP program passes (a non-first fragment the kernel reassembles,
/// headers beyond what it parses) or that arrive while the program is being
/// attached or detached find an open port, so the kernel never answers an
/// unauthenticated sender with ICMP port unreachable; they are dropped
/// when the tiny buffer is full.
pub fn bind_sink(iface: &str, port: u16) -> Result<Socket, SocketError> {
    let err = |what: &'static str| move |source| SocketError::Setup { what, port, iface: iface.to_string(), source };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket(AF_INET6)"))?;
    s.set_only_v6(false).map_err(err("IPV6_V6ONLY=0"))?;
    s.set_recv_buffer_size(0).map_err(err("SO_RCVBUF"))?;
    s.bind_device(Some(iface.as_bytes())).map_err(err("SO_BINDTODEVICE"))?;
    let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    s.bind(&addr.into()).map_err(err("bind"))?;
    Ok(s)
}

fn set_int(s: &Socket, level: libc::c_int, opt: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a c_int option value of the size passed, on a valid socket.
    let rc = unsafe { libc::setsockopt(s.as_raw_fd(), level, opt, (&one as *const libc::c_int).cast(), 4) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Classic BPF run by the kernel per datagram to pick the group's socket:
/// `(game_id ^ player_id) % workers`, read from the UDP payload (the
/// program sees the payload at offset 0). A datagram too short to hold the
/// ids makes the load fail, which returns 0: worker 0 drops it by length.
fn attach_player_steering(s: &Socket, workers: u32) -> io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const TAX: u16 = 0x07; // BPF_MISC | BPF_TAX
    const XOR_X: u16 = 0xac; // BPF_ALU | BPF_XOR | BPF_X
    const MOD_K: u16 = 0x94; // BPF_ALU | BPF_MOD | BPF_K
    const RET_A: u16 = 0x16; // BPF_RET | BPF_A
    let ins = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
    let mut prog = [
        ins(LD_W_ABS, 8), // A = game_id
        ins(TAX, 0),      // X = A
        ins(LD_W_ABS, 12), // A = player_id
        ins(XOR_X, 0),    // A ^= X
        ins(MOD_K, workers),
        ins(RET_A, 0),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            &fprog as *const _ as *const libc::c_void,
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Buffers for one worker, allocated once.
struct Batch {
    bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    /// Received PKTINFO control messages, sent back with the acks so each
    /// ack leaves from the address its move was sent to.
    ctrl: Box<[[u64; CTRL_LEN / 8]; BATCH]>,
    iovs: Box<[libc::iovec; BATCH]>,
    msgs: Box<[libc::mmsghdr; BATCH]>,
    /// For sendmmsg: the acks to send, compacted.
    out_iovs: Box<[libc::iovec; BATCH]>,
    out_msgs: Box<[libc::mmsghdr; BATCH]>,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: iovec, sockaddr_storage and mmsghdr are plain C data for
        // which all-zero bytes (null pointers, zero lengths) are valid.
        unsafe {
            Batch {
                bufs: Box::new([[0; BUF_LEN]; BATCH]),
                addrs: Box::new(mem::zeroed()),
                ctrl: Box::new([[0; CTRL_LEN / 8]; BATCH]),
                iovs: Box::new(mem::zeroed()),
                msgs: Box::new(mem::zeroed()),
                out_iovs: Box::new(mem::zeroed()),
                out_msgs: Box::new(mem::zeroed()),
            }
        }
    }

    /// Points every receive header at its buffer and address slot.
    fn arm_recv(&mut self) {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: BUF_LEN };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CTRL_LEN as _;
            h.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
    }

    /// Queues the ack now in `bufs[i][..48]` for the sender of datagram `i`.
    fn push_ack(&mut self, n: usize, i: usize) {
        self.out_iovs[n] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: ACK_LEN };
        let src = &self.msgs[i].msg_hdr;
        let h = &mut self.out_msgs[n].msg_hdr;
        h.msg_name = src.msg_name;
        h.msg_namelen = src.msg_namelen;
        h.msg_iov = &mut self.out_iovs[n];
        h.msg_iovlen = 1;
        // the PKTINFO received with the move: the kernel then sends from
        // that address (a controllen of 0 if there was none)
        h.msg_control = src.msg_control;
        h.msg_controllen = src.msg_controllen;
        h.msg_flags = 0;
    }
}

/// A source no ack may be sent to (the same rule as the XDP path's
/// classifier): unspecified, loopback, multicast, broadcast. The dual-stack
/// socket reports IPv4 clients as ::ffff:a.b.c.d: judged as IPv4.
fn martian_source(a: &libc::sockaddr_storage) -> bool {
    use ironhoard_classify::{martian_v4, martian_v6};
    match a.ss_family as i32 {
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 source;
            // sockaddr_storage is large and aligned enough for it.
            let sin6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let b = sin6.sin6_addr.s6_addr;
            let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            if w(0) == 0 && w(4) == 0 && w(8) == 0xffff {
                martian_v4(w(12))
            } else {
                martian_v6([w(0), w(4), w(8), w(12)])
            }
        }
        libc::AF_INET => {
            // SAFETY: as above, a sockaddr_in for an AF_INET source.
            let sin = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            martian_v4(u32::from_be(sin.sin_addr.s_addr))
        }
        _ => true,
    }
}

/// Serves `sock` until `shared.stop` is set. Blocking; run it on the
/// worker's pinned thread. The engine and dispatcher are owned by the worker.
pub fn serve<D: Dispatch>(sock: Socket, engine: &mut Engine, dispatch: &mut D, shared: &Arc<WorkerShared>) -> io::Result<()> {
    let mut srv = SocketServer::new(sock.as_raw_fd());
    let mut reload_seen = 0u64;
    while !shared.stop_requested() {
        shared.apply_reload(&mut reload_seen, engine);
        let n = srv.turn(engine, dispatch, shared, libc::MSG_WAITFORONE)?;
        if n > 0 {
            shared.counters.publish(&engine.counters);
            shared.players.store(engine.players() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    // Stopping for good: what is already queued is still answered (for at
    // most half a second: under load the queue never empties). A handover
    // (stop without exit) leaves the queue to the successor, who gets the
    // socket.
    if shared.exit.load(std::sync::atomic::Ordering::Acquire) {
        let until = monotonic_ns() + 500_000_000;
        while srv.turn(engine, dispatch, shared, libc::MSG_DONTWAIT)? > 0 && monotonic_ns() < until {}
    }
    shared.counters.publish(&engine.counters);
    shared.drained.store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// One socket's batches: receive, judge, record, ack. Used by the socket
/// backend's workers, and by the AF_XDP pollers for the bridge (the
/// sockets that queue moves while a predecessor hands over).
pub struct SocketServer {
    fd: std::os::fd::RawFd,
    b: Batch,
}

impl SocketServer {
    /// Buffers for serving `fd` (allocated once, here). The socket must
    /// outlive the server.
    pub fn new(fd: std::os::fd::RawFd) -> SocketServer {
        SocketServer { fd, b: Batch::new() }
    }

    /// One recvmmsg batch (`flags`: MSG_WAITFORONE to block up to the
    /// socket's timeout, MSG_DONTWAIT not to), each datagram judged by the
    /// engine, the accepted ones recorded before any ack of the batch
    /// leaves. Returns the datagrams received (0: nothing queued).
    pub fn turn<D: Dispatch>(&mut self, engine: &mut Engine, dispatch: &mut D, shared: &WorkerShared, flags: libc::c_int) -> io::Result<usize> {
        let (fd, b) = (self.fd, &mut self.b);
        b.arm_recv();
        // SAFETY: `msgs` holds BATCH headers whose pointers (set by arm_recv)
        // point into `b`'s boxed buffers, alive and unaliased for the call.
        let n = unsafe { libc::recvmmsg(fd, b.msgs.as_mut_ptr(), BATCH as u32, flags, std::ptr::null_mut()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let now = monotonic_ns();
        let mut acks = 0usize;
        engine.counters.rx += n as u64;
        for i in 0..n {
            let len = (b.msgs[i].msg_len as usize).min(BUF_LEN);
            if martian_source(&b.addrs[i]) {
                engine.counters.count_drop(DropReason::MartianSource);
                continue;
            }
            if let Verdict::Ack(_) = engine.process(&mut b.bufs[i][..len], now, dispatch) {
                b.push_ack(acks, i);
                acks += 1;
            }
        }
        // the batch's accepted moves are recorded (and synced, per policy)
        // before any of its acks leaves
        if acks > 0 {
            dispatch.commit();
        }
        let mut sent = 0usize;
        while sent < acks {
            // SAFETY: out_msgs[sent..acks] were filled by push_ack with
            // pointers into `b`, which outlives the call.
            let r = unsafe { libc::sendmmsg(fd, b.out_msgs[sent..].as_mut_ptr(), (acks - sent) as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // A datagram that cannot be sent (e.g. unreachable source) is
                // skipped and counted; the rest of the batch still goes.
                engine.counters.tx_errors += 1;
                sent += 1;
                continue;
            }
            sent += r as usize;
            engine.counters.tx += r as u64;
        }
        if n > 0 {
            shared.record_batch(n, monotonic_ns().saturating_sub(now));
        }
        Ok(n)
    }
}

/// Receive buffer of a bridge socket while a handover runs: room for
/// about a second of moves at 100 k/s (a small datagram costs ~1-2 KiB of
/// buffer in the kernel). Set with SO_RCVBUFFORCE (CAP_NET_ADMIN), else
/// as much as net.core.rmem_max allows.
pub const BRIDGE_RCVBUF: usize = 256 << 20;

/// Readies the bridge sockets to queue a handover's moves: with `discard`
/// (the XDP backend's sink) what they gathered while they were only the
/// port's sink (passed datagrams nobody answered) is thrown away; their
/// receive buffers are raised. Returns the buffer the kernel granted (the
/// smallest of the sockets').
pub fn open_bridge(socks: &[Socket], discard: bool) -> io::Result<usize> {
    let mut granted = usize::MAX;
    for s in socks {
        let mut junk = [0u8; 2048];
        // SAFETY: recv into a stack buffer we own, non-blocking.
        while discard && unsafe { libc::recv(s.as_raw_fd(), junk.as_mut_ptr().cast(), junk.len(), libc::MSG_DONTWAIT) } >= 0 {}
        let v = (BRIDGE_RCVBUF / 2) as libc::c_int; // the kernel doubles it
        // SAFETY: an int option of the size passed, on a valid socket.
        let rc = unsafe {
            libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&v as *const libc::c_int).cast(), 4)
        };
        if rc != 0 {
            s.set_recv_buffer_size(BRIDGE_RCVBUF / 2)?;
        }
        granted = granted.min(s.recv_buffer_size()?);
    }
    Ok(granted)
}

/// The bridge's sockets back to their everyday buffer once a handover's
/// queue is served: a sink's (`bytes` 0, the XDP backend) or a worker
/// socket's ([`WORKER_RCVBUF`], the socket backend).
pub fn close_bridge(socks: &[Socket], bytes: usize) -> io::Result<()> {
    for s in socks {
        s.set_recv_buffer_size(bytes)?;
    }
    Ok(())
}

/// A socket-backend worker's receive buffer.
pub const WORKER_RCVBUF: usize = 4 << 20;

/// Waits (up to `within`) until nothing is bound to UDP `port` on `iface`
/// any more: sockets dropped from systemd's fd store are closed by systemd
/// a little later, and a new SO_REUSEPORT group bound before that would
/// join theirs (its steering by index then broken). Probes with a plain
/// bind (no SO_REUSEPORT), released at once.
pub fn wait_port_free(iface: &str, port: u16, within: Duration) -> Result<(), SocketError> {
    let t0 = std::time::Instant::now();
    loop {
        let err = |what: &'static str| move |source| SocketError::Setup { what, port, iface: iface.to_string(), source };
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket(AF_INET6)"))?;
        s.set_only_v6(false).map_err(err("IPV6_V6ONLY=0"))?;
        s.bind_device(Some(iface.as_bytes())).map_err(err("SO_BINDTODEVICE"))?;
        let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
        match s.bind(&addr.into()) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && t0.elapsed() < within => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(err("waiting for the old bridge sockets to close (bind)")(e)),
        }
    }
}
