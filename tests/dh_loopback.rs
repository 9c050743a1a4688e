//! DH mode between communicators over real Zenoh on loopback (port 0, no multicast).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use evospikenet::codec::Format;
use evospikenet::comm::{Communicator, Message};
use evospikenet::config::{Config, KeyExchange};
use evospikenet::crypto::keys::Psk;

const PSK: &str = "3b9f0c1d2e4a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4";
const WAIT: Duration = Duration::from_secs(10);

fn config(psk: Option<&str>, auto: bool) -> Config {
    let mut cfg = Config {
        psk: psk.map(|p| Psk::from_hex(p).unwrap()),
        ..Config::default()
    };
    if auto {
        cfg.dh.key_exchange = KeyExchange::Auto;
    }
    cfg
}

/// `n` communicators, all linked to the first (which listens on port 0).
fn mesh(ids: &[&str], cfg: impl Fn(&str) -> Config) -> Vec<Communicator> {
    let mut first_cfg = cfg(ids[0]);
    first_cfg.listen = vec!["tcp/127.0.0.1:0".into()];
    let first = Communicator::open(ids[0], &first_cfg).unwrap();
    let locator = first.locators().into_iter().next().unwrap();
    let mut all = vec![first];
    for id in &ids[1..] {
        let mut c = cfg(id);
        c.connect = vec![locator.clone()];
        c.listen = vec!["tcp/127.0.0.1:0".into()];
        all.push(Communicator::open(id, &c).unwrap());
    }
    all
}

fn subscribe(c: &Communicator, topic: &str) -> mpsc::Receiver<Message> {
    let (tx, rx) = mpsc::channel();
    c.subscribe(topic, move |m| {
        let _ = tx.send(m);
    })
    .unwrap();
    rx
}

fn publish_until_received(tx: &Communicator, rx: &mpsc::Receiver<Message>, topic: &str) -> Message {
    let deadline = Instant::now() + WAIT;
    loop {
        tx.publish(topic, Format::Raw, b"secret spikes").unwrap();
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(100)) {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing received on {topic}");
    }
}

fn stat(c: &Communicator, name: &str) -> u64 {
    c.stats()
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
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
    let m = publish_until_received(a, &rx, "t/x");
    assert_eq!(
        (m.sender.as_str(), &m.payload[..]),
        ("node-1", &b"secret spikes"[..])
    );
    let rx = subscribe(a, "u/**");
    publish_until_received(b, &rx, "u/y");
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
    let first = publish_until_received(a, &rx, "s/a");
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
