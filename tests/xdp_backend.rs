//! The XDP/AF_XDP backend in a veth/netns lab (needs root): the protocol
//! scenarios shared with the socket backend, plus attach/detach, pass-through
//! of everything that is not a move, kill -9, and skb mode.

use std::time::{Duration, Instant};

use ironhoard_labtests::scenarios::{self, expect_status, Expect};
use ironhoard_labtests::{sh, Appliance, Client, Lab, Settings};
use ironhoard_wire::Status;

fn xdp_attached(iface: &str) -> Option<String> {
    let out = sh(&["ip", "-d", "link", "show", "dev", iface]);
    ["xdpgeneric", "xdpdrv", "xdpoffload", "xdp "].iter().find(|m| out.contains(*m)).map(|m| m.trim().to_string())
}

fn xdp_settings(extra: &str) -> Settings {
    Settings { backend: "xdp", extra_interface: extra.to_string(), ..Default::default() }
}

#[test]
fn ipv4_every_status_and_silent_drop() {
    scenarios::every_status_and_drop("xdp", false);
}

#[test]
fn ipv6_every_status_and_silent_drop() {
    scenarios::every_status_and_drop("xdp", true);
}

#[test]
fn attached_in_native_mode_and_detached_on_sigterm() {
    let lab = Lab::new(1);
    let mut a = Appliance::start(&lab, xdp_settings(""));
    let m = xdp_attached(&lab.host_if);
    assert!(matches!(m.as_deref(), Some("xdp") | Some("xdpdrv")), "native XDP on veth, got {m:?}");
    let v = a.command("show info");
    let info = v.to_string();
    assert_eq!(v["xdp"]["xdp_mode"], "native", "{info}");
    assert_eq!(v["xdp"]["zero_copy"], false, "veth is copy mode: {info}");
    let (st, took) = a.stop();
    assert!(st.success(), "{}", a.log());
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert_eq!(xdp_attached(&lab.host_if), None, "detached after exit");
}

#[test]
fn kill_9_leaves_nothing_attached() {
    let lab = Lab::new(1);
    let mut a = Appliance::start(&lab, xdp_settings(""));
    assert!(xdp_attached(&lab.host_if).is_some());
    let mut c = a.child.take().unwrap();
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    let t0 = Instant::now();
    while xdp_attached(&lab.host_if).is_some() {
        assert!(t0.elapsed() < Duration::from_secs(5), "XDP still attached after kill -9");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn skb_mode_when_asked() {
    let lab = Lab::new(1);
    let s = Settings { backend: "xdp", ..Default::default() };
    // xdp_mode is set through the generated config's [interface] table
    let a = Appliance::start_with(&lab, s, |cfg| cfg.replace("xdp_mode = \"auto\"", "xdp_mode = \"skb\""));
    assert_eq!(xdp_attached(&lab.host_if).as_deref(), Some("xdpgeneric"));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 1), Status::Accepted, "skb mode serves");
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 1), Status::Duplicate, "skb mode serves");
    scenarios::assert_counters(&a, &e);
}

#[test]
fn other_traffic_passes_to_the_kernel() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp_settings(""));
    // ICMP (and so ARP/ND) still works both ways
    lab.exec(&["ping", "-c", "2", "-W", "1", &lab.host_v4.to_string()]);
    lab.exec(&["ping", "-6", "-c", "2", "-W", "1", &lab.host_v6.to_string()]);
    // UDP to another port reaches a kernel socket on the host
    let host = std::net::UdpSocket::bind((lab.host_v4, 9999)).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let c = lab.client(false);
    c.send_to(b"not a move", (lab.host_v4, 9999)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = host.recv_from(&mut buf).expect("UDP to another port passes");
    assert_eq!(&buf[..n], b"not a move");
    // TCP to a host listener
    let l = std::net::TcpListener::bind((lab.host_v4, 9998)).unwrap();
    let target = std::net::SocketAddr::from((lab.host_v4, 9998));
    let t = lab.in_ns(move || std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).is_ok());
    assert!(t, "TCP connect passes");
    drop(l);
    // and moves are still served
    let cl = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    expect_status(&cl, &mut e, &Client::mv(0, 1, 1, 1), Status::Accepted, "moves served");
    let s = a.stats();
    assert_eq!(s["xdp"]["redirected"].as_u64(), Some(1), "only the move was redirected: {s}");
}

#[test]
fn two_queues_a_replay_from_another_port_lands_on_the_owner_and_is_a_duplicate() {
    // veth spreads the client's flows over both rx queues by flow hash;
    // each player is owned by one poller, which sees it whatever the queue.
    scenarios::replay_from_other_port_is_duplicate("xdp", 2);
}

/// Restores vm.nr_hugepages on drop (SPEC §3: leave it as found).
struct HugepagesGuard(String, #[allow(dead_code)] ironhoard_labtests::Registered);
impl Drop for HugepagesGuard {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", &self.0);
    }
}

#[test]
fn umem_on_hugepages_when_reserved() {
    let before = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap().trim().to_string();
    let _g = HugepagesGuard(before.clone(), ironhoard_labtests::register(ironhoard_labtests::Undo::Hugepages, &[&before]));
    let want: u64 = before.parse::<u64>().unwrap() + 16;
    std::fs::write("/proc/sys/vm/nr_hugepages", want.to_string()).unwrap();
    // what counts is free pages (others may be in use), 8 for one 16 MiB UMEM
    let free: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:").map(|v| v.trim().parse().unwrap()))
        .expect("HugePages_Free in /proc/meminfo");
    assert!(free >= 8, "only {free} free hugepages after asking for {want} in total");
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp_settings(""));
    let v = a.command("show info");
    let info = v.to_string();
    assert_eq!(v["xdp"]["hugepages"], true, "{info}\n{}", a.log());
    assert!(a.log().contains("UMEM 8192 frames (16 MiB) on 2 MiB hugepages"), "{}", a.log());
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 1), Status::Accepted, "served from hugepage UMEM");
}

#[test]
fn umem_and_ring_sizes_come_from_the_config() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp_settings("umem_frames = 2048\nring_size = 512\n"));
    let info = a.command("show info");
    assert_eq!((info["xdp"]["umem_frames"].as_u64(), info["xdp"]["ring_size"].as_u64()), (Some(2048), Some(512)), "{info}");
    assert!(a.log().contains("UMEM 2048 frames (4 MiB)") && a.log().contains("rings 512"), "{}", a.log());
    let c = Client::new(&lab, false, 7777);
    for p in 0..50 {
        assert_eq!(c.send(&Client::mv(0, 1, p, 1)), Some(Status::Accepted));
    }
    // the defaults when the keys are absent
    drop(a);
    let a = Appliance::start(&lab, xdp_settings(""));
    let info = a.command("show info");
    assert_eq!((info["xdp"]["umem_frames"].as_u64(), info["xdp"]["ring_size"].as_u64()), (Some(8192), Some(4096)), "{info}");
}

#[test]
fn busy_poll_serves_and_show_info_reports_it() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp_settings("busy_poll = true\nbusy_poll_usecs = 50\nbusy_poll_budget = 128\n"));
    let info = a.command("show info");
    let bp = &info["xdp"]["busy_poll"];
    assert_eq!((bp["enabled"].as_bool(), bp["usecs"].as_u64(), bp["budget"].as_u64()), (Some(true), Some(50), Some(128)), "{info}");
    // what the socket holds, read back from the kernel
    let q = &bp["queues"][0];
    assert_eq!(
        (q["queue"].as_u64(), q["prefer_busy_poll"].as_bool(), q["usecs"].as_u64(), q["budget"].as_u64()),
        (Some(0), Some(true), Some(50), Some(128)),
        "{info}\n{}",
        a.log()
    );
    assert!(a.log().contains("preferred busy polling on (SO_BUSY_POLL 50 us, budget 128)"), "{}", a.log());
    let c = Client::new(&lab, false, 7777);
    for p in 0..300 {
        assert_eq!(c.send(&Client::mv(0, 7, p, 1)), Some(Status::Accepted), "player {p}\n{}", a.log());
    }
    let s = a.stats();
    assert_eq!(s["accepted"].as_u64(), Some(300), "{s}");
    assert!(s["queues"][0]["busy_polls"].as_u64().unwrap_or(0) > 0, "the poller drives NAPI with recvfrom: {s}");
    // off by default: nothing set, no recvfrom
    drop(a);
    let a = Appliance::start(&lab, xdp_settings(""));
    let info = a.command("show info");
    let bp = &info["xdp"]["busy_poll"];
    assert_eq!((bp["enabled"].as_bool(), bp["queues"][0]["prefer_busy_poll"].as_bool()), (Some(false), Some(false)), "{info}");
    assert_eq!(c.send(&Client::mv(0, 7, 1000, 1)), Some(Status::Accepted));
    assert_eq!(a.stats()["queues"][0]["busy_polls"].as_u64(), Some(0));
}

/// CPU time (ms) of the appliance's thread named `name`, from
/// /proc/PID/task/*/stat (utime + stime, in clock ticks).
fn thread_cpu_ms(a: &Appliance, name: &str) -> u64 {
    let pid = a.child.as_ref().expect("the appliance runs").id();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the appliance's threads").flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return ironhoard_labtests::cpu_ms(&t.path().join("stat"));
        }
    }
    panic!("no thread {name} in the appliance (pid {pid})");
}

#[test]
fn idle_spin_us_is_how_long_the_poller_spins_before_it_sleeps() {
    let lab = Lab::new(1);
    // moves 1 ms apart: the default poller (2 ms) spins through every gap,
    // one at 100 µs sleeps in each
    for (extra, want_us, spins) in [("", 2000, true), ("idle_spin_us = 100\n", 100, false)] {
        let a = Appliance::start(&lab, xdp_settings(extra));
        let info = a.command("show info");
        assert_eq!(info["xdp"]["idle_spin_us"].as_u64(), Some(want_us), "{info}");
        let c = Client::new(&lab, false, 7777);
        let (cpu0, t0) = (thread_cpu_ms(&a, "ih-poller-0"), Instant::now());
        for p in 0..300 {
            assert_eq!(c.send(&Client::mv(0, 9, p, 1)), Some(Status::Accepted), "player {p}\n{}", a.log());
            std::thread::sleep(Duration::from_millis(1));
        }
        let (cpu, wall) = (thread_cpu_ms(&a, "ih-poller-0") - cpu0, t0.elapsed().as_millis() as u64);
        if spins {
            assert!(cpu * 2 >= wall, "a poller spinning 2 ms used {cpu} ms of CPU in {wall} ms");
        } else {
            assert!(cpu * 4 <= wall, "a poller spinning 100 us used {cpu} ms of CPU in {wall} ms");
        }
        // no moves: after its spin it sleeps, and a poll(2) that times out
        // (every 10 ms) is not followed by another spin
        std::thread::sleep(Duration::from_millis(100));
        let (cpu0, t0) = (thread_cpu_ms(&a, "ih-poller-0"), Instant::now());
        std::thread::sleep(Duration::from_secs(1));
        let (cpu, wall) = (thread_cpu_ms(&a, "ih-poller-0") - cpu0, t0.elapsed().as_millis() as u64);
        assert!(cpu * 20 <= wall, "an idle poller (spin {want_us} us) used {cpu} ms of CPU in {wall} ms");
    }
}

/// `show rx-ring`: under load a running poller samples its RX ring's level
/// each millisecond; one stopped for 300 ms (SIGSTOP: as if off its core,
/// or its vCPU halted) shows as a gap in the samples and a full ring after
/// it, which is how a poller that was stopped is told from one too slow.
/// (5 k moves/s: the 256-entry ring fills in 51 ms without its poller, so
/// no slice lost to another test's spinning poller on the core fills it.)
#[test]
fn the_rx_ring_trace_shows_a_stopped_poller_as_a_gap_then_a_full_ring() {
    use ironhoard_labtests::nats::pktgen;
    let lab = Lab::new(1);
    let settings = Settings {
        rate_per_second: 1_000_000,
        rate_burst: 1_000_000,
        players_per_worker: 65_536,
        ..xdp_settings("ring_size = 256\nidle_spin_us = 1000000\n")
    };
    let a = Appliance::start(&lab, settings);
    let out = ironhoard_labtests::TempDir::new("rxring");
    let mut g = pktgen(&lab, &a.dir.0.join("secret0.hex"), &out.0, 5_000, 30_000, "socket");
    // the load flowing (1 000 moves in), then 300 ms more of it
    let t0 = Instant::now();
    while a.command("show stats")["rx"].as_u64().unwrap_or(0) < 1_000 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no load reached the poller: {}", a.command("show stats"));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = a.child.as_ref().unwrap().id().to_string();
    sh(&["kill", "-STOP", &pid]);
    std::thread::sleep(Duration::from_millis(300));
    sh(&["kill", "-CONT", &pid]);
    std::thread::sleep(Duration::from_millis(300));
    let t = a.command("show rx-ring");
    let _ = g.kill();
    let _ = g.wait();
    let q = &t["queues"][0];
    assert_eq!(q["ring_size"], 256, "{q}");
    let samples: Vec<(u64, u64)> = q["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("samples in {q}"))
        .iter()
        .map(|s| (s[0].as_u64().unwrap_or_else(|| panic!("{s}")), s[1].as_u64().unwrap_or_else(|| panic!("{s}"))))
        .collect();
    let gap = q["longest_gap_us"].as_u64().unwrap_or_else(|| panic!("longest_gap_us in {q}"));
    assert!(gap >= 250_000, "the stop is a gap of ~300 ms, got {gap} µs: {q}");
    assert_eq!(q["level_after_longest_gap"], 256, "the ring filled while the poller was stopped: {q}");
    assert!(q["full"].as_u64().is_some_and(|f| f >= 1), "{q}");
    // before the stop, a sample each millisecond while the poller runs, none full
    let at = samples.windows(2).position(|w| w[1].0 - w[0].0 == gap).unwrap_or_else(|| panic!("a gap of {gap} µs in {q}"));
    let before = &samples[..=at];
    let close = before.windows(2).filter(|w| w[1].0 - w[0].0 <= 2_000).count();
    assert!(close >= 150, "a running poller samples each ms: {close} of {} gaps ≤ 2 ms", before.len());
    assert!(before.iter().all(|s| s.1 < 256), "the ring never full while the poller ran: {before:?}");
}
