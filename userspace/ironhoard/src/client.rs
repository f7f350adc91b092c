//! The stats socket's client side (`ironhoard stats`, `reload`,
//! `capture`, a successor looking for its predecessor).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Whether an appliance answers on the stats socket `path`.
pub fn is_live(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// Client side: sends `command`, returns the JSON answer.
pub fn query(path: &Path, command: &str) -> Result<Value> {
    let v = query_with_timeout(path, command, Duration::from_secs(5))?;
    if let Some(e) = v.get("error") {
        bail!("stats socket {}: {}", path.display(), e.as_str().unwrap_or("error"));
    }
    Ok(v)
}

/// Sends `command`, returns the JSON answer as is (an `error` key included).
pub fn query_with_timeout(path: &Path, command: &str, timeout: Duration) -> Result<Value> {
    let mut c = connect(path)?;
    c.set_read_timeout(Some(timeout))?;
    writeln!(c, "{command}")?;
    let mut s = String::new();
    c.read_to_string(&mut s).with_context(|| format!("reading from stats socket {}", path.display()))?;
    let v: Value = serde_json::from_str(s.trim()).with_context(|| format!("stats socket {} sent {s:?}", path.display()))?;
    Ok(v)
}

/// Connects to the stats socket, with an error that says what to check.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no appliance is serving stats at {} ({e}); is `ironhoard run` running with this stats socket?",
            path.display()
        ),
        io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot open stats socket {} ({e}); run as root or as a member of the socket's group",
            path.display()
        ),
        _ => anyhow::anyhow!("stats socket {}: {e}", path.display()),
    })
}
