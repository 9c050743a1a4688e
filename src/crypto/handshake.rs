//! DH mode: ephemeral X25519 (RFC 7748), key fingerprints and the session-key schedule
//! (HKDF-SHA256, RFC 5869). No networking here: the caller carries the public keys.
//!
//! ```text
//! a, b        = fresh X25519 secrets, one per exchange and side; A, B their public keys
//! K           = X25519(a, B) = X25519(b, A); refused if all zero (RFC 7748 §6.1)
//! (lo, hi)    = the two (public key, node id) pairs, sorted by public key, then node id
//! info        = "evospikenet/v1/dh" || u64be(len id_lo) || id_lo || u64be(len id_hi) || id_hi
//!               || pub_lo || pub_hi
//! salt        = no salt (RFC 5869: HashLen zeros), or psk_salt when a PSK is given:
//! psk_salt    = HKDF-SHA256(ikm = PSK, no salt, info = "evospikenet/v1/dh-psk", 32 bytes)
//! okm         = HKDF-SHA256(ikm = K, salt, info) -> 88 bytes
//! lo -> hi    = key okm[0..32],  IV okm[32..44]     (lo's tx, hi's rx)
//! hi -> lo    = key okm[44..76], IV okm[76..88]     (hi's tx, lo's rx)
//! ```
//! As libsodium's `crypto_kx`, one shared secret yields one key per direction; the sort
//! decides which half is whose, so both sides compute the same transcript without roles.
//!
//! Malformed or unusable peer keys are `Error::InvalidArgument`: the peer key is an
//! argument of `complete_key_exchange`, not configuration (PSKs, which are, use
//! `Error::Config`). Both become `ValueError` in Python; neither message echoes the key.

use rand_core::OsRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::aead::{KEY_LEN, NONCE_LEN};
use crate::crypto::kdf::hkdf_sha256;
use crate::crypto::keys::{Psk, SessionKey};
use crate::error::{Error, Result};

/// Length of an X25519 public key (RFC 7748 §5).
pub const PUBLIC_KEY_LEN: usize = 32;

const LABEL_DH: &[u8] = b"evospikenet/v1/dh";
const LABEL_FINGERPRINT: &[u8] = b"evospikenet/v1/fingerprint";
/// The HKDF label of the PSK-derived DH salt.
const PSK_SALT_LABEL: &[u8] = b"evospikenet/v1/dh-psk";
/// One direction's key material: AES-256 key || IV.
const HALF: usize = KEY_LEN + NONCE_LEN;

/// A fresh X25519 key pair for one exchange.
///
/// Holds a `StaticSecret` (zeroized on drop) rather than an `EphemeralSecret` so that the
/// RFC 7748 vectors run through this type; single use is enforced by its owner: the
/// secret is private and never exported, and the key-exchange state drops the pair as
/// soon as its exchange completes or is abandoned.
pub struct EphemeralKeyPair {
    secret: StaticSecret,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = fingerprint(&self.public);
        write!(f, "EphemeralKeyPair(<redacted>, fingerprint={fp})")
    }
}

impl EphemeralKeyPair {
    /// Draw a new key pair from the operating system's CSPRNG.
    pub fn generate() -> EphemeralKeyPair {
        EphemeralKeyPair::from_secret(StaticSecret::random_from_rng(OsRng))
    }

    fn from_secret(secret: StaticSecret) -> EphemeralKeyPair {
        let public = PublicKey::from(&secret).to_bytes();
        EphemeralKeyPair { secret, public }
    }

    /// Our public key, to send to the peer.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// X25519 with the peer's public key. An initiator may have to try several replies
    /// (one honest, others forged), so this borrows; the caller drops the pair when the
    /// exchange ends, which erases the secret.
    ///
    /// Refuses a low-order peer key (the result would be all zero and known to anyone,
    /// RFC 7748 §6.1) and our own public key (a reflected or mis-pasted key).
    pub fn agree(&self, peer_public: &[u8; PUBLIC_KEY_LEN]) -> Result<SharedSecret> {
        if *peer_public == self.public {
            return Err(Error::InvalidArgument(
                "peer public key is our own public key; use the key the peer printed".into(),
            ));
        }
        let mut ikm = Zeroizing::new(Vec::with_capacity(3 * PUBLIC_KEY_LEN));
        dh_into(&self.secret, peer_public, &mut ikm)?;
        Ok(SharedSecret(ikm))
    }

    /// X25519 authenticated by long-term identity keys, as Noise's KK pattern: the
    /// ephemeral-ephemeral secret, then DH(e_lo, S_hi) and DH(s_lo, E_hi), where lo/hi
    /// order the two sides as `derive_keys` does. Only the holders of both identity
    /// secrets can compute all three, and a leaked identity secret alone neither opens
    /// past traffic (the ephemerals are gone) nor lets anyone impersonate the *other*
    /// side to its holder (key-compromise impersonation needs both static-ephemeral terms).
    pub fn agree_with_identity(
        &self,
        peer_public: &[u8; PUBLIC_KEY_LEN],
        mine: &IdentityKey,
        peer_static: &[u8; PUBLIC_KEY_LEN],
        i_am_first: bool,
    ) -> Result<SharedSecret> {
        if *peer_public == self.public || *peer_static == mine.public {
            return Err(Error::InvalidArgument(
                "peer public key is our own public key; use the key the peer printed".into(),
            ));
        }
        let mut ikm = Zeroizing::new(Vec::with_capacity(3 * PUBLIC_KEY_LEN));
        dh_into(&self.secret, peer_public, &mut ikm)?;
        let eph_static = |ikm: &mut Vec<u8>| dh_into(&self.secret, peer_static, ikm);
        let static_eph = |ikm: &mut Vec<u8>| dh_into(&mine.secret, peer_public, ikm);
        if i_am_first {
            eph_static(&mut ikm)?;
            static_eph(&mut ikm)?;
        } else {
            static_eph(&mut ikm)?;
            eph_static(&mut ikm)?;
        }
        Ok(SharedSecret(ikm))
    }
}

/// Append X25519(secret, peer) to `out`, refusing a non-contributory (low-order) result.
fn dh_into(secret: &StaticSecret, peer: &[u8; PUBLIC_KEY_LEN], out: &mut Vec<u8>) -> Result<()> {
    let shared = secret.diffie_hellman(&PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(Error::InvalidArgument(
            "peer public key is a low-order point, which gives no secret; \
             the exchange is refused"
                .into(),
        ));
    }
    out.extend_from_slice(shared.as_bytes());
    Ok(())
}

/// A node's long-term X25519 identity key, for pinning peers by fingerprint
/// (`trusted_peers`). Zeroized on drop; `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct IdentityKey {
    secret: StaticSecret,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IdentityKey(<redacted>, fingerprint={})",
            self.fingerprint()
        )
    }
}

impl IdentityKey {
    /// A new random identity key.
    pub fn generate() -> IdentityKey {
        IdentityKey::from_secret(StaticSecret::random_from_rng(OsRng))
    }

    /// Parse a secret identity key from 64 hex digits (surrounding whitespace tolerated).
    /// The error never echoes the input.
    pub fn from_hex(text: &str) -> Result<IdentityKey> {
        let trimmed = text.trim();
        let mut raw = Zeroizing::new([0u8; 32]);
        if trimmed.len() != 64 || hex::decode_to_slice(trimmed, raw.as_mut_slice()).is_err() {
            return Err(Error::Config(
                "identity_key must be 64 hexadecimal characters (a secret X25519 key, e.g. \
                 from evospikenet.zenoh_comm.generate_identity_key())"
                    .into(),
            ));
        }
        if raw.iter().all(|&b| b == 0) {
            return Err(Error::Config("identity_key must not be all zeros".into()));
        }
        Ok(IdentityKey::from_secret(StaticSecret::from(*raw)))
    }

    fn from_secret(secret: StaticSecret) -> IdentityKey {
        let public = PublicKey::from(&secret).to_bytes();
        IdentityKey { secret, public }
    }

    /// The secret as hex, to store (the only way it ever leaves this type).
    pub fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.secret.as_bytes()))
    }

    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// The fingerprint peers pin in `trusted_peers`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }

    /// The static-static X25519 secret with a peer's identity key (Noise's `ss`): only
    /// the two holders of these identity secrets can compute it. Refuses low-order keys
    /// and our own key.
    pub fn agree_static(&self, peer_static: &[u8; PUBLIC_KEY_LEN]) -> Result<SharedSecret> {
        if *peer_static == self.public {
            return Err(Error::InvalidArgument(
                "peer identity key is this node's own identity key".into(),
            ));
        }
        let mut ikm = Zeroizing::new(Vec::with_capacity(PUBLIC_KEY_LEN));
        dh_into(&self.secret, peer_static, &mut ikm)?;
        Ok(SharedSecret(ikm))
    }
}

/// Normalize a fingerprint typed by a person: 32 hex digits once spaces and ':' are
/// removed; returned in the canonical `XXXX XXXX ...` form.
pub fn normalize_fingerprint(text: &str) -> Result<String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if digits.len() != 32 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "a fingerprint is 32 hexadecimal digits, e.g. \"6D74 AF22 A4C9 F6A8 C823 4BD9 A6E3 \
             47FB\"; got {text:?}"
        )));
    }
    let upper = digits.to_ascii_uppercase();
    let groups: Vec<&str> = (0..8).map(|i| &upper[4 * i..4 * i + 4]).collect();
    Ok(groups.join(" "))
}

/// The X25519 result(s) of one exchange. Zeroized on drop; `Debug` never shows it. Its
/// only use is deriving session keys.
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The raw secret, for a key derivation (never to be logged or stored).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// Check a peer public key given as raw bytes: exactly 32.
///
/// Only the length is checked here; `EphemeralKeyPair::agree` refuses unusable points.
pub fn parse_public_key(raw: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN]> {
    raw.try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "peer public key must be {PUBLIC_KEY_LEN} bytes; got {}",
            raw.len()
        ))
    })
}

/// Parse a peer public key from hex text: exactly 64 hex digits (either case) once
/// whitespace (spaces, tabs, line breaks) and ':' are removed, so a key copied from a
/// terminal, an e-mail or a colon-grouped display parses as is.
pub fn parse_public_key_hex(text: &str) -> Result<[u8; PUBLIC_KEY_LEN]> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let count = digits.chars().count();
    if count != 2 * PUBLIC_KEY_LEN {
        let hint = if count == 32 {
            " (a 32-digit fingerprint is for comparing by eye, not a public key)"
        } else {
            ""
        };
        return Err(Error::InvalidArgument(format!(
            "peer public key must be {} hexadecimal digits (spaces, ':' and line breaks \
             are ignored); got {count}{hint}",
            2 * PUBLIC_KEY_LEN
        )));
    }
    let mut key = [0u8; PUBLIC_KEY_LEN];
    hex::decode_to_slice(&digits, &mut key).map_err(|_| {
        Error::InvalidArgument(
            "peer public key must contain only hexadecimal digits 0-9, a-f \
             (spaces, ':' and line breaks are ignored)"
                .into(),
        )
    })?;
    Ok(key)
}

/// A short form of a public key for two people to compare by eye or over the phone.
///
/// Format: SHA-256(`"evospikenet/v1/fingerprint"` || the 32 key bytes), first 16 bytes,
/// as 8 groups of 4 uppercase hex digits separated by single spaces, 39 characters, e.g.
/// `6D74 AF22 A4C9 F6A8 C823 4BD9 A6E3 47FB`. 128 bits keep a second key with the same
/// fingerprint out of reach; the label keeps it distinct from other hashes of the key.
pub fn fingerprint(public_key: &[u8; PUBLIC_KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(LABEL_FINGERPRINT)
        .chain_update(public_key)
        .finalize();
    let groups: Vec<String> = digest[..16].chunks(2).map(hex::encode_upper).collect();
    groups.join(" ")
}

/// The two directions of one pairwise channel; each side's `tx` is the other's `rx`.
pub struct SessionKeys {
    /// Seals what we send to the peer.
    pub tx: SessionKey,
    /// Opens what the peer sends to us.
    pub rx: SessionKey,
    /// Authenticates the next exchange between the same two nodes (the salt of a rekey),
    /// so a rekey needs no PSK or identity and is still bound to this channel.
    pub chain: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// What one exchange binds its keys to besides the DH results.
pub struct Transcript<'a> {
    pub my_id: &'a str,
    pub my_pub: &'a [u8; PUBLIC_KEY_LEN],
    pub peer_id: &'a str,
    pub peer_pub: &'a [u8; PUBLIC_KEY_LEN],
    /// Both identity public keys (mine, the peer's) when the exchange used them.
    pub statics: Option<(&'a [u8; PUBLIC_KEY_LEN], &'a [u8; PUBLIC_KEY_LEN])>,
}

impl Transcript<'_> {
    /// Whether this side sorts first (lo) in the schedule. On a tie (identical key and
    /// id) both sides count as first, so neither's tx is the other's rx: a reflected
    /// exchange cannot loop messages back.
    pub fn i_am_first(&self) -> bool {
        (self.my_pub, self.my_id.as_bytes()) <= (self.peer_pub, self.peer_id.as_bytes())
    }
}

/// Derive the session keys of an exchange (schedule in the module header).
///
/// With a PSK, the key exchange is authenticated: the PSK enters as the HKDF-Extract salt,
/// so PRK = HMAC(key = psk_salt, K). This is TLS 1.3's psk_dhe_ke (RFC 8446 §7.1, where
/// the (EC)DHE secret is extracted under a PSK-derived salt) and does what WireGuard's psk2
/// does, each secret sitting where the standard assumption covers it:
/// - a node without the PSK that swapped the public keys knows K but not the HMAC key, so
///   the keys are a PRF output under a key it lacks: it learns nothing and cannot inject;
/// - if the PSK leaks later, HKDF-Extract with a known salt is RFC 5869's extractor over
///   K, whose ephemeral secrets are gone: past traffic stays secret (forward secrecy).
///
/// `ikm = K || PSK` (or WireGuard's HMAC(key = chain, msg = PSK)) would need HMAC to be
/// a PRF in its message input for the first property; the salt position needs nothing
/// beyond HMAC being a PRF.
///
/// Nothing here confirms that the peer derived the same keys: a mismatch (wrong PSK,
/// swapped public keys) shows as authentication failures on the first messages.
pub fn derive_session_keys(
    shared: &SharedSecret,
    my_id: &str,
    my_pub: &[u8; PUBLIC_KEY_LEN],
    peer_id: &str,
    peer_pub: &[u8; PUBLIC_KEY_LEN],
    psk: Option<&Psk>,
) -> SessionKeys {
    let transcript = Transcript {
        my_id,
        my_pub,
        peer_id,
        peer_pub,
        statics: None,
    };
    let salt = psk.map(psk_salt);
    derive_keys(shared, &transcript, salt.as_deref())
}

/// The general form of `derive_session_keys`: `salt` is the PSK salt, the previous
/// exchange's chain key (a rekey), or none; identity keys, when used, are appended to
/// `info` as `"static" || s_lo || s_hi`. The chain key is `okm[88..120]`; HKDF-Expand is
/// prefix-consistent, so the first 88 bytes are the same as `derive_session_keys`'s.
pub fn derive_keys(
    shared: &SharedSecret,
    t: &Transcript<'_>,
    salt: Option<&[u8; 32]>,
) -> SessionKeys {
    let i_am_first = t.i_am_first();
    let (lo, hi) = if i_am_first {
        ((t.my_id, t.my_pub), (t.peer_id, t.peer_pub))
    } else {
        ((t.peer_id, t.peer_pub), (t.my_id, t.my_pub))
    };
    let mut info = LABEL_DH.to_vec();
    for id in [lo.0, hi.0] {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        info.extend_from_slice(&(id.len() as u64).to_be_bytes());
        info.extend_from_slice(id.as_bytes());
    }
    info.extend_from_slice(lo.1);
    info.extend_from_slice(hi.1);
    if let Some((mine, theirs)) = t.statics {
        let (s_lo, s_hi) = if i_am_first {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        info.extend_from_slice(b"static");
        info.extend_from_slice(s_lo);
        info.extend_from_slice(s_hi);
    }

    let mut okm = Zeroizing::new([0u8; 2 * HALF + 32]);
    hkdf_sha256(
        salt.map(|s| s.as_slice()),
        &shared.0,
        &info,
        okm.as_mut_slice(),
    );
    let (lo_to_hi, rest) = okm.split_at(HALF);
    let (hi_to_lo, chain_bytes) = rest.split_at(HALF);
    let (tx, rx) = if i_am_first {
        (lo_to_hi, hi_to_lo)
    } else {
        (hi_to_lo, lo_to_hi)
    };
    let key = |half: &[u8]| SessionKey::from_key_and_iv(&half[..KEY_LEN], &half[KEY_LEN..]);
    let mut chain = Zeroizing::new([0u8; 32]);
    chain.copy_from_slice(chain_bytes);
    SessionKeys {
        tx: key(tx),
        rx: key(rx),
        chain,
    }
}

/// The DH salt derived from the PSK: HKDF-SHA256(PSK, info = "evospikenet/v1/dh-psk").
/// A separate derivation rather than the PSK itself keeps the DH schedule independent
/// of every PSK-mode key.
pub fn psk_salt(psk: &Psk) -> Zeroizing<[u8; 32]> {
    psk.derive_secret(PSK_SALT_LABEL)
}

#[cfg(test)]
mod tests {
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
    const SHARED: [u8; 32] =
        hex!("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

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
}
