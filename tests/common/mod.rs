//! Helpers shared by the loopback integration tests (`comm_loopback.rs`, `dh_loopback.rs`):
//! communicators on 127.0.0.1 with ports chosen by the OS and no multicast, subscriptions
//! as channels, and waiting for what arrives.

// Each test crate uses only some of these.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use evospikenet::codec::Format;
use evospikenet::comm::{Communicator, Message};
use evospikenet::config::Config;
use evospikenet::crypto::keys::Psk;

pub const PSK: &str = "3b9f0c1d2e4a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4";
/// How long to wait for a link, a session or a first message.
pub const WAIT: Duration = Duration::from_secs(10);
const LOOPBACK_ANY_PORT: &str = "tcp/127.0.0.1:0";

/// `Some` PSK from hex (a test constant: panics if malformed).
pub fn psk(hex: Option<&str>) -> Option<Psk> {
    hex.map(|h| Psk::from_hex(h).unwrap())
}

/// Open `id` listening on a loopback port chosen by the OS; returns it and its locator.
pub fn listener(id: &str, cfg: Config) -> (Communicator, String) {
    let cfg = Config {
        listen: vec![LOOPBACK_ANY_PORT.into()],
        ..cfg
    };
    let comm = Communicator::open(id, &cfg).unwrap();
    let locator = comm.locators().into_iter().next().expect("a bound locator");
    assert!(!locator.ends_with(":0"), "{locator}");
    (comm, locator)
}

/// Open `id` connected to `locator` (listening too when `listen`, so that others can link
/// to it directly), once the link is up.
pub fn connector(id: &str, locator: &str, listen: bool, cfg: Config) -> Communicator {
    let cfg = Config {
        connect: vec![locator.to_owned()],
        listen: if listen {
            vec![LOOPBACK_ANY_PORT.into()]
        } else {
            vec![]
        },
        ..cfg
    };
    let comm = Communicator::open(id, &cfg).unwrap();
    let deadline = Instant::now() + WAIT;
    while comm.transport().connected_zids().is_empty() {
        assert!(Instant::now() < deadline, "no link to {locator}");
        std::thread::sleep(Duration::from_millis(20));
    }
    comm
}

/// `ids[0]` listens; the others connect to it, and listen too.
pub fn mesh(ids: &[&str], cfg: impl Fn(&str) -> Config) -> Vec<Communicator> {
    let (first, locator) = listener(ids[0], cfg(ids[0]));
    let mut all = vec![first];
    for id in &ids[1..] {
        all.push(connector(id, &locator, true, cfg(id)));
    }
    all
}

/// What `c` receives on `topic`, as a channel.
pub fn subscribe(c: &Communicator, topic: &str) -> mpsc::Receiver<Message> {
    let (tx, rx) = mpsc::channel();
    // The subscription lives as long as the communicator: its handle is not needed.
    let _ = c
        .subscribe(topic, move |m| {
            let _ = tx.send(m);
        })
        .unwrap();
    rx
}

/// Publish until the first message arrives (subscriptions propagate asynchronously).
pub fn publish_until_received(
    tx: &Communicator,
    rx: &mpsc::Receiver<Message>,
    topic: &str,
    payload: &[u8],
) -> Message {
    let deadline = Instant::now() + WAIT;
    loop {
        tx.publish(topic, Format::Raw, payload).unwrap();
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(100)) {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing received on {topic}");
    }
}

/// The counter `name` of `c.stats()`.
pub fn stat(c: &Communicator, name: &str) -> u64 {
    c.stats()
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
        .1
}
