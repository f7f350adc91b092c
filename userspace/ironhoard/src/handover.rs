//! Restart without loss: what one appliance hands to the next.
//!
//! What must outlive a restart is what the network sees: the XDP program's
//! bpf_link on the interface (the interface is never without a program)
//! and the bridge, the SO_REUSEPORT group of UDP sockets on the move port
//! (steered by player, like the pollers' mesh) where the kernel queues the
//! moves while the AF_XDP sockets change hands. The predecessor turns its
//! program's handover flag on (moves go to the bridge instead of its
//! AF_XDP sockets), drains its pollers, syncs and unlocks the move log, and
//! exits; the successor opens the log (its windows then hold every move the
//! predecessor accepted), serves the bridge from its pollers, opens its own
//! AF_XDP sockets and swaps its program into the link (BPF_LINK_UPDATE).
//!
//! Two carriers, the same pieces:
//! - `ironhoard run` started while another serves the same config asks it
//!   over its stats socket (`handover {json}`); the answer carries the fds
//!   (SCM_RIGHTS), with the stats and metrics listeners.
//! - Under systemd, the appliance keeps the link and the bridge in the
//!   service's fd store (FDSTORE=1; the unit's FileDescriptorStoreMax): on
//!   `systemctl restart` systemd keeps them while the old process exits on
//!   SIGTERM and hands them to the new one (LISTEN_FDS). A stop empties the
//!   store: the program is detached, the port closed.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ironhoard_loader::AttachedMode;
use serde_json::{json, Value};
use socket2::Socket;

use crate::config::Config;

/// Most fds one handover carries: link, stats, metrics, a bridge socket
/// per queue (at most 64 queues served).
const MAX_FDS: usize = 72;

/// What a successor got from its predecessor.
#[derive(Default)]
pub struct Inherited {
    /// Where from: "systemd fd store" or "pid N".
    pub from: Option<String>,
    pub link: Option<(OwnedFd, AttachedMode)>,
    /// The bridge sockets, in the order of their SO_REUSEPORT group.
    pub bridges: Vec<Socket>,
    /// Under systemd, the store may hold what another config left (the
    /// interface or port changed before the restart): the names of what
    /// was dropped, to take out of the store.
    pub stale: Vec<String>,
    pub stats: Option<UnixListener>,
    pub metrics: Option<std::net::TcpListener>,
}

/// The config keys that must agree for a handover.
pub fn identity(cfg: &Config) -> Value {
    json!({
        "interface": cfg.iface,
        "port": cfg.port,
        "backend": cfg.backend.to_string(),
        "queues": cfg.queues,
        "log_dir": cfg.log_dir.display().to_string(),
    })
}

/// Name of the link in the fd store: `ih-link-<iface>-` and the mode.
pub fn link_prefix(cfg: &Config) -> String {
    format!("ih-link-{}-", cfg.iface)
}

/// Names of the bridge sockets: `ih-bridge-<iface>-<port>-` and the index.
pub fn bridge_prefix(cfg: &Config) -> String {
    format!("ih-bridge-{}-{}-", cfg.iface, cfg.port)
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: F_SETFD on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

impl Inherited {
    /// The fds systemd passed from the service's fd store (LISTEN_FDS,
    /// LISTEN_FDNAMES), if any were meant for this process.
    pub fn from_systemd(cfg: &Config) -> Inherited {
        let mut out = Inherited::default();
        let pid_ok = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
        let n: usize = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(v);
        }
        if !pid_ok || n == 0 {
            return out;
        }
        let names: Vec<&str> = names.split(':').collect();
        let mut bridges: Vec<(usize, Socket)> = Vec::new();
        for i in 0..n.min(MAX_FDS) {
            let fd = 3 + i as RawFd;
            set_cloexec(fd);
            // SAFETY: systemd passed fds 3..3+LISTEN_FDS to this process
            // (LISTEN_PID is ours); each is owned once, here.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = names.get(i).copied().unwrap_or("");
            let (link_name, bridge_prefix) = (link_prefix(cfg), bridge_prefix(cfg));
            if let Some(m) = name.strip_prefix(&link_name).and_then(AttachedMode::from_name) {
                out.link = Some((owned, m));
            } else if let Some(k) = name.strip_prefix(&bridge_prefix).and_then(|k| k.parse().ok()) {
                bridges.push((k, Socket::from(owned)));
            } else {
                log::warn!("systemd passed fd {fd} named {name:?}: not for this config ({} port {}), closed", cfg.iface, cfg.port);
                out.stale.push(name.to_string());
            }
        }
        bridges.sort_by_key(|(k, _)| *k);
        out.bridges = bridges.into_iter().map(|(_, s)| s).collect();
        if out.link.is_some() || !out.bridges.is_empty() {
            out.from = Some("systemd fd store".into());
        }
        out
    }

    /// Asks the appliance serving the stats socket `path` to hand over,
    /// and waits (up to 60 s) until it has drained, synced the move log
    /// and sent its fds.
    pub fn request(path: &Path, cfg: &Config) -> Result<Inherited> {
        let mut s = UnixStream::connect(path).with_context(|| format!("connecting to the running appliance at {}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let req = json!({"identity": identity(cfg), "pid": std::process::id()});
        s.write_all(format!("handover {req}\n").as_bytes()).context("sending the handover request")?;
        let (head, fds) = recv_with_fds(&s).with_context(|| format!("waiting for the handover from the appliance at {}", path.display()))?;
        let v: Value = serde_json::from_slice(&head).with_context(|| format!("handover answer {:?}", String::from_utf8_lossy(&head)))?;
        if v["ok"] != json!(true) {
            // the predecessor's own words (e.g. a config that differs)
            bail!("the appliance at {} refused the handover: {}", path.display(), v["error"].as_str().unwrap_or("no reason given"));
        }
        let names: Vec<String> = serde_json::from_value(v["fds"].clone()).context("handover answer: fds")?;
        if names.len() != fds.len() {
            bail!("handover answer names {} fds and carried {}", names.len(), fds.len());
        }
        let mut out = Inherited { from: Some(format!("pid {}", v["pid"])), ..Default::default() };
        for (name, fd) in names.iter().zip(fds) {
            if let Some(m) = name.strip_prefix(&link_prefix(cfg)).and_then(AttachedMode::from_name) {
                out.link = Some((fd, m));
            } else if name.starts_with(&bridge_prefix(cfg)) {
                out.bridges.push(Socket::from(fd));
            } else if name == "stats" {
                out.stats = Some(UnixListener::from(fd));
            } else if name == "metrics" {
                out.metrics = Some(std::net::TcpListener::from(fd));
            }
        }
        Ok(out)
    }
}

/// A successor's request, waiting for the predecessor's main thread to
/// release the data path.
pub struct Slot {
    identity: Value,
    pending: Mutex<Option<(UnixStream, u32)>>,
}

impl Slot {
    pub fn new(cfg: &Config) -> Slot {
        Slot { identity: identity(cfg), pending: Mutex::new(None) }
    }

    /// The stats thread's side: checks the request against this
    /// appliance's config and, when it agrees, parks the connection for
    /// the main thread. Returns the error to answer with otherwise.
    pub fn offer(&self, c: &UnixStream, line: &str) -> Option<String> {
        let req: Value = match serde_json::from_str(line.trim_start_matches("handover").trim()) {
            Ok(v) => v,
            Err(e) => return Some(format!("handover request: {e}")),
        };
        let mine = &self.identity;
        if req["identity"] != *mine {
            return Some(format!(
                "this appliance serves {mine}, the new one's config says {}: a handover needs the same interface, port, backend, queues and log dir (stop this one first: systemctl stop ironhoard)",
                req["identity"]
            ));
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_some() {
            return Some("a handover is already under way".into());
        }
        match c.try_clone() {
            Ok(s) => {
                *p = Some((s, req["pid"].as_u64().unwrap_or(0) as u32));
                None
            }
            Err(e) => Some(format!("handover: {e}")),
        }
    }

    /// Whether a successor waits (the main thread then stops serving).
    pub fn requested(&self) -> Option<u32> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, pid)| *pid)
    }

    /// The main thread's side, once the data path is released: sends the
    /// fds, named, to the waiting successor.
    pub fn complete(&self, fds: &[(String, RawFd)]) -> Result<()> {
        let Some((s, pid)) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            bail!("no handover requested");
        };
        let names: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
        let head = json!({"ok": true, "pid": std::process::id(), "fds": names});
        let raw: Vec<RawFd> = fds.iter().map(|(_, f)| *f).collect();
        send_with_fds(&s, format!("{head}\n").as_bytes(), &raw).with_context(|| format!("handing over to pid {pid}"))
    }

    /// Answers a refused handover (the successor then exits, this one serves on).
    pub fn refuse(&self, why: &str) {
        if let Some((mut s, _)) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = s.write_all(format!("{}\n", json!({"ok": false, "error": why})).as_bytes());
        }
    }
}

fn send_with_fds(s: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    // the receiver takes at most MAX_FDS
    assert!(fds.len() <= MAX_FDS);
    let n = crate::notify::sendmsg_fds(s.as_raw_fd(), data, fds, libc::MSG_NOSIGNAL)?;
    // the rest of the line, if the first call was short (the fds went with it)
    let mut rest = &data[n..];
    let mut w = s;
    while !rest.is_empty() {
        let k = w.write(rest)?;
        rest = &rest[k..];
    }
    Ok(())
}

/// Reads one line and the fds that came with it.
fn recv_with_fds(s: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: a size computation.
        let space = unsafe { libc::CMSG_SPACE((MAX_FDS * 4) as u32) } as usize;
        let mut ctrl = vec![0u64; space.div_ceil(8)];
        // SAFETY: an all-zero msghdr is valid; its pointers are set to
        // `iov` and `ctrl`, alive for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: a valid socket and msghdr; MSG_CMSG_CLOEXEC marks received fds close-on-exec.
        let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: walking the control messages the kernel wrote into `ctrl`
        // (msg_controllen bytes); SCM_RIGHTS data holds whole fds, now ours.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                    let p = libc::CMSG_DATA(c).cast::<RawFd>();
                    for i in 0..k {
                        fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the running appliance closed the connection without handing over"));
        }
        line.extend_from_slice(&buf[..n as usize]);
        if line.contains(&b'\n') {
            let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
            line.truncate(end);
            return Ok((line, fds));
        }
    }
}

/// Keeps `fds` in systemd's fd store for the service (replacing entries
/// of the same names): a restart hands them to the next process. Nothing
/// without $NOTIFY_SOCKET.
pub fn store(fds: &[(String, RawFd)]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    for (name, fd) in fds {
        let rm = format!("FDSTOREREMOVE=1\nFDNAME={name}");
        let add = format!("FDSTORE=1\nFDNAME={name}");
        if let Err(e) = crate::notify::send_fds(&path, &rm, &[]).and_then(|_| crate::notify::send_fds(&path, &add, &[*fd])) {
            log::warn!(
                "storing {name} in systemd's fd store: {e} (a restart will not be lossless; does the unit set FileDescriptorStoreMax=?)"
            );
        }
    }
}

/// Drops entries from systemd's fd store (bridges that no longer match).
pub fn unstore(names: &[String]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    for name in names {
        let _ = crate::notify::send_fds(&path, &format!("FDSTOREREMOVE=1\nFDNAME={name}"), &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn fds_and_their_line_cross_a_unix_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r1, w1) = std::io::pipe().unwrap();
        let (mut r2, w2) = std::io::pipe().unwrap();
        // a line longer than one recvmsg's buffer: the fds come with its first part
        let line = format!("{{\"ok\":true,\"pad\":\"{}\"}}\n", "x".repeat(6000));
        send_with_fds(&a, line.as_bytes(), &[w1.as_raw_fd(), w2.as_raw_fd()]).unwrap();
        drop((w1, w2));
        let (head, fds) = recv_with_fds(&b).unwrap();
        assert_eq!(head, line.trim_end().as_bytes());
        assert_eq!(fds.len(), 2);
        // the received descriptors are the pipes' write ends
        for (fd, r, msg) in [(&fds[0], &mut r1, b"one"), (&fds[1], &mut r2, b"two")] {
            let mut w = std::fs::File::from(fd.try_clone().unwrap());
            w.write_all(msg).unwrap();
            drop(w);
            let mut got = [0u8; 3];
            r.read_exact(&mut got).unwrap();
            assert_eq!(&got, msg);
        }
    }

    #[test]
    fn a_closed_connection_is_an_error_not_a_handover() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let e = recv_with_fds(&b).unwrap_err();
        assert!(e.to_string().contains("without handing over"), "{e}");
    }
}
