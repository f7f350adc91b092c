//! Hostile traffic in a lab, on the wire: crafted frames sent from the
//! client namespace through a packet socket, and every frame the appliance
//! sends back sniffed on the same interface. What must get no answer —
//! neither an ack nor an ICMP error — gets none, on every backend the hole
//! applies to; each frame carries a correctly signed fresh move, so the
//! only reason for silence is the frame itself. Each case first proves the
//! sniffer sees an answer to the same move in a clean frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use etherparse::{IpNumber, Ipv4Header, Ipv4Options, Ipv6Header, PacketBuilder};
use ironhoard_labtests::{Appliance, Client, Lab, Settings};

const PORT: u16 = 7777;

/// A raw socket on the client's interface, inside the lab namespace.
struct Wire {
    fd: OwnedFd,
    ifindex: i32,
    peer_mac: [u8; 6],
    host_mac: [u8; 6],
}

fn mac_of(text: &str) -> [u8; 6] {
    let v: Vec<u8> = text.trim().split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

impl Wire {
    fn open(lab: &Lab) -> Wire {
        let peer = lab.peer_if.clone();
        let (fd, ifindex) = lab.in_ns(move || {
            // SAFETY: plain socket(2); the fd is owned below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32) };
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = std::ffi::CString::new(peer).unwrap();
            // SAFETY: a NUL-terminated interface name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
            assert!(ifindex > 0);
            // SAFETY: sockaddr_ll is plain data; zeroed then filled.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex;
            // SAFETY: binding our own socket to a valid sockaddr_ll of the size passed.
            let rc = unsafe {
                libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
            };
            assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            (fd, ifindex)
        });
        let tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
        // SAFETY: a timeval of the size passed, on our socket.
        unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), 16)
        };
        let peer_mac = mac_of(&lab.exec(&["cat", &format!("/sys/class/net/{}/address", lab.peer_if)]));
        let host_mac = mac_of(&std::fs::read_to_string(format!("/sys/class/net/{}/address", lab.host_if)).unwrap());
        Wire { fd, ifindex, peer_mac, host_mac }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain data; zeroed then filled.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: sending `frame` (valid for its length) to a valid sockaddr_ll.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(n, frame.len() as isize, "send raw frame: {}", std::io::Error::last_os_error());
    }

    /// Every frame the appliance's side sent onto the wire within `wait`:
    /// IPv4 or IPv6, from its MAC (acks, ICMP errors; ARP and neighbour
    /// discovery are the kernel's business and not counted).
    fn replies(&self, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 2048];
        while t0.elapsed() < wait {
            // SAFETY: sockaddr_ll is plain data, filled by the kernel.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut flen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for the lengths passed.
            let n = unsafe {
                libc::recvfrom(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0, (&mut from as *mut libc::sockaddr_ll).cast(), &mut flen)
            };
            if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let f = &buf[..n as usize];
            let et = u16::from_be_bytes([f[12], f[13]]);
            let ip = et == 0x0800 || et == 0x86dd || et == 0x8100;
            // unicast destinations only: an ack or an ICMP error goes to its
            // sender; the kernel's own multicast (MLD, ND) is not an answer
            if f[6..12] == self.host_mac && f[0] & 1 == 0 && ip && !is_neighbour_discovery(f) {
                out.push(f.to_vec());
            }
        }
        out
    }

    /// Drains what is queued (earlier cases' ARP, ND).
    fn drain(&self) {
        let _ = self.replies(Duration::from_millis(100));
    }
}

fn is_neighbour_discovery(f: &[u8]) -> bool {
    // ICMPv6 types 133..=137 right after a 40-byte IPv6 header
    u16::from_be_bytes([f[12], f[13]]) == 0x86dd && f.len() > 54 && f[20] == 58 && (133..=137).contains(&f[54])
}

/// A fresh, correctly signed move for player `player`, seq `seq`.
fn signed(player: u32, seq: u64) -> Vec<u8> {
    let r = Client::mv(0, 900, player, seq);
    r.to_bytes(&Client::mac(0, 900, player)).to_vec()
}

/// One IPv4/UDP frame from the client to the appliance, built by etherparse,
/// then edited by `edit` (with the IPv4 header checksum recomputed unless
/// `keep_csum`).
fn v4(w: &Wire, lab: &Lab, src: Ipv4Addr, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, src.octets(), lab.host_v4.octets()).unwrap();
    h.options = Ipv4Options::try_from(opts).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(w.peer_mac, w.host_mac)
        .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        .udp(40001, PORT)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn v6(w: &Wire, lab: &Lab, src: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let h = Ipv6Header { hop_limit: 64, source: src.octets(), destination: lab.host_v6.octets(), ..Default::default() };
    let mut out = Vec::new();
    PacketBuilder::ethernet2(w.peer_mac, w.host_mac)
        .ip(etherparse::IpHeaders::Ipv6(h, Default::default()))
        .udp(40001, PORT)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn fix_v4_checksum(f: &mut [u8]) {
    let ihl = (f[14] & 0xf) as usize * 4;
    f[24] = 0;
    f[25] = 0;
    let mut acc: u32 = f[14..14 + ihl].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    f[24..26].copy_from_slice(&(!(acc as u16)).to_be_bytes());
}

/// IPv6 extension headers (each 8 bytes: next header, length 0, PadN)
/// inserted in front of UDP.
fn with_ext_headers(mut f: Vec<u8>, kinds: &[u8]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (i, _) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(17);
        ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    f[20] = kinds[0];
    let plen = u16::from_be_bytes([f[18], f[19]]) + ext.len() as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f.splice(54..54, ext);
    f
}

fn drops(a: &Appliance, reason: &str) -> u64 {
    a.stats()["dropped"][reason].as_u64().unwrap_or_else(|| panic!("no dropped.{reason} in stats"))
}

/// Sends the clean frame (must be answered) and then the hostile one
/// (must not be, and must count under `reason` when given).
fn expect_silence(lab: &Lab, a: &Appliance, w: &Wire, what: &str, clean: &[u8], hostile: &[u8], reason: Option<&str>) {
    w.drain();
    w.send(clean);
    let got = w.replies(Duration::from_millis(500));
    assert!(!got.is_empty(), "{what}: the clean frame was not answered (the sniffer would see nothing)");
    let before = reason.map(|r| drops(a, r));
    w.send(hostile);
    let got = w.replies(Duration::from_millis(500));
    assert!(got.is_empty(), "{what}: the appliance's side answered {} frame(s), first: {:02x?}", got.len(), &got[0][..got[0].len().min(64)]);
    if let (Some(r), Some(b)) = (reason, before) {
        let t0 = Instant::now();
        while drops(a, r) == b && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(drops(a, r), b + 1, "{what}: counted as dropped.{r}");
    }
    let _ = lab;
}

fn hostile_frames_get_no_answer(backend: &'static str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend, ..Default::default() });
    let w = Wire::open(&lab);
    let xdp = backend == "xdp";
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let peer4 = lab.peer_v4;
    let peer6 = lab.peer_v6;

    // martian sources (both backends): the clean move is answered, the same
    // player's next move from a source an ack must never go to is not
    let martians4 = [
        ("source 127.0.0.1", Ipv4Addr::new(127, 0, 0, 1)),
        ("source 0.0.0.0", Ipv4Addr::new(0, 0, 0, 0)),
        ("source 224.0.0.9", Ipv4Addr::new(224, 0, 0, 9)),
        ("source 255.255.255.255", Ipv4Addr::new(255, 255, 255, 255)),
    ];
    for (what, src) in martians4 {
        let (s1, s2) = (next(), next());
        let reason = xdp.then_some("martian_source");
        expect_silence(&lab, &a, &w, what, &v4(&w, &lab, peer4, &[], &signed(1, s1)), &v4(&w, &lab, src, &[], &signed(1, s2)), reason);
    }
    if xdp {
        // the XDP path swaps MACs: an ack would go to a group address (the
        // socket backend answers the IP source through the neighbour table)
        let (s1, s2) = (next(), next());
        let mut f = v4(&w, &lab, peer4, &[], &signed(1, s2));
        f[6] = 0x03; // group bit in the source MAC
        expect_silence(&lab, &a, &w, "multicast source MAC", &v4(&w, &lab, peer4, &[], &signed(1, s1)), &f, Some("martian_source"));
    }
    for (what, src) in [("ipv6 source ::", Ipv6Addr::UNSPECIFIED), ("ipv6 source ff02::1", "ff02::1".parse().unwrap())] {
        let (s1, s2) = (next(), next());
        expect_silence(&lab, &a, &w, what, &v6(&w, &lab, peer6, &signed(1, s1)), &v6(&w, &lab, src, &signed(1, s2)), Some("martian_source").filter(|_| xdp));
    }

    if xdp {
        // the frame itself: options, lengths, checksum, tags, fragments
        let cases: Vec<FrameCase<'_>> = vec![
            ("ipv4 record-route option", Box::new(|s| v4(&w, &lab, peer4, &[7, 7, 4, 0, 0, 0, 0, 1], &signed(2, s))), "ip_options"),
            (
                "ipv4 total length 600 in a short frame",
                Box::new(|s| {
                    let mut f = v4(&w, &lab, peer4, &[], &signed(2, s));
                    f[16..18].copy_from_slice(&600u16.to_be_bytes());
                    fix_v4_checksum(&mut f);
                    f
                }),
                "bad_ip_header",
            ),
            (
                "ipv4 bad header checksum",
                Box::new(|s| {
                    let mut f = v4(&w, &lab, peer4, &[], &signed(2, s));
                    f[24] ^= 0x5a;
                    f
                }),
                "bad_ip_header",
            ),
            (
                "ipv4 IHL 4",
                Box::new(|s| {
                    let mut f = v4(&w, &lab, peer4, &[], &signed(2, s));
                    f[14] = 0x44;
                    fix_v4_checksum(&mut f);
                    f
                }),
                "bad_ip_header",
            ),
            (
                "ipv4 first fragment",
                Box::new(|s| {
                    let mut f = v4(&w, &lab, peer4, &[], &signed(2, s));
                    f[20] = 0x20;
                    fix_v4_checksum(&mut f);
                    f
                }),
                "fragment",
            ),
            (
                "802.1ad + 802.1Q",
                Box::new(|s| {
                    let mut f = v4(&w, &lab, peer4, &[], &signed(2, s));
                    f.splice(12..12, [0x88u8, 0xa8, 0, 5, 0x81, 0x00, 0, 7]);
                    f
                }),
                "vlan_stack",
            ),
            ("ipv6 destination options", Box::new(|s| with_ext_headers(v6(&w, &lab, peer6, &signed(2, s)), &[60])), "ip_options"),
        ];
        for (what, make, reason) in &cases {
            let (s1, s2) = (next(), next());
            let clean = if what.starts_with("ipv6") { v6(&w, &lab, peer6, &signed(2, s1)) } else { v4(&w, &lab, peer4, &[], &signed(2, s1)) };
            expect_silence(&lab, &a, &w, what, &clean, &make(s2), Some(reason));
        }
        // more extension headers than the XDP program walks: it passes the
        // frame, the kernel finds the port, and the appliance's sink socket
        // keeps it from answering with ICMP port unreachable
        let (s1, s2) = (next(), next());
        let deep = with_ext_headers(v6(&w, &lab, peer6, &signed(2, s2)), &[0, 60, 60, 60]);
        expect_silence(&lab, &a, &w, "ipv6 behind 4 extension headers", &v6(&w, &lab, peer6, &signed(2, s1)), &deep, None);
    }
    drop(a);
    let _: IpAddr = peer4.into();
}

#[test]
fn xdp_hostile_frames_get_no_answer() {
    hostile_frames_get_no_answer("xdp");
}

#[test]
fn socket_hostile_frames_get_no_answer() {
    hostile_frames_get_no_answer("socket");
}

/// One captured move replayed many times (as from spoofed sources) is
/// answered at most at the player's rate: DUPLICATE answers take a reply
/// token, the rest are dropped unanswered.
fn replays_are_answered_at_the_players_rate(backend: &'static str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend, rate_per_second: 10, rate_burst: 20, ..Default::default() });
    let c = Client::new(&lab, false, PORT);
    let r = Client::mv(0, 901, 1, 1);
    assert_eq!(c.send(&r), Some(ironhoard_wire::Status::Accepted));
    let bytes = r.to_bytes(&Client::mac(0, 901, 1));
    let t0 = Instant::now();
    for _ in 0..400 {
        c.send_raw(&bytes);
    }
    c.sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut answers = 0u64;
    while c.recv().is_some() {
        answers += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    // burst 20 plus 10/s for the time the replays took
    let allowed = 20 + (10.0 * secs).ceil() as u64 + 1;
    assert!(answers >= 20 && answers <= allowed, "{backend}: {answers} answers to 400 replays in {secs:.2}s (allowed {allowed})");
    let over = a.stats()["dropped"]["replay_over_limit"].as_u64().unwrap();
    assert_eq!(over + answers, 400, "{backend}: every replay answered or counted (answers {answers}, replay_over_limit {over})");
}

#[test]
fn xdp_replays_are_answered_at_the_players_rate() {
    replays_are_answered_at_the_players_rate("xdp");
}

#[test]
fn socket_replays_are_answered_at_the_players_rate() {
    replays_are_answered_at_the_players_rate("socket");
}

/// The XDP shield in a lab: one source floods (a generator at 20 000/s
/// against a limit of 500/s per source) while another client keeps every
/// ack; the flood is contained in XDP and counted.
#[test]
fn xdp_shield_contains_a_flooding_source() {
    use std::process::{Command, Stdio};
    let lab = Lab::new(1);
    let a = Appliance::start_with(&lab, Settings { backend: "xdp", rate_per_second: 100_000, rate_burst: 100_000, ..Default::default() }, |c| {
        c.replace("rate_per_source = 0\n", "rate_per_source = 500\nburst_per_source = 500\n")
    });
    let mut flood = Command::new("ip");
    ironhoard_labtests::dies_with_test(&mut flood);
    let flood = flood
        .args(["netns", "exec", &lab.ns])
        .arg(ironhoard_labtests::bin("ironhoard-pktgen"))
        .args(["--target", &format!("{}:{PORT}", lab.host_v4), "--quiet", "--board", "64x32", "--rate", "20000", "--duration", "3"])
        .args(["--game-base", "700", "--players", "100", "--report", "/dev/null", "--secret-file"])
        .arg(a.dir.0.join("secret0.hex"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let c = Client::new(&lab, false, PORT);
    let mut answered = 0;
    for s in 1..=50 {
        if c.send(&Client::mv(0, 701, 1, s)) == Some(ironhoard_wire::Status::Accepted) {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut flood = flood;
    flood.wait().unwrap();
    assert_eq!(answered, 50, "the other client lost acks during the flood");
    let limited = drops(&a, "source_limited");
    let accepted = a.stats()["accepted"].as_u64().unwrap();
    assert!(limited > 30_000, "the flood was not contained: source_limited {limited}");
    assert!(accepted < 50 + 500 * 4 + 1000, "the flood got through: {accepted} accepted");
}

/// Receive VLAN offload (the NIC strips 802.1Q tags before XDP): warned
/// about at start by default, turned off with rx_vlan_offload = "off".
#[test]
fn xdp_rx_vlan_offload_is_detected_and_can_be_turned_off() {
    use ironhoard_dataplane::nic;
    let lab = Lab::new(1);
    // veth has receive VLAN offload on by default
    assert_eq!(nic::rx_vlan_offload(&lab.host_if), Some(true), "veth's rxvlan flag");
    let mut a = Appliance::start(&lab, Settings { backend: "xdp", ..Default::default() });
    assert!(a.log().contains("receive VLAN offload is on"), "{}", a.log());
    a.stop();
    assert_eq!(nic::rx_vlan_offload(&lab.host_if), Some(true), "warn leaves it alone");
    let a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, |c| {
        c.replace("backend = \"xdp\"", "backend = \"xdp\"\nrx_vlan_offload = \"off\"")
    });
    assert!(a.log().contains("receive VLAN offload turned off"), "{}", a.log());
    assert_eq!(nic::rx_vlan_offload(&lab.host_if), Some(false));
}

/// A queue with no AF_XDP socket: the appliance serves queue 0 of a 2-queue
/// interface; moves the NIC puts on queue 1 are dropped in XDP (counted
/// `no_socket`), never passed to the kernel's closed port: no answer of
/// any kind reaches the client.
#[test]
fn xdp_moves_on_an_unserved_queue_get_no_icmp() {
    let lab = Lab::new(2);
    let a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, |c| c.replace("queues = 1", "queues = [0]"));
    let w = Wire::open(&lab);
    w.drain();
    // many flows: the veth spreads them over both queues
    let mut seq = 0;
    for port in 41000..41064u16 {
        seq += 1;
        let mut f = v4(&w, &lab, lab.peer_v4, &[], &signed(3, seq));
        f[34..36].copy_from_slice(&port.to_be_bytes());
        // the UDP checksum covers the port: zero it (optional for IPv4)
        f[40] = 0;
        f[41] = 0;
        w.send(&f);
    }
    let got = w.replies(Duration::from_millis(800));
    let s = a.stats();
    let no_socket = s["xdp"]["no_socket"].as_u64().unwrap();
    let answered = got.len() as u64;
    assert!(no_socket > 0, "no flow landed on the unserved queue: the test proved nothing: {s}");
    assert_eq!(answered + no_socket, 64, "{answered} answered, {no_socket} dropped for no socket: {s}");
    assert!(
        got.iter().all(|f| f[23] == 17),
        "an ICMP (or other) answer left the appliance's side: {:02x?}",
        got.iter().find(|f| f[23] != 17).map(|f| &f[..f.len().min(48)])
    );
}

/// A full mailbox between pollers: with a mailbox of one frame
/// (IRONHOARD_MESH_DEPTH, a test knob only debug builds read: the lab tests
/// run target/debug) and bursts from many flows, moves
/// for the other poller's players overflow it; each is answered BUSY by the
/// poller it arrived on, none is left unanswered.
#[test]
fn xdp_full_mailbox_answers_busy_never_silence() {
    // SAFETY: set before the appliance is spawned; nothing else reads it.
    unsafe { std::env::set_var("IRONHOARD_MESH_DEPTH", "1") };
    let lab = Lab::new(2);
    let a = Appliance::start(&lab, Settings { backend: "xdp", queues: 2, rate_per_second: 100_000, rate_burst: 100_000, ..Default::default() });
    let clients: Vec<Client> = (0..32).map(|_| Client::new(&lab, false, PORT)).collect();
    let mut sent = 0u64;
    for (i, c) in clients.iter().enumerate() {
        for s in 1..=32u64 {
            let r = Client::mv(0, 950, i as u32 * 100 + (s as u32 % 8), s);
            c.send_raw(&r.to_bytes(&Client::mac(0, 950, r.player_id)));
            sent += 1;
        }
    }
    let (mut busy, mut answered) = (0u64, 0u64);
    for c in &clients {
        c.sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        while let Some(b) = c.recv() {
            answered += 1;
            if b[4] == ironhoard_wire::Status::Busy as u8 {
                busy += 1;
            }
        }
    }
    let s = a.stats();
    let dropped: u64 = s["queues"].as_array().unwrap().iter().map(|q| q["handoffs_dropped"].as_u64().unwrap()).sum();
    assert_eq!(answered, sent, "every move answered: {s}");
    assert!(dropped > 0, "the mailbox never overflowed: the test proved nothing: {s}");
    assert_eq!(busy, dropped, "each overflow answered BUSY: {s}");
}

/// A crafted-frame case: what it is, the frame for a sequence number, and
/// the drop reason it must be counted under.
type FrameCase<'a> = (&'a str, Box<dyn Fn(u64) -> Vec<u8> + 'a>, &'a str);
