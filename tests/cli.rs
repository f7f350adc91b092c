//! The `ironhoard` command line without a lab: config errors, keys, stats
//! without an appliance. Runs unprivileged.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ironhoard_labtests::{bin, TempDir};
use ironhoard_wire::MasterKey;

fn ironhoard(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("ironhoard")).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn example_config_is_valid_with_a_secret_beside_it() {
    let d = TempDir::new("cli");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/ironhoard.example.toml");
    let cfg = d.0.join("ironhoard.toml");
    fs::copy(example, &cfg).unwrap();
    let (rc, _, err) = ironhoard(&["keygen", "--out", d.0.join("secret0.hex").to_str().unwrap()]);
    assert_eq!(rc, 0, "{err}");
    let mode = fs::metadata(d.0.join("secret0.hex")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (rc, out, err) = ironhoard(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(rc, 0, "{out}{err}");
}

#[test]
fn bad_configs_fail_with_one_line_naming_the_key() {
    let d = TempDir::new("cli");
    let example = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/ironhoard.example.toml")).unwrap();
    ironhoard(&["keygen", "--out", d.0.join("secret0.hex").to_str().unwrap()]);
    let cases = [
        ("port = 7777", "port = 0", "moves.port = 0"),
        ("board_width = 64", "board_width = 70000", "moves.board_width = 70000"),
        ("cores = [1]", "cores = []", "interface.cores"),
        ("zero_copy = \"auto\"", "zero_copy = \"maybe\"", "maybe"),
        ("rate_burst = 100", "rate_burst = 100\nbogus = 1", "unknown field `bogus`"),
        ("[log]", "[logs]", "logs"),
        ("port = 7777", "port = \"x", "ironhoard.toml:"),
        ("subject_prefix = \"ih.moves\"", "subject_prefix = \"ih.>\"", "ship.subject_prefix = \"ih.>\""),
        ("servers = [\"nats://127.0.0.1:4222\"]", "servers = [\"127.0.0.1:4222\"]", "ship.servers"),
        ("# busy_poll = false", "busy_poll = true\nbusy_poll_budget = 5000", "interface.busy_poll_budget = 5000"),
        ("backend = \"xdp\"", "backend = \"socket\"\nbusy_poll = true", "interface.busy_poll = true"),
        ("# idle_spin_us = 2000", "idle_spin_us = -5", "interface.idle_spin_us = -5"),
    ];
    for (from, to, want) in cases {
        let cfg = d.0.join("ironhoard.toml");
        fs::write(&cfg, example.replace(from, to)).unwrap();
        let (rc, out, err) = ironhoard(&["check-config", "--config", cfg.to_str().unwrap()]);
        assert_eq!(rc, 1, "{to}: {out}{err}");
        assert!(err.contains(want), "{to}: stderr {err:?} should name {want:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (rc, _, err) = ironhoard(&["check-config", "--config", "/nonexistent/ironhoard.toml"]);
    assert_eq!(rc, 1);
    assert!(err.contains("/nonexistent/ironhoard.toml"), "{err}");
    // a world-readable secret is refused
    fs::write(d.0.join("ironhoard.toml"), &example).unwrap();
    fs::set_permissions(d.0.join("secret0.hex"), fs::Permissions::from_mode(0o644)).unwrap();
    let (rc, _, err) = ironhoard(&["check-config", "--config", d.0.join("ironhoard.toml").to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(err.contains("moves.secrets[0]") && err.contains("0644"), "{err}");
}

#[test]
fn check_config_on_host_checks_the_interface_its_queues_and_the_cores() {
    let d = TempDir::new("cli");
    let example = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/ironhoard.example.toml")).unwrap();
    ironhoard(&["keygen", "--out", d.0.join("secret0.hex").to_str().unwrap()]);
    let cfg = d.0.join("ironhoard.toml");
    let check = |text: String, on_host: bool| {
        fs::write(&cfg, text).unwrap();
        let mut args = vec!["check-config", "--config", cfg.to_str().unwrap()];
        if on_host {
            args.push("--on-host");
        }
        ironhoard(&args)
    };
    let cores = std::thread::available_parallelism().unwrap().get();
    // lo exists everywhere and has one rx queue
    let lo = example.replace("name = \"eth0\"", "name = \"lo\"").replace("cores = [1]", "cores = [0]");
    let (rc, out, err) = check(lo.clone(), true);
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, _, err) = check(example.replace("name = \"eth0\"", "name = \"ihnosuch0\""), true);
    assert_eq!(rc, 1);
    assert!(err.contains("interface.name") && err.contains("ihnosuch0"), "{err}");
    // without --on-host the same file is fine (validated off the host)
    let (rc, _, err) = check(example.replace("name = \"eth0\"", "name = \"ihnosuch0\""), false);
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = check(lo.replace("queues = 1", "queues = [5]"), true);
    assert_eq!(rc, 1);
    assert!(err.contains("interface.queues") && err.contains("no queue 5"), "{err}");
    let (rc, _, err) = check(lo.replace("cores = [0]", &format!("cores = [{cores}]")), true);
    assert_eq!(rc, 1);
    assert!(err.contains(&format!("core(s) [{cores}] are not in this process's allowed CPU set")), "{err}");
    // under a CPU mask (taskset, CPUAffinity=, cpuset), the cores in the
    // mask are usable even when they are not the first ones
    if cores >= 2 {
        let last = cores - 1;
        let (cfg1, cfg0) = (lo.replace("cores = [0]", &format!("cores = [{last}]")), lo.clone());
        for (text, ok) in [(cfg1, true), (cfg0, false)] {
            fs::write(&cfg, text).unwrap();
            let o = Command::new("taskset")
                .args(["-c", &last.to_string()])
                .arg(bin("ironhoard"))
                .args(["check-config", "--on-host", "--config", cfg.to_str().unwrap()])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.success(), ok, "taskset -c {last}, ok={ok}: {err}");
            if !ok {
                assert!(err.contains(&format!("allowed CPU set {last}")), "{err}");
            }
        }
    }
}

#[test]
fn player_key_matches_the_derivation() {
    let d = TempDir::new("cli");
    let f = d.0.join("s.hex");
    let secret: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    fs::write(&f, format!("{}\n", hex::encode(secret))).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let (rc, out, err) = ironhoard(&["player-key", "--secret-file", f.to_str().unwrap(), "--game", "7", "--player", "9"]);
    assert_eq!(rc, 0, "{err}");
    let want = hex::encode(MasterKey::new(&secret).player_key(7, 9).0);
    assert_eq!(out.trim(), want);
    // a degenerate secret is refused here too
    fs::write(&f, "0101010101010101010101010101010101010101010101010101010101010101\n").unwrap();
    let (rc, _, err) = ironhoard(&["player-key", "--secret-file", f.to_str().unwrap(), "--game", "7", "--player", "9"]);
    assert_eq!(rc, 1);
    assert!(err.contains("distinct byte"), "{err}");
}

#[test]
fn stats_watch_refuses_nonsense_intervals() {
    for v in ["inf", "NaN", "0", "1e9"] {
        let (rc, _, err) = ironhoard(&["stats", "--socket", "/nonexistent.sock", "--watch", v]);
        assert_eq!(rc, 1, "--watch {v}: {err}");
        assert!(err.contains("--watch") && !err.contains("panicked"), "--watch {v}: {err}");
    }
}

#[test]
fn stats_without_an_appliance_says_so() {
    let (rc, _, err) = ironhoard(&["stats", "--json", "--socket", "/nonexistent/ih.sock"]);
    assert_eq!(rc, 1);
    assert!(err.contains("no appliance is serving stats at /nonexistent/ih.sock"), "{err}");
}
