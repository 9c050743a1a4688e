//! The key manager's interleavings, one named scenario each, on the simulated network.

use super::sim::*;
use crate::crypto::handshake::{psk_salt, EphemeralKeyPair};
use crate::crypto::keys::Psk;
use crate::dh::auth::InitKey;
use crate::dh::machine::Action;
use crate::dh::message::{self, Init, FLAG_PSK, FLAG_REKEY, MAC_LEN};
use crate::dh::timers::*;

fn connected(auth: Auth) -> Sim {
    let mut sim = Sim::new(&["node-1", "node-2"], auth, 1);
    sim.settle(5_000).expect("first contact");
    sim
}

/// An INIT as a keyless attacker can make it: any claimed sender, a random MAC.
fn forged_init(from: &str, to: &str, base: Option<[u8; 16]>, ts: u64, rng: &mut Rng) -> Vec<u8> {
    let init = Init {
        flags: if base.is_some() { FLAG_REKEY } else { FLAG_PSK },
        key_id: Psk::from_hex(PSK).unwrap().key_id(), // public: it is in every header
        timestamp_ms: ts,
        ephemeral: EphemeralKeyPair::generate().public_key(),
        identity: None,
        base,
        mac: [0; MAC_LEN],
    };
    let mut id = [0u8; 16];
    id.iter_mut().for_each(|b| *b = rng.next() as u8);
    let mut m = message::encode_init_unsigned(from, to, &id, &init);
    m.extend((0..MAC_LEN).map(|_| rng.next() as u8));
    m
}

/// A valid first-contact INIT, as a node holding the PSK (an insider) makes it.
fn insider_init(from: &str, to: &str, ts: u64) -> Vec<u8> {
    let psk = Psk::from_hex(PSK).unwrap();
    let init = Init {
        flags: FLAG_PSK,
        key_id: psk.key_id(),
        timestamp_ms: ts,
        ephemeral: EphemeralKeyPair::generate().public_key(),
        identity: None,
        base: None,
        mac: [0; MAC_LEN],
    };
    let mut m = message::encode_init_unsigned(from, to, &[7; 16], &init);
    let mac = InitKey::first_contact(Some(&psk_salt(&psk)), None, FLAG_PSK).mac(&m);
    m.extend_from_slice(&mac);
    m
}

#[test]
fn manual_exchange_as_the_guide_shows_connects_both_ways() {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Manual, 2);
    let a = sim.nodes[0].m.initiate("node-2");
    let b = sim.nodes[1].m.initiate("node-1");
    let now = sim.now;
    let actions = sim.nodes[0].m.complete("node-2", &b, now).unwrap();
    sim.apply(0, actions);
    sim.run(200); // node-1's KEY reaches node-2 before node-2 completes: retried
    let actions = sim.nodes[1].m.complete("node-1", &a, now).unwrap();
    sim.apply(1, actions);
    assert!(sim.settle(3_000).is_some());
    assert_eq!(
        sim.nodes[0].m.peer_fingerprint("node-2"),
        sim.nodes[1].m.fingerprint(Some("node-1"))
    );
    // Completing twice, or without initiating, is refused.
    assert!(sim.nodes[0].m.complete("node-2", &b, now).is_err());
    assert!(sim.nodes[0].m.only_pending().is_err());
}

#[test]
fn automatic_first_contact_under_each_kind_of_authentication() {
    for auth in [Auth::Psk, Auth::Pins, Auth::PskAndPins] {
        let mut sim = Sim::new(&["node-1", "node-2", "node-3"], auth, 3);
        let t = sim
            .settle(5_000)
            .unwrap_or_else(|| panic!("{auth:?}: no session"));
        assert!(t < 2_000, "{auth:?}: {t} ms");
    }
}

#[test]
fn pinned_nodes_refuse_an_unpinned_identity() {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Pins, 4);
    // node-2 forgets its identity and claims another one: node-1 must not connect.
    let other = crate::crypto::handshake::IdentityKey::generate();
    let trusted = vec![(
        "node-1".to_string(),
        "0000 0000 0000 0000 0000 0000 0000 0000".into(),
    )];
    sim.nodes[1].identity_public = Some(other.public_key());
    sim.restart(1, settings("node-2", true, Some(other), trusted));
    sim.presence(1, 0, true);
    sim.presence(0, 1, true);
    sim.run(3_000);
    assert!(!sim.delivers(1, 0) && !sim.delivers(0, 1));
}

#[test]
fn simultaneous_rekeys_thirty_times_in_a_row_keep_both_directions() {
    for auth in [Auth::Psk, Auth::Pins] {
        let mut sim = connected(auth);
        for round in 0..30 {
            sim.rekey(0);
            sim.rekey(1);
            sim.run(20);
            assert!(sim.settle(5_000).is_some(), "{auth:?}: round {round}");
            assert!(!sim.nodes[0].m.rekey_in_progress() && !sim.nodes[1].m.rekey_in_progress());
        }
        assert_eq!(
            (sim.nodes[0].rekeys_done, sim.nodes[1].rekeys_done),
            (30, 30)
        );
    }
}

#[test]
fn crossing_first_contact_inits_settle_on_one_channel() {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Psk, 5);
    sim.faults.max_delay = 600; // both INITs are in flight at once
    sim.run(800);
    sim.faults = Faults::default();
    assert!(sim.settle(5_000).is_some());
    let [_, c1, _] = sim.nodes[0].m.channel_ids("node-2");
    let [_, c2, _] = sim.nodes[1].m.channel_ids("node-1");
    assert_eq!(c1, c2);
}

#[test]
fn a_forged_init_at_every_point_of_a_rekey_changes_nothing() {
    for cut in 0..40u64 {
        let mut sim = connected(Auth::Psk);
        sim.rekey(0);
        sim.run(cut); // the rekey is at some point of its way
        let base = sim.nodes[0].m.channel_ids("node-2")[1];
        for base in [None, base, sim.nodes[1].m.channel_ids("node-1")[1]] {
            let before = sim.nodes[1].m.channel_ids("node-1");
            let ts = sim.now.wall_ms + 1_000;
            let forged = forged_init("node-1", "node-2", base, ts, &mut sim.rng);
            let kinds = sim.deliver(1, &forged);
            assert!(kinds.iter().all(|k| k == "failure"), "cut {cut}: {kinds:?}");
            assert_eq!(sim.nodes[1].m.channel_ids("node-1"), before);
        }
        assert!(sim.settle(5_000).is_some(), "cut {cut}");
    }
}

#[test]
fn replayed_and_tampered_control_messages_change_nothing() {
    let mut sim = connected(Auth::Psk);
    sim.rekey(0);
    sim.rekey(1);
    assert!(sim.settle(5_000).is_some());
    let captured = sim.delivered.clone();
    let state = |sim: &Sim| {
        (
            sim.nodes[0].m.channel_ids("node-2"),
            sim.nodes[1].m.channel_ids("node-1"),
            sim.nodes[0].sealing,
            sim.nodes[1].sealing,
        )
    };
    let before = state(&sim);
    for (to, bytes) in &captured {
        let kinds = sim.deliver(*to, bytes);
        assert!(
            kinds.iter().all(|k| k == "failure"),
            "replay of type {} to {to} caused {kinds:?}",
            bytes[1]
        );
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            let kinds = sim.deliver(*to, &bad);
            assert!(
                kinds.iter().all(|k| k == "failure"),
                "flip at {i} caused {kinds:?}"
            );
        }
    }
    assert_eq!(state(&sim), before);
    assert!(sim.all_connected());
}

#[test]
fn a_restarted_peer_is_reached_again_by_a_first_contact() {
    let mut sim = connected(Auth::Psk);
    // node-2 restarts: same id, no memory. node-1 still holds the old channel.
    sim.restart(1, settings("node-2", true, None, Vec::new()));
    sim.presence(1, 0, true);
    assert!(sim.settle(5_000).is_some());
}

#[test]
fn a_rekey_the_peer_cannot_answer_falls_back_to_a_first_contact() {
    let mut sim = connected(Auth::Psk);
    // node-2 restarts but does not see node-1's presence: only node-1 can repair it.
    sim.restart(1, settings("node-2", true, None, Vec::new()));
    sim.rekey(0); // its INIT names a channel node-2 no longer holds: no answer
    sim.run(REKEY_FALLBACK_MS - 100);
    assert!(!sim.all_connected());
    let t = sim.settle(5_000).expect("fall-back");
    assert!(t <= 2_000, "{t} ms after the fall-back time");
}

#[test]
fn lost_and_duplicated_control_messages_are_retried_until_through() {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Psk, 6);
    sim.faults = Faults {
        drop: 500,
        duplicate: 300,
        max_delay: 50,
    };
    sim.run(3_000);
    sim.faults = Faults::default();
    assert!(sim.settle(6_000).is_some());
}

#[test]
fn the_sender_key_switches_once_every_peer_acknowledged_it() {
    let mut sim = Sim::new(&["node-1", "node-2", "node-3"], Auth::Psk, 7);
    sim.settle(5_000).unwrap();
    let old = sim.nodes[0].sealing;
    // node-3 hears nothing: node-1 keeps sealing with the old key until the time-out.
    let three = sim.index("node-3");
    sim.rekey(0);
    sim.wire.retain(|p| p.to != three);
    sim.faults.drop = 1000;
    sim.run(SWITCH_TIMEOUT_MS - 100);
    assert_eq!(
        sim.nodes[0].sealing, old,
        "switched before node-3 acknowledged"
    );
    sim.run(200);
    assert_ne!(sim.nodes[0].sealing, old, "no switch at the time-out");
    // With a working network, a rekey switches as soon as both acknowledged.
    sim.faults = Faults::default();
    sim.settle(8_000).unwrap();
    let before = sim.nodes[0].sealing;
    sim.rekey(0);
    sim.run(100);
    assert_ne!(sim.nodes[0].sealing, before);
    assert!(sim.all_connected());
}

#[test]
fn psk_revocation_drops_channels_made_under_the_old_key() {
    let mut sim = connected(Auth::Psk);
    let new = Psk::from_hex(&PSK.replace('8', "9")).unwrap();
    for n in &sim.nodes {
        n.keys.rotate(new.clone(), 0, 0);
    }
    std::thread::sleep(std::time::Duration::from_millis(3)); // the ring runs on real time
    let old_ids = sim.nodes[0].m.channel_ids("node-2");
    sim.run(TICK);
    assert!(!sim.all_connected(), "the old channel is still in use");
    assert!(sim.settle(5_000).is_some());
    assert_ne!(sim.nodes[0].m.channel_ids("node-2")[1], old_ids[1]);
}

#[test]
fn inits_are_rate_limited_and_fake_ids_claim_no_state() {
    let mut sim = connected(Auth::Psk);
    let before = sim.nodes[1].m.known_peers();
    // A keyless flood of fake ids: nothing is stored, nothing is answered.
    for i in 0..500 {
        let ts = sim.now.wall_ms + i;
        let forged = forged_init(&format!("fake-{i}"), "node-2", None, ts, &mut sim.rng);
        assert!(sim.deliver(1, &forged).iter().all(|k| k == "failure"));
    }
    assert_eq!(sim.nodes[1].m.known_peers(), before);
    // An insider's authentic INITs from one id: a burst is answered, then the rate.
    let mut answered = 0;
    for i in 0..(3 * INIT_BURST as u64) {
        let ts = sim.now.wall_ms + 1_000 + i;
        let kinds = sim.deliver(1, &insider_init("insider", "node-2", ts));
        answered += kinds.iter().filter(|k| *k == "send").count();
    }
    assert_eq!(answered, INIT_BURST as usize);
    // A real newcomer still gets in.
    sim.wire.clear();
    assert!(sim.settle(5_000).is_some());
}

/// Two connected nodes, and the INIT (stamped 10 ms from now) of a PSK-holding
/// "node-3" that node-2 answered.
fn node_2_answered_an_insider_init(seed: u64) -> (Sim, Vec<u8>) {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Psk, seed);
    sim.settle(5_000).unwrap();
    let init = insider_init("node-3", "node-2", sim.now.wall_ms + 10);
    assert!(sim.deliver(1, &init).contains(&"send".to_string()));
    (sim, init)
}

#[test]
fn a_captured_init_cannot_be_replayed_after_its_peer_sent_a_newer_one() {
    let (mut sim, first) = node_2_answered_an_insider_init(8);
    let ts = sim.now.wall_ms;
    let older = insider_init("node-3", "node-2", ts + 5);
    assert!(
        sim.deliver(1, &first).is_empty(),
        "same INIT answered twice"
    );
    assert!(sim.deliver(1, &older).is_empty(), "an older INIT answered");
    let stale = insider_init("node-4", "node-2", ts - 120_000);
    assert!(sim.deliver(1, &stale).is_empty(), "a stale INIT answered");
}

#[test]
fn a_new_sender_key_travels_over_the_new_channel_of_its_rekey() {
    let mut sim = connected(Auth::Psk);
    let old = sim.nodes[0].m.channel_ids("node-2")[1];
    let from = sim.sent.len();
    sim.rekey(0);
    sim.settle(5_000).unwrap();
    let new = sim.nodes[0].m.channel_ids("node-2")[1];
    assert_ne!(old, new);
    // Every KEY node-1 sent node-2 since the rekey is sealed under the new channel.
    let keys: Vec<Vec<u8>> = sim.sent[from..]
        .iter()
        .filter(|(to, bytes)| *to == 1 && bytes[1] == 3)
        .map(|(_, bytes)| bytes.clone())
        .collect();
    assert!(!keys.is_empty());
    for bytes in keys {
        let m = message::Message::parse(&bytes).unwrap();
        assert_eq!(Some(m.exchange_id), new);
    }
}

#[test]
fn a_spoofed_presence_delete_erases_no_live_peer() {
    for auth in [Auth::Psk, Auth::Pins] {
        let mut sim = connected(auth);
        let held = sim.nodes[0].held.clone();
        // Anyone can declare a token under node-2's name and drop it.
        sim.presence(0, 1, false);
        sim.run(2 * PEER_GONE_MS);
        assert!(sim.all_connected(), "{auth:?}");
        assert_eq!(
            sim.nodes[0].held.get("node-2"),
            held.get("node-2"),
            "{auth:?}"
        );
        assert!(sim.delivers(1, 0), "{auth:?}: node-2's traffic is refused");
    }
}

#[test]
fn a_peer_that_really_left_is_forgotten_and_its_keys_erased() {
    let mut sim = connected(Auth::Psk);
    sim.faults.drop = 1000; // node-2 is gone: nothing reaches it any more
    sim.presence(0, 1, false);
    sim.run(PEER_GONE_MS - 100);
    assert!(
        sim.nodes[0].held.contains_key("node-2"),
        "erased before asking"
    );
    sim.run(200);
    assert!(!sim.nodes[0].held.contains_key("node-2"));
    assert_eq!(sim.nodes[0].m.channel_ids("node-2"), [None, None, None]);
}

#[test]
fn a_captured_init_stays_refused_after_its_sender_state_went() {
    let (mut sim, init) = node_2_answered_an_insider_init(9);
    // node-3 never completes: node-2 drops what it held for it.
    sim.run(NEXT_TTL_MS + 100);
    assert!(!sim.nodes[1].m.known_peers().contains(&"node-3".to_string()));
    assert!(sim.deliver(1, &init).is_empty(), "a replayed INIT answered");
}

#[test]
fn fake_presence_costs_a_bounded_rate_of_inits_and_delays_no_newcomer() {
    let mut sim = Sim::new(&["node-1", "node-2"], Auth::Psk, 10);
    let now = sim.now;
    for i in 0..2_000 {
        let actions = sim.nodes[0]
            .m
            .presence(&format!("fake-{i}"), true, None, now);
        sim.apply(0, actions);
    }
    sim.run(2_000);
    let bound = 3 * FIRST_CONTACTS_PER_SECOND as usize; // the burst, then 2 s of the rate
    assert!(
        sim.sent_nowhere <= bound,
        "{} INITs to fake peers",
        sim.sent_nowhere
    );
    // The real peer initiates towards node-1 too: it gets its session all the same.
    assert!(sim.settle(5_000).is_some());
    // A token going away for a peer without a channel erases nothing and asks nothing.
    let before = sim.sent_nowhere;
    for i in 0..2_000 {
        let actions = sim.nodes[0]
            .m
            .presence(&format!("fake-{i}"), false, None, sim.now);
        assert!(actions
            .iter()
            .all(|a| !matches!(a, Action::RetireSender(_))));
        sim.apply(0, actions);
    }
    assert_eq!(sim.sent_nowhere, before);
}
