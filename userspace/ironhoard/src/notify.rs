//! systemd's service notification protocol (sd_notify(3)), spoken directly:
//! one datagram of `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`). Without the
//! variable (not started by systemd with `Type=notify`) it does nothing.

use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to systemd, if it
/// listens. Failures are logged, never fatal: the data path does not
/// depend on the service manager.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&path, state) {
        log::warn!("sd_notify to NOTIFY_SOCKET={}: {e}", path.to_string_lossy());
    }
}

/// One notification datagram carrying `fds` (SCM_RIGHTS): FDSTORE=1.
pub fn send_fds(path: &std::ffi::OsStr, state: &str, fds: &[std::os::fd::RawFd]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = connect(path)?;
    let n = sendmsg_fds(sock.as_raw_fd(), state.as_bytes(), fds, 0)?;
    if n != state.len() {
        return Err(std::io::Error::other("short datagram"));
    }
    Ok(())
}

fn connect(path: &std::ffi::OsStr) -> std::io::Result<UnixDatagram> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let b = path.as_bytes();
    let addr = match b.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&b[1..])?,
        Some(b'/') => SocketAddr::from_pathname(path)?,
        _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "neither a path nor an @abstract name")),
    };
    sock.connect_addr(&addr)?;
    Ok(sock)
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    send_fds(path, state, &[])
}

/// The most fds one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD).
const SCM_MAX_FD: usize = 253;

/// One sendmsg(2) of `data` on socket `fd` with `fds` attached
/// (SCM_RIGHTS); returns the bytes sent.
pub(crate) fn sendmsg_fds(fd: RawFd, data: &[u8], fds: &[RawFd], flags: libc::c_int) -> std::io::Result<usize> {
    assert!(fds.len() <= SCM_MAX_FD);
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut ctrl = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid; the pointers set below point to
    // `iov` and `ctrl`, alive for the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes (room for one
        // SCM_RIGHTS header and the fds); CMSG_FIRSTHDR is within it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
        }
    }
    // SAFETY: a valid socket and a msghdr whose buffers outlive the call.
    let n = unsafe { libc::sendmsg(fd, &msg, flags) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("ih-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("notify.sock");
        let _ = std::fs::remove_file(&p);
        let rx = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");

        let name = format!("ih-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send(std::ffi::OsStr::new("relative"), "READY=1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
