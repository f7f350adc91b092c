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
}
