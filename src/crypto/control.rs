//! The wire format of DH mode's key-exchange messages, carried as Zenoh queries and
//! replies on `{namespace}/security/key_exchange/{recipient}`. Parsing only; the
//! protocol lives in `key_exchange`.
//!
//! ```text
//! message  = 0xE2 | type u8 | len u8 | from | len u8 | to | exchange id [16] | body
//! INIT  1  = flags u8 | PSK key id [4] | ephemeral public key [32] | identity key [32]?
//! RESP  2  = flags u8 | ephemeral public key [32] | identity key [32]? | sealed
//! KEY   3  = sealed
//! ACK   4  = acknowledged sender-key session id [16] | sealed
//! REFUSED 5 = reason u8
//! sealed   = counter u64be | AES-256-GCM(sender-key announcement) | tag [16]
//!            under the pairwise key of the direction, AAD = every byte before `sealed`
//! flags: 1 = authenticated by the PSK named by the key id, 2 = identity keys present,
//!        4 = rekey of an existing channel (authenticated by its chain key)
//! ```
//! Identity keys are present when flag 2 is set (INIT) or when the INIT had it (RESP).

use crate::crypto::aead::TAG_LEN;
use crate::crypto::group::ANNOUNCEMENT_LEN;
use crate::crypto::handshake::PUBLIC_KEY_LEN;
use crate::crypto::keys::{KeyId, SessionKey, KEY_ID_LEN};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

pub const MAGIC_CONTROL: u8 = 0xE2;
pub const EXCHANGE_ID_LEN: usize = 16;
/// Length of a sealed announcement.
pub const SEALED_LEN: usize = 8 + ANNOUNCEMENT_LEN + TAG_LEN;

pub const FLAG_PSK: u8 = 1;
pub const FLAG_IDENTITY: u8 = 2;
pub const FLAG_CHAIN: u8 = 4;

/// Why a recipient refused a message (unauthenticated: a hint for retrying, never trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No channel with the sender (yet): e.g. its manual exchange is not completed.
    NoSession = 1,
    /// An exchange in the other direction is in flight; retry shortly.
    Busy = 2,
    /// The sender is not allowed: no automatic exchanges, unknown PSK, untrusted identity.
    NotAllowed = 3,
}

impl Refusal {
    fn from_byte(b: u8) -> Result<Refusal> {
        match b {
            1 => Ok(Refusal::NoSession),
            2 => Ok(Refusal::Busy),
            3 => Ok(Refusal::NotAllowed),
            _ => Err(Error::Authentication),
        }
    }
}

/// A parsed key-exchange message.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    Init {
        flags: u8,
        key_id: KeyId,
        ephemeral: [u8; PUBLIC_KEY_LEN],
        identity: Option<[u8; PUBLIC_KEY_LEN]>,
    },
    Resp {
        flags: u8,
        ephemeral: [u8; PUBLIC_KEY_LEN],
        identity: Option<[u8; PUBLIC_KEY_LEN]>,
        sealed: &'a [u8],
    },
    Key {
        sealed: &'a [u8],
    },
    Ack {
        acked: [u8; 16],
        sealed: &'a [u8],
    },
    Refused(Refusal),
}

/// One message: who sent it to whom, in which exchange, and its body.
#[derive(Debug, PartialEq, Eq)]
pub struct Control<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub exchange_id: [u8; EXCHANGE_ID_LEN],
    pub body: Body<'a>,
    /// The bytes a sealed part is bound to (everything before it).
    pub aad: &'a [u8],
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
    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

impl<'a> Control<'a> {
    /// Parse a message. Any malformation is `Error::Authentication`; never panics, and
    /// allocates nothing.
    pub fn parse(buf: &'a [u8]) -> Result<Control<'a>> {
        let mut r = Reader { buf, pos: 0 };
        if r.byte()? != MAGIC_CONTROL {
            return Err(Error::Authentication);
        }
        let kind = r.byte()?;
        let from = r.id()?;
        let to = r.id()?;
        let exchange_id = r.array::<EXCHANGE_ID_LEN>()?;
        let sealed_at = |r: &Reader<'_>| -> Result<usize> {
            if r.buf.len() - r.pos != SEALED_LEN {
                return Err(Error::Authentication);
            }
            Ok(r.pos)
        };
        let (body, aad_end) = match kind {
            1 => {
                let flags = r.byte()?;
                let key_id = KeyId(r.array::<KEY_ID_LEN>()?);
                let ephemeral = r.array()?;
                let identity = if flags & FLAG_IDENTITY != 0 {
                    Some(r.array()?)
                } else {
                    None
                };
                if r.pos != buf.len() || flags & !(FLAG_PSK | FLAG_IDENTITY | FLAG_CHAIN) != 0 {
                    return Err(Error::Authentication);
                }
                let body = Body::Init {
                    flags,
                    key_id,
                    ephemeral,
                    identity,
                };
                (body, buf.len())
            }
            2 => {
                let flags = r.byte()?;
                let ephemeral = r.array()?;
                let identity = if flags & FLAG_IDENTITY != 0 {
                    Some(r.array()?)
                } else {
                    None
                };
                let at = sealed_at(&r)?;
                let sealed = r.rest();
                let body = Body::Resp {
                    flags,
                    ephemeral,
                    identity,
                    sealed,
                };
                (body, at)
            }
            3 => {
                let at = sealed_at(&r)?;
                (Body::Key { sealed: r.rest() }, at)
            }
            4 => {
                let acked = r.array()?;
                let at = sealed_at(&r)?;
                let sealed = r.rest();
                (Body::Ack { acked, sealed }, at)
            }
            5 => {
                let reason = Refusal::from_byte(r.byte()?)?;
                if r.pos != buf.len() {
                    return Err(Error::Authentication);
                }
                (Body::Refused(reason), buf.len())
            }
            _ => return Err(Error::Authentication),
        };
        Ok(Control {
            from,
            to,
            exchange_id,
            body,
            aad: &buf[..aad_end],
        })
    }
}

/// Start a message: everything up to the body.
pub fn begin(kind: u8, from: &str, to: &str, exchange_id: &[u8; EXCHANGE_ID_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + from.len() + to.len() + EXCHANGE_ID_LEN + 80 + SEALED_LEN);
    out.push(MAGIC_CONTROL);
    out.push(kind);
    for id in [from, to] {
        debug_assert!(!id.is_empty() && id.len() <= 255);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(exchange_id);
    out
}

/// Append `announcement` sealed under `key` with `counter`, bound to every byte of `msg`
/// written so far.
pub fn seal_into(msg: &mut Vec<u8>, key: &SessionKey, counter: u64, announcement: &[u8]) {
    debug_assert_eq!(announcement.len(), ANNOUNCEMENT_LEN);
    let aad_len = msg.len();
    msg.extend_from_slice(&counter.to_be_bytes());
    let start = msg.len();
    msg.extend_from_slice(announcement);
    let (head, body) = msg.split_at_mut(start);
    let tag = key.seal(counter, &head[..aad_len], body);
    msg.extend_from_slice(&tag);
}

/// Open a sealed announcement: (counter, announcement). `Error::Authentication` if it
/// was not sealed under `key` with this `aad`.
pub fn open_sealed(
    key: &SessionKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<(u64, Zeroizing<Vec<u8>>)> {
    if sealed.len() != SEALED_LEN {
        return Err(Error::Authentication);
    }
    let counter = u64::from_be_bytes(sealed[..8].try_into().expect("8 bytes"));
    let (ct, tag) = sealed[8..].split_at(ANNOUNCEMENT_LEN);
    let mut plain = Zeroizing::new(ct.to_vec());
    key.open(counter, aad, &mut plain, tag)?;
    Ok((counter, plain))
}

/// A REFUSED message.
pub fn refused(from: &str, to: &str, exchange_id: &[u8; EXCHANGE_ID_LEN], why: Refusal) -> Vec<u8> {
    let mut m = begin(5, from, to, exchange_id);
    m.push(why as u8);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::group::GroupSecret;

    fn key() -> SessionKey {
        SessionKey::from_key_and_iv(&[7u8; 32], &[9u8; 12])
    }

    #[test]
    fn init_round_trip() {
        let mut m = begin(1, "node-1", "node-2", &[3; 16]);
        m.push(FLAG_PSK | FLAG_IDENTITY);
        m.extend_from_slice(&[1, 2, 3, 4]);
        m.extend_from_slice(&[5; 32]);
        m.extend_from_slice(&[6; 32]);
        let c = Control::parse(&m).unwrap();
        assert_eq!((c.from, c.to, c.exchange_id), ("node-1", "node-2", [3; 16]));
        assert_eq!(
            c.body,
            Body::Init {
                flags: 3,
                key_id: KeyId([1, 2, 3, 4]),
                ephemeral: [5; 32],
                identity: Some([6; 32])
            }
        );
        // Every truncation and an extra byte are refused.
        for n in 0..m.len() {
            assert!(Control::parse(&m[..n]).is_err(), "prefix {n}");
        }
        let mut longer = m.clone();
        longer.push(0);
        assert!(Control::parse(&longer).is_err());
    }

    #[test]
    fn sealed_parts_bind_every_byte_before_them() {
        let g = GroupSecret::generate();
        let mut m = begin(4, "a", "b", &[1; 16]);
        m.extend_from_slice(&[8; 16]);
        seal_into(&mut m, &key(), 5, &g.announcement());
        let c = Control::parse(&m).unwrap();
        let Body::Ack { acked, sealed } = c.body else {
            panic!("not an ack")
        };
        assert_eq!(acked, [8; 16]);
        let (counter, plain) = open_sealed(&key(), c.aad, sealed).unwrap();
        assert_eq!((counter, &plain[..]), (5, &g.announcement()[..]));
        for i in 0..m.len() {
            let mut bad = m.clone();
            bad[i] ^= 1;
            let ok = Control::parse(&bad).and_then(|c| match c.body {
                Body::Ack { sealed, .. } => open_sealed(&key(), c.aad, sealed).map(|_| ()),
                _ => Err(Error::Authentication),
            });
            assert!(ok.is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn refusals_and_garbage() {
        let m = refused("a", "b", &[0; 16], Refusal::Busy);
        assert_eq!(
            Control::parse(&m).unwrap().body,
            Body::Refused(Refusal::Busy)
        );
        for junk in [&b""[..], b"\xe2", b"\xe2\x09\x01a\x01b", &[0xE2, 1, 0, 0]] {
            assert!(Control::parse(junk).is_err());
        }
    }
}
