//! Lab helpers for the integration tests (SPEC §3).
//!
//! A [`Lab`] is a network namespace plus a veth pair: one end in the root
//! namespace (the appliance side), one in the namespace (the client side),
//! with IPv4 addresses in 198.18.0.0/15 and IPv6 in 2001:2::/48 (both
//! reserved for benchmarking). Names start with `ih` and carry the pid and
//! a counter. Dropping the lab removes it, also when a test panics.
//!
//! An [`Appliance`] is the real `ironhoard` binary run against a lab, with
//! its own config, secrets and stats socket in a temporary directory;
//! dropping it stops the process.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ironhoard_wire::{Ack, AckRepr, MasterKey, MoveRepr, PlayerMac, Status};

pub mod logcheck;
pub mod nats;
#[path = "scenarios.rs"]
pub mod scenarios;

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// How long a client waits for an ack it expects.
pub const ACK_WAIT: Duration = Duration::from_secs(3);
/// How long a client listens to be sure nothing comes back.
pub const SILENCE_WAIT: Duration = Duration::from_millis(300);
static SUBNETS: Mutex<()> = Mutex::new(());

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Panics unless running as root: lab tests need namespaces and XDP.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "lab tests need root (network namespaces, veth, XDP); run `make test` as root");
}

/// A veth/netns lab, removed on drop.
pub struct Lab {
    pub ns: String,
    /// Root-namespace end (the appliance's interface).
    pub host_if: String,
    /// Namespace end (the client's interface).
    pub peer_if: String,
    pub host_v4: Ipv4Addr,
    pub peer_v4: Ipv4Addr,
    pub host_v6: Ipv6Addr,
    pub peer_v6: Ipv6Addr,
    /// Listed until dropped (after Drop removed the namespace and link).
    _registered: Registered,
}

impl Lab {
    /// Creates a lab with `queues` rx/tx queues on each veth end.
    pub fn new(queues: u32) -> Lab {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // pid and a random part: parallel runs, test processes and a crashed
        // earlier run never share a name (interface names stay ≤ 15 bytes)
        let id = format!("{}{:03x}{}", std::process::id() % 100_000, random_u32() & 0xfff, n);
        let ns = format!("ih{id}");
        let host_if = format!("ih{id}a");
        let peer_if = format!("ih{id}b");
        let _guard = SUBNETS.lock().unwrap_or_else(|e| e.into_inner());
        // a /24 no other lab uses right now (parallel tests, crashed runs)
        let used = sh(&["ip", "-4", "-o", "addr", "show"]);
        let start = (std::process::id() as usize * 7 + n as usize * 13) % 250;
        let k = (0..250)
            .map(|i| (start + i) % 250 + 1)
            .find(|k| !used.contains(&format!("198.18.{k}.")))
            .expect("a free 198.18.k.0/24 for the lab");
        sweep_dead();
        let lab = Lab {
            _registered: register(Undo::Lab, &[&ns, &host_if]),
            ns: ns.clone(),
            host_if: host_if.clone(),
            peer_if: peer_if.clone(),
            host_v4: Ipv4Addr::new(198, 18, k as u8, 1),
            peer_v4: Ipv4Addr::new(198, 18, k as u8, 2),
            host_v6: format!("2001:2:0:{k:x}::1").parse().unwrap(),
            peer_v6: format!("2001:2:0:{k:x}::2").parse().unwrap(),
        };
        // From here on, Drop cleans up whatever was created.
        sh(&["ip", "netns", "add", &ns]);
        let q = queues.to_string();
        sh(&[
            "ip", "link", "add", &host_if, "numtxqueues", &q, "numrxqueues", &q, "type", "veth", "peer", "name", &peer_if,
            "numtxqueues", &q, "numrxqueues", &q,
        ]);
        sh(&["ip", "link", "set", &peer_if, "netns", &ns]);
        sh(&["ip", "addr", "add", &format!("{}/24", lab.host_v4), "dev", &host_if]);
        sh(&["ip", "-6", "addr", "add", &format!("{}/64", lab.host_v6), "dev", &host_if, "nodad"]);
        sh(&["ip", "link", "set", &host_if, "up"]);
        let inns = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns];
            v.extend_from_slice(args);
            sh(&v);
        };
        inns(&["ip", "addr", "add", &format!("{}/24", lab.peer_v4), "dev", &peer_if]);
        inns(&["ip", "-6", "addr", "add", &format!("{}/64", lab.peer_v6), "dev", &peer_if, "nodad"]);
        inns(&["ip", "link", "set", &peer_if, "up"]);
        inns(&["ip", "link", "set", "lo", "up"]);
        lab
    }

    /// Runs `f` on a thread that has entered the lab's namespace; sockets it
    /// creates stay in the namespace.
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let f_ns = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this (non-main) thread's own namespace with a
            // valid netns fd; the thread ends right after `f`.
            let rc = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// A UDP socket inside the namespace, bound to an ephemeral port.
    pub fn client(&self, v6: bool) -> UdpSocket {
        let bind: SocketAddr = if v6 { "[::]:0".parse().unwrap() } else { "0.0.0.0:0".parse().unwrap() };
        let s = self.in_ns(move || UdpSocket::bind(bind).expect("bind client socket in namespace"));
        // generous: parallel tests share two cores with spinning pollers
        s.set_read_timeout(Some(ACK_WAIT)).unwrap();
        s
    }

    /// The appliance's address as the client sees it.
    pub fn target(&self, v6: bool, port: u16) -> SocketAddr {
        let ip: IpAddr = if v6 { self.host_v6.into() } else { self.host_v4.into() };
        SocketAddr::new(ip, port)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.ns];
        v.extend_from_slice(args);
        sh(&v)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        sh_quiet(&["ip", "link", "del", &self.host_if]);
        sh_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

/// Machine state a test changes is listed here (one file per change: kind,
/// owner pid, what to undo) until the test undoes it. A test killed by its
/// time limit runs no destructor: the next lab made by any test undoes
/// what dead processes left (`sweep_dead`), and so does `make test` at its
/// end (scripts/sweep-labs.sh, which reads the same files).
pub const LAB_REGISTRY: &str = "/run/ironhoard-labtests";

/// What a registry entry undoes, in the order a sweep undoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// `chattr -i PATH`
    Immutable,
    /// `umount PATH`
    Mount,
    /// `ip link del HOST_IF; ip netns del NS`
    Lab,
    /// write VALUE to /proc/sys/vm/nr_hugepages
    Hugepages,
    /// `rm -rf PATH`
    TempDir,
}

impl Undo {
    const ALL: [Undo; 5] = [Undo::Immutable, Undo::Mount, Undo::Lab, Undo::Hugepages, Undo::TempDir];
    fn name(self) -> &'static str {
        match self {
            Undo::Immutable => "immutable",
            Undo::Mount => "mount",
            Undo::Lab => "lab",
            Undo::Hugepages => "hugepages",
            Undo::TempDir => "tempdir",
        }
    }
    fn run(self, args: &[&str]) {
        match (self, args) {
            (Undo::Immutable, [p, ..]) => sh_quiet(&["chattr", "-i", p]),
            (Undo::Mount, [p, ..]) => sh_quiet(&["umount", p]),
            (Undo::Lab, [ns, host_if, ..]) => {
                sh_quiet(&["ip", "link", "del", host_if]);
                sh_quiet(&["ip", "netns", "del", ns]);
            }
            (Undo::Hugepages, [v, ..]) => {
                let _ = fs::write("/proc/sys/vm/nr_hugepages", v);
            }
            (Undo::TempDir, [p, ..]) if p.starts_with("/tmp/ih-") => {
                let _ = fs::remove_dir_all(p);
            }
            _ => {}
        }
    }
}

/// A registry entry; dropping it (after the test undid the change itself)
/// removes it.
pub struct Registered(PathBuf);

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Lists a change this process made (`args`: what `kind` needs to undo it).
pub fn register(kind: Undo, args: &[&str]) -> Registered {
    let _ = fs::create_dir_all(LAB_REGISTRY);
    let p = Path::new(LAB_REGISTRY).join(format!("{}.{}.{:08x}", kind.name(), std::process::id(), random_u32()));
    let _ = fs::write(&p, args.join("\n") + "\n");
    Registered(p)
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the pid exists.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Undoes what dead test processes left. Returns how many changes.
pub fn sweep_dead() -> usize {
    let Ok(rd) = fs::read_dir(LAB_REGISTRY) else { return 0 };
    let entries: Vec<(Undo, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut it = name.split('.');
            let kind = Undo::ALL.into_iter().find(|k| Some(k.name()) == it.next())?;
            let pid: i32 = it.next()?.parse().ok()?;
            (!pid_alive(pid)).then(|| (kind, e.path()))
        })
        .collect();
    let mut n = 0;
    for kind in Undo::ALL {
        for (k, path) in entries.iter().filter(|(k, _)| *k == kind) {
            if let Ok(text) = fs::read_to_string(path) {
                let args: Vec<&str> = text.lines().collect();
                k.run(&args);
                n += 1;
            }
            let _ = fs::remove_file(path);
        }
    }
    n
}

/// Makes a child die with the test process that spawned it (a test killed
/// by its time limit runs no destructor that could stop it).
pub fn dies_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Path of a workspace binary built by `cargo build` (make test builds first).
pub fn bin(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("{}_BIN", name.to_uppercase().replace('-', "_"))) {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not built under {}: run `cargo build` first (make test does)", target.display());
}

/// A child process killed (and reaped) when the guard drops, also when a
/// test panics: tail --follow, tcpdump, a background generator.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Random bits from the kernel.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).expect("/dev/urandom");
    u32::from_ne_bytes(b)
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf, #[allow(dead_code)] Registered);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("ih-{tag}-{}-{n}-{:08x}", std::process::id(), random_u32()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        let r = register(Undo::TempDir, &[p.to_str().unwrap()]);
        TempDir(p, r)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Test master secrets by key_id.
pub fn secret(key_id: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ key_id.wrapping_mul(0x5b) ^ 0xa5;
    }
    s
}

/// Settings of an appliance under test.
#[derive(Clone)]
pub struct Settings {
    pub backend: &'static str,
    pub port: u16,
    pub key_ids: u8,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub players_per_worker: u32,
    pub board: (u16, u16),
    pub queues: u32,
    pub extra_interface: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: "socket",
            port: 7777,
            key_ids: 2,
            rate_per_second: 1000,
            rate_burst: 1000,
            players_per_worker: 1024,
            board: (64, 32),
            queues: 1,
            extra_interface: String::new(),
        }
    }
}

/// The `ironhoard` binary running on a lab's host end.
pub struct Appliance {
    pub child: Option<Child>,
    pub dir: TempDir,
    pub stats_socket: PathBuf,
    pub config: PathBuf,
    pub settings: Settings,
}

impl Appliance {
    /// Writes a config for `lab` and starts `ironhoard run`, waiting until
    /// its stats socket answers.
    pub fn start(lab: &Lab, s: Settings) -> Appliance {
        Appliance::start_with(lab, s, |c| c)
    }

    /// Like [`start`](Self::start), with a last edit of the config text.
    pub fn start_with(lab: &Lab, s: Settings, edit: impl FnOnce(String) -> String) -> Appliance {
        let dir = TempDir::new("appliance");
        let mut files = Vec::new();
        for k in 0..s.key_ids {
            let p = dir.0.join(format!("secret{k}.hex"));
            let mut f = fs::File::create(&p).unwrap();
            writeln!(f, "{}", hex::encode(secret(k))).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            files.push(format!("\"{}\"", p.display()));
        }
        let cores: Vec<String> = (0..s.queues).map(|q| (q as usize % cores()).to_string()).collect();
        let config = dir.0.join("ironhoard.toml");
        let stats_socket = dir.0.join("stats.sock");
        fs::write(
            &config,
            edit(format!(
                r#"[interface]
name = "{iface}"
queues = {queues}
cores = [{cores}]
xdp_mode = "auto"
zero_copy = "auto"
backend = "{backend}"
{extra}
[moves]
port = {port}
secrets = [{secrets}]
board_width = {bw}
board_height = {bh}
rate_per_second = {rate}
rate_burst = {burst}
players_per_worker = {players}
[stats]
socket = "/nonexistent/overridden.sock"
[log]
dir = "{logdir}"
[shield]
# one generator address stands for many clients in a lab: no shield
rate_per_source = 0
rate_per_address = 0
"#,
                iface = lab.host_if,
                queues = s.queues,
                cores = cores.join(", "),
                backend = s.backend,
                extra = s.extra_interface,
                port = s.port,
                secrets = files.join(", "),
                bw = s.board.0,
                bh = s.board.1,
                rate = s.rate_per_second,
                burst = s.rate_burst,
                players = s.players_per_worker,
                logdir = dir.0.join("log").display(),
            )),
        )
        .unwrap();
        let log = fs::File::create(dir.0.join("ironhoard.log")).unwrap();
        let child = dies_with_test(&mut Command::new(bin("ironhoard")))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--stats-socket")
            .arg(&stats_socket)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ironhoard");
        let mut a = Appliance { child: Some(child), dir, stats_socket, config, settings: s };
        let t0 = Instant::now();
        loop {
            if a.stats_raw().is_some() {
                break;
            }
            if let Some(st) = a.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ironhoard exited early ({st}): {}", a.log());
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "ironhoard did not come up: {}", a.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.0.join("ironhoard.log")).unwrap_or_default()
    }

    fn stats_raw(&self) -> Option<serde_json::Value> {
        let out = Command::new(bin("ironhoard"))
            .args(["stats", "--json", "--socket"])
            .arg(&self.stats_socket)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `ironhoard stats --command CMD` (e.g. "show info"), through the real CLI.
    pub fn command(&self, cmd: &str) -> serde_json::Value {
        let out = Command::new(bin("ironhoard"))
            .args(["stats", "--command", cmd, "--socket"])
            .arg(&self.stats_socket)
            .output()
            .expect("run ironhoard stats");
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// `ironhoard stats --json`, through the real CLI.
    pub fn stats(&self) -> serde_json::Value {
        self.stats_raw().unwrap_or_else(|| panic!("ironhoard stats failed; log: {}", self.log()))
    }

    /// Sends SIGTERM and waits; returns the exit status and how long it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return (st, t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                panic!("ironhoard did not stop within 10 s of SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (ms) a process or thread has used, from its `/proc/.../stat`
/// (`stat`: `/proc/PID/stat` or `/proc/PID/task/TID/stat`): utime + stime.
pub fn cpu_ms(stat: &Path) -> u64 {
    let text = fs::read_to_string(stat).unwrap_or_else(|e| panic!("{}: {e}", stat.display()));
    // the fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15
    let rest = &text[text.rfind(')').unwrap_or_else(|| panic!("{}: no comm", stat.display())) + 2..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    (f[11] + f[12]) * 1000 / hz
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A game client for tests: builds, signs, sends and checks moves.
pub struct Client {
    pub sock: UdpSocket,
    pub target: SocketAddr,
}

impl Client {
    pub fn new(lab: &Lab, v6: bool, port: u16) -> Client {
        Client { sock: lab.client(v6), target: lab.target(v6, port) }
    }

    pub fn mac(key_id: u8, game: u32, player: u32) -> PlayerMac {
        MasterKey::new(&secret(key_id)).player_mac(game, player)
    }

    pub fn mv(key_id: u8, game: u32, player: u32, seq: u64) -> MoveRepr {
        MoveRepr {
            key_id,
            kind: 1 + (seq % 3) as u8,
            game_id: game,
            player_id: player,
            seq,
            client_ts: seq.wrapping_mul(0x9e37_79b9),
            x: (seq % 16) as u16,
            y: 3,
            payload: *b"lab-payload!",
            ..Default::default()
        }
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.target).expect("send");
    }

    /// Receives one datagram, or None after the socket's timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, self.target, "ack from the appliance's address and port");
                Some(buf[..n].to_vec())
            }
            Err(_) => None,
        }
    }

    /// Signs and sends `r` (with the key for its key_id) and returns the
    /// ack's status after checking the ack's length, tag and echoed fields.
    pub fn send(&self, r: &MoveRepr) -> Option<Status> {
        let mac = Client::mac(r.key_id, r.game_id, r.player_id);
        self.send_raw(&r.to_bytes(&mac));
        let b = self.recv()?;
        Some(check_ack(&b, r, &mac))
    }
}

/// Checks an ack against the move it answers; returns its status.
pub fn check_ack(b: &[u8], r: &MoveRepr, mac: &PlayerMac) -> Status {
    assert_eq!(b.len(), 48, "ack length");
    let a = Ack::new_checked(b).unwrap();
    assert!(a.verify_tag(mac), "ack tag verifies under the player key");
    let ar = AckRepr::parse(&a).expect("ack parses");
    assert_eq!(
        (ar.key_id, ar.game_id, ar.player_id, ar.seq, ar.client_ts),
        (r.key_id, r.game_id, r.player_id, r.seq, r.client_ts),
        "ack echoes the move"
    );
    ar.status
}
/// A strict check of the exposition grammar (used by tests): every family
/// has HELP then TYPE before its samples, names and labels are valid,
/// values parse as floats, no family is declared twice.
pub fn check_exposition(text: &str) -> Result<usize, String> {
    let valid_name = |n: &str| {
        let mut ch = n.chars();
        matches!(ch.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && ch.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut declared = std::collections::HashMap::<String, String>::new();
    let mut pending_help: Option<String> = None;
    let mut samples = 0;
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) {
                return Err(format!("line {ln}: bad metric name in HELP: {line}"));
            }
            pending_help = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (name, kind) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
            if pending_help.as_deref() != Some(name) {
                return Err(format!("line {ln}: TYPE {name} without HELP right before it"));
            }
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(format!("line {ln}: bad type {kind}"));
            }
            if declared.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(format!("line {ln}: family {name} declared twice"));
            }
            pending_help = None;
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').ok_or(format!("line {ln}: no value: {line}"))?;
        value.parse::<f64>().map_err(|_| format!("line {ln}: bad value {value}"))?;
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, Some(l.strip_suffix('}').ok_or(format!("line {ln}: unclosed labels"))?)),
            None => (name_labels, None),
        };
        if !valid_name(name) {
            return Err(format!("line {ln}: bad metric name {name}"));
        }
        let family = declared
            .keys()
            .find(|f| name == f.as_str() || name.strip_prefix(f.as_str()).is_some_and(|s| s == "_sum" || s == "_count"))
            .ok_or(format!("line {ln}: sample {name} before its TYPE"))?;
        if name != family && declared[family] != "summary" && declared[family] != "histogram" {
            return Err(format!("line {ln}: {name} suffix on a {}", declared[family]));
        }
        if let Some(l) = labels {
            // label="value" pairs, values escaped
            let mut rest = l;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"").ok_or(format!("line {ln}: bad label in {l}"))?;
                if !valid_name(k) || k.contains(':') {
                    return Err(format!("line {ln}: bad label name {k}"));
                }
                let mut end = None;
                let mut esc = false;
                for (j, c) in after.char_indices() {
                    match (esc, c) {
                        (true, _) => esc = false,
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(j);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or(format!("line {ln}: unterminated label value"))?;
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        samples += 1;
    }
    Ok(samples)
}


/// Ten ports on 127.0.0.1, `base..base + 10`, held by one test for its
/// whole life (NATS: clients on `base..base + 5`, cluster routes on
/// `base + 5..`; the appliance's metrics listener).
///
/// Blocks lie from 10 000 up to the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32 768.. by default), so no outgoing
/// connection of this or another test takes one while a killed server is
/// down. Concurrent tests claim a block by `flock` on
/// `/tmp/ih-ports/BASE.lock`, released by the kernel when the test process
/// ends however it ends; a block any of whose ports something else holds
/// is skipped. (Ports derived from the pid collided: 20 000 + pid % 3000 ×
/// 10 reached into the ephemeral range, and a client's connection held the
/// port a NATS server was to listen on.)
pub struct PortBlock {
    pub base: u16,
    _claim: std::fs::File,
}

impl PortBlock {
    const FIRST: u16 = 10_000;
    const DIR: &str = "/tmp/ih-ports";

    /// The first free block from a pid-derived start (so concurrent tests
    /// seldom probe the same one); panics if all are taken.
    pub fn claim() -> PortBlock {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        let low: u16 = range.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(32_768);
        let slots = low.saturating_sub(Self::FIRST) / 10;
        assert!(slots > 0, "net.ipv4.ip_local_port_range starts at {low}: no room for test ports from {} below it", Self::FIRST);
        std::fs::create_dir_all(Self::DIR).unwrap_or_else(|e| panic!("creating {}: {e}", Self::DIR));
        let start = (std::process::id() % u32::from(slots)) as u16;
        for k in 0..slots {
            let base = Self::FIRST + (start + k) % slots * 10;
            let path = Path::new(Self::DIR).join(format!("{base}.lock"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
            match f.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue, // another test holds this block
                Err(std::fs::TryLockError::Error(e)) => panic!("flock {}: {e}", path.display()),
            }
            if (base..base + 10).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                return PortBlock { base, _claim: f };
            }
        }
        panic!("no free block of 10 ports in {}..{low} on 127.0.0.1", Self::FIRST);
    }
}

#[cfg(test)]
mod exposition_tests {
    use super::check_exposition;

    #[test]
    fn grammar_check_catches_errors() {
        let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"0\",r=\"x\\\"y\"} 3\n# HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 0.1\ns_sum 1\ns_count 2\n";
        assert_eq!(check_exposition(ok), Ok(4));
        assert!(check_exposition("x 1\n").is_err(), "sample before TYPE");
        assert!(check_exposition("# HELP x X\n# TYPE x counter\nx{a=\"1} 2\n").is_err());
        assert!(check_exposition("# HELP x X\n# TYPE x counter\nx abc\n").is_err());
        assert!(check_exposition("# TYPE x counter\nx 1\n").is_err(), "TYPE without HELP");
        assert!(check_exposition("# HELP x X\n# TYPE x counter\nx_sum 1\n").is_err());
    }
}

#[cfg(test)]
mod port_tests {
    use super::PortBlock;

    #[test]
    fn port_blocks_are_claimed_once_skip_a_held_port_and_stay_below_the_ephemeral_range() {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        let a = PortBlock::claim();
        let b = PortBlock::claim();
        assert_ne!(a.base, b.base, "a claimed block is not handed out twice");
        // a's block, released with one of its ports held by something else
        let base = a.base;
        let _held = std::net::TcpListener::bind(("127.0.0.1", base + 3)).unwrap();
        drop(a);
        let c = PortBlock::claim();
        assert!(c.base != base && c.base != b.base, "block {} has a held port; got {}", base, c.base);
        for p in [base, b.base, c.base] {
            assert!(p + 10 <= low, "block {p} reaches the ephemeral range {}", range.trim());
        }
    }
}
