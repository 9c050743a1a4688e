//! Two communicators over real Zenoh on loopback (port 0, no multicast).

mod common;

use std::time::{Duration, Instant};

use common::{connector, listener, psk, publish_until_received, stat, subscribe, PSK};
use evospikenet::codec::Format;
use evospikenet::comm::Communicator;
use evospikenet::config::Config;
use evospikenet::error::Error;

fn with_psk(hex: Option<&str>) -> Config {
    Config {
        psk: psk(hex),
        ..Config::default()
    }
}

#[test]
fn encrypted_publish_subscribe_and_wrong_key() {
    let (a, locator) = listener("listener", with_psk(Some(PSK)));
    let b = connector("node-b", &locator, false, with_psk(Some(PSK)));
    let rx = subscribe(&a, "spikes/**");
    let m = publish_until_received(&b, &rx, "spikes/v1/m1", b"\x01\x02\x03");
    assert_eq!(m.sender, "node-b");
    assert_eq!(m.topic, "spikes/v1/m1");
    assert_eq!(m.payload, b"\x01\x02\x03");
    assert_eq!(m.format, Format::Raw);

    // A node with another PSK: its messages are dropped and counted, never delivered.
    let other = PSK.replace('3', "4");
    let c = connector("node-c", &locator, false, with_psk(Some(&other)));
    let before = stat(&a, "decrypt_failures");
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&a, "decrypt_failures") == before {
        c.publish("spikes/v1/m1", Format::Raw, b"forged").unwrap();
        assert!(
            Instant::now() < deadline,
            "wrong-key messages were never seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while let Ok(m) = rx.try_recv() {
        assert_ne!(
            m.sender, "node-c",
            "a message under the wrong key was delivered"
        );
    }
}

#[test]
fn request_reply_and_timeout() {
    let (a, locator) = listener("listener", with_psk(Some(PSK)));
    let b = connector("client", &locator, false, with_psk(Some(PSK)));
    let _svc = a
        .serve("rpc/echo", |msg, responder| {
            let mut body = msg.payload.clone();
            body.reverse();
            responder
                .reply_with(Format::Raw, body.len(), |buf| {
                    buf.extend_from_slice(&body);
                    Ok(())
                })
                .unwrap();
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match b.request_with(
            "rpc/echo",
            Format::Raw,
            3,
            |buf| {
                buf.extend_from_slice(b"abc");
                Ok(())
            },
            Duration::from_millis(500),
        ) {
            Ok(r) => break r,
            Err(Error::Timeout(_)) if Instant::now() < deadline => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(reply.payload, b"cba");
    assert_eq!(reply.sender, "listener");

    let t0 = Instant::now();
    let err = b
        .request_with(
            "rpc/nobody",
            Format::Raw,
            0,
            |_| Ok(()),
            Duration::from_millis(300),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

#[test]
fn topics_are_validated_and_close_is_idempotent() {
    let (a, _) = listener("listener", with_psk(None));
    for bad in ["", "/a", "a/", "a//b", "a/*", "a/$x", "a?b"] {
        assert!(
            matches!(
                a.publish(bad, Format::Raw, b""),
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    a.subscribe("a/*/c", |_| {}).unwrap();
    a.close().unwrap();
    a.close().unwrap();
    assert!(matches!(
        a.publish("t", Format::Raw, b""),
        Err(Error::Closed(_))
    ));
}

#[test]
fn a_node_receives_its_own_publications() {
    let (a, _) = listener("listener", with_psk(Some(PSK)));
    let rx = subscribe(&a, "self/t");
    let m = publish_until_received(&a, &rx, "self/t", b"me");
    assert_eq!(m.sender, "listener");
}

#[test]
fn a_client_started_shortly_before_its_router_waits_for_it() {
    use evospikenet::config::SessionMode;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let client = |id: &str| {
        let cfg = Config {
            mode: SessionMode::Client,
            connect: vec![endpoint.clone()],
            ..with_psk(Some(PSK))
        };
        Communicator::open(id, &cfg)
    };
    let router_endpoint = endpoint.clone();
    let router = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let cfg = Config {
            mode: SessionMode::Router,
            listen: vec![router_endpoint],
            ..Config::default()
        };
        Communicator::open("router", &cfg).unwrap()
    });
    // Opened before the router exists: it waits for it.
    let early = client("early").unwrap();
    let router = router.join().unwrap();
    let late = client("late").unwrap();
    let rx = subscribe(&late, "via/router");
    let m = publish_until_received(&early, &rx, "via/router", b"relayed");
    assert_eq!(
        (m.sender.as_str(), &m.payload[..]),
        ("early", &b"relayed"[..])
    );
    drop(router);
    // With no router at all, opening fails with a clear error instead of hanging.
    let t0 = Instant::now();
    assert!(matches!(client("alone"), Err(Error::Transport(_))));
    assert!(t0.elapsed() < Duration::from_secs(30));
}
