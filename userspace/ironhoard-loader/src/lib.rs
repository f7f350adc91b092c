//! Loads IronHoard's XDP program (`xdp-prog/`, built for the BPF target by
//! this crate's build script and embedded here), attaches it to an
//! interface by bpf_link — so the kernel detaches it when the last holder
//! of the link's fd is gone, even on `kill -9` — fills its maps and reads
//! its per-CPU counters. The link's fd can be handed to a successor, which
//! swaps its own program in with BPF_LINK_UPDATE ([`Steering::take_over`]):
//! the interface is never without a program.
//!
//! Control plane only: nothing here runs per packet.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use aya::maps::{Array, PerCpuArray, XskMap};
use aya::programs::{TestRun, TestRunOptions, TestRunResult, Xdp};
use aya::{Ebpf, EbpfLoader};
use ironhoard_common::{XdpConfig, XdpCounter, MAP_CONFIG, MAP_COUNTERS, MAP_XSKS, XDP_PROGRAM};
use log::{info, warn};

/// The XDP program object, built by build.rs.
pub static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-prog"));

/// XDP action codes (linux/bpf.h).
pub mod action {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;
}

/// Errors of the loader; each names what it was doing and where.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("loading the XDP object: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("XDP program {XDP_PROGRAM}: {what}: {source}")]
    Program { what: String, source: aya::programs::ProgramError },
    #[error("XDP map {map}: {what}: {source}")]
    Map { map: &'static str, what: String, source: aya::maps::MapError },
    #[error("XDP map {0} missing from the object")]
    MissingMap(&'static str),
    #[error("attaching XDP to {iface}: native mode failed ({native}); skb mode failed ({skb})")]
    Attach { iface: String, native: String, skb: String },
    #[error("XDP on {iface}: {what}: {source}")]
    Link { iface: String, what: &'static str, source: std::io::Error },
}

/// How the program should be attached (`[interface] xdp_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantMode {
    /// Native first, generic (skb) if the driver has no native XDP.
    Auto,
    Native,
    Skb,
}

/// How it was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}

impl AttachedMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Skb => "skb",
        }
    }

    /// The mode named by [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<AttachedMode> {
        match s {
            "native" => Some(AttachedMode::Native),
            "skb" => Some(AttachedMode::Skb),
            _ => None,
        }
    }

    fn link_flags(self) -> u32 {
        match self {
            AttachedMode::Skb => 1 << 1,    // XDP_FLAGS_SKB_MODE
            AttachedMode::Native => 1 << 2, // XDP_FLAGS_DRV_MODE
        }
    }
}

/// The loaded program and its maps. Dropping it closes its link fd: the
/// program is detached unless another process holds the link (a successor
/// it was handed to, or systemd's fd store).
pub struct Steering {
    ebpf: Ebpf,
    attached: Option<(String, AttachedMode)>,
    link: Option<OwnedFd>,
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_XDP: u32 = 37;

/// bpf(2) with a zeroed 64-byte attribute block whose first words are `words`.
fn bpf_cmd(cmd: libc::c_long, words: &[u32]) -> std::io::Result<libc::c_long> {
    let mut attr = [0u32; 16];
    attr[..words.len()].copy_from_slice(words);
    // SAFETY: bpf(2) reads `size_of_val(&attr)` bytes of the attribute
    // block we own; the layouts (link_create: prog_fd, target_ifindex,
    // attach_type, flags; link_update: link_fd, new_prog_fd, flags,
    // old_prog_fd) are the kernel's, the rest zero.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), std::mem::size_of_val(&attr) as u32) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

impl Steering {
    /// Loads and verifies the program, and sets the move port it steers.
    pub fn load(port: u16) -> Result<Steering, LoaderError> {
        let mut ebpf = EbpfLoader::new().load(OBJ).map_err(LoaderError::Load)?;
        {
            let prog = program(&mut ebpf)?;
            prog.load().map_err(|source| LoaderError::Program { what: "verifier/load".into(), source })?;
        }
        let mut s = Steering { ebpf, attached: None, link: None };
        s.set_port(port)?;
        Ok(s)
    }

    /// Changes the steered port (0 steers nothing).
    pub fn set_port(&mut self, port: u16) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_CONFIG).ok_or(LoaderError::MissingMap(MAP_CONFIG))?;
        let mut cfg: Array<_, u32> =
            Array::try_from(m).map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: "open".into(), source })?;
        cfg.set(XdpConfig::MovePort as u32, port as u32, 0).map_err(|source| LoaderError::Map {
            map: MAP_CONFIG,
            what: format!("set move port {port}"),
            source,
        })
    }

    /// Sets the shield's limits (moves per second and burst, per source and
    /// per address; a rate of 0 turns that level off).
    pub fn set_shield(&mut self, source: (u32, u32), address: (u32, u32)) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_CONFIG).ok_or(LoaderError::MissingMap(MAP_CONFIG))?;
        let mut cfg: Array<_, u32> =
            Array::try_from(m).map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: "open".into(), source })?;
        for (slot, v) in [
            (XdpConfig::SourceRate, source.0),
            (XdpConfig::SourceBurst, source.1),
            (XdpConfig::AddressRate, address.0),
            (XdpConfig::AddressBurst, address.1),
        ] {
            cfg.set(slot as u32, v, 0)
                .map_err(|e| LoaderError::Map { map: MAP_CONFIG, what: format!("set shield {slot:?} = {v}"), source: e })?;
        }
        Ok(())
    }

    /// Makes the program steer acks (magic "IA", 48-byte payload) instead of
    /// moves: the generator uses this to receive acks on AF_XDP.
    pub fn expect_acks(&mut self) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_CONFIG).ok_or(LoaderError::MissingMap(MAP_CONFIG))?;
        let mut cfg: Array<_, u32> =
            Array::try_from(m).map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: "open".into(), source })?;
        let magic = u16::from_be_bytes(ironhoard_common::wire::ACK_MAGIC) as u32;
        cfg.set(XdpConfig::Magic as u32, magic, 0)
            .and_then(|_| cfg.set(XdpConfig::PayloadLen as u32, ironhoard_common::wire::ACK_LEN as u32, 0))
            .map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: "expect acks".into(), source })
    }

    /// Turns the handover on or off: while on, moves that pass the shield
    /// go to the kernel (the bridge sockets) instead of the AF_XDP sockets.
    pub fn set_handover(&mut self, on: bool) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_CONFIG).ok_or(LoaderError::MissingMap(MAP_CONFIG))?;
        let mut cfg: Array<_, u32> =
            Array::try_from(m).map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: "open".into(), source })?;
        cfg.set(XdpConfig::Handover as u32, on as u32, 0)
            .map_err(|source| LoaderError::Map { map: MAP_CONFIG, what: format!("set handover = {on}"), source })
    }

    fn prog_fd(&mut self) -> Result<RawFd, LoaderError> {
        let prog = program(&mut self.ebpf)?;
        let fd = prog.fd().map_err(|source| LoaderError::Program { what: "fd".into(), source })?;
        Ok(fd.as_fd().as_raw_fd())
    }

    /// One BPF_LINK_CREATE of this program on `iface` in `mode`.
    fn link_create(&mut self, iface: &str, mode: AttachedMode) -> Result<OwnedFd, String> {
        let prog = self.prog_fd().map_err(|e| e.to_string())?;
        let name = std::ffi::CString::new(iface).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated interface name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(format!("no interface {iface}: {}", std::io::Error::last_os_error()));
        }
        let fd = bpf_cmd(BPF_LINK_CREATE, &[prog as u32, ifindex, BPF_XDP, mode.link_flags()]).map_err(|e| format!("BPF_LINK_CREATE: {e}"))?;
        // SAFETY: a new link fd the kernel just gave us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The link's fd while attached (to hand to a successor or to store in
    /// systemd's fd store: the program stays attached while any copy lives).
    pub fn link_fd(&self) -> Option<BorrowedFd<'_>> {
        self.link.as_ref().map(|l| l.as_fd())
    }

    /// Takes over `link` (attached to `iface` in `mode` by a predecessor):
    /// this program replaces the link's, atomically (BPF_LINK_UPDATE), and
    /// this `Steering` holds the link from now on.
    pub fn take_over(&mut self, iface: &str, link: OwnedFd, mode: AttachedMode) -> Result<(), LoaderError> {
        let prog = self.prog_fd()?;
        let res = bpf_cmd(BPF_LINK_UPDATE, &[link.as_raw_fd() as u32, prog as u32, 0, 0]);
        // kept either way: if the swap failed, the predecessor's program
        // stays attached (bridging) while this process lives
        self.link = Some(link);
        res.map_err(|source| LoaderError::Link { iface: iface.into(), what: "BPF_LINK_UPDATE of the inherited link", source })?;
        info!("XDP program swapped in on {iface} ({} mode, inherited bpf_link)", mode.name());
        self.attached = Some((iface.into(), mode));
        Ok(())
    }

    /// Attaches to `iface` by bpf_link in the wanted mode; `Auto` tries
    /// native, then skb. Returns (and logs) the mode obtained.
    pub fn attach(&mut self, iface: &str, want: WantMode) -> Result<AttachedMode, LoaderError> {
        let mut try_mode = |mode: AttachedMode| -> Result<(), String> {
            let l = self.link_create(iface, mode)?;
            self.link = Some(l);
            Ok(())
        };
        let (native, skb);
        let got = match want {
            WantMode::Native | WantMode::Auto => match try_mode(AttachedMode::Native) {
                Ok(()) => AttachedMode::Native,
                Err(e) if want == WantMode::Auto => {
                    warn!("XDP native mode on {iface} failed ({e}); falling back to skb (generic) mode");
                    native = e;
                    match try_mode(AttachedMode::Skb) {
                        Ok(()) => AttachedMode::Skb,
                        Err(e) => {
                            skb = e;
                            return Err(LoaderError::Attach { iface: iface.into(), native, skb });
                        }
                    }
                }
                Err(e) => {
                    return Err(LoaderError::Attach { iface: iface.into(), native: e, skb: "not tried (xdp_mode = native)".into() })
                }
            },
            WantMode::Skb => match try_mode(AttachedMode::Skb) {
                Ok(()) => AttachedMode::Skb,
                Err(e) => {
                    return Err(LoaderError::Attach { iface: iface.into(), native: "not tried (xdp_mode = skb)".into(), skb: e })
                }
            },
        };
        info!("XDP program attached to {iface} in {} mode (bpf_link)", got.name());
        self.attached = Some((iface.into(), got));
        Ok(got)
    }

    /// The interface and mode, once attached.
    pub fn attached(&self) -> Option<(&str, AttachedMode)> {
        self.attached.as_ref().map(|(i, m)| (i.as_str(), *m))
    }

    /// Puts an AF_XDP socket in the XSKMAP slot of its rx queue.
    pub fn insert_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_XSKS).ok_or(LoaderError::MissingMap(MAP_XSKS))?;
        let mut x = XskMap::try_from(m).map_err(|source| LoaderError::Map { map: MAP_XSKS, what: "open".into(), source })?;
        x.set(queue, fd, 0).map_err(|source| LoaderError::Map { map: MAP_XSKS, what: format!("set queue {queue}"), source })
    }

    /// Empties an XSKMAP slot (the queue's datagrams then pass to the kernel).
    pub fn remove_socket(&mut self, queue: u32) -> Result<(), LoaderError> {
        let m = self.ebpf.map_mut(MAP_XSKS).ok_or(LoaderError::MissingMap(MAP_XSKS))?;
        let mut x = XskMap::try_from(m).map_err(|source| LoaderError::Map { map: MAP_XSKS, what: "open".into(), source })?;
        x.unset(queue).map_err(|source| LoaderError::Map { map: MAP_XSKS, what: format!("unset queue {queue}"), source })
    }

    /// The program's counters, summed over CPUs, indexed by [`XdpCounter`].
    pub fn counters(&self) -> Result<[u64; XdpCounter::COUNT as usize], LoaderError> {
        let m = self.ebpf.map(MAP_COUNTERS).ok_or(LoaderError::MissingMap(MAP_COUNTERS))?;
        let a: PerCpuArray<_, u64> =
            PerCpuArray::try_from(m).map_err(|source| LoaderError::Map { map: MAP_COUNTERS, what: "open".into(), source })?;
        let mut out = [0u64; XdpCounter::COUNT as usize];
        for c in XdpCounter::ALL {
            let v = a.get(&(c as u32), 0).map_err(|source| LoaderError::Map {
                map: MAP_COUNTERS,
                what: format!("read {}", c.name()),
                source,
            })?;
            out[c as usize] = v.iter().sum();
        }
        Ok(out)
    }

    /// Runs the program once on `frame` with BPF_PROG_TEST_RUN (no
    /// interface needed) and returns the XDP action.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, LoaderError> {
        self.test_run_repeat(frame, 1).map(|(action, _)| action)
    }

    /// Runs the program once on `frame` and returns the XDP action and the
    /// frame as the program left it (grown, shrunk or rewritten).
    pub fn test_run_frame(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), LoaderError> {
        let (r, mut out) = self.run_test(frame, 1)?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Runs the program `repeat` times on `frame` in one BPF_PROG_TEST_RUN
    /// (a loop in the kernel, on the calling thread's CPU) and returns the
    /// last action and the mean time per run.
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<(u32, std::time::Duration), LoaderError> {
        self.run_test(frame, repeat).map(|(r, _)| (r.return_value, r.duration))
    }

    /// One BPF_PROG_TEST_RUN: its result and the output buffer (room for
    /// the frame to grow by the headroom's 256 bytes).
    fn run_test(&self, frame: &[u8], repeat: u32) -> Result<(TestRunResult, Vec<u8>), LoaderError> {
        let prog: &Xdp = self
            .ebpf
            .program(XDP_PROGRAM)
            .ok_or_else(|| LoaderError::Program { what: "missing".into(), source: aya::programs::ProgramError::NotLoaded })?
            .try_into()
            .map_err(|source| LoaderError::Program { what: "not an XDP program".into(), source })?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = prog
            .test_run(TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat, ..Default::default() })
            .map_err(|source| LoaderError::Program { what: "BPF_PROG_TEST_RUN".into(), source })?;
        Ok((r, out))
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    ebpf.program_mut(XDP_PROGRAM)
        .ok_or_else(|| LoaderError::Program { what: "missing from object".into(), source: aya::programs::ProgramError::NotLoaded })?
        .try_into()
        .map_err(|source| LoaderError::Program { what: "not an XDP program".into(), source })
}
