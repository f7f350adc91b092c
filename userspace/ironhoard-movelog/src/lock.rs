//! The log directory's lock: the appliance holds an exclusive flock on
//! `<dir>/LOCK` for as long as it writes the log, so two appliances can never
//! write the same log (whatever their stats sockets), and readers can tell a
//! torn record at the end of a dead writer's log from one being written.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::LOCK_FILE;

/// An exclusive flock on a log directory, released on drop (and by the
/// kernel when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub path: PathBuf,
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl DirLock {
    /// Takes the lock, retrying for up to a second (a reader may hold a
    /// shared lock for an instant while it checks liveness). Fails, naming
    /// the holder's pid, if another process writes the log.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening lock file {}: {e}", path.display())))?;
        let t0 = Instant::now();
        loop {
            match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) && t0.elapsed() < Duration::from_secs(1) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                    let mut holder = String::new();
                    let _ = f.read_to_string(&mut holder);
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "move log {} is locked by another running appliance (pid {}): two appliances must not write one log",
                            dir.display(),
                            holder.trim()
                        ),
                    ));
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("flock {}: {e}", path.display()))),
            }
        }
        // the holder's pid, for the message another instance prints
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        Ok(DirLock { _file: f, path })
    }
}

/// How long a reader trusts that the log's writer is alive before asking
/// again.
pub const ALIVE_FOR: Duration = Duration::from_millis(20);

/// Whether a log's writer is alive, cheap to ask on every read at the end
/// of the log: the lock file stays open, and an "alive" answer is trusted
/// for [`ALIVE_FOR`]. A reader uses "alive" only to hold back (not to read
/// at or past the writer's published head), so a stale "alive" after the
/// writer died delays reading the dead writer's last records by at most
/// that long; "no writer" is asked again on every call (the file is opened
/// afresh, in case a new appliance made a new one).
#[derive(Debug)]
pub struct WriterWatch {
    path: PathBuf,
    file: Option<File>,
    alive_at: Option<Instant>,
}

impl WriterWatch {
    pub fn new(dir: &Path) -> WriterWatch {
        WriterWatch { path: dir.join(LOCK_FILE), file: None, alive_at: None }
    }

    pub fn alive(&mut self) -> bool {
        if self.alive_at.is_some_and(|t| t.elapsed() < ALIVE_FOR) {
            return true;
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let alive = match &self.file {
            None => false,
            Some(f) => match flock(f, libc::LOCK_SH | libc::LOCK_NB) {
                Ok(()) => {
                    let _ = flock(f, libc::LOCK_UN);
                    self.file = None;
                    false
                }
                Err(_) => true,
            },
        };
        self.alive_at = alive.then(Instant::now);
        alive
    }
}

/// Whether a process holds the log's lock (an appliance is writing it).
/// A log without a lock file has no live writer.
pub fn writer_alive(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(LOCK_FILE)) else { return false };
    match flock(&f, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => {
            let _ = flock(&f, libc::LOCK_UN);
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_liveness() {
        let d = std::env::temp_dir().join(format!("ih-lock-{}-{}", std::process::id(), crate::unix_ns()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(!writer_alive(&d), "no lock file: no writer");
        let l = DirLock::acquire(&d).unwrap();
        assert!(writer_alive(&d));
        let e = DirLock::acquire(&d).unwrap_err();
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        drop(l);
        assert!(!writer_alive(&d));
        let _again = DirLock::acquire(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_watch_sees_a_writer_come_and_go() {
        let d = std::env::temp_dir().join(format!("ih-watch-{}-{}", std::process::id(), crate::unix_ns()));
        std::fs::create_dir_all(&d).unwrap();
        let mut w = WriterWatch::new(&d);
        assert!(!w.alive(), "no lock file: no writer");
        let l = DirLock::acquire(&d).unwrap();
        assert!(w.alive());
        drop(l);
        // "alive" is trusted for ALIVE_FOR, then asked again
        std::thread::sleep(ALIVE_FOR + Duration::from_millis(5));
        assert!(!w.alive());
        // a new writer (the lock file made afresh) is seen at once
        std::fs::remove_file(d.join(LOCK_FILE)).unwrap();
        let _l = DirLock::acquire(&d).unwrap();
        assert!(w.alive());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
