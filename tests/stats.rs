//! The stats socket, `ironhoard stats` and the Prometheus endpoint against
//! a running appliance in a lab (needs root).

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use ironhoard_labtests::scenarios::{expect_silence, expect_status, Expect};
use ironhoard_labtests::{bin, check_exposition, Appliance, Client, Lab, PortBlock, Settings};
use ironhoard_wire::Status;
use serde_json::Value;

fn stats(a: &Appliance, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("ironhoard")).arg("stats").arg("--socket").arg(&a.stats_socket).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

fn json(a: &Appliance, cmd: &str) -> Value {
    let (rc, out, err) = stats(a, &["--command", cmd]);
    assert_eq!(rc, 0, "{cmd}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[test]
fn every_command_with_the_xdp_backend() {
    let lab = Lab::new(1);
    let ports = PortBlock::claim();
    let port = ports.base;
    let a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, |c| {
        c.replace("[stats]\n", &format!("[stats]\ngroup = \"nogroup\"\nprometheus_listen = \"127.0.0.1:{port}\"\n"))
    });
    // socket: 0660, group as configured, never world accessible
    let m = std::fs::metadata(&a.stats_socket).unwrap();
    assert_eq!(m.mode() & 0o777, 0o660);
    let nogroup = Command::new("getent").args(["group", "nogroup"]).output().unwrap();
    let gid: u32 = String::from_utf8_lossy(&nogroup.stdout).split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(m.gid(), gid, "stats socket group");

    // known traffic
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for s in 1..=20 {
        expect_status(&c, &mut e, &Client::mv(0, 1, 1, s), Status::Accepted, "accepted");
    }
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 3), Status::Duplicate, "dup");
    let good = Client::mv(0, 1, 2, 1).to_bytes(&Client::mac(0, 1, 2));
    let mut b = good;
    b[0] = b'Z';
    expect_silence(&c, &mut e, &b, "bad_magic"); // dropped by the XDP program
    let mut b = good;
    b[40] ^= 1;
    expect_silence(&c, &mut e, &b, "bad_tag"); // dropped by the poller
    ironhoard_labtests::scenarios::assert_counters(&a, &e);

    let info = json(&a, "show info");
    for k in ["version", "uptime_secs", "interface", "queues", "config"] {
        assert!(info.get(k).is_some(), "show info has {k}: {info}");
    }
    assert_eq!(info["xdp"]["xdp_mode"], "native");
    assert_eq!(info["xdp"]["zero_copy"], false);
    assert!(info["xdp"]["hugepages"].is_boolean());

    let st = json(&a, "show stats");
    let q = &st["queues"][0];
    assert_eq!(q["dropped"]["bad_magic"], 0, "XDP-level drops are not a queue's");
    assert_eq!(st["dropped"]["bad_magic"], 1, "but count in the totals");
    assert_eq!(st["xdp"]["bad_magic"], 1);
    assert!(q["xsk"]["rx_dropped"].is_u64() && q["xsk"]["rx_ring_full"].is_u64(), "{q}");
    assert!(q["wakeups"].as_u64().unwrap() > 0, "copy-mode TX needs kicks: {q}");
    std::thread::sleep(Duration::from_millis(1200));
    let st = json(&a, "show stats");
    assert!(st["rates_per_sec"]["rx"].is_number(), "{st}");

    let lat = json(&a, "show latency");
    assert_eq!(lat["move_ns"]["count"].as_u64(), q["rx"].as_u64(), "one service-time sample per datagram the poller saw: {lat}");
    assert!(lat["batch_ns"]["p50"].as_u64().unwrap() > 0);
    assert!(lat["move_ns"]["p99"].as_u64().unwrap() >= lat["move_ns"]["p50"].as_u64().unwrap());

    let xdp = json(&a, "show xdp");
    assert_eq!(xdp["xdp"]["redirected"], 22, "{xdp}");
    let pl = json(&a, "show players");
    assert_eq!(pl["players"], 1, "{pl}");
    assert_eq!(pl["queues"][0]["capacity"], 1024);

    let (rc, _, err) = stats(&a, &["--command", "show nonsense"]);
    assert_eq!(rc, 1);
    assert!(err.contains("unknown command") && err.contains("show latency"), "{err}");

    // table
    let (rc, out, _) = stats(&a, &[]);
    assert_eq!(rc, 0);
    for k in ["total", "q0", "dropped by reason", "per second", "per-move service", "AF_XDP", "move log", "(sync interval)", "q0: next offset"] {
        assert!(out.contains(k), "table shows {k}:\n{out}");
    }

    // Prometheus, through the CLI and over HTTP: strict grammar and a parser
    let (rc, prom, err) = stats(&a, &["--prometheus"]);
    assert_eq!(rc, 0, "{err}");
    let n = check_exposition(&prom).unwrap_or_else(|e| panic!("{e}\n{prom}"));
    assert!(n > 30);
    let parsed = prometheus_parse::Scrape::parse(prom.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        parsed
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} in\n{prom}"))
    };
    assert_eq!(find("ironhoard_acks_total", &[("queue", "0"), ("status", "accepted")]), 20.0);
    assert_eq!(find("ironhoard_acks_total", &[("queue", "0"), ("status", "duplicate")]), 1.0);
    assert_eq!(find("ironhoard_dropped_total", &[("queue", "0"), ("reason", "bad_tag")]), 1.0);
    assert_eq!(find("ironhoard_xdp_total", &[("counter", "bad_magic")]), 1.0);
    let (head, body) = http_get(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"), "{head}");
    check_exposition(&body).unwrap();
    let (head, _) = http_get(port, "/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // --watch refreshes like top
    let o = Command::new("timeout")
        .args(["2.5"])
        .arg(bin("ironhoard"))
        .args(["stats", "--watch", "1", "--socket"])
        .arg(&a.stats_socket)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.matches("\x1b[2J").count() >= 2, "refreshed at least twice: {out}");
}

#[test]
fn socket_backend_has_no_xdp_section_and_a_non_member_is_refused() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "socket", ..Default::default() });
    let st = json(&a, "show stats");
    assert!(st.get("xdp").is_none());
    assert!(st["queues"][0].get("xsk").is_none());
    for cmd in ["show xdp", "show rx-ring"] {
        let (rc, _, err) = stats(&a, &["--command", cmd]);
        assert_eq!(rc, 1, "{cmd}");
        assert!(err.contains("socket backend"), "{cmd}: {err}");
    }
    // someone outside the socket's group cannot read it
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(bin("ironhoard"))
        .args(["stats", "--socket"])
        .arg(&a.stats_socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot open stats socket") || err.contains("Permission denied"), "{err}");
}

/// Clients that connect and say nothing, or trickle a byte at a time, hold
/// neither the stats socket nor /metrics: each exchange has one deadline
/// (2 s), at most 8 are served at once, and a well-behaved client is still
/// answered while they try.
#[test]
fn slow_clients_hold_neither_the_stats_socket_nor_metrics() {
    use std::time::Instant;
    let lab = Lab::new(1);
    let ports = PortBlock::claim();
    let port = ports.base;
    let a = Appliance::start_with(&lab, Settings::default(), |c| c.replace("[stats]\n", &format!("[stats]\nprometheus_listen = \"{port}\"\n")));
    // 20 idle clients on each
    let idle_unix: Vec<_> = (0..20).map(|_| std::os::unix::net::UnixStream::connect(&a.stats_socket).unwrap()).collect();
    let idle_tcp: Vec<_> = (0..20).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    // a trickler: one byte every 300 ms, never a newline
    let mut trickle = std::os::unix::net::UnixStream::connect(&a.stats_socket).unwrap();
    let t0 = Instant::now();
    let mut cut_after = None;
    for _ in 0..40 {
        if trickle.write_all(b"x").is_err() {
            cut_after = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let cut = cut_after.expect("a client trickling bytes was never cut off");
    assert!(cut < Duration::from_secs(5), "trickler held the socket for {cut:?}");
    // the idle ones were cut off by their deadline too: all slots are free
    std::thread::sleep(Duration::from_millis(2500));
    let t1 = Instant::now();
    let v = json(&a, "show stats");
    assert!(v["rx"].is_u64(), "{v}");
    let (head, body) = http_get(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    check_exposition(&body).unwrap();
    assert!(t1.elapsed() < Duration::from_secs(2), "answered in {:?}", t1.elapsed());
    for mut s in idle_unix {
        let mut b = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)), "an idle stats client was not closed");
    }
    drop(idle_tcp);
    // /metrics on a bare port listens on 127.0.0.1 only
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    assert!(listening.contains(&format!("0100007F:{port:04X} 00000000:0000 0A")), "not listening on 127.0.0.1:{port} alone");
}
