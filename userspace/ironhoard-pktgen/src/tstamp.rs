//! Kernel timestamps for the RTT (socket mode), so the generator's own
//! scheduling is not in the figure.
//!
//! - Send: every sendmsg on a sending socket asks for software TX
//!   timestamps (SOF_TIMESTAMPING_TX_SOFTWARE | TX_SCHED, OPT_ID): the
//!   kernel reports, on the socket's error queue, when the datagrams were
//!   handed to the device driver (SCM_TSTAMP_SND; on veth that is the
//!   moment they cross to the appliance) and, as a fallback, when they
//!   entered the qdisc layer (SCM_TSTAMP_SCHED). The sender keeps its own
//!   send stamp (the `client_ts` it wrote into the moves) per sendmsg, and
//!   the kernel's time for that sendmsg by its OPT_ID counter.
//! - Receive: the receiving socket gets software RX timestamps
//!   (SCM_TIMESTAMPING), taken when the kernel received the ack, before the
//!   receive thread was woken.
//!
//! Kernel RTT of a move = ack's kernel RX time − its sendmsg's kernel TX
//! time (both CLOCK_REALTIME, read by the kernel). The join is done once,
//! after the run: nothing is shared between sender and receiver meanwhile.

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

const SOF_TIMESTAMPING_TX_SOFTWARE: u32 = 1 << 1;
const SOF_TIMESTAMPING_RX_SOFTWARE: u32 = 1 << 3;
const SOF_TIMESTAMPING_SOFTWARE: u32 = 1 << 4;
const SOF_TIMESTAMPING_OPT_ID: u32 = 1 << 7;
const SOF_TIMESTAMPING_TX_SCHED: u32 = 1 << 8;
const SOF_TIMESTAMPING_OPT_TSONLY: u32 = 1 << 11;
/// `SO_TIMESTAMPING_OLD`: the timespecs in the control message are the
/// native `struct timespec` (64-bit here).
const SO_TIMESTAMPING: libc::c_int = 37;
const SCM_TSTAMP_SND: u32 = 0;
const SCM_TSTAMP_SCHED: u32 = 1;
const IP_RECVERR: libc::c_int = 11;
const IPV6_RECVERR: libc::c_int = 25;
/// Sends remembered at most (16 B each): beyond, later sends are not stamped.
const MAX_SENDS: usize = 1 << 25;
/// Acks remembered at most (16 B each): beyond, later acks are not stamped.
pub const MAX_ACKS: usize = 1 << 25;
/// Control buffer per received datagram: one scm_timestamping (3 timespecs).
pub const RX_CMSG_SPACE: usize = 64;

fn set_timestamping(sock: &UdpSocket, flags: u32) -> io::Result<()> {
    // SAFETY: sock is a valid socket; the option value is a u32 the kernel copies.
    let rc = unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, SO_TIMESTAMPING, (&flags as *const u32).cast(), 4) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for software RX timestamps on the receiving socket.
pub fn enable_rx(sock: &UdpSocket) -> io::Result<()> {
    set_timestamping(sock, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE)
}

/// The software RX timestamp (CLOCK_REALTIME ns) in a received datagram's
/// control messages, 0 when there is none.
pub fn rx_stamp(msg: &libc::msghdr) -> u64 {
    let mut ts = 0;
    // SAFETY: msg is a header the kernel filled by recvmmsg: msg_control
    // points at our buffer and msg_controllen says how much of it the
    // kernel wrote; the CMSG_* macros stay within that.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPING {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                ts = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    ts
}

/// A sending socket's stamps: for sendmsg number `i` (the kernel's OPT_ID
/// counter, from 0), the sender's own stamp and the kernel's.
pub struct TxStamps {
    fd: libc::c_int,
    /// The stamp the sender wrote into the sendmsg's moves (monotonic ns).
    user: Vec<u64>,
    /// The kernel's driver-xmit time (SCM_TSTAMP_SND), CLOCK_REALTIME ns, 0 = none.
    snd: Vec<u64>,
    /// The kernel's qdisc-entry time (SCM_TSTAMP_SCHED), the fallback.
    sched: Vec<u64>,
    sends_since_drain: u32,
    pub enabled: bool,
}

/// What one socket's sends came to, for the join after the run.
#[derive(Default)]
pub struct SendTimes {
    /// (sender's stamp, kernel TX time), sorted by the sender's stamp.
    pub pairs: Vec<(u64, u64)>,
    /// Sends the kernel reported at the driver, and at the qdisc only.
    pub at_driver: u64,
    pub at_qdisc_only: u64,
    pub unreported: u64,
}

impl TxStamps {
    /// Asks the kernel for TX timestamps on `sock`; `enabled` is false (and
    /// nothing is recorded) when it refuses.
    pub fn new(sock: &UdpSocket) -> TxStamps {
        let flags = SOF_TIMESTAMPING_TX_SOFTWARE
            | SOF_TIMESTAMPING_TX_SCHED
            | SOF_TIMESTAMPING_SOFTWARE
            | SOF_TIMESTAMPING_OPT_ID
            | SOF_TIMESTAMPING_OPT_TSONLY;
        let enabled = set_timestamping(sock, flags).is_ok();
        TxStamps { fd: sock.as_raw_fd(), user: Vec::new(), snd: Vec::new(), sched: Vec::new(), sends_since_drain: 0, enabled }
    }

    /// Records one successful sendmsg whose moves carry `stamp`.
    pub fn sent(&mut self, stamp: u64) {
        if !self.enabled || self.user.len() >= MAX_SENDS {
            return;
        }
        self.user.push(stamp);
        self.snd.push(0);
        self.sched.push(0);
        self.sends_since_drain += 1;
        // the error queue is bounded by the socket's receive buffer: read
        // it often enough that no report is dropped
        if self.sends_since_drain >= 16 {
            self.drain();
        }
    }

    /// Reads every report waiting on the socket's error queue.
    pub fn drain(&mut self) {
        self.sends_since_drain = 0;
        if !self.enabled {
            return;
        }
        let mut data = [0u8; 64];
        let mut cbuf = [0u64; 32];
        loop {
            let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
            // SAFETY: msghdr is plain data; zeroed is a valid empty header.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = mem::size_of_val(&cbuf) as _;
            // SAFETY: msg points at iov/data/cbuf, alive and exclusive for the call.
            let r = unsafe { libc::recvmsg(self.fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
            if r < 0 {
                return;
            }
            let (mut ts, mut id, mut kind) = (0u64, None, u32::MAX);
            // SAFETY: as in rx_stamp: the kernel wrote msg_controllen bytes
            // of control messages into cbuf.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    let (lvl, ty) = ((*c).cmsg_level, (*c).cmsg_type);
                    if lvl == libc::SOL_SOCKET && ty == SO_TIMESTAMPING {
                        let t = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                        ts = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
                    } else if (lvl == libc::SOL_IP && ty == IP_RECVERR) || (lvl == libc::SOL_IPV6 && ty == IPV6_RECVERR) {
                        let e = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::sock_extended_err);
                        if e.ee_errno == libc::ENOMSG as u32 && e.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING {
                            id = Some(e.ee_data as usize);
                            kind = e.ee_info;
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            // the counter is a u32 that wraps; MAX_SENDS keeps us below that
            if let Some(i) = id.filter(|&i| i < self.user.len() && ts != 0) {
                match kind {
                    SCM_TSTAMP_SND if self.snd[i] == 0 => self.snd[i] = ts,
                    SCM_TSTAMP_SCHED if self.sched[i] == 0 => self.sched[i] = ts,
                    _ => {}
                }
            }
        }
    }

    /// Waits briefly for the last reports, then hands over the pairs.
    pub fn finish(mut self) -> SendTimes {
        let mut out = SendTimes::default();
        if !self.enabled {
            return out;
        }
        for _ in 0..20 {
            self.drain();
            if self.snd.last().is_none_or(|&t| t != 0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        out.pairs.reserve(self.user.len());
        for i in 0..self.user.len() {
            if self.user[i] == 0 {
                continue; // replayed datagrams: their stamps are the capture's
            }
            let k = if self.snd[i] != 0 {
                out.at_driver += 1;
                self.snd[i]
            } else if self.sched[i] != 0 {
                out.at_qdisc_only += 1;
                self.sched[i]
            } else {
                out.unreported += 1;
                continue;
            };
            out.pairs.push((self.user[i], k));
        }
        out.pairs.sort_unstable();
        out
    }
}

impl SendTimes {
    pub fn merge(&mut self, o: SendTimes) {
        self.pairs.extend(o.pairs);
        self.pairs.sort_unstable();
        self.at_driver += o.at_driver;
        self.at_qdisc_only += o.at_qdisc_only;
        self.unreported += o.unreported;
    }

    /// The kernel TX time of the moves stamped `stamp`. Several sendmsgs
    /// may carry one stamp (the junk datagrams sent just before a batch):
    /// the last of them, the batch's.
    pub fn kernel_tx(&self, stamp: u64) -> Option<u64> {
        let end = self.pairs.partition_point(|&(u, _)| u <= stamp);
        if end == 0 {
            return None;
        }
        let (u, _) = self.pairs[end - 1];
        if u != stamp {
            return None;
        }
        self.pairs[..end].iter().rev().take_while(|&&(u2, _)| u2 == stamp).map(|&(_, k)| k).max()
    }
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC now, ns (to put the kernel's
/// timestamps and ours on one axis for the delay figures).
pub fn realtime_minus_monotonic() -> i64 {
    let read = |c| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: ts is a valid, writable timespec; both clocks exist.
        unsafe { libc::clock_gettime(c, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let m0 = read(libc::CLOCK_MONOTONIC);
    let r = read(libc::CLOCK_REALTIME);
    let m1 = read(libc::CLOCK_MONOTONIC);
    r - (m0 + (m1 - m0) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_tx_takes_the_last_send_of_a_stamp() {
        let s = SendTimes { pairs: vec![(10, 100), (20, 200), (20, 250), (30, 300)], ..Default::default() };
        assert_eq!(s.kernel_tx(10), Some(100));
        assert_eq!(s.kernel_tx(20), Some(250));
        assert_eq!(s.kernel_tx(30), Some(300));
        assert_eq!(s.kernel_tx(15), None);
        assert_eq!(s.kernel_tx(5), None);
        assert_eq!(s.kernel_tx(40), None);
    }
}
