//! The wire format of DH mode's key-management messages, each type with its encoder next
//! to its parser. They travel as Zenoh puts on `{namespace}/security/key_exchange/{to}`;
//! nothing here knows that.
//!
//! ```text
//! message = 0xE3 | type u8 | len u8 | from | len u8 | to | exchange id [16] | body
//! INIT  1 = flags u8 | PSK key id [4] | timestamp ms u64be | ephemeral key [32]
//!           | identity key [32]?  (flag 2) | base exchange id [16]?  (flag 4) | mac [32]
//! RESP  2 = flags u8 | ephemeral key [32] | identity key [32]? (flag 2) | sealed | mac [32]
//! KEY   3 = sealed                  (plaintext: a handover, 108 bytes)
//! ACK   4 = sealed                  (plaintext: the acknowledged sender-key session id [16])
//! sealed  = counter u64be | AES-256-GCM ciphertext | tag [16]
//!           under the channel's key for this direction, AAD = every byte before `sealed`
//! mac     = HMAC-SHA256(init key, every byte before the mac)   (see `auth::InitKey`):
//!           in a RESP under the INIT's key, so a forged RESP costs no X25519
//! handover = sender-key announcement [68] | sender-auth key [32] | valid from ms u64be
//!           (RESP and KEY: the sender key, the key of this recipient's tags on messages
//!           sealed under it (`crypto::sender_auth`), and the sender's time of the
//!           handover: the recipient refuses what was sealed under the key before it)
//! flags   : 1 = the PSK named by the key id authenticates it, 2 = identity keys are
//!           present, 4 = rekey of channel `base` (its chain key authenticates it);
//!           any other bit is refused
//! ```

use zeroize::Zeroizing;

use crate::crypto::aead::TAG_LEN;
use crate::crypto::group::{GroupSecret, ANNOUNCEMENT_LEN};
use crate::crypto::handshake::PUBLIC_KEY_LEN;
use crate::crypto::keys::{KeyId, SessionKey, KEY_ID_LEN};
use crate::error::{Error, Result};

pub const MAGIC: u8 = 0xE3;
pub const EXCHANGE_ID_LEN: usize = 16;
pub const MAC_LEN: usize = 32;
/// The acknowledged session id, the plaintext of an ACK.
pub const ACKED_LEN: usize = 16;
pub use crate::crypto::sender_auth::AUTH_KEY_LEN;
/// The plaintext of a RESP or KEY.
pub const HANDOVER_LEN: usize = ANNOUNCEMENT_LEN + AUTH_KEY_LEN + 8;

pub const FLAG_PSK: u8 = 1;
pub const FLAG_IDENTITY: u8 = 2;
pub const FLAG_REKEY: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_PSK | FLAG_IDENTITY | FLAG_REKEY;

pub type ExchangeId = [u8; EXCHANGE_ID_LEN];
pub type PublicKey = [u8; PUBLIC_KEY_LEN];

const INIT: u8 = 1;
const RESP: u8 = 2;
const KEY: u8 = 3;
const ACK: u8 = 4;

/// The body of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    Init(Init),
    Resp {
        flags: u8,
        ephemeral: PublicKey,
        identity: Option<PublicKey>,
        sealed: &'a [u8],
        mac: [u8; MAC_LEN],
        /// Every byte before the mac.
        mac_signed: &'a [u8],
    },
    Key {
        sealed: &'a [u8],
    },
    Ack {
        sealed: &'a [u8],
    },
}

/// An INIT's fields (the MAC is checked by the receiver against `Message::signed`).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Init {
    pub flags: u8,
    pub key_id: KeyId,
    pub timestamp_ms: u64,
    pub ephemeral: PublicKey,
    pub identity: Option<PublicKey>,
    pub base: Option<ExchangeId>,
    pub mac: [u8; MAC_LEN],
}

/// One parsed message: who sent it to whom, in which exchange, and its body.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub exchange_id: ExchangeId,
    pub body: Body<'a>,
    /// The bytes a sealed part or a MAC is bound to (everything before it).
    pub signed: &'a [u8],
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Authentication)?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Authentication)?;
        self.pos = end;
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn id(&mut self) -> Result<&'a str> {
        let n = self.byte()? as usize;
        let raw = self.take(n)?;
        if n == 0 {
            return Err(Error::Authentication);
        }
        std::str::from_utf8(raw).map_err(|_| Error::Authentication)
    }
    fn flags(&mut self) -> Result<u8> {
        let flags = self.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Authentication);
        }
        Ok(flags)
    }
    fn sealed(&mut self, plaintext_len: usize) -> Result<(usize, &'a [u8])> {
        let at = self.pos;
        let sealed = self.take(8 + plaintext_len + TAG_LEN)?;
        Ok((at, sealed))
    }
    fn end(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error::Authentication)
        }
    }
}

impl<'a> Message<'a> {
    /// Parse a message. Any malformation, unknown type or unknown flag bit is
    /// `Error::Authentication`; never panics, allocates nothing.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        let mut r = Reader { buf, pos: 0 };
        if r.byte()? != MAGIC {
            return Err(Error::Authentication);
        }
        let kind = r.byte()?;
        let from = r.id()?;
        let to = r.id()?;
        let exchange_id = r.array::<EXCHANGE_ID_LEN>()?;
        let (body, signed_end) = match kind {
            INIT => {
                let flags = r.flags()?;
                // Fields in wire order (a struct literal evaluates in the order written).
                let mut init = Init {
                    flags,
                    key_id: KeyId(r.array::<KEY_ID_LEN>()?),
                    timestamp_ms: u64::from_be_bytes(r.array()?),
                    ephemeral: r.array()?,
                    identity: (flags & FLAG_IDENTITY != 0)
                        .then(|| r.array())
                        .transpose()?,
                    base: (flags & FLAG_REKEY != 0).then(|| r.array()).transpose()?,
                    mac: [0; MAC_LEN],
                };
                let at = r.pos;
                init.mac = r.array()?;
                r.end()?;
                (Body::Init(init), at)
            }
            RESP => {
                let flags = r.flags()?;
                let ephemeral = r.array()?;
                let identity = (flags & FLAG_IDENTITY != 0)
                    .then(|| r.array())
                    .transpose()?;
                let (at, sealed) = r.sealed(HANDOVER_LEN)?;
                let mac_at = r.pos;
                let mac = r.array()?;
                r.end()?;
                let body = Body::Resp {
                    flags,
                    ephemeral,
                    identity,
                    sealed,
                    mac,
                    mac_signed: &buf[..mac_at],
                };
                (body, at)
            }
            KEY => {
                let (at, sealed) = r.sealed(HANDOVER_LEN)?;
                r.end()?;
                (Body::Key { sealed }, at)
            }
            ACK => {
                let (at, sealed) = r.sealed(ACKED_LEN)?;
                r.end()?;
                (Body::Ack { sealed }, at)
            }
            _ => return Err(Error::Authentication),
        };
        Ok(Message {
            from,
            to,
            exchange_id,
            body,
            signed: &buf[..signed_end],
        })
    }
}

/// Start a message: everything up to the body.
fn begin(kind: u8, from: &str, to: &str, exchange_id: &ExchangeId) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + from.len() + to.len() + EXCHANGE_ID_LEN + 160);
    out.push(MAGIC);
    out.push(kind);
    for id in [from, to] {
        debug_assert!(!id.is_empty() && id.len() <= 255);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(exchange_id);
    out
}

/// Append `plaintext` sealed under `key` with `counter`, bound to every byte of `msg`
/// written so far.
fn seal_into(msg: &mut Vec<u8>, key: &SessionKey, counter: u64, plaintext: &[u8]) {
    let aad_len = msg.len();
    msg.extend_from_slice(&counter.to_be_bytes());
    let start = msg.len();
    msg.extend_from_slice(plaintext);
    let (head, body) = msg.split_at_mut(start);
    let tag = key.seal(counter, &head[..aad_len], body);
    msg.extend_from_slice(&tag);
}

/// Open a sealed part: (counter, plaintext). `Error::Authentication` unless it was sealed
/// under `key` and bound to `signed`.
pub fn open_sealed(
    key: &SessionKey,
    signed: &[u8],
    sealed: &[u8],
) -> Result<(u64, Zeroizing<Vec<u8>>)> {
    if sealed.len() < 8 + TAG_LEN {
        return Err(Error::Authentication);
    }
    let counter = u64::from_be_bytes(sealed[..8].try_into().expect("8 bytes"));
    let (ct, tag) = sealed[8..].split_at(sealed.len() - 8 - TAG_LEN);
    let mut plain = Zeroizing::new(ct.to_vec());
    key.open(counter, signed, &mut plain, tag)?;
    Ok((counter, plain))
}

/// What a RESP or KEY hands to one recipient: a sender key, the key of the recipient's
/// tags under it, and from when (sender's clock) the recipient may accept messages under
/// it: earlier ones were not sealed for it, and a replay of them is refused.
pub struct Handover {
    pub secret: GroupSecret,
    pub auth: Zeroizing<[u8; AUTH_KEY_LEN]>,
    pub valid_from_ms: u64,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Handover({:?}, auth <redacted>, valid from {})",
            self.secret, self.valid_from_ms
        )
    }
}

impl Handover {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = self.secret.announcement();
        out.extend_from_slice(self.auth.as_slice());
        out.extend_from_slice(&self.valid_from_ms.to_be_bytes());
        out
    }

    /// Parse a handover (already authenticated by its channel).
    pub fn parse(plain: &[u8]) -> Result<Handover> {
        if plain.len() != HANDOVER_LEN {
            return Err(Error::Authentication);
        }
        let (announcement, rest) = plain.split_at(ANNOUNCEMENT_LEN);
        let (auth_bytes, from) = rest.split_at(AUTH_KEY_LEN);
        let mut auth = Zeroizing::new([0u8; AUTH_KEY_LEN]);
        auth.copy_from_slice(auth_bytes);
        Ok(Handover {
            secret: GroupSecret::from_announcement(announcement)?,
            auth,
            valid_from_ms: u64::from_be_bytes(from.try_into().expect("8 bytes")),
        })
    }
}

/// Everything of an INIT but its MAC; `init_mac_input` + the MAC make the message.
pub fn encode_init_unsigned(
    from: &str,
    to: &str,
    exchange_id: &ExchangeId,
    init: &Init,
) -> Vec<u8> {
    let mut m = begin(INIT, from, to, exchange_id);
    m.push(init.flags);
    m.extend_from_slice(&init.key_id.0);
    m.extend_from_slice(&init.timestamp_ms.to_be_bytes());
    m.extend_from_slice(&init.ephemeral);
    if let Some(identity) = &init.identity {
        m.extend_from_slice(identity);
    }
    if let Some(base) = &init.base {
        m.extend_from_slice(base);
    }
    m
}

/// A RESP with the responder's handover sealed under the new channel, without its mac
/// (the caller appends `InitKey::mac` of these bytes).
#[allow(clippy::too_many_arguments)]
pub fn encode_resp(
    from: &str,
    to: &str,
    exchange_id: &ExchangeId,
    flags: u8,
    ephemeral: &PublicKey,
    identity: Option<&PublicKey>,
    key: &SessionKey,
    counter: u64,
    announcement: &[u8],
) -> Vec<u8> {
    let mut m = begin(RESP, from, to, exchange_id);
    m.push(flags);
    m.extend_from_slice(ephemeral);
    if let Some(identity) = identity {
        m.extend_from_slice(identity);
    }
    seal_into(&mut m, key, counter, announcement);
    m
}

/// A KEY: a sender-key announcement sealed under the channel `exchange_id`.
pub fn encode_key(
    from: &str,
    to: &str,
    exchange_id: &ExchangeId,
    key: &SessionKey,
    counter: u64,
    announcement: &[u8],
) -> Vec<u8> {
    debug_assert_eq!(announcement.len(), HANDOVER_LEN);
    let mut m = begin(KEY, from, to, exchange_id);
    seal_into(&mut m, key, counter, announcement);
    m
}

/// An ACK of the sender key `acked`, sealed under the channel `exchange_id`.
pub fn encode_ack(
    from: &str,
    to: &str,
    exchange_id: &ExchangeId,
    key: &SessionKey,
    counter: u64,
    acked: &[u8; ACKED_LEN],
) -> Vec<u8> {
    let mut m = begin(ACK, from, to, exchange_id);
    seal_into(&mut m, key, counter, acked);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::from_key_and_iv(&[7u8; 32], &[9u8; 12])
    }

    fn h(g: &GroupSecret) -> Zeroizing<Vec<u8>> {
        let secret = GroupSecret::from_announcement(&g.announcement()).unwrap();
        let auth = Zeroizing::new([4; AUTH_KEY_LEN]);
        Handover {
            secret,
            auth,
            valid_from_ms: 5,
        }
        .encode()
    }

    fn init(flags: u8) -> Init {
        Init {
            flags,
            key_id: KeyId([1, 2, 3, 4]),
            timestamp_ms: 0x0102_0304_0506_0708,
            ephemeral: [5; 32],
            identity: (flags & FLAG_IDENTITY != 0).then_some([6; 32]),
            base: (flags & FLAG_REKEY != 0).then_some([8; 16]),
            mac: [9; MAC_LEN],
        }
    }

    #[test]
    fn init_round_trip_for_every_flag_combination() {
        for flags in 0..=KNOWN_FLAGS {
            let i = init(flags);
            let mut m = encode_init_unsigned("node-1", "node-2", &[3; 16], &i);
            let signed_len = m.len();
            m.extend_from_slice(&i.mac);
            let c = Message::parse(&m).unwrap();
            assert_eq!((c.from, c.to, c.exchange_id), ("node-1", "node-2", [3; 16]));
            assert_eq!(c.body, Body::Init(i));
            assert_eq!(c.signed, &m[..signed_len]);
            // Every truncation and an extra byte are refused.
            for n in 0..m.len() {
                assert!(Message::parse(&m[..n]).is_err(), "prefix {n}");
            }
            let mut longer = m.clone();
            longer.push(0);
            assert!(Message::parse(&longer).is_err());
        }
    }

    #[test]
    fn unknown_flag_bits_are_refused_in_init_and_resp() {
        let g = GroupSecret::generate();
        for bit in [8u8, 16, 32, 64, 128] {
            let i = init(FLAG_PSK);
            let mut m = encode_init_unsigned("a", "b", &[0; 16], &i);
            m.extend_from_slice(&i.mac);
            let flags_at = 3 + 1 + 1 + 1 + 16;
            m[flags_at] |= bit;
            assert!(Message::parse(&m).is_err());
            let mut r = encode_resp("a", "b", &[0; 16], 0, &[1; 32], None, &key(), 0, &h(&g));
            r.extend_from_slice(&[0; MAC_LEN]);
            assert!(Message::parse(&r).is_ok());
            r[flags_at] |= bit;
            assert!(Message::parse(&r).is_err());
        }
    }

    #[test]
    fn sealed_parts_and_macs_bind_every_byte_before_them() {
        let g = GroupSecret::generate();
        let init_key = crate::dh::auth::InitKey::rekey(&[6; 32]);
        let mut resp = encode_resp(
            "a",
            "b",
            &[1; 16],
            FLAG_IDENTITY,
            &[2; 32],
            Some(&[3; 32]),
            &key(),
            5,
            &h(&g),
        );
        resp.extend_from_slice(&init_key.mac(&resp));
        let msgs = [
            encode_key("a", "b", &[1; 16], &key(), 5, &h(&g)),
            encode_ack("a", "b", &[1; 16], &key(), 5, &g.session_id),
            resp,
        ];
        // What a receiver checks: the sealed part, and a RESP's mac.
        let check = |bytes: &[u8]| -> Result<u64> {
            let c = Message::parse(bytes)?;
            match c.body {
                Body::Key { sealed } | Body::Ack { sealed } => {
                    Ok(open_sealed(&key(), c.signed, sealed)?.0)
                }
                Body::Resp {
                    sealed,
                    mac,
                    mac_signed,
                    ..
                } => {
                    if !init_key.verify(mac_signed, &mac) {
                        return Err(Error::Authentication);
                    }
                    Ok(open_sealed(&key(), c.signed, sealed)?.0)
                }
                Body::Init(_) => Err(Error::Authentication),
            }
        };
        for m in msgs {
            assert_eq!(check(&m).unwrap(), 5);
            for i in 0..m.len() {
                let mut bad = m.clone();
                bad[i] ^= 1;
                assert!(check(&bad).is_err(), "flip at byte {i} accepted");
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        for junk in [
            &b""[..],
            b"\xe3",
            b"\xe3\x09\x01a\x01b",
            &[0xE3, 1, 0, 0],
            b"\xe2\x03\x01a\x01b",
        ] {
            assert!(Message::parse(junk).is_err());
        }
    }
}
