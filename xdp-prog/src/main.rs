//! IronHoard's XDP program.
//!
//! For each frame, the shared classifier (`ironhoard_common::frame`, the
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

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use ironhoard_common::wire::{ACK_LEN, MOVE_LEN, MOVE_MAGIC, VERSION};
use ironhoard_common::{XdpConfig, XdpCounter, MAX_QUEUES};

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(XdpConfig::COUNT, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XdpCounter::COUNT, 0);

use aya_ebpf::cty::c_void;
use aya_ebpf::helpers::generated::bpf_xdp_load_bytes;
use ironhoard_common::frame::{classify, Bytes, Class};
use ironhoard_common::net::ETH_HLEN;

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
