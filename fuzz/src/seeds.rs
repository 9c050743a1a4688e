//! The seed corpus: real messages, and the malformations worth starting from.

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
