use super::*;
use crate::crypto::keys::Psk;

const PSK: &str = "8f1a7b3c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

fn ring(hex: Option<&str>) -> Arc<KeyRing> {
    Arc::new(KeyRing::new(hex.map(|h| Psk::from_hex(h).unwrap())))
}

/// A publication as a subscription on `topic` opens it.
fn open(rx: &Receiver, msg: &[u8], topic: &str) -> Result<Opened> {
    rx.open(msg, topic, b"", Kind::Publish)
}

fn seal(s: &Sender, topic: &str, body: &[u8]) -> Vec<u8> {
    s.seal(Kind::Publish, topic, b"", 2, body.len(), |b| {
        b.extend_from_slice(body);
        Ok(())
    })
    .unwrap()
    .0
}

#[test]
fn round_trip_and_replay() {
    let keys = ring(Some(PSK));
    let tx = Sender::new("node-1", keys.clone());
    let rx = Receiver::new(keys, ReceiverPolicy::default());
    let m = seal(&tx, "ns/t", b"abc");
    let o = open(&rx, &m, "ns/t").unwrap();
    assert_eq!(
        (o.sender.as_str(), o.format, &o.payload[..]),
        ("node-1", 2, &b"abc"[..])
    );
    assert!(matches!(open(&rx, &m, "ns/t"), Err(Error::Replay)));
    assert!(matches!(
        open(&rx, &m, "ns/other"),
        Err(Error::Authentication)
    ));
    assert!(matches!(
        rx.open(&m, "ns/t", b"", Kind::Request),
        Err(Error::Authentication)
    ));
}

#[test]
fn reordered_messages_are_accepted() {
    let keys = ring(Some(PSK));
    let tx = Sender::new("n", keys.clone());
    let rx = Receiver::new(keys, ReceiverPolicy::default());
    let msgs: Vec<_> = (0..100).map(|_| seal(&tx, "t", b"x")).collect();
    for m in msgs.iter().rev() {
        open(&rx, m, "t").unwrap();
    }
    for m in &msgs {
        assert!(matches!(open(&rx, m, "t"), Err(Error::Replay)));
    }
}

#[test]
fn wrong_psk_plaintext_and_missing_key() {
    let tx = Sender::new("n", ring(Some(PSK)));
    let other = Receiver::new(
        ring(Some(&PSK.replace("8", "9"))),
        ReceiverPolicy::default(),
    );
    let m = seal(&tx, "t", b"x");
    assert!(matches!(open(&other, &m, "t"), Err(Error::Authentication)));
    let keyless = Receiver::new(ring(None), ReceiverPolicy::default());
    assert!(matches!(open(&keyless, &m, "t"), Err(Error::NoKey)));

    let plain_tx = Sender::new("p", ring(None));
    let pm = seal(&plain_tx, "t", b"clear");
    let o = open(&keyless, &pm, "t").unwrap();
    assert_eq!(o.payload, b"clear");
    let keyed = Receiver::new(ring(Some(PSK)), ReceiverPolicy::default());
    assert!(matches!(open(&keyed, &pm, "t"), Err(Error::Authentication)));
}

#[test]
fn restarted_sender_is_accepted_and_its_old_session_rejected() {
    let keys = ring(Some(PSK));
    let policy = ReceiverPolicy {
        freshness_ms: 60_000,
        session_grace_ms: 0,
    };
    let rx = Receiver::new(keys.clone(), policy);
    let first = Sender::new("n", keys.clone());
    let old: Vec<_> = (0..3).map(|_| seal(&first, "t", b"old")).collect();
    open(&rx, &old[0], "t").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let restarted = Sender::new("n", keys);
    // The new session's counter starts again at 0: no false replay.
    open(&rx, &seal(&restarted, "t", b"new"), "t").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    // Unseen messages of the retired session (grace 0) are now rejected.
    assert!(matches!(open(&rx, &old[1], "t"), Err(Error::Replay)));
    // A receiver that never saw the new session would still reject it after seeing it.
    let fresh = Receiver::new(ring(Some(PSK)), policy);
    open(&fresh, &seal(&restarted, "t", b"n2"), "t").unwrap();
    assert!(matches!(open(&fresh, &old[2], "t"), Err(Error::Replay)));
}

#[test]
fn stale_messages_are_rejected() {
    let keys = ring(Some(PSK));
    let tx = Sender::new("n", keys.clone());
    let m = seal(&tx, "t", b"x");
    let strict = Receiver::new(
        keys,
        ReceiverPolicy {
            freshness_ms: 0,
            session_grace_ms: 0,
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(3));
    assert!(matches!(open(&strict, &m, "t"), Err(Error::Replay)));
}

#[test]
fn many_senders_sharing_a_psk_never_share_a_nonce_stream() {
    let keys = ring(Some(PSK));
    let a = Sender::new("n", keys.clone());
    let b = Sender::new("n", keys);
    // Same node id, same counter, same plaintext: different ciphertexts.
    let ma = seal(&a, "t", b"same");
    let mb = seal(&b, "t", b"same");
    let (ha, la) = Header::parse(&ma).unwrap();
    let (hb, _) = Header::parse(&mb).unwrap();
    assert_eq!(ha.counter, hb.counter);
    assert_ne!(ha.session_id, hb.session_id);
    assert_ne!(ma[la..], mb[la..]);
}

#[test]
fn session_is_renewed_at_the_message_limit_and_receivers_follow() {
    let keys = ring(Some(PSK));
    let tx = Sender::with_session_limit("n", keys.clone(), 3);
    let rx = Receiver::new(keys, ReceiverPolicy::default());
    let headers: Vec<_> = (0..7)
        .map(|i| {
            let m = seal(&tx, "t", &[i]);
            assert_eq!(open(&rx, &m, "t").unwrap().payload, [i]);
            let (h, _) = Header::parse(&m).unwrap();
            (h.session_id, h.counter)
        })
        .collect();
    let counters: Vec<u64> = headers.iter().map(|h| h.1).collect();
    assert_eq!(counters, [0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(headers[0].0, headers[2].0);
    assert_ne!(headers[2].0, headers[3].0);
    assert_ne!(headers[3].0, headers[6].0);
}

#[test]
fn psk_rotation_accepts_both_keys_for_the_grace_period_only() {
    let old = Psk::from_hex(PSK).unwrap();
    let new = Psk::from_hex(&PSK.replace('8', "7")).unwrap();
    let (old_id, new_id) = (old.key_id(), new.key_id());
    let ring = KeyRing::new(Some(old));
    ring.rotate(new.clone(), 50, 30);
    // Accepted at once, sealed with only after `seal_after`.
    assert_eq!(ring.sealing_key().unwrap().key_id(), old_id);
    assert!(ring.by_id(new_id).is_some() && ring.by_id(old_id).is_some());
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(ring.sealing_key().unwrap().key_id(), new_id);
    assert_eq!(ring.key_ids(), vec![new_id, old_id]);
    std::thread::sleep(std::time::Duration::from_millis(30));
    ring.sweep();
    assert!(ring.by_id(old_id).is_none());
    assert_eq!(ring.key_ids(), vec![new_id]);
    // Rotating to the key already held changes nothing else.
    ring.rotate(new, 0, 0);
    assert_eq!(ring.key_ids(), vec![new_id]);
}

#[test]
fn dh_mode_opens_only_announced_sender_keys_and_refuses_plaintext() {
    let keys = ring(None);
    let group = Arc::new(GroupKeys::new(5_000));
    let rx = Receiver::with_group(keys.clone(), group.clone(), ReceiverPolicy::default());
    let plain = seal(&Sender::new("p", keys.clone()), "t", b"clear");
    assert!(open(&rx, &plain, "t").is_ok());
    group.enable();
    assert!(matches!(open(&rx, &plain, "t"), Err(Error::Authentication)));
    let tx = Sender::new("n", keys);
    let secret = GroupSecret::generate();
    tx.use_group_key(&secret);
    let m = seal(&tx, "t", b"dh");
    assert_eq!(Header::parse(&m).unwrap().0.mode, Mode::Dh);
    // Not announced yet: no session with this sender (named for the log).
    assert!(matches!(open(&rx, &m, "t"), Err(Error::NoSession(s)) if s == "n"));
    group.install("n", &secret);
    assert_eq!(open(&rx, &m, "t").unwrap().payload, b"dh");
    // Another node cannot claim the key announced for "n".
    let impostor = Sender::new("x", ring(None));
    impostor.use_group_key(&secret);
    assert!(open(&rx, &seal(&impostor, "t", b"i"), "t").is_err());
    // Nor can another key be passed off under the name "n": that fails its tag.
    let forger = Sender::new("n", ring(None));
    forger.use_group_key(&GroupSecret::generate());
    assert!(matches!(
        open(&rx, &seal(&forger, "t", b"f"), "t"),
        Err(Error::Authentication)
    ));
}

#[test]
fn a_session_evicted_from_a_full_table_is_not_accepted_again() {
    // Several instances of one node id can start in the same millisecond; their
    // sessions then tie on start time. Once more of them are seen than the table
    // holds, the evicted one must stay rejected: it is not a newer session.
    let psk = Psk::from_hex(PSK).unwrap();
    let rx = Receiver::new(ring(Some(PSK)), ReceiverPolicy::default());
    let start = now_ms();
    let msg = |session: u8, counter: u64| {
        let header = Header {
            mode: Mode::Psk,
            kind: Kind::Publish,
            key_id: psk.key_id(),
            sender: "n",
            session_id: [session; SESSION_ID_LEN],
            session_start_ms: start,
            time_offset_ms: 0,
            counter,
        };
        let key = psk.sender_key(&header.session_id, "n");
        envelope::seal(&header, "t", b"", Some(&key), 2, 1, |b| {
            b.push(session);
            Ok(())
        })
        .unwrap()
    };
    let first = msg(0, 0);
    open(&rx, &first, "t").unwrap();
    for session in 1..=SESSIONS_PER_SENDER as u8 {
        open(&rx, &msg(session, 0), "t").unwrap();
    }
    assert!(matches!(open(&rx, &first, "t"), Err(Error::Replay)));
    assert!(matches!(open(&rx, &msg(0, 1), "t"), Err(Error::Replay)));
    // The sessions still held keep working.
    for session in 1..=SESSIONS_PER_SENDER as u8 {
        open(&rx, &msg(session, 1), "t").unwrap();
    }
}

/// Two DH sender keys of "n", `old` drawn first, both installed in an enabled table.
fn two_epochs(grace_ms: u64) -> (Arc<GroupKeys>, GroupSecret, GroupSecret) {
    let group = Arc::new(GroupKeys::new(grace_ms));
    group.enable();
    let old = GroupSecret::generate();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let new = GroupSecret::generate();
    assert!(group.install("n", &old) && group.install("n", &new));
    (group, old, new)
}

fn dh_sender(secret: &GroupSecret) -> Sender {
    let tx = Sender::new("n", ring(None));
    tx.use_group_key(secret);
    tx
}

#[test]
fn a_forged_packet_naming_a_newer_sender_key_retires_nothing() {
    let (group, old, new) = two_epochs(0);
    let rx = Receiver::with_group(ring(None), group.clone(), ReceiverPolicy::default());
    let (old_tx, new_tx) = (dh_sender(&old), dh_sender(&new));
    open(&rx, &seal(&old_tx, "t", b"1"), "t").unwrap();
    let genuine = seal(&new_tx, "t", b"new");
    let mut junk = genuine.clone();
    *junk.last_mut().unwrap() ^= 1; // the tag no longer verifies
    assert!(matches!(open(&rx, &junk, "t"), Err(Error::Authentication)));
    std::thread::sleep(std::time::Duration::from_millis(3));
    group.sweep();
    assert_eq!(group.sessions_of("n").len(), 2);
    open(&rx, &seal(&old_tx, "t", b"2"), "t").unwrap();
    // The genuine message under the newer key does start the older key's grace (0).
    open(&rx, &genuine, "t").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    assert!(matches!(
        open(&rx, &seal(&old_tx, "t", b"3"), "t"),
        Err(Error::Authentication)
    ));
    group.sweep();
    assert_eq!(group.sessions_of("n"), vec![new.session_id]);
}

#[test]
fn a_sender_key_drawn_long_before_its_use_is_fresh_when_used() {
    // As after a slow rekey: the key was drawn ten minutes before the switch to it.
    let mut announcement = GroupSecret::generate().announcement().to_vec();
    let drawn = now_ms() - 600_000;
    announcement[SESSION_ID_LEN..SESSION_ID_LEN + 8].copy_from_slice(&drawn.to_be_bytes());
    let secret = GroupSecret::from_announcement(&announcement).unwrap();
    let group = Arc::new(GroupKeys::new(5_000));
    group.enable();
    group.install("n", &secret);
    let policy = ReceiverPolicy {
        freshness_ms: 1_000,
        session_grace_ms: 5_000,
    };
    let rx = Receiver::with_group(ring(None), group, policy);
    let tx = dh_sender(&secret);
    let m = seal(&tx, "t", b"now");
    let (header, _) = Header::parse(&m).unwrap();
    assert!(header.session_start_ms >= drawn + 600_000);
    assert_eq!(open(&rx, &m, "t").unwrap().payload, b"now");
}

#[test]
fn a_rotated_out_psk_opens_nothing_after_the_grace_cached_keys_included() {
    let (psk1, psk2) = (PSK, PSK.replace('8', "7"));
    let keys = ring(Some(psk1));
    let node = Arc::new(NodeHistory::default());
    let rx = Receiver::for_node(
        keys.clone(),
        Arc::new(GroupKeys::new(5_000)),
        ReceiverPolicy::default(),
        &node,
    );
    // `c` keeps the old key; its session key is cached on first sight.
    let c = Sender::new("c", ring(Some(psk1)));
    open(&rx, &seal(&c, "t", b"1"), "t").unwrap();
    keys.rotate(Psk::from_hex(&psk2).unwrap(), 0, 20);
    open(&rx, &seal(&c, "t", b"2"), "t").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(matches!(
        open(&rx, &seal(&c, "t", b"3"), "t"),
        Err(Error::Authentication)
    ));
    // Once the ring erased the old PSK, the keys derived from it go on the next
    // authentic message, from the consumer's history and the node's alike.
    keys.sweep();
    let b = Sender::new("b", ring(Some(&psk2)));
    open(&rx, &seal(&b, "t", b"new"), "t").unwrap();
    let cached = |h: &ReplayHistory| h.senders["c"].sessions.iter().any(|s| s.key.is_some());
    assert!(!cached(&rx.history.lock()));
    assert!(!cached(&node.history.lock()));
    assert!(matches!(
        open(&rx, &seal(&c, "t", b"4"), "t"),
        Err(Error::Authentication)
    ));
}

#[test]
fn a_node_in_dh_mode_accepts_no_psk_mode_data() {
    // The node holds the PSK too (a PSK-authenticated DH setup), as does the forger.
    let keys = ring(Some(PSK));
    let group = Arc::new(GroupKeys::new(5_000));
    let forger = Sender::new("node-1", ring(Some(PSK)));
    let before = Receiver::with_group(keys.clone(), group.clone(), ReceiverPolicy::default());
    open(&before, &seal(&forger, "t", b"psk"), "t").unwrap();
    group.enable();
    let rx = Receiver::with_group(keys, group, ReceiverPolicy::default());
    for kind in [Kind::Publish, Kind::Request] {
        let m = forger
            .seal(kind, "t", b"", 2, 1, |b| {
                b.push(1);
                Ok(())
            })
            .unwrap()
            .0;
        assert!(matches!(
            rx.open(&m, "t", b"", kind),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            before.open(&m, "t", b"", kind),
            Err(Error::Authentication)
        ));
    }
    // Refused before any state changed.
    assert!(rx.history.lock().senders.is_empty());
    assert_eq!(
        before.history.lock().senders["node-1"].sessions[0]
            .window
            .newest(),
        0
    );
}

#[test]
fn a_consumer_started_later_refuses_what_the_node_already_accepted() {
    let keys = ring(Some(PSK));
    let group = Arc::new(GroupKeys::new(5_000));
    let node = Arc::new(NodeHistory::default());
    let consumer = || {
        Receiver::for_node(
            keys.clone(),
            group.clone(),
            ReceiverPolicy::default(),
            &node,
        )
    };
    let tx = Sender::new("n", keys.clone());
    let first = consumer();
    let m1 = seal(&tx, "t", b"1");
    open(&first, &m1, "t").unwrap();
    let second = consumer();
    assert!(matches!(open(&second, &m1, "t"), Err(Error::Replay)));
    // A message both match reaches each once.
    let m2 = seal(&tx, "t", b"2");
    open(&first, &m2, "t").unwrap();
    open(&second, &m2, "t").unwrap();
    for rx in [&first, &second, &consumer()] {
        assert!(matches!(open(rx, &m2, "t"), Err(Error::Replay)));
    }
    // Receivers of their own (`Receiver::new`) know nothing of the node.
    Receiver::new(keys.clone(), ReceiverPolicy::default())
        .open(&m1, "t", b"", Kind::Publish)
        .unwrap();
}

/// With pinned identities, holding a sender's key (every member does) is not enough
/// to pass as that sender: node-c seals "from node-a" under a's sender key, and
/// node-b, which requires sender tags, refuses it; a's own messages pass.
#[test]
fn a_member_cannot_make_another_accept_a_message_as_coming_from_a_third() {
    use zeroize::Zeroizing;
    let a_key = GroupSecret::generate();
    let tag_key = |b: u8| AuthKey::new(&Zeroizing::new([b; 32]));
    // node-a hands node-b its sender key and the key of its tags for b (0x0b), and
    // node-c the same sender key with another tag key (0x0c).
    let a = Sender::new("node-a", ring(None));
    a.require_sender_auth();
    a.add_auth_recipient(&a_key.session_id, "node-b", tag_key(0x0b));
    a.add_auth_recipient(&a_key.session_id, "node-c", tag_key(0x0c));
    a.use_group_key(&a_key);
    let b_group = Arc::new(GroupKeys::new(5_000));
    b_group.enable();
    b_group.require_sender_auth("node-b");
    b_group.install_handover("node-a", &a_key, Some(tag_key(0x0b)), 0);
    let b = Receiver::with_group(ring(None), b_group.clone(), ReceiverPolicy::default());
    let genuine = seal(&a, "t", b"from a");
    assert_eq!(Header::parse(&genuine).unwrap().0.mode, Mode::DhAuth);
    assert_eq!(open(&b, &genuine, "t").unwrap().payload, b"from a");

    // node-c: a's sender key, its own tag key for b (it does not hold a's).
    let forger = Sender::new("node-a", ring(None));
    forger.require_sender_auth();
    forger.add_auth_recipient(&a_key.session_id, "node-b", tag_key(0x0c));
    forger.use_group_key(&a_key);
    let forged = seal(&forger, "t", b"forged");
    assert!(matches!(open(&b, &forged, "t"), Err(Error::Authentication)));
    // Without any tag (mode 2), or with b's entry removed, it is refused too.
    let untagged = seal(&dh_sender(&a_key), "t", b"untagged");
    assert!(open(&b, &untagged, "t").is_err());
    let mut stripped = genuine.clone();
    let (sealed, _) = sender_auth::split_trailer(&genuine).unwrap();
    stripped.truncate(sealed.len());
    stripped.push(0);
    assert!(open(&b, &stripped, "t").is_err());
    // A genuine message moved to another topic fails its tag as well as its AEAD.
    assert!(open(&b, &seal(&a, "t", b"x"), "u").is_err());
}

#[test]
fn session_is_renewed_at_the_byte_limit_too() {
    let keys = ring(Some(PSK));
    let tx = Sender::with_limits("n", keys.clone(), u64::MAX, 200);
    let rx = Receiver::new(keys, ReceiverPolicy::default());
    let sessions: Vec<_> = (0..6)
        .map(|_| {
            let m = seal(&tx, "t", &[7; 90]);
            open(&rx, &m, "t").unwrap();
            Header::parse(&m).unwrap().0.session_id
        })
        .collect();
    // About 150 bytes a message: a new key after every two.
    assert_eq!(sessions[0], sessions[1]);
    assert_ne!(sessions[1], sessions[2]);
    assert_eq!(sessions[2], sessions[3]);
    assert_ne!(sessions[3], sessions[4]);
}

#[test]
fn using_the_same_sender_key_twice_never_restarts_its_counter() {
    let secret = GroupSecret::generate();
    let tx = dh_sender(&secret);
    let first = Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter;
    tx.use_group_key(&secret);
    let second = Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter;
    assert_eq!((first, second), (0, 1));
}

/// A node handed a sender key refuses what was sealed under it before the handover: a
/// copy recorded then (sent to other nodes, or to this node's previous run) is not
/// replayed to it.
#[test]
fn a_message_is_never_stamped_before_the_wall_clock_time_it_was_sealed_at() {
    // A handover's `valid_from` is taken from the wall clock: a message sealed after
    // it must never carry an earlier stamp (it would be refused as recorded).
    let tx = dh_sender(&GroupSecret::generate());
    for _ in 0..5_000 {
        let before = now_ms();
        let stamp = Header::parse(&seal(&tx, "t", b"x"))
            .unwrap()
            .0
            .timestamp_ms();
        assert!(
            stamp >= before,
            "stamped {stamp}, sealed at {before} or later"
        );
    }
}

#[test]
fn messages_sealed_before_the_handover_are_refused() {
    let key = GroupSecret::generate();
    let tx = dh_sender(&key);
    let recorded = seal(&tx, "t", b"old");
    std::thread::sleep(std::time::Duration::from_millis(3));
    let group = Arc::new(GroupKeys::new(5_000));
    group.enable();
    group.install_handover("n", &key, None, now_ms());
    let rx = Receiver::with_group(ring(None), group, ReceiverPolicy::default());
    assert!(matches!(
        rx.open(&recorded, "t", b"", Kind::Publish),
        Err(Error::Replay)
    ));
    let fresh = seal(&tx, "t", b"new");
    assert_eq!(
        rx.open(&fresh, "t", b"", Kind::Publish).unwrap().payload,
        b"new"
    );
}

#[test]
fn concurrent_sealing_uses_each_counter_once() {
    let keys = ring(Some(PSK));
    let tx = Arc::new(Sender::new("n", keys));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                (0..2000)
                    .map(|_| Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 8000);
}
