//! IronHoard's XDP program.
//!
//! For each frame, the shared classifier (`ironhoard_classify`, the
//! same code the pollers and the generator run) decides: not a datagram to
//! the move port — ARP, SSH, other ports, non-first fragments — passes to
//! the kernel untouched (the host must never be cut off its own network); a
//! datagram to the move port that the appliance does not serve (QinQ, IP
//! options or IPv6 extension headers, bad IP header or lengths, fragments,
//! martian sources) is dropped and counted by reason, never passed to a
//! closed kernel port that would answer with ICMP. A served datagram is
//! checked for what can never be a move (magic, version; dropped and
//! counted per CPU) and redirected to the AF_XDP socket bound on its rx
//! queue, or dropped (counted) if there is none.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// the shield's compare-exchange (see `atomic`); the BPF build is nightly
#![cfg_attr(target_arch = "bpf", allow(internal_features), feature(core_intrinsics))]

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, LruHashMap, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use ironhoard_common::wire::{ACK_LEN, MOVE_LEN, MOVE_MAGIC, VERSION};
use ironhoard_common::{ShieldBucket, ShieldKey, XdpConfig, XdpCounter, ARRIVAL_STAMP_LEN, MAX_QUEUES, SHIELD_ENTRIES};

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(XdpConfig::COUNT, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XdpCounter::COUNT, 0);
/// The shield's token buckets: per source (address or /64, and port) and
/// per address (port 0), least recently seen evicted.
#[map]
static SHIELD: LruHashMap<ShieldKey, ShieldBucket> = LruHashMap::with_max_entries(SHIELD_ENTRIES, 0);

const NS: u64 = 1_000_000_000;

#[inline(always)]
fn config(slot: XdpConfig) -> u64 {
    match CONFIG.get(slot as u32) {
        Some(v) => *v as u64,
        None => 0,
    }
}

/// Attempts of each compare-exchange loop in [`shield_take`] (a bound the
/// verifier can see; LLVM unrolls it). An exchange fails only because
/// another CPU's succeeded, so a CPU runs out only after that many updates
/// by others, each between its own load and exchange.
const CAS_TRIES: usize = 8;

/// The shield's atomic operations on a bucket's `u64` fields. Every access
/// to a live bucket goes through these (no plain read or write anywhere):
/// CPUs taking from the same bucket at once never race. On BPF both are a
/// 64-bit `BPF_CMPXCHG` on the map value (kernel 5.12+): the BPF target has
/// no `AtomicU64::compare_exchange` (Rust declares it without CAS), hence
/// the intrinsic, and LLVM's BPF backend selects no atomic load below
/// `-mcpu=v4` (the build's is `generic`), hence the load as an exchange of
/// 0 for 0, which leaves any value as it is. The host build (a workspace
/// member, never run) has the same operations from `AtomicU64`.
///
/// Safety, for each: `p` is valid and 8-byte aligned for the call, and
/// every concurrent access to `*p` is atomic.
#[cfg(target_arch = "bpf")]
mod atomic {
    use core::intrinsics::{atomic_cxchg, AtomicOrdering::Relaxed};

    /// Replaces `*p` by `new` if it is `old`; otherwise `Err(the value)`.
    #[inline(always)]
    pub unsafe fn cas(p: *mut u64, old: u64, new: u64) -> Result<(), u64> {
        // SAFETY: the caller's contract (valid, aligned, atomic access only).
        let (cur, ok) = unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(p, old, new) };
        if ok {
            Ok(())
        } else {
            Err(cur)
        }
    }

    /// Loads `*p`.
    #[inline(always)]
    pub unsafe fn load(p: *mut u64) -> u64 {
        // SAFETY: the caller's contract.
        match unsafe { cas(p, 0, 0) } {
            Ok(()) => 0,
            Err(v) => v,
        }
    }
}

#[cfg(not(target_arch = "bpf"))]
mod atomic {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[inline(always)]
    pub unsafe fn cas(p: *mut u64, old: u64, new: u64) -> Result<(), u64> {
        // SAFETY: the caller's contract is from_ptr's.
        unsafe { AtomicU64::from_ptr(p) }.compare_exchange(old, new, Relaxed, Relaxed).map(|_| ())
    }

    #[inline(always)]
    pub unsafe fn load(p: *mut u64) -> u64 {
        // SAFETY: the caller's contract is from_ptr's.
        unsafe { AtomicU64::from_ptr(p) }.load(Relaxed)
    }
}

/// Takes a token from the bucket of `key` (rate per second, burst); a new
/// source starts full. `false`: over its rate. Off when `rate` is 0.
///
/// Safe under the same source arriving on several CPUs at once (a flood
/// spread over rx queues): no update is lost, so the bucket never lets
/// through more than burst + rate x time.
/// - Refill: a CPU credits the time since `last_ns` only if its
///   compare-exchange moves `last_ns` to its `now`; each nanosecond is
///   credited once, by one CPU. A CPU that finds `last_ns` already at or
///   past its `now` credits nothing (its time is in another's credit), as
///   does one that loses `CAS_TRIES` exchanges (the others' are the credit).
/// - Take: the credit (clamped to the burst) and the token are applied to
///   `units` in one compare-exchange, retried on contention.
/// - A CPU that loses `CAS_TRIES` exchanges of `units` in a row drops the
///   move and its (then tiny) credit: under such contention the shield errs
///   on the strict side, never the lenient one.
#[inline(always)]
fn shield_take(key: &ShieldKey, rate: u64, burst: u64, now: u64) -> bool {
    if rate == 0 {
        return true;
    }
    let cap = (if burst == 0 { rate } else { burst }) * NS;
    let b = match SHIELD.get_ptr_mut(key) {
        Some(b) => b,
        None => {
            // A new source starts full, less this move's token. NOEXIST: of
            // CPUs that all found no bucket, one creates it and the others
            // take from it (an overwrite would hand out its burst again).
            let fresh = ShieldBucket { units: cap - NS, last_ns: now };
            if SHIELD.insert(key, fresh, BPF_NOEXIST as u64).is_ok() {
                return true;
            }
            match SHIELD.get_ptr_mut(key) {
                Some(b) => b,
                // neither inserted nor there (evicted at once): untracked, as
                // when the map cannot take it
                None => return true,
            }
        }
    };
    // SAFETY: `b` is a value the map handed out: memory of the map's
    // preallocated elements (an LRU map always preallocates), valid while
    // the program is loaded. Values are 8-byte aligned and both fields are
    // u64 (repr(C)), so both field pointers are aligned (the verifier
    // rejects a misaligned atomic access at load). Every access to a bucket
    // in the map is this function's atomics, as `atomic` requires; the
    // kernel writes one only when it makes it a new key's (insert, LRU
    // reuse), which at worst lets this take count on the new key's bucket.
    let (units_p, last_p) = unsafe { (&raw mut (*b).units, &raw mut (*b).last_ns) };
    // clamp before multiplying: more than a full refill is moot
    let full_after = cap / rate + 1;
    let mut add = 0;
    // SAFETY: as above, for this and every atomic call below.
    let mut last = unsafe { atomic::load(last_p) };
    for _ in 0..CAS_TRIES {
        if now <= last {
            break;
        }
        // SAFETY: as above.
        match unsafe { atomic::cas(last_p, last, now) } {
            Ok(()) => {
                let elapsed = now - last;
                add = (if elapsed < full_after { elapsed } else { full_after }) * rate;
                break;
            }
            Err(cur) => last = cur,
        }
    }
    // SAFETY: as above.
    let mut units = unsafe { atomic::load(units_p) };
    for _ in 0..CAS_TRIES {
        let mut have = units + add;
        if have > cap {
            have = cap;
        }
        let (new, taken) = if have < NS { (have, false) } else { (have - NS, true) };
        if new == units {
            // empty and nothing to credit: nothing to write
            return taken;
        }
        // SAFETY: as above.
        match unsafe { atomic::cas(units_p, units, new) } {
            Ok(()) => return taken,
            Err(cur) => units = cur,
        }
    }
    false
}

use aya_ebpf::cty::c_void;
use aya_ebpf::helpers::generated::{bpf_ktime_get_ns, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes};
use ironhoard_classify::net::ETH_HLEN;
use ironhoard_classify::{classify, Bytes, Class};

/// How many leading bytes of a frame the classifier sees: Ethernet, two
/// tags, IPv6 with extension headers, UDP and the move's first bytes fit;
/// a move-port header beyond it is not seen (the frame passes, and the
/// appliance's sink socket keeps the kernel from answering).
const HEAD: usize = 128;

/// Per-CPU scratch the frame's head is copied into: the shared classifier
/// then reads a map value at checked offsets, which the verifier follows
/// whatever LLVM does with the bounds checks (packet-pointer checks it
/// rewrites into forms the verifier cannot use).
#[map]
static SCRATCH: PerCpuArray<[u8; HEAD]> = PerCpuArray::with_max_entries(1, 0);

/// The frame's head (a copy) and its true length.
struct Head<'a> {
    buf: &'a [u8; HEAD],
    len: usize,
}

impl Bytes for Head<'_> {
    #[inline(always)]
    fn u8_at(&self, off: usize) -> Option<u8> {
        if off >= self.len {
            return None;
        }
        self.buf.get(off).copied()
    }
    #[inline(always)]
    fn be16_at(&self, off: usize) -> Option<u16> {
        if off + 2 > self.len || off + 2 > HEAD {
            return None;
        }
        Some(u16::from_be_bytes([self.buf[off], self.buf[off + 1]]))
    }
    #[inline(always)]
    fn be32_at(&self, off: usize) -> Option<u32> {
        if off + 4 > self.len || off + 4 > HEAD {
            return None;
        }
        Some(u32::from_be_bytes([self.buf[off], self.buf[off + 1], self.buf[off + 2], self.buf[off + 3]]))
    }
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.len
    }
}

#[inline(always)]
fn count(c: XdpCounter) {
    if let Some(p) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: a per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn drop_as(c: XdpCounter) -> u32 {
    count(c);
    XDP_DROP
}

/// The magic and payload length to expect (a move's unless configured).
#[inline(always)]
fn expected() -> ([u8; 2], usize) {
    let magic = match CONFIG.get(XdpConfig::Magic as u32) {
        Some(m) if *m != 0 => (*m as u16).to_be_bytes(),
        _ => MOVE_MAGIC,
    };
    let len = match CONFIG.get(XdpConfig::PayloadLen as u32) {
        Some(l) if *l as usize == ACK_LEN => ACK_LEN,
        _ => MOVE_LEN,
    };
    (magic, len)
}

#[xdp]
pub fn ironhoard_xdp(ctx: XdpContext) -> u32 {
    steer(&ctx).unwrap_or(XDP_PASS)
}

/// `None` means "could not read this far": the frame is passed.
#[inline(always)]
fn steer(ctx: &XdpContext) -> Option<u32> {
    let port = match CONFIG.get(XdpConfig::MovePort as u32) {
        Some(p) if *p != 0 => *p as u16,
        _ => return Some(XDP_PASS),
    };
    let (magic, plen) = expected();
    let len = ctx.data_end() - ctx.data();
    if len < ETH_HLEN {
        return Some(XDP_PASS);
    }
    let n = if len < HEAD { len } else { HEAD };
    let buf = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: `buf` is this CPU's scratch slot (HEAD bytes, nothing else
    // uses it while this program runs on this CPU); 14 <= n <= HEAD.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, buf as *mut c_void, n as u32) } != 0 {
        return Some(XDP_PASS);
    }
    // SAFETY: the slot lives as long as the map; filled above.
    let frame = Head { buf: unsafe { &*buf }, len };
    let at = match classify(&frame, port, plen) {
        Class::Pass => return Some(XDP_PASS),
        Class::Drop(r) => return Some(drop_as(XdpCounter::of_drop(r))),
        Class::Serve(at) => at,
    };
    let head = frame.be16_at(at.payload())?;
    if head != u16::from_be_bytes(magic) {
        return Some(drop_as(XdpCounter::BadMagic));
    }
    if frame.u8_at(at.payload() + 2)? != VERSION {
        return Some(drop_as(XdpCounter::BadVersion));
    }
    // The shield: per source (address or IPv6 /64, and port) and per
    // address (all its ports: players behind one carrier-grade NAT share an
    // address, so its limit is the higher one).
    let src_rate = config(XdpConfig::SourceRate);
    let addr_rate = config(XdpConfig::AddressRate);
    if src_rate != 0 || addr_rate != 0 {
        let mut key = ShieldKey { family: 4, _pad: 0, port: 0, addr: [0; 8] };
        if at.v6 {
            key.family = 6;
            let hi = frame.be32_at(at.l3 + 8)?;
            let lo = frame.be32_at(at.l3 + 12)?;
            key.addr[..4].copy_from_slice(&hi.to_be_bytes());
            key.addr[4..].copy_from_slice(&lo.to_be_bytes());
        } else {
            key.addr[..4].copy_from_slice(&frame.be32_at(at.l3 + 12)?.to_be_bytes());
        }
        // SAFETY: a helper with no arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        if !shield_take(&key, addr_rate, config(XdpConfig::AddressBurst), now) {
            return Some(drop_as(XdpCounter::AddressLimited));
        }
        key.port = frame.be16_at(at.l4)?;
        if !shield_take(&key, src_rate, config(XdpConfig::SourceBurst), now) {
            return Some(drop_as(XdpCounter::SourceLimited));
        }
    }
    // A handover: the successor's bridge sockets queue the moves while the
    // AF_XDP sockets change hands.
    if config(XdpConfig::Handover) != 0 {
        count(XdpCounter::Bridged);
        return Some(XDP_PASS);
    }
    if plen == ACK_LEN {
        stamp_arrival(ctx, len);
    }
    match XSKS.redirect(ctx.rx_queue_index(), XDP_DROP as u64) {
        Ok(action) => {
            count(XdpCounter::Redirected);
            Some(action)
        }
        Err(action) => {
            count(XdpCounter::NoSocket);
            Some(action)
        }
    }
}

/// The generator's program (it steers acks): the ack's arrival time
/// (CLOCK_MONOTONIC ns, big-endian) appended to its frame, past the IP
/// packet's end, where the parsers ignore trailing bytes. AF_XDP gives no
/// kernel receive timestamp; this is one, taken before the receiver thread
/// runs (ARRIVAL_STAMP_LEN in ironhoard-common). If the frame cannot grow,
/// it goes without one.
#[inline(always)]
fn stamp_arrival(ctx: &XdpContext, len: usize) {
    // SAFETY: helpers on this program's own context; adjust_tail grows the
    // frame by 8 bytes or fails and changes nothing; store_bytes writes the
    // 8 bytes of `now` at [len, len + 8), inside the grown frame.
    unsafe {
        if bpf_xdp_adjust_tail(ctx.ctx, ARRIVAL_STAMP_LEN as i32) != 0 {
            return;
        }
        let now = bpf_ktime_get_ns().to_be_bytes();
        bpf_xdp_store_bytes(ctx.ctx, len as u32, now.as_ptr() as *mut c_void, ARRIVAL_STAMP_LEN as u32);
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
