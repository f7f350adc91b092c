//! IronHoard's XDP program.
//!
//! For each frame: Ethernet, at most one 802.1Q tag, IPv4 (any IHL) or IPv6
//! (no extension headers), UDP. A datagram to the move port is checked for
//! what can never be a move (UDP length, magic, version; dropped and counted
//! per CPU) and redirected to the AF_XDP socket bound on its rx queue — or
//! passed to the kernel if none is. Everything else passes untouched: ARP,
//! SSH, other ports, non-first fragments, frames too short to parse. The host
//! must never be cut off its own network.
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

use ironhoard_common::net::{ETH_HLEN, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, IPV6_HLEN, UDP_HLEN, VLAN_HLEN};

/// Bounds-checked pointer into the frame (the verifier needs the check).
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *const T)
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, off: usize) -> Option<u8> {
    // SAFETY: ptr_at checked that the byte lies inside the frame.
    Some(unsafe { *ptr_at::<u8>(ctx, off)? })
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, off: usize) -> Option<u16> {
    // SAFETY: ptr_at checked that both bytes lie inside the frame; the read
    // is unaligned-safe.
    Some(u16::from_be(unsafe { core::ptr::read_unaligned(ptr_at::<u16>(ctx, off)?) }))
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

/// `None` means "could not parse this far": the frame is passed.
#[inline(always)]
fn steer(ctx: &XdpContext) -> Option<u32> {
    let port = match CONFIG.get(XdpConfig::MovePort as u32) {
        Some(p) if *p != 0 => *p as u16,
        _ => return Some(XDP_PASS),
    };
    let eth = ptr_at::<[u8; ETH_HLEN]>(ctx, 0)?;
    // SAFETY: ptr_at checked that the whole Ethernet header is in the frame.
    let (dst0, mut proto) = unsafe { ((*eth)[0], u16::from_be_bytes([(*eth)[12], (*eth)[13]])) };
    // Broadcast and multicast frames are the kernel's: an ack needs a
    // unicast destination to swap into its source.
    if dst0 & 1 != 0 {
        return Some(XDP_PASS);
    }
    let mut l3 = ETH_HLEN;
    if proto == ETH_P_8021Q {
        proto = read_be16(ctx, ETH_HLEN + 2)?;
        l3 += VLAN_HLEN;
    }
    let l4;
    let first_fragment;
    match proto {
        ETH_P_IP => {
            let vihl = read_u8(ctx, l3)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Some(XDP_PASS);
            }
            if read_u8(ctx, l3 + 9)? != IPPROTO_UDP {
                return Some(XDP_PASS);
            }
            let frag = read_be16(ctx, l3 + 6)?;
            if frag & 0x1fff != 0 {
                return Some(XDP_PASS); // non-first fragment: the kernel's
            }
            first_fragment = frag & 0x2000 != 0; // MF set, offset 0
            l4 = l3 + ihl;
        }
        ETH_P_IPV6 => {
            if read_u8(ctx, l3 + 6)? != IPPROTO_UDP {
                return Some(XDP_PASS); // extension headers, TCP, ICMPv6...
            }
            first_fragment = false;
            l4 = l3 + IPV6_HLEN;
        }
        _ => return Some(XDP_PASS),
    }
    if read_be16(ctx, l4 + 2)? != port {
        return Some(XDP_PASS);
    }
    // A datagram to the move port: from here on it is ours.
    let udp_len = read_be16(ctx, l4 + 4)? as usize;
    let payload = l4 + UDP_HLEN;
    let (magic, plen) = expected();
    // One bounds check for the whole datagram, and every read through that
    // same pointer (re-deriving it would lose the verifier's range).
    let head: [u8; 3] = if plen == ACK_LEN {
        match ptr_at::<[u8; ACK_LEN]>(ctx, payload) {
            // SAFETY: ptr_at checked that all ACK_LEN bytes are in the frame.
            Some(p) if !first_fragment && udp_len == UDP_HLEN + ACK_LEN => unsafe { [(*p)[0], (*p)[1], (*p)[2]] },
            _ => return Some(drop_as(XdpCounter::WrongLength)),
        }
    } else {
        match ptr_at::<[u8; MOVE_LEN]>(ctx, payload) {
            // SAFETY: ptr_at checked that all MOVE_LEN bytes are in the frame.
            Some(p) if !first_fragment && udp_len == UDP_HLEN + MOVE_LEN => unsafe { [(*p)[0], (*p)[1], (*p)[2]] },
            _ => return Some(drop_as(XdpCounter::WrongLength)),
        }
    };
    if head[0] != magic[0] || head[1] != magic[1] {
        return Some(drop_as(XdpCounter::BadMagic));
    }
    if head[2] != VERSION {
        return Some(drop_as(XdpCounter::BadVersion));
    }
    match XSKS.redirect(ctx.rx_queue_index(), XDP_PASS as u64) {
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
