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

/// Number of CPUs online on this host, whatever this thread's affinity mask
/// (so a core number given on the command line means that core even when the
/// caller was started under a narrower mask, e.g. by a shell that
/// `ironhoard-tune --isolate` moved off the pollers' cores).
pub fn online_cores() -> usize {
    // SAFETY: sysconf takes a plain integer name and reads no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
}

/// The CPUs the calling thread may run on (its affinity mask).
pub fn allowed_cores() -> std::io::Result<Vec<usize>> {
    allowed_cores_of()
}

/// Checks that every core in `wanted` is one this process may run on (its
/// affinity mask: taskset, systemd CPUAffinity=, a cpuset cgroup), not
/// merely below the number of online cores. Says which are not, and the set.
pub fn check_cores(wanted: &[usize]) -> Result<(), String> {
    let allowed = allowed_cores().map_err(|e| format!("reading this process's CPU affinity: {e}"))?;
    let missing: Vec<usize> = wanted.iter().copied().filter(|c| !allowed.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "core(s) {missing:?} are not in this process's allowed CPU set {} (online: {}; the set comes from taskset, systemd CPUAffinity= or a cpuset cgroup)",
        ranges(&allowed),
        std::fs::read_to_string("/sys/devices/system/cpu/online").map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
    ))
}

/// `[0, 1, 2, 5]` as "0-2,5".
pub fn ranges(v: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    out.join(",")
}

fn allowed_cores_of() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread; `set` is a writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: every index is < CPU_SETSIZE, the set's size.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Restricts the calling thread (and the threads it spawns afterwards) to
/// `cores`.
pub fn pin_current_thread_to_set(cores: &[usize]) -> Result<(), PinError> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(PinError { core, source: std::io::Error::from_raw_os_error(libc::EINVAL) });
        }
        // SAFETY: `core` < CPU_SETSIZE was checked just above.
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    // SAFETY: pid 0 = this thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(PinError { core: cores.first().copied().unwrap_or(0), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Keeps the control plane off the pollers' cores: pins the calling thread
/// (and so every helper thread it spawns later: log keeper, stats,
/// sampler) to the allowed cores no poller uses, or to `helper_core` when
/// given. Returns the set used; empty when every allowed core runs a poller
/// (then helpers share the pollers' cores and the caller should say so).
pub fn isolate_control_plane(poller_cores: &[usize], helper_core: Option<usize>) -> Result<Vec<usize>, PinError> {
    let set: Vec<usize> = match helper_core {
        Some(c) => vec![c],
        None => allowed_cores()
            .map_err(|source| PinError { core: 0, source })?
            .into_iter()
            .filter(|c| !poller_cores.contains(c))
            .collect(),
    };
    if !set.is_empty() {
        pin_current_thread_to_set(&set)?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_cores_counts_the_host_not_the_callers_mask() {
        let all = allowed_cores().unwrap();
        let host = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        let last: usize = host.trim().rsplit([',', '-']).next().unwrap().parse().unwrap();
        // a thread narrowed to one core (as a shell moved by `ironhoard-tune
        // --isolate` starts its children) still sees every online core
        let me = std::thread::spawn(move || {
            pin_current_thread(all[all.len() - 1]).unwrap();
            online_cores()
        });
        assert_eq!(me.join().unwrap(), last + 1, "online CPUs {host:?}");
    }
}
