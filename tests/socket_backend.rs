//! The socket backend in a veth/netns lab (needs root).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ironhoard_labtests::scenarios::{self, expect_status, Expect};
use ironhoard_labtests::{Appliance, Client, Lab, Settings};
use ironhoard_wire::Status;

#[test]
fn ipv4_every_status_and_silent_drop() {
    scenarios::every_status_and_drop("socket", false);
}

#[test]
fn ipv6_every_status_and_silent_drop() {
    scenarios::every_status_and_drop("socket", true);
}

#[test]
fn two_workers_steer_by_player_so_replays_from_new_ports_are_duplicates() {
    scenarios::replay_from_other_port_is_duplicate("socket", 2);
}

#[test]
fn stats_socket_mode_and_clean_sigterm() {
    let lab = Lab::new(1);
    let mut a = Appliance::start(&lab, Settings::default());
    let mode = std::fs::metadata(&a.stats_socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "stats socket is not world accessible");
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 1), Status::Accepted, "serving");
    let (st, took) = a.stop();
    assert!(st.success(), "exit status {st}: {}", a.log());
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert!(!a.stats_socket.exists(), "stats socket removed on exit");
    assert!(a.log().contains("stopping workers"), "{}", a.log());
}

#[test]
fn acks_leave_from_the_address_the_move_was_sent_to() {
    let lab = Lab::new(1);
    // a second address on the appliance's interface (not the primary one)
    let second = std::net::Ipv4Addr::new(lab.host_v4.octets()[0], lab.host_v4.octets()[1], lab.host_v4.octets()[2], 3);
    ironhoard_labtests::sh(&["ip", "addr", "add", &format!("{second}/24"), "dev", &lab.host_if]);
    let _a = Appliance::start(&lab, Settings { backend: "socket", ..Default::default() });
    let c = Client { sock: lab.client(false), target: std::net::SocketAddr::from((second, 7777)) };
    let mut e = Expect::new();
    // Client::recv asserts the ack comes from `target`
    expect_status(&c, &mut e, &Client::mv(0, 1, 1, 1), Status::Accepted, "ack from the second address");
}
