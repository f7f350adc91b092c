//! The XDP program on crafted frames through BPF_PROG_TEST_RUN (aya's
//! `test_run`), no interface involved: each case's action and counter.
//! Needs root (loading BPF).

use ironhoard_common::XdpCounter;
use ironhoard_labtests::require_root;
use ironhoard_loader::{action, Steering};

const PORT: u16 = 7777;

/// A frame to build: IPv6 or IPv4 (with `opts` bytes of IPv4 options),
/// an optional 802.1Q tag, UDP to `dport`.
struct Spec {
    v6: bool,
    vlan: Option<u16>,
    opts: usize,
    dport: u16,
}

fn spec(v6: bool, vlan: Option<u16>, opts: usize, dport: u16) -> Spec {
    Spec { v6, vlan, opts, dport }
}

impl Spec {
    /// Where the UDP header starts.
    fn l4(&self) -> usize {
        14 + if self.vlan.is_some() { 4 } else { 0 } + if self.v6 { 40 } else { 20 + self.opts }
    }
}

fn move_payload() -> [u8; 64] {
    let mut p = [0u8; 64];
    p[0] = 0x49;
    p[1] = 0x48;
    p[2] = 1;
    p
}

/// The frame, built by etherparse (a third-party builder: the program under
/// test is not checked against frames made by the project's own code).
fn frame(s: &Spec, payload: &[u8]) -> Vec<u8> {
    use etherparse::{IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Header, PacketBuilder, VlanId};
    let (src_mac, dst_mac) = ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
    let ip = if s.v6 {
        let src = "2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let dst = "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        IpHeaders::Ipv6(Ipv6Header { hop_limit: 64, source: src, destination: dst, ..Default::default() }, Default::default())
    } else {
        let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, [198, 18, 0, 2], [198, 18, 0, 1]).unwrap();
        h.options = Ipv4Options::try_from(&vec![1u8; s.opts][..]).expect("options: a multiple of 4, at most 40 bytes"); // NOPs
        IpHeaders::Ipv4(h, Default::default())
    };
    let mut out = Vec::new();
    match s.vlan {
        None => PacketBuilder::ethernet2(src_mac, dst_mac).ip(ip).udp(40000, s.dport).write(&mut out, payload),
        Some(v) => PacketBuilder::ethernet2(src_mac, dst_mac)
            .single_vlan(VlanId::try_new(v).unwrap())
            .ip(ip)
            .udp(40000, s.dport)
            .write(&mut out, payload),
    }
    .unwrap();
    assert_eq!(out.len(), s.l4() + 8 + payload.len());
    out
}

struct Prog {
    st: Steering,
}

impl Prog {
    fn new() -> Prog {
        require_root();
        Prog { st: Steering::load(PORT).expect("load XDP program") }
    }
    /// Runs `f`; asserts the action and that exactly `counter` moved (or none).
    fn check(&self, what: &str, f: &[u8], want: u32, counter: Option<XdpCounter>) {
        let before = self.st.counters().unwrap();
        let got = self.st.test_run(f).unwrap();
        let after = self.st.counters().unwrap();
        assert_eq!(got, want, "{what}: action");
        for c in XdpCounter::ALL {
            let d = after[c as usize] - before[c as usize];
            let exp = u64::from(counter == Some(c));
            assert_eq!(d, exp, "{what}: counter {} moved by {d}", c.name());
        }
    }
}

#[test]
fn moves_are_steered_and_everything_else_passes() {
    let p = Prog::new();
    for v6 in [false, true] {
        for vlan in [None, Some(7)] {
            let what = format!("v6={v6} vlan={vlan:?}");
            let f = frame(&spec(v6, vlan, 0, PORT), &move_payload());
            // no AF_XDP socket on queue 0: dropped (the kernel has no socket
            // on the port either and would answer with ICMP)
            p.check(&what, &f, action::DROP, Some(XdpCounter::NoSocket));
            let mut m = move_payload();
            m[0] = b'X';
            p.check(&format!("{what} bad magic"), &frame(&spec(v6, vlan, 0, PORT), &m), action::DROP, Some(XdpCounter::BadMagic));
            let mut m = move_payload();
            m[1] = 0x41;
            p.check(&format!("{what} ack magic"), &frame(&spec(v6, vlan, 0, PORT), &m), action::DROP, Some(XdpCounter::BadMagic));
            let mut m = move_payload();
            m[2] = 2;
            p.check(&format!("{what} version"), &frame(&spec(v6, vlan, 0, PORT), &m), action::DROP, Some(XdpCounter::BadVersion));
            for len in [0usize, 3, 48, 63, 65, 200] {
                let mut pl = vec![0u8; len];
                pl[..len.min(3)].copy_from_slice(&move_payload()[..len.min(3)]);
                p.check(&format!("{what} payload {len}"), &frame(&spec(v6, vlan, 0, PORT), &pl), action::DROP, Some(XdpCounter::WrongLength));
            }
            // other port, untouched
            p.check(&format!("{what} other port"), &frame(&spec(v6, vlan, 0, 53), &move_payload()), action::PASS, None);
        }
        if !v6 {
            // IPv4 options are never echoed into an ack: dropped; passed to another port
            for opts in [4, 40] {
                for vlan in [None, Some(7)] {
                    let what = format!("ipv4 options {opts} vlan={vlan:?}");
                    p.check(&what, &frame(&spec(false, vlan, opts, PORT), &move_payload()), action::DROP, Some(XdpCounter::IpOptions));
                    p.check(&format!("{what} other port"), &frame(&spec(false, vlan, opts, 53), &move_payload()), action::PASS, None);
                }
            }
        }
    }
}

#[test]
fn truncation_at_every_byte() {
    let p = Prog::new();
    for (v6, vlan, opts) in [(false, None, 0), (false, Some(3), 8), (true, None, 0), (true, Some(3), 0)] {
        let sp = spec(v6, vlan, opts, PORT);
        let f = frame(&sp, &move_payload());
        let l4 = sp.l4();
        // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet
        // header (EINVAL), and no NIC hands XDP such a frame: start there.
        for cut in 14..f.len() {
            let what = format!("v6={v6} vlan={vlan:?} opts={opts} cut at {cut}/{}", f.len());
            if cut < l4 + 4 {
                // destination port not there: not ours to judge
                p.check(&what, &f[..cut], action::PASS, None);
            } else if opts > 0 {
                p.check(&what, &f[..cut], action::DROP, Some(XdpCounter::IpOptions));
            } else {
                // to the move port, but the IP length runs past the frame
                p.check(&what, &f[..cut], action::DROP, Some(XdpCounter::BadIpHeader));
            }
        }
    }
}

/// Recomputes the IPv4 header checksum of `f` (header at 14, no options).
fn fix_v4_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut acc: u32 = f[14..34].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    f[24..26].copy_from_slice(&(!(acc as u16)).to_be_bytes());
}

#[test]
fn move_port_datagrams_it_will_not_serve_are_dropped_by_reason_the_rest_passes() {
    let p = Prog::new();
    let base = frame(&spec(false, None, 0, PORT), &move_payload());
    // non-first fragment (offset 8): no UDP header, the kernel's
    let mut f = base.clone();
    f[14 + 6] = 0x00;
    f[14 + 7] = 0x01;
    fix_v4_checksum(&mut f);
    p.check("non-first fragment", &f, action::PASS, None);
    // a first fragment (MF set) to the move port
    let mut f = base.clone();
    f[14 + 6] = 0x20;
    fix_v4_checksum(&mut f);
    p.check("first fragment", &f, action::DROP, Some(XdpCounter::Fragment));
    // TCP
    let mut f = base.clone();
    f[14 + 9] = 6;
    p.check("tcp", &f, action::PASS, None);
    // ARP request
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1]);
    p.check("arp", &arp, action::PASS, None);
    // IPv6 with a destination-options header in front of UDP
    let v6 = frame(&spec(true, None, 0, PORT), &move_payload());
    let ext = |dport: u16| {
        let mut f = frame(&spec(true, None, 0, dport), &move_payload());
        f[14 + 6] = 60;
        let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f.splice(54..54, [17u8, 0, 1, 4, 0, 0, 0, 0]); // next = UDP, PadN
        f
    };
    p.check("ipv6 extension header", &ext(PORT), action::DROP, Some(XdpCounter::IpOptions));
    p.check("ipv6 extension header, other port", &ext(53), action::PASS, None);
    let mut f = v6.clone();
    f[14] = 0x40;
    p.check("ipv6 ethertype, version 4", &f, action::DROP, Some(XdpCounter::BadIpHeader));
    let mut f = v6.clone();
    f[22..38].copy_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.check("ipv6 multicast source", &f, action::DROP, Some(XdpCounter::MartianSource));
    // IPv4 header claiming IHL < 5; a bad checksum; a total length past the frame
    let mut f = base.clone();
    f[14] = 0x44;
    fix_v4_checksum(&mut f);
    p.check("bad ihl", &f, action::DROP, Some(XdpCounter::BadIpHeader));
    let mut f = base.clone();
    f[24] ^= 0x55;
    p.check("bad ipv4 checksum", &f, action::DROP, Some(XdpCounter::BadIpHeader));
    let mut f = base.clone();
    f[16..18].copy_from_slice(&600u16.to_be_bytes());
    fix_v4_checksum(&mut f);
    p.check("total length 600 in a 106-byte frame", &f, action::DROP, Some(XdpCounter::BadIpHeader));
    // martian sources: loopback, multicast, broadcast, 0/8; a multicast source MAC
    for src in [[127, 0, 0, 1], [224, 0, 0, 5], [255, 255, 255, 255], [0, 0, 0, 0]] {
        let mut f = base.clone();
        f[26..30].copy_from_slice(&src);
        fix_v4_checksum(&mut f);
        p.check(&format!("source {src:?}"), &f, action::DROP, Some(XdpCounter::MartianSource));
    }
    let mut f = base.clone();
    f[6] = 0x01;
    p.check("multicast source mac", &f, action::DROP, Some(XdpCounter::MartianSource));
    // QinQ to the move port: dropped; to another port: passed
    let qinq = |dport: u16| {
        let mut f = frame(&spec(false, None, 0, dport), &move_payload());
        f.splice(12..12, [0x88u8, 0xa8, 0, 5, 0x81, 0x00, 0, 7]);
        f
    };
    p.check("802.1ad + 802.1Q", &qinq(PORT), action::DROP, Some(XdpCounter::VlanStack));
    p.check("802.1ad + 802.1Q, other port", &qinq(53), action::PASS, None);
    // a lone 802.1ad ethertype over an IP header: unknown inner type
    let mut f = base.clone();
    f[12] = 0x88;
    f[13] = 0xa8;
    p.check("802.1ad over nothing", &f, action::PASS, None);
    // broadcast / multicast destination MAC
    let mut f = base.clone();
    f[0..6].copy_from_slice(&[0xff; 6]);
    p.check("broadcast", &f, action::PASS, None);
    let mut f = base.clone();
    f[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    p.check("multicast", &f, action::PASS, None);
    // the shortest frame the kernel will run: an Ethernet header alone
    p.check("14 bytes", &base[..14], action::PASS, None);
}

#[test]
fn redirect_to_a_bound_socket_and_port_zero_disables() {
    let mut p = Prog::new();
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "AF_XDP socket: {}", std::io::Error::last_os_error());
    p.st.insert_socket(0, fd).expect("socket in XSKMAP slot 0");
    let f = frame(&spec(false, None, 0, PORT), &move_payload());
    p.check("socket in the slot", &f, action::REDIRECT, Some(XdpCounter::Redirected));
    p.st.remove_socket(0).unwrap();
    p.check("slot emptied", &f, action::DROP, Some(XdpCounter::NoSocket));
    p.st.set_port(0).unwrap();
    p.check("port 0 steers nothing", &f, action::PASS, None);
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
}

#[test]
fn ack_mode_steers_acks_and_drops_moves() {
    let mut p = Prog::new();
    p.st.expect_acks().unwrap();
    let mut ack = [0u8; 48];
    ack[0] = 0x49;
    ack[1] = 0x41;
    ack[2] = 1;
    p.check("ack", &frame(&spec(false, None, 0, PORT), &ack), action::DROP, Some(XdpCounter::NoSocket));
    p.check("ack v6", &frame(&spec(true, Some(2), 0, PORT), &ack), action::DROP, Some(XdpCounter::NoSocket));
    p.check("move in ack mode", &frame(&spec(false, None, 0, PORT), &move_payload()), action::DROP, Some(XdpCounter::WrongLength));
    let mut m = [0u8; 48];
    m[..3].copy_from_slice(&move_payload()[..3]);
    p.check("48 bytes with a move's magic", &frame(&spec(false, None, 0, PORT), &m), action::DROP, Some(XdpCounter::BadMagic));
}

/// In ack mode (the generator's) an ack leaves the program with its
/// arrival time appended: 8 bytes past the IP packet, CLOCK_MONOTONIC ns
/// between just before and just after the run. A move steered to the
/// appliance (move mode) leaves it unchanged.
#[test]
fn acks_steered_to_the_generator_carry_their_arrival_time() {
    let mono = ironhoard_dataplane::monotonic_ns;
    let mut p = Prog::new();
    p.st.expect_acks().unwrap();
    let mut ack = [0u8; 48];
    ack[..3].copy_from_slice(&[0x49, 0x41, 1]);
    for v6 in [false, true] {
        let f = frame(&spec(v6, None, 0, PORT), &ack);
        let t0 = mono();
        let (action, out) = p.st.test_run_frame(&f).unwrap();
        let t1 = mono();
        assert_eq!(action, action::DROP, "no socket in the test: dropped after the stamp");
        assert_eq!(out.len(), f.len() + ironhoard_common::ARRIVAL_STAMP_LEN, "v6 {v6}: the ack grew by the stamp");
        assert_eq!(&out[..f.len()], &f[..], "v6 {v6}: the ack itself unchanged");
        let stamp = u64::from_be_bytes(out[f.len()..].try_into().unwrap());
        assert!(t0 <= stamp && stamp <= t1, "v6 {v6}: stamp {stamp} not within [{t0}, {t1}]");
    }
    let q = Prog::new();
    let f = frame(&spec(false, None, 0, PORT), &move_payload());
    let (_, out) = q.st.test_run_frame(&f).unwrap();
    assert_eq!(out, f, "a move is steered as it came");
}

/// The shield: a source over its rate is dropped in XDP (counted), another
/// source (another port) is not; the per-address level counts every port
/// of an address together.
#[test]
fn the_shield_contains_one_source_and_spares_the_others() {
    let mut p = Prog::new();
    let with_port = |sport: u16| {
        let mut f = frame(&spec(false, None, 0, PORT), &move_payload());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f
    };
    p.st.set_shield((5, 5), (0, 0)).unwrap();
    for i in 0..5 {
        p.check(&format!("source A move {i}"), &with_port(40000), action::DROP, Some(XdpCounter::NoSocket));
    }
    p.check("source A over its burst", &with_port(40000), action::DROP, Some(XdpCounter::SourceLimited));
    p.check("source B (another port)", &with_port(40001), action::DROP, Some(XdpCounter::NoSocket));
    // per address: every port counts
    p.st.set_shield((0, 0), (3, 3)).unwrap();
    let v6 = frame(&spec(true, None, 0, PORT), &move_payload());
    p.check("v6 address, 1", &v6, action::DROP, Some(XdpCounter::NoSocket));
    p.check("v6 address, 2", &v6, action::DROP, Some(XdpCounter::NoSocket));
    p.check("v6 address, 3", &v6, action::DROP, Some(XdpCounter::NoSocket));
    p.check("v6 address over its burst", &v6, action::DROP, Some(XdpCounter::AddressLimited));
    // off again: nothing limited
    p.st.set_shield((0, 0), (0, 0)).unwrap();
    p.check("shield off", &with_port(40000), action::DROP, Some(XdpCounter::NoSocket));
}

/// Pins the calling thread to `cpu` (BPF_PROG_TEST_RUN runs the program on
/// the calling thread's CPU).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set, CPU_SET writes inside the
    // set it is given, and sched_setaffinity reads that many bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0, "pin to CPU {cpu}: {}", std::io::Error::last_os_error());
}

/// Timings of [`on_two_cpus`].
struct Run {
    /// From the first CPU's call to the last one's return: every run of
    /// the program (every `now` the shield saw) is inside it.
    active: std::time::Duration,
    /// While both CPUs were in their test runs.
    overlap: std::time::Duration,
    /// Each CPU's time in its loop (the kernel's mean per run x runs).
    spans: [std::time::Duration; 2],
}

impl Run {
    fn show(&self) -> String {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        format!(
            "{:.1} ms from first call to last return, {:.1}/{:.1} ms in the program per CPU, {:.1} ms both at once",
            ms(self.active),
            ms(self.spans[0]),
            ms(self.spans[1]),
            ms(self.overlap)
        )
    }
}

/// Runs `frames[i]` `repeat` times on CPU `i` (one BPF_PROG_TEST_RUN each,
/// a loop in the kernel), both CPUs at once, as two rx queues would.
fn on_two_cpus(p: &Prog, frames: [&[u8]; 2], repeat: u32) -> Run {
    use std::sync::Barrier;
    use std::time::Instant;
    let go = Barrier::new(3);
    std::thread::scope(|s| {
        let runs: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(cpu, f)| {
                let (go, st) = (&go, &p.st);
                s.spawn(move || {
                    pin(cpu);
                    go.wait();
                    let start = Instant::now();
                    let per_run = st.test_run_repeat(f, repeat).expect("BPF_PROG_TEST_RUN").1;
                    (start, Instant::now(), per_run * repeat)
                })
            })
            .collect();
        go.wait();
        let r: Vec<_> = runs.into_iter().map(|h| h.join().expect("test_run thread")).collect();
        let overlap = r[0].1.min(r[1].1).saturating_duration_since(r[0].0.max(r[1].0));
        let active = r[0].1.max(r[1].1) - r[0].0.min(r[1].0);
        Run { active, overlap, spans: [r[0].2, r[1].2] }
    })
}

/// What got past the shield (dropped for want of a socket, none bound) and
/// what the shield dropped, since `before`.
fn shield_outcome(p: &Prog, before: &[u64]) -> (u64, u64, u64) {
    let after = p.st.counters().unwrap();
    let d = |c: XdpCounter| after[c as usize] - before[c as usize];
    (d(XdpCounter::NoSocket), d(XdpCounter::SourceLimited), d(XdpCounter::AddressLimited))
}

/// The shield under one source's flood arriving on two CPUs (two rx queues)
/// at once: its buckets are shared by every CPU, and no update may be lost
/// to the other CPU's, so what passes never exceeds burst + rate x time
/// (a lost update is a token handed out twice).
#[test]
fn the_shield_holds_its_limit_with_one_source_on_two_cpus_at_once() {
    let mut p = Prog::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs (it has {cpus})");
    let with_port = |sport: u16| {
        let mut f = frame(&spec(false, None, 0, PORT), &move_payload());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f
    };

    // 1. Per source (same address and port on both CPUs): the burst, drained
    // from both sides at once (a refill of 1/s adds a token or two).
    let (rate, burst, repeat) = (1u64, 500_000u64, 500_000u32);
    p.st.set_shield((rate as u32, burst as u32), (0, 0)).unwrap();
    let f = with_port(40000);
    let before = p.st.counters().unwrap();
    let run = on_two_cpus(&p, [&f, &f], repeat);
    let (passed, src_limited, addr_limited) = shield_outcome(&p, &before);
    let bound = burst + (rate as f64 * run.active.as_secs_f64()).ceil() as u64;
    eprintln!(
        "per source, burst {burst}, {rate}/s, {repeat} runs on each of 2 CPUs: passed {passed} (bound {bound}), limited {src_limited}; {}",
        run.show()
    );
    assert_eq!(passed + src_limited, 2 * repeat as u64, "every run passed or was limited by source");
    assert_eq!(addr_limited, 0);
    assert!(!run.overlap.is_zero(), "the two CPUs never ran at once: nothing was tested");
    assert!(passed <= bound, "per source: {passed} passed, over burst + rate x time = {bound} (lost updates)");
    assert!(passed >= burst, "per source: {passed} passed, fewer than the burst {burst} (tokens lost)");

    // 2. Per address (two ports of one address, one per CPU, as RSS would
    // spread them over queues): the steady rate, for a few hundred ms.
    let (rate, burst, repeat) = (100_000u64, 100u64, 2_000_000u32);
    p.st.set_shield((0, 0), (rate as u32, burst as u32)).unwrap();
    let (a, b) = (with_port(40002), with_port(40003));
    let before = p.st.counters().unwrap();
    let run = on_two_cpus(&p, [&a, &b], repeat);
    let (passed, src_limited, addr_limited) = shield_outcome(&p, &before);
    let bound = burst + (rate as f64 * run.active.as_secs_f64()).ceil() as u64;
    // the refill runs while either CPU is in its loop: at least the longer
    // loop's time; half of it is a floor no scheduling hiccup should reach
    let floor = (rate as f64 * run.spans[0].max(run.spans[1]).as_secs_f64() / 2.0) as u64;
    eprintln!(
        "per address, burst {burst}, {rate}/s, {repeat} runs on each of 2 CPUs: passed {passed} (bound {bound}, floor {floor}), \
         limited {addr_limited}; {}",
        run.show()
    );
    assert_eq!(passed + addr_limited, 2 * repeat as u64, "every run passed or was limited by address");
    assert_eq!(src_limited, 0);
    assert!(!run.overlap.is_zero(), "the two CPUs never ran at once: nothing was tested");
    assert!(passed <= bound, "per address: {passed} passed, over burst + rate x time = {bound} (lost updates)");
    assert!(passed >= floor, "per address: {passed} passed, under half the rate over the run ({floor})");
}

/// During a handover the program passes moves to the kernel (the bridge
/// sockets), counted as `bridged`; junk is still dropped by reason; off
/// again, moves go back to the (absent) AF_XDP socket.
#[test]
fn during_a_handover_moves_are_bridged_to_the_kernel() {
    let mut p = Prog::new();
    p.st.set_handover(true).unwrap();
    for v6 in [false, true] {
        let what = format!("handover v6={v6}");
        p.check(&what, &frame(&spec(v6, None, 0, PORT), &move_payload()), action::PASS, Some(XdpCounter::Bridged));
        let mut m = move_payload();
        m[0] = b'X';
        p.check(&format!("{what} bad magic"), &frame(&spec(v6, None, 0, PORT), &m), action::DROP, Some(XdpCounter::BadMagic));
    }
    p.st.set_handover(false).unwrap();
    p.check("after the handover", &frame(&spec(false, None, 0, PORT), &move_payload()), action::DROP, Some(XdpCounter::NoSocket));
}
