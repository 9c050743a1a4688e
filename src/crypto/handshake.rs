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
mod tests;
