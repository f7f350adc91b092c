//! Pinning the calling thread to one CPU.

/// Error pinning a thread.
#[derive(Debug, thiserror::Error)]
#[error("cannot pin thread to core {core}: {source}")]
pub struct PinError {
    pub core: usize,
    #[source]
    pub source: std::io::Error,
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> Result<(), PinError> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(PinError { core, source: std::io::Error::from_raw_os_error(libc::EINVAL) });
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` < CPU_SETSIZE was checked above, so CPU_SET stays in bounds.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 = this thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(PinError { core, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Number of CPUs this process may run on.
pub fn online_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
