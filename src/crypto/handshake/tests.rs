use super::*;
use hex_literal::hex;

// RFC 7748 §6.1.
const ALICE_PRIVATE: [u8; 32] =
    hex!("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const ALICE_PUBLIC: [u8; 32] =
    hex!("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const BOB_PRIVATE: [u8; 32] =
    hex!("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
const BOB_PUBLIC: [u8; 32] =
    hex!("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
const SHARED: [u8; 32] = hex!("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

const PSK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn pair(secret: [u8; 32]) -> EphemeralKeyPair {
    EphemeralKeyPair::from_secret(StaticSecret::from(secret))
}

/// Seal with `from`, open with `to`: true when the message comes through intact.
fn carries(from: &SessionKey, to: &SessionKey) -> bool {
    let mut buf = *b"spikes 1 2 3";
    let tag = from.seal(7, b"topic", &mut buf);
    to.open(7, b"topic", &mut buf, &tag).is_ok() && &buf == b"spikes 1 2 3"
}

/// Alice's tx key, seen through what it seals (ciphertext || tag).
fn alice_tx(me: &str, peer: &str, peer_pub: &[u8; 32], psk: Option<&Psk>) -> Vec<u8> {
    let shared = pair(ALICE_PRIVATE).agree(peer_pub).unwrap();
    let keys = derive_session_keys(&shared, me, &ALICE_PUBLIC, peer, peer_pub, psk);
    let mut buf = b"spikes 1 2 3".to_vec();
    let tag = keys.tx.seal(0, b"", &mut buf);
    [buf, tag.to_vec()].concat()
}

#[test]
fn x25519_rfc7748_section_6_1() {
    let (a, b) = (pair(ALICE_PRIVATE), pair(BOB_PRIVATE));
    assert_eq!(a.public_key(), ALICE_PUBLIC);
    assert_eq!(b.public_key(), BOB_PUBLIC);
    assert_eq!(a.agree(&BOB_PUBLIC).unwrap().0[..], SHARED);
    assert_eq!(b.agree(&ALICE_PUBLIC).unwrap().0[..], SHARED);
}

#[test]
fn both_sides_derive_matching_directions() {
    for psk in [None, Some(Psk::from_hex(PSK_HEX).unwrap())] {
        let (a, b) = (EphemeralKeyPair::generate(), EphemeralKeyPair::generate());
        let (a_pub, b_pub) = (a.public_key(), b.public_key());
        let ka = a.agree(&b_pub).unwrap();
        let kb = b.agree(&a_pub).unwrap();
        let at_a = derive_session_keys(&ka, "node-a", &a_pub, "node-b", &b_pub, psk.as_ref());
        let at_b = derive_session_keys(&kb, "node-b", &b_pub, "node-a", &a_pub, psk.as_ref());
        assert!(carries(&at_a.tx, &at_b.rx));
        assert!(carries(&at_b.tx, &at_a.rx));
        // The two directions are different keys: nothing sent can be reflected back.
        assert!(!carries(&at_a.tx, &at_a.rx));
        assert!(!carries(&at_a.tx, &at_b.tx));
    }
}

#[test]
fn ids_keys_and_psk_all_change_the_keys() {
    let psk = Psk::from_hex(PSK_HEX).unwrap();
    let other_psk = Psk::from_hex(&PSK_HEX.replace("1f", "20")).unwrap();
    let other_pub = EphemeralKeyPair::generate().public_key();
    let base = alice_tx("node-a", "node-b", &BOB_PUBLIC, None);
    let variants = [
        alice_tx("node-x", "node-b", &BOB_PUBLIC, None),
        alice_tx("node-a", "node-x", &BOB_PUBLIC, None),
        alice_tx("node-a", "node-b", &other_pub, None),
        alice_tx("node-a", "node-b", &BOB_PUBLIC, Some(&psk)),
        alice_tx("node-a", "node-b", &BOB_PUBLIC, Some(&other_psk)),
        // Same bytes split differently between the two ids.
        alice_tx("node-", "anode-b", &BOB_PUBLIC, None),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(&base, v, "variant {i} derived the base keys");
    }
    assert_ne!(variants[3], variants[4]);
    assert_eq!(base, alice_tx("node-a", "node-b", &BOB_PUBLIC, None));
}

/// Fixed vectors of the schedule in the module header, computed independently with
/// Python's `cryptography` (X25519, HKDF, AESGCM) from the RFC 7748 keys above, ids
/// "node-a"/"node-b" and the PSK 00 01 .. 1f; Alice sorts first (0x85 < 0xde).
#[test]
fn key_schedule_known_answer() {
    let psk = Psk::from_hex(PSK_HEX).unwrap();
    for (psk, ct, tag, rx_iv) in [
        (None, CT_NO_PSK, TAG_NO_PSK, RX_IV_NO_PSK),
        (Some(&psk), CT_PSK, TAG_PSK, RX_IV_PSK),
    ] {
        let shared = pair(ALICE_PRIVATE).agree(&BOB_PUBLIC).unwrap();
        let keys =
            derive_session_keys(&shared, "node-a", &ALICE_PUBLIC, "node-b", &BOB_PUBLIC, psk);
        let mut buf = *b"evospikenet";
        assert_eq!(hex::encode(keys.tx.seal(0, b"aad", &mut buf)), tag);
        assert_eq!(hex::encode(buf), ct);
        assert_eq!(hex::encode(keys.rx.nonce(0)), rx_iv);
    }
}
const CT_NO_PSK: &str = "94b4a929e603f8d4b3f733";
const TAG_NO_PSK: &str = "92abab5caa1e8ea06e7e34728a2eeb29";
const RX_IV_NO_PSK: &str = "6bd784ae3c66b1e84dec3ae9";
const CT_PSK: &str = "7beaea49f4cb46680d8108";
const TAG_PSK: &str = "87d0a6118df64aceec7841b93571f5c8";
const RX_IV_PSK: &str = "d813322d380cca56d545d8c8";

/// Low-order points of Curve25519 (and their non-canonical encodings), as listed by
/// Bernstein (cr.yp.to/ecdh.html) and blocked by libsodium: X25519 with any of them is
/// all zero.
#[test]
fn rejects_low_order_and_own_keys() {
    let low_order = [
        [0u8; 32],
        hex!("0100000000000000000000000000000000000000000000000000000000000000"),
        hex!("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex!("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        hex!("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex!("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex!("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ];
    for point in low_order {
        let err = EphemeralKeyPair::generate().agree(&point).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains("low-order"));
    }
    let err = pair(ALICE_PRIVATE).agree(&ALICE_PUBLIC).unwrap_err();
    assert!(err.to_string().contains("our own"));
}

#[test]
fn parses_hex_from_copy_and_paste() {
    let plain = hex::encode(BOB_PUBLIC);
    let colons = BOB_PUBLIC.map(|b| format!("{b:02X}")).join(":");
    let wrapped = format!("  {}\r\n\t{} \n", &plain[..32], &plain[32..].to_uppercase());
    let grouped: Vec<&str> = (0..64).step_by(8).map(|i| &plain[i..i + 8]).collect();
    for text in [plain.clone(), colons, wrapped, grouped.join(" ")] {
        assert_eq!(parse_public_key_hex(&text).unwrap(), BOB_PUBLIC, "{text:?}");
    }
    assert_eq!(parse_public_key(&BOB_PUBLIC).unwrap(), BOB_PUBLIC);
}

#[test]
fn rejects_bad_keys_without_echoing_them() {
    let plain = hex::encode(BOB_PUBLIC);
    let bad_texts = [
        String::new(),
        plain[..62].to_string(),
        format!("{plain}00"),
        format!("0x{}", &plain[2..]),
        format!("{}zz", &plain[..62]),
        plain.replacen('d', "g", 1),
        fingerprint(&BOB_PUBLIC),
    ];
    for bad in &bad_texts {
        let err = parse_public_key_hex(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("64 hexadecimal") || msg.contains("only hexadecimal"));
        assert!(
            bad.is_empty() || !msg.contains(&bad[..8]),
            "echoes the value: {msg}"
        );
    }
    let err = parse_public_key_hex(&fingerprint(&BOB_PUBLIC)).unwrap_err();
    assert!(err.to_string().contains("fingerprint"));
    for len in [0, 31, 33, 64] {
        let err = parse_public_key(&vec![0xab; len]).unwrap_err().to_string();
        assert!(err.contains("32 bytes") && !err.contains("ab"), "{err}");
    }
}

/// Expected strings from Python: `hashlib.sha256(b"evospikenet/v1/fingerprint" + key)`,
/// first 16 bytes, uppercase hex in groups of 4 joined by spaces.
#[test]
fn fingerprint_format_and_known_answer() {
    assert_eq!(
        fingerprint(&ALICE_PUBLIC),
        "6D74 AF22 A4C9 F6A8 C823 4BD9 A6E3 47FB"
    );
    assert_eq!(
        fingerprint(&BOB_PUBLIC),
        "7C01 5EAD 4888 52D8 E35F 41D7 8FDA 0E50"
    );
}

#[test]
fn identity_exchange_matches_and_needs_both_identities() {
    let (ia, ib, rogue) = (
        IdentityKey::generate(),
        IdentityKey::generate(),
        IdentityKey::generate(),
    );
    let (ea, eb) = (EphemeralKeyPair::generate(), EphemeralKeyPair::generate());
    let (pa, pb) = (ea.public_key(), eb.public_key());
    let (sa, sb) = (ia.public_key(), ib.public_key());
    let ta = Transcript {
        my_id: "a",
        my_pub: &pa,
        peer_id: "b",
        peer_pub: &pb,
        statics: Some((&sa, &sb)),
    };
    // The same exchange as b sees it.
    let tb = Transcript {
        my_id: ta.peer_id,
        peer_id: ta.my_id,
        my_pub: ta.peer_pub,
        peer_pub: ta.my_pub,
        statics: ta.statics.map(|(mine, peer)| (peer, mine)),
    };
    let salt = [5u8; 32];
    let ka = ea
        .agree_with_identity(&pb, &ia, &sb, ta.i_am_first())
        .unwrap();
    let kb = eb
        .agree_with_identity(&pa, &ib, &sa, tb.i_am_first())
        .unwrap();
    let at_a = derive_keys(&ka, &ta, Some(&salt));
    let at_b = derive_keys(&kb, &tb, Some(&salt));
    assert!(carries(&at_a.tx, &at_b.rx) && carries(&at_b.tx, &at_a.rx));
    assert_eq!(*at_a.chain, *at_b.chain);
    // Someone holding another identity key (claiming b's) derives other keys.
    let kr = eb
        .agree_with_identity(&pa, &rogue, &sa, tb.i_am_first())
        .unwrap();
    let at_r = derive_keys(&kr, &tb, Some(&salt));
    assert!(!carries(&at_a.tx, &at_r.rx));
    // Without identities, or with another salt (chain), the keys differ too.
    let plain = derive_keys(&ea.agree(&pb).unwrap(), &ta, Some(&salt));
    assert!(!carries(&plain.tx, &at_b.rx));
    let other_salt = derive_keys(&ka, &ta, Some(&[6u8; 32]));
    assert!(!carries(&other_salt.tx, &at_b.rx));
    assert_ne!(*other_salt.chain, *at_a.chain);
    assert!(format!("{ia:?}").contains(&ia.fingerprint()));
    assert!(!format!("{ia:?}").contains(ia.secret_hex().as_str()));
    let again = IdentityKey::from_hex(&ia.secret_hex()).unwrap();
    assert_eq!(again.public_key(), sa);
    for bad in ["", "00", &"0".repeat(64), &"g".repeat(64)] {
        assert!(IdentityKey::from_hex(bad).is_err());
    }
    assert_eq!(
        normalize_fingerprint("6d74af22:a4c9 f6a8 C8234BD9A6E347FB").unwrap(),
        "6D74 AF22 A4C9 F6A8 C823 4BD9 A6E3 47FB"
    );
    assert!(normalize_fingerprint("6D74 AF22").is_err());
}

#[test]
fn x25519_secrets_are_erased_from_memory_when_dropped() {
    let identity = IdentityKey::from_hex(&hex::encode(ALICE_PRIVATE)).unwrap();
    assert!(crate::crypto::drop_leaves_no_trace(
        identity,
        &ALICE_PRIVATE
    ));
    assert!(crate::crypto::drop_leaves_no_trace(
        pair(BOB_PRIVATE),
        &BOB_PRIVATE
    ));
    let keys = derive_session_keys(
        &pair(ALICE_PRIVATE).agree(&BOB_PUBLIC).unwrap(),
        "a",
        &ALICE_PUBLIC,
        "b",
        &BOB_PUBLIC,
        None,
    );
    let chain = keys.chain.to_vec();
    assert!(crate::crypto::drop_leaves_no_trace(keys, &chain));
}

#[test]
fn debug_is_redacted() {
    let pair = pair(ALICE_PRIVATE);
    let shown = format!("{pair:?}");
    assert!(shown.contains("<redacted>") && shown.contains("6D74 AF22"));
    assert!(!shown.contains("77076d0a") && !shown.contains("119, 7, 109"));
    let shared = pair.agree(&BOB_PUBLIC).unwrap();
    assert_eq!(format!("{shared:?}"), "SharedSecret(<redacted>)");
    let keys = derive_session_keys(&shared, "a", &ALICE_PUBLIC, "b", &BOB_PUBLIC, None);
    assert_eq!(format!("{keys:?}"), "SessionKeys(<redacted>)");
}
