//! What authenticates an INIT before the responder spends anything on it: a MAC under a
//! key only the legitimate initiator (and the responder) can hold.
//!
//! ```text
//! first contact  init key = HKDF-SHA256(ikm = [psk_salt] || [ss], no salt,
//!                                       info = "evospikenet/v2/init" || flags)
//!                psk_salt = the DH salt of the PSK named by the INIT's key id
//!                ss       = X25519(s_me, S_peer), the pinned identity keys' secret
//! rekey          init key = HKDF-SHA256(ikm = chain key of the base channel, no salt,
//!                                       info = "evospikenet/v2/rekey-init")
//! mac            = HMAC-SHA256(init key, every byte of the INIT before the mac)
//! ```
//! A node without the PSK (or without a pinned identity key, when pins are used) cannot
//! produce a valid INIT, so a forged INIT changes no state, whatever id it claims. As in
//! WireGuard's handshake initiation, the MAC covers a timestamp that the responder
//! requires to grow per peer, so a captured INIT cannot be replayed either.

use ring::hmac;
use zeroize::Zeroizing;

use crate::crypto::handshake::SharedSecret;
use crate::crypto::kdf::hkdf_sha256;
use crate::dh::message::MAC_LEN;

const LABEL_INIT: &[u8] = b"evospikenet/v2/init";
const LABEL_REKEY_INIT: &[u8] = b"evospikenet/v2/rekey-init";

/// The key an INIT (and its RESP) is MACed with. Its bytes are zeroized on drop.
#[derive(Clone)]
pub struct InitKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for InitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitKey(<redacted>)")
    }
}

impl InitKey {
    /// The key of a first-contact INIT, from the PSK salt and/or the static-static secret.
    /// `flags` (the INIT's) enter the derivation, so a MAC made for one combination does
    /// not verify under another.
    pub fn first_contact(
        psk_salt: Option<&[u8; 32]>,
        ss: Option<&SharedSecret>,
        flags: u8,
    ) -> InitKey {
        let mut ikm = Zeroizing::new(Vec::with_capacity(64));
        if let Some(salt) = psk_salt {
            ikm.extend_from_slice(salt);
        }
        if let Some(ss) = ss {
            ikm.extend_from_slice(ss.expose());
        }
        let mut info = LABEL_INIT.to_vec();
        info.push(flags);
        InitKey(expand(&ikm, &info))
    }

    /// The key of a rekey INIT: derived from the chain key of the channel it renews.
    pub fn rekey(chain: &[u8; 32]) -> InitKey {
        InitKey(expand(chain, LABEL_REKEY_INIT))
    }

    pub fn mac(&self, signed: &[u8]) -> [u8; MAC_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_slice());
        let tag = hmac::sign(&key, signed);
        tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
    }

    /// Constant-time check of `mac` over `signed`.
    pub fn verify(&self, signed: &[u8], mac: &[u8; MAC_LEN]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_slice());
        hmac::verify(&key, signed, mac).is_ok()
    }
}

fn expand(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_sha256(None, ikm, info, out.as_mut_slice());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_verifies_only_under_its_key_flags_and_bytes() {
        let salt = [3u8; 32];
        let k = InitKey::first_contact(Some(&salt), None, 1);
        let mac = k.mac(b"init bytes");
        assert!(k.verify(b"init bytes", &mac));
        assert!(!k.verify(b"init bytez", &mac));
        assert!(!InitKey::first_contact(Some(&salt), None, 3).verify(b"init bytes", &mac));
        assert!(!InitKey::first_contact(Some(&[4; 32]), None, 1).verify(b"init bytes", &mac));
        assert!(!InitKey::rekey(&salt).verify(b"init bytes", &mac));
        let mut flipped = mac;
        flipped[31] ^= 1;
        assert!(!k.verify(b"init bytes", &flipped));
        assert!(!format!("{k:?}").contains("03"));
    }
}
