//! The shipper's checkpoint: per partition, the offset of the first record
//! not yet known to be in the stream. It only ever moves past records whose
//! PubAck arrived, and is written atomically: a temporary file in the same
//! directory, fsync, rename over the old one, fsync of the directory. After
//! a crash the shipper resumes from it and republishes what was published
//! but not checkpointed; the stream's duplicate window absorbs those.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FORMAT: &str = "ironhoard-ship-checkpoint-1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    /// `[ship] host_id` of the shipper that wrote it.
    pub host_id: String,
    /// `[ship] stream`.
    pub stream: String,
    pub written_unix_ns: u64,
    /// Queue → next offset to ship.
    pub positions: BTreeMap<u16, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path}: not a shipper checkpoint: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("checkpoint {path} belongs to host_id {found:?}, stream {found_stream:?}; this shipper is host_id {want:?}, stream {want_stream:?} (give each host and stream its own checkpoint)")]
    Foreign { path: PathBuf, found: String, found_stream: String, want: String, want_stream: String },
}

impl Checkpoint {
    pub fn new(host_id: &str, stream: &str) -> Checkpoint {
        Checkpoint { format: FORMAT.into(), host_id: host_id.into(), stream: stream.into(), written_unix_ns: 0, positions: BTreeMap::new() }
    }

    /// Reads `path`; a missing file is a fresh start (every partition from
    /// offset 0). A checkpoint of another host or stream is refused.
    pub fn load(path: &Path, host_id: &str, stream: &str) -> Result<Checkpoint, CheckpointError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::new(host_id, stream)),
            Err(source) => return Err(CheckpointError::Io { path: path.into(), source }),
        };
        let c: Checkpoint = serde_json::from_str(&text).map_err(|e| CheckpointError::Corrupt { path: path.into(), why: e.to_string() })?;
        if c.format != FORMAT {
            return Err(CheckpointError::Corrupt { path: path.into(), why: format!("format {:?}, expected {FORMAT:?}", c.format) });
        }
        if c.host_id != host_id || c.stream != stream {
            return Err(CheckpointError::Foreign {
                path: path.into(),
                found: c.host_id,
                found_stream: c.stream,
                want: host_id.into(),
                want_stream: stream.into(),
            });
        }
        Ok(c)
    }

    /// Where partition `queue` resumes.
    pub fn position(&self, queue: u16) -> u64 {
        self.positions.get(&queue).copied().unwrap_or(0)
    }

    /// Writes it atomically to `path` (see the module docs).
    pub fn store(&mut self, path: &Path, now_unix_ns: u64) -> Result<(), CheckpointError> {
        self.written_unix_ns = now_unix_ns;
        let io = |source| CheckpointError::Io { path: path.into(), source };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        let body = serde_json::to_vec(self).expect("a checkpoint serializes");
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ih-ckpt-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn missing_is_a_fresh_start_and_a_stored_one_reads_back() {
        let d = dir("rt");
        let p = d.join("ship.ckpt");
        let mut c = Checkpoint::load(&p, "edge-1", "MOVES").unwrap();
        assert_eq!((c.position(0), c.position(9)), (0, 0));
        c.positions.insert(0, 1234);
        c.positions.insert(3, 7);
        c.store(&p, 42).unwrap();
        let back = Checkpoint::load(&p, "edge-1", "MOVES").unwrap();
        assert_eq!(back, c);
        assert_eq!((back.position(0), back.position(3), back.written_unix_ns), (1234, 7, 42));
        // replaced whole, no temporary left behind
        c.positions.insert(0, 99_999);
        c.store(&p, 43).unwrap();
        assert_eq!(Checkpoint::load(&p, "edge-1", "MOVES").unwrap().position(0), 99_999);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_hosts_or_a_damaged_checkpoint_is_refused() {
        let d = dir("bad");
        let p = d.join("ship.ckpt");
        Checkpoint::new("edge-1", "MOVES").store(&p, 1).unwrap();
        let e = Checkpoint::load(&p, "edge-2", "MOVES").unwrap_err().to_string();
        assert!(e.contains("edge-1") && e.contains("edge-2"), "{e}");
        assert!(Checkpoint::load(&p, "edge-1", "OTHER").is_err());
        fs::write(&p, "{\"format\":").unwrap();
        let e = Checkpoint::load(&p, "edge-1", "MOVES").unwrap_err().to_string();
        assert!(e.contains("not a shipper checkpoint") && e.contains("ship.ckpt"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
