//! What the fuzz targets check, as plain functions on a byte slice.
//!
//! Each function feeds its input to one family of parsers of network bytes and asserts
//! properties that must hold for *any* input: no panic, and where a parse succeeds, that
//! the result is consistent (it re-encodes to the same bytes, an accepted message is never
//! accepted twice, an error never echoes key material). The libFuzzer targets in
//! `fuzz_targets/` call them; so does `tests/fuzz_corpus.rs` (stable Rust, CI), which
//! includes this file and also writes the seed corpus from `seeds`.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use evospikenet::codec::{numeric_itemsize, parse_array, write_array_trailer, Format};
use evospikenet::crypto::envelope::{self, Header, Kind, Mode, SESSION_ID_LEN};
use evospikenet::crypto::group::{GroupKeys, GroupSecret, ANNOUNCEMENT_LEN};
use evospikenet::crypto::handshake::{
    normalize_fingerprint, parse_public_key, parse_public_key_hex, IdentityKey,
};
use evospikenet::crypto::keys::{Psk, SessionKey};
use evospikenet::crypto::sender_auth::{append_trailer, recipient_id, AuthKey};
use evospikenet::crypto::session::{KeyRing, Opened, Receiver, ReceiverPolicy};
use evospikenet::dh::message::{open_sealed, Body, Handover, Message};
use evospikenet::dh::{Action, Machine, Now, Settings};
use evospikenet::error::Error;

/// A target's check: panics if the input breaks a property.
pub type Check = fn(&[u8]);

/// The targets, by the name of their folder under `fuzz/corpus/`.
pub const TARGETS: [(&str, Check); 4] = [
    ("envelope", envelope),
    ("codec", codec),
    ("control", control),
    ("keys", keys),
];

/// The PSK the envelope seeds are sealed with (a test value, not a secret).
pub const PSK_HEX: &str = "6a0f3c9e2b714d58a6e1f0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
/// A PSK the receivers do not hold.
pub const OTHER_PSK_HEX: &str = "11f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddee";
/// Topic every envelope seed is sealed on.
pub const TOPIC: &str = "evospikenet/fuzz/t";
/// The request binding of the reply seeds (requester id, session id, counter).
pub const BINDING: &[u8] =
    b"\x06node-2\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\0\0\0\0\0\0\0\x07";
/// The sender of the seeds, and the one whose DH-mode sender key the receivers hold.
pub const SENDER: &str = "node-1";
/// Session start of the seeds (a fixed date: the receivers here accept any age).
pub const START_MS: u64 = 1_700_000_000_000;
/// Pairwise key and IV the control seeds are sealed under.
pub const CONTROL_KEY: [u8; 32] = [0x3c; 32];
pub const CONTROL_IV: [u8; 12] = [0x9a; 12];

fn psk() -> &'static Arc<KeyRing> {
    static RING: OnceLock<Arc<KeyRing>> = OnceLock::new();
    RING.get_or_init(|| Arc::new(KeyRing::new(Some(Psk::from_hex(PSK_HEX).unwrap()))))
}

/// The DH-mode sender key of `SENDER` (a fixed announcement).
pub fn group_secret() -> GroupSecret {
    let mut a = Vec::with_capacity(ANNOUNCEMENT_LEN);
    a.extend_from_slice(&[0x5e; SESSION_ID_LEN]);
    a.extend_from_slice(&(START_MS + 1).to_be_bytes());
    a.extend((0..ANNOUNCEMENT_LEN - SESSION_ID_LEN - 8).map(|i| i as u8 ^ 0xa5));
    GroupSecret::from_announcement(&a).unwrap()
}

/// Receivers as nodes run them: no key (plaintext only), a PSK, and a PSK node in DH mode
/// holding `SENDER`'s sender key. Their freshness window is unbounded so that the seeds
/// (sealed at a fixed date) reach the replay window; `strict` has the default policy.
struct Receivers {
    plain: Receiver,
    psk: Receiver,
    dh: Receiver,
    strict: Receiver,
}

fn receivers() -> Receivers {
    let policy = ReceiverPolicy {
        freshness_ms: u64::MAX,
        session_grace_ms: 60_000,
    };
    let group = Arc::new(GroupKeys::new(60_000));
    group.install(SENDER, &group_secret());
    group.enable();
    Receivers {
        plain: Receiver::new(Arc::new(KeyRing::new(None)), policy),
        psk: Receiver::new(psk().clone(), policy),
        dh: Receiver::with_group(psk().clone(), group, policy),
        strict: Receiver::new(psk().clone(), ReceiverPolicy::default()),
    }
}

/// Open `msg` as the receive path does: the kind and binding a consumer would expect.
fn open(rx: &Receiver, msg: &[u8]) -> Result<Opened, Error> {
    let kind = Header::parse(msg)
        .map(|(h, _)| h.kind)
        .unwrap_or(Kind::Publish);
    let binding: &[u8] = if kind == Kind::Reply { BINDING } else { b"" };
    rx.open(msg, TOPIC, binding, kind)
}

/// An opened message's payload goes on to the codec, as in `comm::accept`.
fn decode(opened: &Opened) {
    if let Ok(Format::Numpy) = Format::from_byte(opened.format) {
        check_array(&opened.payload);
    }
}

/// Wire messages: `Header::parse`, then `Receiver::open` in plaintext, PSK and DH mode.
///
/// The input is tried as one message, and also as a sequence of messages (see `frames`)
/// fed to the same receivers, which exercises the per-sender session table and the
/// replay window: a message is never accepted twice.
pub fn envelope(data: &[u8]) {
    if let Ok((h, len)) = Header::parse(data) {
        assert_eq!(len, h.encoded_len());
        let mut rewritten = Vec::with_capacity(len);
        h.write(&mut rewritten);
        assert_eq!(
            rewritten,
            data[..len],
            "a parsed header re-encodes identically"
        );
    }
    let rx = receivers();
    for (name, r) in [("psk", &rx.psk), ("dh", &rx.dh), ("strict", &rx.strict)] {
        if let Ok(o) = open(r, data) {
            assert_eq!(o.sender, Header::parse(data).unwrap().0.sender);
            assert!(o.payload.len() < data.len());
            decode(&o);
            assert!(
                matches!(open(r, data), Err(Error::Replay)),
                "{name}: the same message accepted twice"
            );
        }
    }
    if let Ok(o) = open(&rx.plain, data) {
        assert_eq!(Header::parse(data).unwrap().0.mode, Mode::Plain);
        decode(&o);
    }

    let rx = receivers();
    let mut seen = [HashSet::new(), HashSet::new()];
    for frame in frames(data) {
        let _ = open(&rx.plain, frame);
        let _ = open(&rx.strict, frame);
        for (r, seen) in [&rx.psk, &rx.dh].into_iter().zip(&mut seen) {
            if let Ok(o) = open(r, frame) {
                assert!(
                    seen.insert((o.sender.clone(), o.session_id, o.counter)),
                    "message {} of session {:02x?} accepted twice",
                    o.counter,
                    o.session_id
                );
            }
        }
    }
}

/// A frame length at or above this is a back-reference: frame number `length - REPEAT`
/// once more. A replay then costs the fuzzer a two-byte mutation, not a copy of a whole
/// message at the right offset.
pub const REPEAT: u16 = 0xFF00;

/// Split `data` into frames: a u16 little-endian length, then that many bytes (the last
/// frame takes what is left), or a back-reference (see `REPEAT`).
pub fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    while data.len() >= 2 {
        let n = u16::from_le_bytes([data[0], data[1]]);
        data = &data[2..];
        if n >= REPEAT {
            if let Some(&earlier) = out.get(usize::from(n - REPEAT)) {
                out.push(earlier);
            }
            continue;
        }
        let (frame, rest) = data.split_at(usize::from(n).min(data.len()));
        out.push(frame);
        data = rest;
    }
    out
}

/// Join messages into the framing `frames` reads.
pub fn framed(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Payload codec: `Format::from_byte`, `numeric_itemsize`, `parse_array`.
pub fn codec(data: &[u8]) {
    if let Some(&b) = data.first() {
        if let Ok(f) = Format::from_byte(b) {
            assert_eq!(f as u8, b);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(size) = numeric_itemsize(text) {
            assert!((1..=32).contains(&size));
        }
    }
    check_array(data);
}

fn check_array(payload: &[u8]) {
    let Ok(meta) = parse_array(payload) else {
        return;
    };
    let itemsize = numeric_itemsize(meta.dtype).expect("a parsed dtype is numeric");
    let count: usize = meta.shape.iter().product();
    assert_eq!(count * itemsize, meta.data_len);
    let mut rebuilt = payload[..meta.data_len].to_vec();
    write_array_trailer(&mut rebuilt, meta.dtype, &meta.shape).unwrap();
    assert_eq!(rebuilt, payload, "a parsed trailer re-encodes identically");
}

fn control_key() -> SessionKey {
    SessionKey::from_key_and_iv(&CONTROL_KEY, &CONTROL_IV)
}

/// The wall clock of the machine the control inputs are fed to (the INIT seeds carry
/// timestamps just after it).
pub const CONTROL_WALL_MS: u64 = 1_800_000_000_000;

/// Key-management messages: `Message::parse` (the signed part is a prefix, ids are
/// sane), `open_sealed` under a fixed key, and a fresh automatic-mode node (holding the
/// seeds' PSK) fed the input: one message can make it answer an INIT (drawing the
/// sender-auth key of its answer), never install or use a key, report an exchange or
/// retire a peer.
pub fn control(data: &[u8]) {
    let key = control_key();
    if let Ok(m) = Message::parse(data) {
        assert!(data.starts_with(m.signed));
        for id in [m.from, m.to] {
            assert!(!id.is_empty() && id.len() <= 255);
        }
        if let Body::Resp { mac_signed, .. } = m.body {
            assert!(data.starts_with(mac_signed) && mac_signed.len() + 32 == data.len());
        }
        if let Body::Key { sealed } | Body::Ack { sealed } = m.body {
            assert_eq!(m.signed.len() + sealed.len(), data.len());
        }
        if let Body::Resp { sealed, .. } | Body::Key { sealed } | Body::Ack { sealed } = m.body {
            if let Ok((_, plain)) = open_sealed(&key, m.signed, sealed) {
                if let Body::Key { .. } = m.body {
                    let h = Handover::parse(&plain).expect("right length");
                    assert_eq!(*h.encode(), *plain);
                }
            }
        }
    }
    let settings = Settings {
        node_id: "node-2".into(),
        auto: true,
        identity: None,
        trusted: Vec::new(),
        rekey_after_ms: u64::MAX / 4,
        init_freshness_ms: 60_000,
    };
    let now = Now {
        ms: 0,
        wall_ms: CONTROL_WALL_MS,
    };
    let mut machine = Machine::new(settings, psk().clone(), now);
    let _ = machine.poll(now);
    for action in machine.on_message(data, now.plus(1)) {
        assert!(
            matches!(
                action,
                Action::Send { .. } | Action::AuthKey { .. } | Action::Failure(_)
            ),
            "one message made a fresh node act: {action:?}"
        );
    }
}

/// Whether `text` holds a run of 16 or more hex digits, as an error message that echoed
/// (part of) a key given as hex would.
fn has_hex_run(text: &str) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .any(|run| run.len() >= 16)
}

/// Key and fingerprint text, raw public keys, sender-key announcements.
pub fn keys(data: &[u8]) {
    if let Ok(k) = parse_public_key(data) {
        assert_eq!(k[..], *data);
    }
    if let Ok(g) = GroupSecret::from_announcement(data) {
        assert_eq!(*g.announcement(), *data);
    }
    let text = String::from_utf8_lossy(data);
    match Psk::from_hex(&text) {
        Ok(p) => assert_eq!(Psk::from_hex(text.trim()).unwrap().key_id(), p.key_id()),
        Err(e) => assert!(!has_hex_run(&e.to_string()), "PSK error echoes its input"),
    }
    match IdentityKey::from_hex(&text) {
        Ok(k) => {
            let again = IdentityKey::from_hex(&k.secret_hex()).unwrap();
            assert_eq!(again.public_key(), k.public_key());
        }
        Err(e) => assert!(!has_hex_run(&e.to_string()), "identity error echoes input"),
    }
    if let Ok(k) = parse_public_key_hex(&text) {
        assert_eq!(parse_public_key_hex(&hex::encode(k)).unwrap(), k);
    }
    if let Ok(fp) = normalize_fingerprint(&text) {
        assert_eq!(fp.len(), 39);
        assert_eq!(normalize_fingerprint(&fp).unwrap(), fp);
    }
}

/// The seed corpus: real messages, and the malformations worth starting from.
pub mod seeds {
    use super::*;
    use evospikenet::crypto::envelope::{FIXED_HEADER_LEN, MAX_SENDER_LEN};
    use evospikenet::crypto::handshake::psk_salt;
    use evospikenet::dh::auth::InitKey;
    use evospikenet::dh::message::{
        encode_ack, encode_init_unsigned, encode_key, encode_resp, Init, FLAG_IDENTITY, FLAG_PSK,
        FLAG_REKEY, MAC_LEN,
    };

    pub type Seed = (String, Vec<u8>);

    /// A message as `Sender::seal` builds it, with every header field chosen.
    pub struct Msg<'a> {
        pub mode: Mode,
        pub kind: Kind,
        pub sender: &'a str,
        pub session: u8,
        pub start_ms: u64,
        pub offset_ms: u32,
        pub counter: u64,
        pub format: u8,
        pub payload: &'a [u8],
        pub psk: &'a str,
    }

    impl Default for Msg<'_> {
        fn default() -> Self {
            Msg {
                mode: Mode::Psk,
                kind: Kind::Publish,
                sender: SENDER,
                session: 1,
                start_ms: START_MS,
                offset_ms: 5,
                counter: 0,
                format: Format::Json as u8,
                payload: br#"{"spikes": [1, 2, 3], "step": 7}"#,
                psk: PSK_HEX,
            }
        }
    }

    impl Msg<'_> {
        pub fn seal(&self) -> Vec<u8> {
            let psk = Psk::from_hex(self.psk).unwrap();
            let group = group_secret();
            let (session_id, start_ms, key_id, key) = match self.mode {
                Mode::Plain => ([self.session; 16], self.start_ms, Default::default(), None),
                Mode::Psk => {
                    let id = [self.session; 16];
                    let key = psk.sender_key(&id, self.sender);
                    (id, self.start_ms, psk.key_id(), Some(key))
                }
                Mode::Dh | Mode::DhAuth => (
                    group.session_id,
                    group.start_ms,
                    Default::default(),
                    Some(group.session_key()),
                ),
            };
            let header = Header {
                mode: self.mode,
                kind: self.kind,
                key_id,
                sender: self.sender,
                session_id,
                session_start_ms: start_ms,
                time_offset_ms: self.offset_ms,
                counter: self.counter,
            };
            let binding: &[u8] = if self.kind == Kind::Reply {
                BINDING
            } else {
                b""
            };
            let mut msg = envelope::seal(
                &header,
                TOPIC,
                binding,
                key.as_ref(),
                self.format,
                self.payload.len(),
                |b| {
                    b.extend_from_slice(self.payload);
                    Ok(())
                },
            )
            .unwrap();
            if self.mode == Mode::DhAuth {
                // Tags for node-2 (the fuzzed receivers do not require them).
                let key = AuthKey::new(&zeroize::Zeroizing::new([0x42; 32]));
                append_trailer(&mut msg, TOPIC, binding, &[(recipient_id("node-2"), key)]);
            }
            msg
        }
    }

    fn array(data: &[u8], dtype: &str, shape: &[usize]) -> Vec<u8> {
        let mut out = data.to_vec();
        write_array_trailer(&mut out, dtype, shape).unwrap();
        out
    }

    /// A trailer written by hand, for shapes `write_array_trailer` would not describe.
    fn trailer(data: &[u8], dims: &[u64], dtype: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(dtype);
        out.push(dims.len() as u8);
        out.push(dtype.len() as u8);
        out
    }

    fn seed(name: &str, bytes: Vec<u8>) -> Seed {
        (name.to_owned(), bytes)
    }

    pub fn envelope() -> Vec<Seed> {
        let spikes: Vec<u8> = [3u32, 17, 40, 41]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect();
        let numpy = array(&spikes, "<u4", &[4]);
        let json = Msg::default().seal();
        let long_sender = "n".repeat(MAX_SENDER_LEN);
        let mut out = vec![
            seed("psk_publish_json", json.clone()),
            seed(
                "psk_publish_numpy",
                Msg {
                    format: Format::Numpy as u8,
                    payload: &numpy,
                    counter: 1,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_publish_raw",
                Msg {
                    format: Format::Raw as u8,
                    payload: b"\x00\x01\x02",
                    counter: 2,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_request",
                Msg {
                    kind: Kind::Request,
                    counter: 3,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_reply",
                Msg {
                    kind: Kind::Reply,
                    counter: 4,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_reply_remote_error",
                Msg {
                    kind: Kind::Reply,
                    counter: 5,
                    format: Format::RemoteError as u8,
                    payload: b"the service failed",
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_unknown_format",
                Msg {
                    counter: 6,
                    format: 0x42,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_empty_payload",
                Msg {
                    counter: 7,
                    payload: b"",
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_extreme_counter_and_offset",
                Msg {
                    counter: u64::MAX,
                    offset_ms: u32::MAX,
                    start_ms: u64::MAX - 1,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_longest_sender",
                Msg {
                    sender: &long_sender,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "psk_other_key",
                Msg {
                    psk: OTHER_PSK_HEX,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "dh_publish",
                Msg {
                    mode: Mode::Dh,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "dh_publish_numpy",
                Msg {
                    mode: Mode::Dh,
                    counter: 1,
                    format: Format::Numpy as u8,
                    payload: &numpy,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "dh_auth_publish",
                Msg {
                    mode: Mode::DhAuth,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "dh_unknown_sender",
                Msg {
                    mode: Mode::Dh,
                    sender: "node-9",
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "plain_publish",
                Msg {
                    mode: Mode::Plain,
                    ..Msg::default()
                }
                .seal(),
            ),
            seed(
                "plain_numpy",
                Msg {
                    mode: Mode::Plain,
                    format: Format::Numpy as u8,
                    payload: &numpy,
                    ..Msg::default()
                }
                .seal(),
            ),
        ];
        let header_len = FIXED_HEADER_LEN + SENDER.len();
        out.push(seed("header_only", json[..header_len].to_vec()));
        out.push(seed("header_and_tag_only", {
            let mut m = json[..header_len].to_vec();
            m.extend_from_slice(&[0; 16]);
            m
        }));
        out.push(seed("truncated_tag", json[..json.len() - 1].to_vec()));
        let mut huge = json[..FIXED_HEADER_LEN].to_vec();
        huge[7] = 255; // claims a 255-byte sender id in a 44-byte message
        out.push(seed("sender_length_beyond_end", huge));
        let mut flipped = json.clone();
        flipped[header_len + 3] ^= 0x40;
        out.push(seed("ciphertext_bit_flip", flipped));

        // Sequences (see `frames`): reordering, a duplicate, a restarted sender, a counter
        // far ahead of the window, DH and PSK traffic of one sender.
        let m = |session: u8, start_ms: u64, counter: u64| {
            Msg {
                session,
                start_ms,
                counter,
                ..Msg::default()
            }
            .seal()
        };
        let (a0, a1, a2) = (m(1, START_MS, 0), m(1, START_MS, 1), m(1, START_MS, 2));
        let b0 = m(2, START_MS + 10, 0);
        let far = m(1, START_MS, 100_000);
        out.push(seed(
            "seq_reorder_duplicate_restart",
            framed(&[&a1, &a0, &a1, &b0, &a2, &m(3, START_MS + 5, 0), &a0]),
        ));
        out.push(seed(
            "seq_window_jump",
            framed(&[&a0, &far, &a2, &a1, &far]),
        ));
        let mut backref = framed(&[&a0, &a1]);
        backref.extend_from_slice(&REPEAT.to_le_bytes()); // a0 again
        out.push(seed("seq_replay_by_reference", backref));
        let d = |counter: u64| {
            Msg {
                mode: Mode::Dh,
                counter,
                ..Msg::default()
            }
            .seal()
        };
        out.push(seed(
            "seq_dh_and_psk",
            framed(&[&d(0), &a0, &d(2), &d(1), &d(0), &a1]),
        ));
        let sessions: Vec<Vec<u8>> = [1, 4, 5, 6, 7]
            .into_iter()
            .map(|session| m(session, START_MS, 0))
            .collect();
        let same_start: Vec<&[u8]> = sessions.iter().map(Vec::as_slice).collect();
        let mut frames = framed(&same_start);
        frames.extend_from_slice(&framed(&[&a1]));
        out.push(seed("seq_sessions_same_start", frames));
        // Once accepted: the table holds 4 sessions per sender, the fifth evicted the
        // first, whose messages then passed as those of a new session (all 5 started in
        // the same millisecond).
        let mut evicted = framed(&same_start);
        evicted.extend_from_slice(&REPEAT.to_le_bytes());
        out.push(seed("seq_evicted_session_replayed", evicted));
        out
    }

    pub fn codec() -> Vec<Seed> {
        let f32s: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        vec![
            seed("u4_vector", array(&[1, 0, 0, 0, 9, 0, 0, 0], "<u4", &[2])),
            seed("f4_2x3", array(&f32s, "<f4", &[2, 3])),
            seed("f8_scalar", array(&1.5f64.to_le_bytes(), "<f8", &[])),
            seed("empty_0x5", array(&[], "<f4", &[0, 5])),
            seed("c16_big_endian", array(&[0; 16], ">c16", &[1])),
            seed("bool", array(&[1, 0, 1], "|b1", &[3])),
            seed("i8_native", array(&[0; 8], "=i8", &[1, 1, 1])),
            seed("dim_2_pow_63", trailer(&[], &[1 << 63], b"<f8")),
            seed(
                "dims_overflow_product",
                trailer(&[], &[1 << 32, 1 << 32], b"<u1"),
            ),
            seed("ndim_64_claimed", vec![0, 0, 64, 3]),
            seed("ndim_255_claimed", vec![0, 0, 255, 3]),
            seed("dtype_255_claimed", vec![b'<', b'f', b'4', 0, 255]),
            seed("dtype_unicode", trailer(&[0; 16], &[4], b"<U4")),
            seed("dtype_not_utf8", trailer(&[0; 4], &[1], b"<\xff4")),
            // Once a panic (`numeric_itemsize` sliced inside the character).
            seed(
                "dtype_multibyte_char",
                trailer(&[0], &[1], "<ē1".as_bytes()),
            ),
            seed("dtype_signed_size", trailer(&[0; 4], &[1], b"<f+4")),
            seed("data_shorter_than_shape", trailer(&[0; 7], &[2], b"<f4")),
            seed("format_json", vec![Format::Json as u8]),
            seed("format_error", vec![Format::RemoteError as u8]),
            seed("dtype_text", b"<c32".to_vec()),
        ]
    }

    pub fn control() -> Vec<Seed> {
        let key = control_key();
        let announcement = Handover {
            secret: group_secret(),
            auth: zeroize::Zeroizing::new([0x6b; 32]),
            valid_from_ms: START_MS,
        }
        .encode();
        let xid = [0x77u8; 16];
        let psk = Psk::from_hex(PSK_HEX).unwrap();
        // An INIT authenticated under the PSK, as the fed node accepts it.
        let init = |flags: u8, identity: bool, base: bool| {
            let init = Init {
                flags,
                key_id: psk.key_id(),
                timestamp_ms: CONTROL_WALL_MS + 1,
                ephemeral: [0x11; 32],
                identity: identity.then_some([0x22; 32]),
                base: base.then_some([0x33; 16]),
                mac: [0; MAC_LEN],
            };
            let mut m = encode_init_unsigned("node-1", "node-2", &xid, &init);
            let mac = InitKey::first_contact(Some(&psk_salt(&psk)), None, flags).mac(&m);
            m.extend_from_slice(&mac);
            m
        };
        let resp = |identity: bool| {
            let flags = FLAG_PSK | if identity { FLAG_IDENTITY } else { 0 };
            let id = identity.then_some([0x44; 32]);
            let mut m = encode_resp(
                "node-1",
                "node-2",
                &xid,
                flags,
                &[0x33; 32],
                id.as_ref(),
                &key,
                0,
                &announcement,
            );
            // The mac of a RESP: under the fixed key of the INIT seeds' rekey.
            let mac = InitKey::rekey(&[0x55; 32]).mac(&m);
            m.extend_from_slice(&mac);
            m
        };
        let r = resp(false);
        let mut unknown = init(FLAG_PSK, false, false);
        unknown[1] = 9;
        vec![
            seed("init_psk", init(FLAG_PSK, false, false)),
            seed("init_identity", init(FLAG_PSK | FLAG_IDENTITY, true, false)),
            seed("init_rekey", init(FLAG_REKEY, false, true)),
            seed("init_unknown_flag", init(0x80, false, false)),
            seed("resp", r.clone()),
            seed("resp_identity", resp(true)),
            seed("resp_truncated", r[..r.len() - 1].to_vec()),
            seed(
                "key",
                encode_key("node-1", "node-2", &xid, &key, 1, &announcement),
            ),
            seed(
                "ack",
                encode_ack("node-1", "node-2", &xid, &key, 2, &[0x5e; 16]),
            ),
            seed("ids_longer_than_message", vec![0xE3, 1, 255, b'a', 255]),
            seed("unknown_type", unknown),
        ]
    }

    pub fn keys() -> Vec<Seed> {
        let public = IdentityKey::from_hex(PSK_HEX).unwrap().public_key();
        let colons = public
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let fp = evospikenet::crypto::handshake::fingerprint(&public);
        vec![
            seed("psk_hex", PSK_HEX.into()),
            seed("psk_hex_whitespace", format!("  {PSK_HEX}\n").into()),
            seed("psk_upper", PSK_HEX.to_uppercase().into()),
            seed("psk_all_zero", "0".repeat(64).into()),
            seed("psk_short", PSK_HEX[..63].into()),
            seed("psk_multibyte", "é".repeat(32).into()),
            seed("public_key_colons", colons.into()),
            seed("public_key_wrapped", {
                let h = hex::encode(public);
                format!("{}\n{}\r\n", &h[..32], &h[32..]).into()
            }),
            seed("fingerprint", fp.clone().into()),
            seed("fingerprint_colons", fp.replace(' ', ":").into()),
            seed("public_key_raw", public.to_vec()),
            seed("announcement", group_secret().announcement().to_vec()),
        ]
    }

    /// Every seed of every target, by target name.
    pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
        vec![
            ("envelope", envelope()),
            ("codec", codec()),
            ("control", control()),
            ("keys", keys()),
        ]
    }
}
