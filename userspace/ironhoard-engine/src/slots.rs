//! [`Slots`]: the player table's fixed arrays, in anonymous memory the
//! kernel is asked to back with transparent 2 MiB pages.
//!
//! The table of the default 65 536 players a worker is ~47 MiB of states
//! and ~1.5 MiB of keys, and a move touches one line of each at a place
//! its player's hash picks. On 4 KiB pages that is a TLB miss, and a page
//! walk whose own lines are cold, per move: in the lab's profile the
//! poller stalled on the state prefetch for ~30 % of its loop's time. On
//! 2 MiB pages the whole table fits in the TLB.
//!
//! The memory is mapped (2 MiB aligned), advised `MADV_HUGEPAGE`, and only
//! then written, so the first touch of each 2 MiB range faults in a
//! hugepage when the kernel has one (`transparent_hugepage/enabled` of
//! `always` or `madvise`). When it has none, or THP is `never`, the same
//! memory is on 4 KiB pages and nothing else changes. Allocated once,
//! at start; never grown.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The page size the mapping is aligned to and advised for.
pub const HUGE: usize = 2 << 20;

/// A fixed-length array of `T` in its own anonymous mapping, advised for
/// transparent hugepages. Derefs to a slice.
pub struct Slots<T> {
    ptr: NonNull<T>,
    len: usize,
    /// The whole mapping (for munmap): start and length.
    map: (*mut libc::c_void, usize),
}

// SAFETY: Slots owns its elements as a Vec does; the raw pointers are only
// its own mapping, which no one else holds.
unsafe impl<T: Send> Send for Slots<T> {}
// SAFETY: as above; shared access is through `&[T]` only.
unsafe impl<T: Sync> Sync for Slots<T> {}

/// The mapping could not be made.
#[derive(Debug, thiserror::Error)]
#[error("mapping {bytes} bytes for the player table: {source}")]
pub struct MapError {
    pub bytes: usize,
    #[source]
    pub source: std::io::Error,
}

impl<T: Clone> Slots<T> {
    /// `len` clones of `fill`. Only a failing mmap(2) is an error; the
    /// hugepage advice is best effort (see [`Slots::advised`]).
    pub fn new(len: usize, fill: T) -> Result<Slots<T>, MapError> {
        assert!(align_of::<T>() <= HUGE, "Slots: alignment over 2 MiB");
        // room to start on a 2 MiB boundary: the kernel aligns nothing for us
        let map_len = len
            .checked_mul(size_of::<T>())
            .and_then(|b| b.max(1).div_ceil(HUGE).checked_mul(HUGE))
            .and_then(|b| b.checked_add(HUGE))
            .expect("Slots: size overflows");
        // SAFETY: a fresh private anonymous mapping; no address is given, so
        // nothing existing is replaced.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(MapError { bytes: map_len, source: std::io::Error::last_os_error() });
        }
        let start = (base as usize).next_multiple_of(HUGE);
        let usable = map_len - (start - base as usize);
        // SAFETY: [start, start + usable) lies inside the mapping just made.
        // The advice only says how to back pages not yet touched; failing
        // (THP not built in) leaves 4 KiB pages, which is correct too.
        unsafe { libc::madvise(start as *mut libc::c_void, usable, libc::MADV_HUGEPAGE) };
        let ptr = start as *mut T;
        for i in 0..len {
            // SAFETY: i < len, so the slot is inside the mapping (len ×
            // size_of::<T>() ≤ map_len − HUGE ≤ usable), aligned (start is 2 MiB aligned, T's alignment
            // divides its size), and not yet initialised: write, not assign.
            unsafe { ptr.add(i).write(fill.clone()) };
        }
        Ok(Slots { ptr: NonNull::new(ptr).expect("mmap returned a non-null address"), len, map: (base, map_len) })
    }
}

impl<T> Slots<T> {
    /// Whether the kernel took the hugepage advice for this mapping
    /// (`THPeligible: 1` in /proc/self/smaps): `None` when that cannot be
    /// read. Eligible means the kernel backs the mapping's 2 MiB ranges with
    /// hugepages when it has free ones; it does not say that it had them.
    pub fn advised(&self) -> Option<bool> {
        thp_eligible(self.ptr.as_ptr() as usize)
    }
}

impl<T> Deref for Slots<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements from `ptr`, owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for Slots<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        // SAFETY: the elements were initialised in new() and are dropped once,
        // here; then the mapping made in new() is unmapped, and nothing
        // points into it any more.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len));
            libc::munmap(self.map.0, self.map.1);
        }
    }
}

/// `THPeligible` of the mapping holding `addr`, from /proc/self/smaps.
fn thp_eligible(addr: usize) -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ').filter(|(r, _)| r.contains('-') && !r.ends_with(':')) {
            let (a, b) = range.split_once('-')?;
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            inside = (a..b).contains(&addr);
        } else if inside {
            if let Some(v) = line.strip_prefix("THPeligible:") {
                return Some(v.trim() == "1");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn thp_mode() -> String {
        let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        s.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(m, _)| m.to_string()).unwrap_or_default()
    }

    #[test]
    fn holds_len_clones_and_drops_each_once() {
        let fill = Rc::new(());
        let mut s = Slots::new(1000, Rc::clone(&fill)).unwrap();
        assert_eq!(s.len(), 1000);
        assert_eq!(Rc::strong_count(&fill), 1001);
        s[999] = Rc::new(());
        assert_eq!(Rc::strong_count(&fill), 1000);
        drop(s);
        assert_eq!(Rc::strong_count(&fill), 1);
    }

    #[test]
    fn starts_on_a_hugepage_boundary_even_when_empty() {
        let s = Slots::new(0, 0u64).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.as_ptr() as usize % HUGE, 0);
        let s = Slots::new(3, [7u8; 360]).unwrap();
        assert_eq!(s.as_ptr() as usize % HUGE, 0);
        assert!(s.iter().all(|v| v.iter().all(|&b| b == 7)));
    }

    #[test]
    fn the_mapping_is_advised_for_transparent_hugepages() {
        let s = Slots::new(5 * HUGE / 64, [1u8; 64]).unwrap();
        match thp_mode().as_str() {
            "always" | "madvise" => assert_eq!(s.advised(), Some(true), "MADV_HUGEPAGE not taken"),
            m => eprintln!("transparent hugepages are {m:?} here: not checked"),
        }
        // a plain heap allocation of the same size is not advised: the
        // check can tell the two apart (with THP at madvise)
        if thp_mode() == "madvise" {
            let v = vec![[1u8; 64]; 5 * HUGE / 64];
            assert_eq!(thp_eligible(v.as_ptr() as usize), Some(false));
        }
    }
}
