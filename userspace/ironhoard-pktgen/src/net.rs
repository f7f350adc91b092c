//! Kernel-socket sender and receiver. Send and receive use separate sockets
//! on the same local port (SO_REUSEPORT, with a classic BPF program that
//! hands every incoming datagram to the receiving socket), so the two
//! threads never contend on one socket's lock. Moves leave in UDP GSO
//! batches (UDP_SEGMENT): one sendmsg carries up to 64 datagrams.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
/// Datagrams per GSO send.
pub const GSO_MAX: usize = 64;

/// The sockets: `senders` sending sockets and one receiving socket, all
/// bound to the same local port, none connected.
pub fn socket_group(target: SocketAddr, senders: usize) -> Result<(Vec<UdpSocket>, UdpSocket)> {
    let (tx, rx) = socket_pair(target, None)?;
    let local = tx.local_addr()?;
    let mut txs = vec![tx];
    let domain = if target.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    for _ in 1..senders {
        // joins the group after the receiver: its index stays 1
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("socket")?;
        s.set_reuse_port(true).context("SO_REUSEPORT")?;
        s.set_send_buffer_size(8 << 20).context("SO_SNDBUF")?;
        s.bind(&local.into()).with_context(|| format!("bind sender to {local}"))?;
        txs.push(s.into());
    }
    Ok((txs, rx))
}

/// The pair of sockets: (sender, receiver), both bound to the same local
/// port, neither connected.
pub fn socket_pair(target: SocketAddr, bind: Option<SocketAddr>) -> Result<(UdpSocket, UdpSocket)> {
    let domain = if target.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let any: SocketAddr = bind.unwrap_or(if target.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? });
    let tx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("socket")?;
    tx.set_reuse_port(true).context("SO_REUSEPORT")?;
    tx.set_send_buffer_size(8 << 20).context("SO_SNDBUF")?;
    tx.bind(&any.into()).with_context(|| format!("bind {any}"))?;
    let local = tx.local_addr()?.as_socket().context("local address")?;
    let rx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("socket")?;
    rx.set_reuse_port(true).context("SO_REUSEPORT")?;
    // A deep receive buffer, so the generator's own receive thread falling
    // behind for a few ms does not drop acks (SO_RCVBUFFORCE passes
    // net.core.rmem_max when we may; else SO_RCVBUF, capped by it).
    if force_rcvbuf(&rx, RCVBUF).is_err() {
        rx.set_recv_buffer_size(RCVBUF).context("SO_RCVBUF")?;
    }
    rx.bind(&local.into()).with_context(|| format!("bind receiver to {local}"))?;
    // Connected to the target: acks are the only datagrams it takes, and
    // the kernel demultiplexes them early with a cached route (no route
    // lookup, no reuseport group walk per ack). In a one-host lab that
    // work runs on the core that sent the ack, the appliance's.
    rx.connect(&target.into()).with_context(|| format!("connect the receiver to {target}"))?;
    rx.set_read_timeout(Some(Duration::from_millis(20)))?;
    // ret #1: every datagram to the group goes to the receiver (index 1).
    let mut prog = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 1 }];
    let fprog = libc::sock_fprog { len: 1, filter: prog.as_mut_ptr() };
    // SAFETY: fprog points at prog, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_ATTACH_REUSEPORT_CBPF");
    }
    Ok((tx.into(), rx.into()))
}

/// Receive buffer asked for the ack socket.
const RCVBUF: usize = 64 << 20;

fn force_rcvbuf(s: &Socket, bytes: usize) -> io::Result<()> {
    let v = bytes as libc::c_int;
    // SAFETY: s is a valid socket; the option value is a c_int the kernel copies.
    let rc = unsafe { libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&v as *const libc::c_int).cast(), 4) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Datagrams the kernel dropped at this socket (its receive buffer full):
/// SO_MEMINFO's SK_MEMINFO_DROPS.
pub fn socket_drops(sock: &UdpSocket) -> io::Result<u64> {
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut v = [0u32; 9];
    let mut len = mem::size_of_val(&v) as libc::socklen_t;
    // SAFETY: sock is a valid socket; v is a writable buffer of len bytes.
    let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, v.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v[SK_MEMINFO_DROPS] as u64)
}

/// Sends `count` datagrams of `seg` bytes laid end to end in `buf` to
/// `dst` with one sendmsg (UDP GSO when count > 1).
pub fn send_gso(sock: &UdpSocket, dst: &SockAddr, buf: &[u8], seg: usize, count: usize) -> io::Result<()> {
    let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: seg * count };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = dst.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = dst.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if count > 1 {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at cbuf, which is large enough for one
        // u16 control message (space <= 64 bytes); CMSG_FIRSTHDR/DATA stay
        // inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
        }
    }
    loop {
        // SAFETY: msg and everything it points to (iov, buf, dst, cbuf)
        // are alive for the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOBUFS) | Some(libc::EAGAIN) => {
                std::thread::yield_now();
                continue;
            }
            _ => return Err(e),
        }
    }
}

/// Receives up to `bufs.len()` datagrams; returns their lengths in `lens`
/// and, with `stamps`, each one's kernel RX timestamp (CLOCK_REALTIME ns,
/// 0 when the kernel gave none: see [`crate::tstamp::enable_rx`]).
pub fn recv_batch(sock: &UdpSocket, bufs: &mut [[u8; 128]], lens: &mut [usize], mut stamps: Option<&mut [u64; 64]>) -> io::Result<usize> {
    const B: usize = 64;
    const C: usize = crate::tstamp::RX_CMSG_SPACE / 8;
    let n = bufs.len().min(B);
    // SAFETY: plain C data; zeroed means null pointers and zero lengths.
    let mut iovs: [libc::iovec; B] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; B] = unsafe { mem::zeroed() };
    let mut cbufs = [[0u64; C]; B];
    for i in 0..n {
        iovs[i] = libc::iovec { iov_base: bufs[i].as_mut_ptr().cast(), iov_len: 128 };
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if stamps.is_some() {
            msgs[i].msg_hdr.msg_control = cbufs[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = crate::tstamp::RX_CMSG_SPACE as _;
        }
    }
    // SAFETY: msgs[..n] point at iovs, bufs and cbufs, alive and exclusive for the call.
    let r = unsafe { libc::recvmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // ECONNREFUSED: an ICMP port unreachable for an earlier move
            // (the target was down a moment), reported on the connected socket
            Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ECONNREFUSED) => Ok(0),
            _ => Err(e),
        };
    }
    for i in 0..r as usize {
        lens[i] = msgs[i].msg_len as usize;
        if let Some(s) = stamps.as_deref_mut() {
            s[i] = crate::tstamp::rx_stamp(&msgs[i].msg_hdr);
        }
    }
    Ok(r as usize)
}

/// Puts the calling thread in SCHED_FIFO at `prio` (latency runs).
pub fn sched_fifo(prio: i32) -> io::Result<()> {
    let p = libc::sched_param { sched_priority: prio };
    // SAFETY: pid 0 = this thread; p is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::recv_batch;
    use crate::tstamp::{enable_rx, realtime_minus_monotonic, TxStamps};

    /// Over loopback: every sendmsg is reported with its OPT_ID, and the
    /// receiver's datagrams carry an RX stamp between send and now.
    #[test]
    fn loopback_sends_and_receives_are_stamped() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx(&rx).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let mut bufs = vec![[0u8; 128]; 64];
        let mut lens = [0usize; 64];
        let mut stamps = [0u64; 64];
        // The kernel turns RX timestamping on through a work item: wait
        // until a datagram comes stamped (up to 2 s), then check them all.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t0 = std::time::Instant::now();
        loop {
            probe.send_to(&[1u8; 8], rx.local_addr().unwrap()).unwrap();
            let n = recv_batch(&rx, &mut bufs, &mut lens, Some(&mut stamps)).unwrap();
            if stamps[..n].iter().any(|&s| s != 0) {
                break;
            }
            assert!(t0.elapsed() < std::time::Duration::from_secs(2), "no RX timestamp within 2 s");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // drain the probes
        rx.set_nonblocking(true).unwrap();
        while recv_batch(&rx, &mut bufs, &mut lens, None).unwrap() > 0 {}
        rx.set_nonblocking(false).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut st = TxStamps::new(&tx);
        assert!(st.enabled);
        let before = realtime_minus_monotonic() + crate::monotonic_ns() as i64;
        for i in 0..40u64 {
            tx.send_to(&[0u8; 8], rx.local_addr().unwrap()).unwrap();
            st.sent(1000 + i);
        }
        let out = st.finish();
        assert_eq!(out.pairs.len(), 40, "every send reported");
        assert_eq!(out.unreported, 0);
        for i in 0..40u64 {
            let k = out.kernel_tx(1000 + i).unwrap();
            assert!(k as i64 >= before - 1_000_000, "send {i} stamped before the run");
        }
        let mut got = 0;
        while got < 40 {
            let n = recv_batch(&rx, &mut bufs, &mut lens, Some(&mut stamps)).unwrap();
            assert!(n > 0, "only {got} of 40 datagrams arrived");
            let now = realtime_minus_monotonic() + crate::monotonic_ns() as i64;
            for &s in &stamps[..n] {
                assert!(s as i64 >= before - 1_000_000 && s as i64 <= now + 1_000_000, "rx stamp {s} outside [{before}, {now}]");
            }
            got += n;
        }
    }
}
