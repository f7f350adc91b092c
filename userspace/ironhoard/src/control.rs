//! The control plane's servers: the stats socket (bound with mode 0660,
//! one line in, one JSON answer out; `capture` streams and a successor's
//! `handover` take their own paths), the same server for the shipper's
//! socket, and nothing of what is answered: that is [`crate::stats`].

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::stats::StatsSource;

/// Binds the stats socket at `path` with mode 0660, replacing a stale
/// socket left by a crashed run but refusing to steal a live one.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating stats socket directory {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod 0755 {}", dir.display()))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            bail!("stats socket path {} exists and is not a socket; refusing to replace it", path.display());
        }
        if UnixStream::connect(path).is_ok() {
            bail!("stats socket {} is in use: another ironhoard is running", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale stats socket {}", path.display()))?;
    }
    // SAFETY: umask only changes this process's file-creation mask; it is
    // set around bind so the socket is never briefly accessible to others.
    let old = unsafe { libc::umask(0o117) };
    let l = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let l = l.with_context(|| format!("binding stats socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod 0660 {}", path.display()))?;
    if let Some(g) = group {
        let gid = group_id(g).with_context(|| format!("[stats] group = {g:?}"))?;
        // Under systemd (Group=ironhoard) the socket is born in its group:
        // no chown, which the unit's system-call filter does not allow.
        let now = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?);
        if now != gid {
            std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| format!("chgrp {g} {}", path.display()))?;
        }
    }
    Ok(l)
}

/// The gid of a group name (or a numeric gid).
fn group_id(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name)?;
    // SAFETY: getgrnam reads a NUL-terminated name and returns a pointer to
    // static storage or null; we copy the gid out at once (the control
    // thread is the only caller, at start).
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        bail!("no such group");
    }
    // SAFETY: g is non-null and points to a valid struct group.
    Ok(unsafe { (*g).gr_gid })
}

/// Serves clients until the process ends, off the workers' cores: each on
/// its own thread, at most 8 at once, 2 s for the whole exchange
/// (`crate::serve`), so no client can hold the socket.
/// `capture` connections outlive that limit (crate::capture::serve), and
/// a successor's `handover` waits for the main thread's answer.
pub fn serve(listener: UnixListener, src: Arc<StatsSource>, handover: Arc<crate::handover::Slot>) {
    let answers = Arc::clone(&src);
    serve_lines(
        listener,
        move |c, line, deadline| {
            if line.starts_with("handover") {
                // a successor: answered by the main thread once this
                // appliance has released the data path (or refused here)
                if let Some(why) = handover.offer(c, line) {
                    let _ = crate::serve::write_answer(c, deadline, format!("{}\n", json!({"ok": false, "error": why})).as_bytes());
                }
                return true;
            }
            match crate::capture::command_args(line) {
                Some(args) => {
                    crate::capture::serve(&src, c, args);
                    true
                }
                None => false,
            }
        },
        move |line| answers.answer(line),
    );
}

/// [`serve`] with any answering function (the shipper's socket too).
pub fn serve_with(listener: UnixListener, answer: impl Fn(&str) -> Value + Send + Sync + 'static) {
    serve_lines(listener, |_, _, _| false, answer);
}

/// One line in, one JSON answer out, under `crate::serve`'s limits.
/// `takes` may take a connection over for its line (true: it answered).
fn serve_lines(
    listener: UnixListener,
    takes: impl Fn(&mut UnixStream, &str, Instant) -> bool + Send + Sync + 'static,
    answer: impl Fn(&str) -> Value + Send + Sync + 'static,
) {
    let limits = crate::serve::Limits::CONTROL;
    crate::serve::serve("stats", listener.incoming(), limits, None, move |c, deadline| {
        let Ok(req) = crate::serve::read_request(c, deadline, 4096, |b| b.contains(&b'\n')) else { return };
        let line = String::from_utf8_lossy(&req);
        let line = line.trim();
        if takes(c, line, deadline) {
            return;
        }
        // a reload waits for every worker to take it (at most 5 s)
        let deadline = if line == "reload" { Instant::now() + Duration::from_secs(10) } else { deadline };
        let v = answer(line);
        let _ = crate::serve::write_answer(c, deadline, format!("{v}\n").as_bytes());
    });
}
