//! DH mode between communicators over real Zenoh on loopback (port 0, no multicast).

mod common;

use std::time::{Duration, Instant};

use common::{mesh, psk, publish_until_received, stat, subscribe, PSK, WAIT};
use evospikenet::codec::Format;
use evospikenet::config::{Config, KeyExchange};

fn config(psk_hex: Option<&str>, auto: bool) -> Config {
    let mut cfg = Config {
        psk: psk(psk_hex),
        ..Config::default()
    };
    if auto {
        cfg.dh.key_exchange = KeyExchange::Auto;
    }
    cfg
}

#[test]
fn manual_exchange_then_encrypted_traffic_both_ways() {
    let nodes = mesh(&["node-1", "node-2"], |_| config(None, false));
    let (a, b) = (&nodes[0], &nodes[1]);
    let ka = a.key_manager().initiate("node-2").unwrap();
    let kb = b.key_manager().initiate("node-1").unwrap();
    assert_eq!(a.key_manager().complete(&kb, None).unwrap(), "node-2");
    b.key_manager().complete(&ka, Some("node-1")).unwrap();
    a.key_manager().wait_established("node-2", WAIT).unwrap();
    b.key_manager().wait_established("node-1", WAIT).unwrap();
    assert!(a.is_encrypted() && b.is_encrypted());
    // Both screens show the same fingerprints.
    assert_eq!(
        a.key_manager().fingerprint(Some("node-2")).unwrap(),
        b.key_manager().peer_fingerprint("node-1").unwrap()
    );
    let rx = subscribe(b, "t/**");
    let m = publish_until_received(a, &rx, "t/x", b"secret spikes");
    assert_eq!(
        (m.sender.as_str(), &m.payload[..]),
        ("node-1", &b"secret spikes"[..])
    );
    let rx = subscribe(a, "u/**");
    publish_until_received(b, &rx, "u/y", b"secret spikes");
    // Completing twice fails: the exchange is used up.
    assert!(a.key_manager().complete(&kb, Some("node-2")).is_err());
}

#[test]
fn automatic_exchange_rekeys_without_loss_and_a_wrong_psk_is_locked_out() {
    let nodes = mesh(&["node-1", "node-2", "intruder"], |id| {
        let psk = if id == "intruder" {
            PSK.replace('3', "4")
        } else {
            PSK.to_owned()
        };
        config(Some(&psk), true)
    });
    let (a, b, m) = (&nodes[0], &nodes[1], &nodes[2]);
    a.key_manager().wait_established("node-2", WAIT).unwrap();
    b.key_manager().wait_established("node-1", WAIT).unwrap();
    let rx = subscribe(b, "s/**");
    let first = publish_until_received(a, &rx, "s/a", b"secret spikes");
    assert_eq!(first.sender, "node-1");
    while rx.try_recv().is_ok() {}
    let base = stat(b, "received");
    let failures = stat(b, "decrypt_failures");
    for round in 0..5u8 {
        for i in 0..200u8 {
            a.publish("s/a", Format::Raw, &[round, i]).unwrap();
        }
        a.key_manager().rekey().unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while stat(b, "received") < base + 1000 {
        assert!(Instant::now() < deadline, "lost messages across rekeys");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stat(b, "decrypt_failures"), failures);
    assert!(stat(a, "rekeys") >= 5);
    // The intruder (other PSK) never gets a session and cannot read or inject.
    assert!(!m.key_manager().session_established("node-1"));
    assert!(!a.key_manager().session_established("intruder"));
    assert!(stat(m, "key_exchange_failures") + stat(a, "key_exchange_failures") > 0);
    let spy = subscribe(m, "s/**");
    a.publish("s/a", Format::Raw, b"x").unwrap();
    assert!(spy.recv_timeout(Duration::from_millis(500)).is_err());
}
