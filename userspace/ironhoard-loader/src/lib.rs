//! Loads IronHoard's XDP program (`xdp-prog/`, built for the BPF target by
//! this crate's build script and embedded here), attaches it to an
//! interface by bpf_link — so the kernel detaches it when the process dies,
//! even on `kill -9` — fills its maps and reads its per-CPU counters.
//!
//! Control plane only: nothing here runs per packet.

use std::os::fd::RawFd;

use aya::maps::{Array, PerCpuArray, XskMap};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
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
}

/// The loaded program and its maps. Dropping it detaches the program.
pub struct Steering {
    ebpf: Ebpf,
    attached: Option<(String, AttachedMode)>,
}

impl Steering {
    /// Loads and verifies the program, and sets the move port it steers.
    pub fn load(port: u16) -> Result<Steering, LoaderError> {
        let mut ebpf = EbpfLoader::new().load(OBJ).map_err(LoaderError::Load)?;
        {
            let prog = program(&mut ebpf)?;
            prog.load().map_err(|source| LoaderError::Program { what: "verifier/load".into(), source })?;
        }
        let mut s = Steering { ebpf, attached: None };
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

    /// Attaches to `iface` by bpf_link in the wanted mode; `Auto` tries
    /// native, then skb. Returns (and logs) the mode obtained.
    pub fn attach(&mut self, iface: &str, want: WantMode) -> Result<AttachedMode, LoaderError> {
        let prog = program(&mut self.ebpf)?;
        let try_mode = |prog: &mut Xdp, mode: XdpMode| prog.attach(iface, mode).map(|_| ()).map_err(|e| format!("{e}"));
        let (native, skb);
        let got = match want {
            WantMode::Native | WantMode::Auto => match try_mode(prog, XdpMode::Driver) {
                Ok(()) => AttachedMode::Native,
                Err(e) if want == WantMode::Auto => {
                    warn!("XDP native mode on {iface} failed ({e}); falling back to skb (generic) mode");
                    native = e;
                    match try_mode(prog, XdpMode::Skb) {
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
            WantMode::Skb => match try_mode(prog, XdpMode::Skb) {
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

    /// Runs the program `repeat` times on `frame` in one BPF_PROG_TEST_RUN
    /// (a loop in the kernel, on the calling thread's CPU) and returns the
    /// last action and the mean time per run.
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<(u32, std::time::Duration), LoaderError> {
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
        Ok((r.return_value, r.duration))
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    ebpf.program_mut(XDP_PROGRAM)
        .ok_or_else(|| LoaderError::Program { what: "missing from object".into(), source: aya::programs::ProgramError::NotLoaded })?
        .try_into()
        .map_err(|source| LoaderError::Program { what: "not an XDP program".into(), source })
}
