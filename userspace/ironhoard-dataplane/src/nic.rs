//! What the NIC does to frames before XDP sees them, read (and changed
//! when configured) through the ethtool ioctl.

use std::io;
use std::os::fd::AsRawFd;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
/// Receive VLAN offload: the NIC strips the 802.1Q tag into metadata, so
/// XDP sees the frame untagged and an ack built from it leaves untagged.
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

fn ethtool(iface: &str, v: &mut EthtoolValue) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: v, _pad: [0; 16] };
    for (d, s) in req.name.iter_mut().zip(iface.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCETHTOOL with an ifreq whose data points to an
    // ethtool_value that outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req as *mut IfReq) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `iface` strips VLAN tags on receive (`None`: the driver does
/// not say).
pub fn rx_vlan_offload(iface: &str) -> Option<bool> {
    let mut v = EthtoolValue { cmd: ETHTOOL_GFLAGS, data: 0 };
    ethtool(iface, &mut v).ok()?;
    Some(v.data & ETH_FLAG_RXVLAN != 0)
}

/// Turns receive VLAN offload off (`ethtool -K IF rxvlan off`).
pub fn disable_rx_vlan_offload(iface: &str) -> io::Result<()> {
    let mut v = EthtoolValue { cmd: ETHTOOL_GFLAGS, data: 0 };
    ethtool(iface, &mut v)?;
    let mut s = EthtoolValue { cmd: ETHTOOL_SFLAGS, data: v.data & !ETH_FLAG_RXVLAN };
    ethtool(iface, &mut s)?;
    match rx_vlan_offload(iface) {
        Some(false) => Ok(()),
        _ => Err(io::Error::other("the driver kept it on")),
    }
}
