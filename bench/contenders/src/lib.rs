//! Bench-only contenders for the lab benchmark (`bench/`): two programs the
//! appliance is measured against, run with the same generator in the same
//! veth/netns lab. Neither is part of IronHoard, neither is shipped, and
//! neither should ever face real traffic.
//!
//! - `ih-bench-reflector` — the floor of the machine: one AF_XDP socket on
//!   one queue, opened by the appliance's own socket setup (same UMEM and
//!   ring sizes, hugepages, zero-copy fallback, TX budget) and steered by
//!   IronHoard's own XDP program (so steering costs what it costs the
//!   appliance), and driven by the poller's own ring code
//!   (`ironhoard_dataplane::rings::XskRings`: the same batch, fill-ring
//!   policy, TX kicks, idle spin and sleep), so it differs from the
//!   appliance's poller only in what it does to each frame. Per move
//!   frame it parses
//!   Ethernet/IP/UDP, turns the move into an ACCEPTED ack signed with the
//!   player's key (exactly one HMAC-SHA256 per packet, the ack tag; player
//!   keys are derived once and cached in a table allocated at start), swaps
//!   the addresses, fixes the checksums and sends the ack from the same UMEM
//!   frame. It does NOT verify the move's tag, keep a replay window, apply
//!   the rules or a rate limit, or log anything: it acks forgeries and
//!   replays ACCEPTED, and is only a measure of what the packet path costs.
//! - `ih-bench-tokio` — what most game backends would write: a tokio UDP
//!   server (`recv_from` → [`ironhoard_engine::Engine::process`] in place →
//!   `send_to`) with the appliance's validation (tag, anti-replay window,
//!   rules, rate limit). It keeps NO move log (accepted moves are only
//!   counted), has one socket and no batching, and knows one master secret
//!   (key_id 0).
//!
//! This library holds what both share: reading a master secret file.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a master secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret file {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("secret file {0}: mode {1:04o} lets group or others read or write it (chmod 600)")]
    Mode(PathBuf, u32),
    #[error("secret file {0}: must hold exactly 64 lowercase hex characters on one line")]
    Format(PathBuf),
}

/// Reads a master secret in the appliance's format (SPEC "Keys"): 64
/// lowercase hex characters on one line, in a file no one but its owner
/// may read or write.
pub fn read_secret(path: &Path) -> Result<[u8; 32], SecretError> {
    let io = |e| SecretError::Io(path.into(), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mode = f.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Mode(path.into(), mode));
    }
    let mut text = String::new();
    f.by_ref().take(80).read_to_string(&mut text).map_err(io)?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let mut secret = [0u8; 32];
    if line.len() != 64 || line.bytes().any(|b| b.is_ascii_uppercase()) || hex::decode_to_slice(line, &mut secret).is_err() {
        return Err(SecretError::Format(path.into()));
    }
    Ok(secret)
}
