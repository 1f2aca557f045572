//! The OTRv3 AKE (Protocol-v3.html §"Authenticated Key Exchange (AKE)", the four messages'
//! sections, §"The protocol state machine"), one typestate per authstate.
//!
//! Bob (who sends the D-H Commit) goes [`start`] → [`AwaitingDhKey`] → [`AwaitingSig`] →
//! [`AkeComplete`]; Alice goes [`receive_dh_commit`] → [`AwaitingRevealSig`] → [`AkeComplete`].
//! A rejected message leaves the state as it was (the spec: "ignore the message").

use alloc::boxed::Box;
use alloc::vec::Vec;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::ct_eq;
use crate::debug::redacted_debug;
use crate::v3::group::{KeyPair, PublicValue};
use crate::v3::kdf::{AkeKeys, SSID_LEN};
use crate::v3::messages::{
    DhCommit, DhKey, MAC_LEN, R_LEN, RevealSignature, SignatureMessage, SignedKey,
};
use crate::v3::pubkey::{DsaPrivateKey, DsaPublicKey};
use crate::v3::{V3Error, aes_ctr};
use crate::wire::codec::{Reader, Writer};

/// The key id of our D-H key in the AKE: `our_keyid - 1` with `our_keyid = 2`
/// (Protocol-v3.html §"Key Management").
pub const AKE_KEYID: u32 = 1;

type HmacSha256 = Hmac<Sha256>;

/// `SHA256-HMAC(key, data)`.
fn hmac256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// SHA256-HMAC-160 of the encrypted signature field *with its four-byte length*
/// (Protocol-v3.html §"Reveal Signature Message": "MAC'd signature").
fn mac_encrypted(key: &[u8; 32], encrypted: &[u8]) -> [u8; MAC_LEN] {
    let mut field = Vec::with_capacity(4 + encrypted.len());
    field.data(encrypted);
    let full = hmac256(key, &[&field]);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(full.get(..MAC_LEN).unwrap_or(&[0; MAC_LEN]));
    out
}

/// `M = MAC_m1(g^a, g^b, pub, keyid)` and the encrypted, MACed `X = pub, keyid, sig(M)`.
fn sign_and_encrypt(
    ours: &DsaPrivateKey,
    m1: &[u8; 32],
    c: &[u8; 16],
    m2: &[u8; 32],
    first: &PublicValue,
    second: &PublicValue,
) -> Result<(Vec<u8>, [u8; MAC_LEN]), V3Error> {
    let mut pubkey = Vec::new();
    ours.public().write(&mut pubkey);
    let m = hmac256(
        m1,
        &[
            &first.mpi(),
            &second.mpi(),
            &pubkey,
            &AKE_KEYID.to_be_bytes(),
        ],
    );
    let sig = ours.sign(&m).map_err(V3Error::Signing)?;
    let mut x = SignedKey {
        public: ours.public().clone(),
        keyid: AKE_KEYID,
        sig,
    }
    .encode();
    aes_ctr(c, [0; 8], &mut x);
    let mac = mac_encrypted(m2, &x);
    Ok((x, mac))
}

/// Checks the MAC, decrypts `X`, recomputes `M = MAC_m1(first, second, pub, keyid)` and
/// verifies the signature (Protocol-v3.html §"Authenticated Key Exchange (AKE)").
fn verify_and_decrypt(
    encrypted: &[u8],
    mac: &[u8; MAC_LEN],
    m1: &[u8; 32],
    c: &[u8; 16],
    m2: &[u8; 32],
    first: &PublicValue,
    second: &PublicValue,
) -> Result<SignedKey, V3Error> {
    if !ct_eq(&mac_encrypted(m2, encrypted), mac) {
        return Err(V3Error::BadMac);
    }
    let mut x = encrypted.to_vec();
    aes_ctr(c, [0; 8], &mut x);
    let signed = SignedKey::decode(&x)?;
    let mut pubkey = Vec::new();
    signed.public.write(&mut pubkey);
    let m = hmac256(
        m1,
        &[
            &first.mpi(),
            &second.mpi(),
            &pubkey,
            &signed.keyid.to_be_bytes(),
        ],
    );
    if !signed.public.verify(&m, &signed.sig) {
        return Err(V3Error::BadSignature);
    }
    Ok(signed)
}

/// A message the AKE ignored, with the unchanged state.
#[derive(Debug)]
pub struct Rejected<S> {
    /// The state to stay in.
    pub state: S,
    /// Why the message was ignored.
    pub error: V3Error,
}

/// The outcome of a finished AKE: what the data phase starts from
/// (Protocol-v3.html §"Key Management": "Upon completing the AKE").
pub struct AkeComplete {
    /// The secure session id.
    pub ssid: [u8; SSID_LEN],
    /// Whether we sent the Reveal Signature message (the ssid's first half is ours to read
    /// out, in bold).
    pub sent_reveal_signature: bool,
    /// The peer's long-term key.
    pub their_public: DsaPublicKey,
    /// The peer's AKE key id.
    pub their_keyid: u32,
    /// The peer's AKE D-H public key.
    pub their_dh: PublicValue,
    /// Our AKE D-H key pair (key id [`AKE_KEYID`]).
    pub our_dh: KeyPair,
}

redacted_debug!(AkeComplete {
    sent_reveal_signature,
    their_public,
    their_keyid,
    ..
});

/// Bob after sending the D-H Commit: AUTHSTATE_AWAITING_DHKEY.
pub struct AwaitingDhKey {
    r: Zeroizing<[u8; R_LEN]>,
    x: KeyPair,
    commit: DhCommit,
}

redacted_debug!(AwaitingDhKey { commit, .. });

/// Starts the AKE: picks `r` and `x`, returns the D-H Commit to send
/// (Protocol-v3.html §"D-H Commit Message").
pub fn start<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> (AwaitingDhKey, DhCommit) {
    let mut r = Zeroizing::new([0u8; R_LEN]);
    rng.fill_bytes(r.as_mut_slice());
    let x = KeyPair::generate(rng);
    let gx = x.public().mpi();
    let hashed_gx: [u8; 32] = Sha256::digest(&gx).into();
    let mut encrypted_gx = gx;
    aes_ctr(&r, [0; 8], &mut encrypted_gx);
    let commit = DhCommit {
        encrypted_gx,
        hashed_gx,
    };
    (
        AwaitingDhKey {
            r,
            x,
            commit: commit.clone(),
        },
        commit,
    )
}

/// What Bob does with a D-H Commit received while awaiting the D-H Key (both sides
/// committed; Protocol-v3.html §"Receiving a D-H Commit Message").
#[derive(Debug)]
pub enum CommitCollision {
    /// Our hashed `g^x` is higher: ignore theirs and resend our D-H Commit.
    KeepOurs(AwaitingDhKey, DhCommit),
    /// Theirs is higher: forget ours and answer theirs with a D-H Key.
    TakeTheirs(AwaitingRevealSig, DhKey),
}

impl AwaitingDhKey {
    /// The D-H Commit we sent (to resend).
    pub fn commit(&self) -> &DhCommit {
        &self.commit
    }

    /// Receives the D-H Key: computes `s` and the keys and returns the Reveal Signature
    /// (Protocol-v3.html §"Reveal Signature Message").
    pub fn receive_dh_key(
        self,
        msg: &DhKey,
        ours: &DsaPrivateKey,
    ) -> Result<(AwaitingSig, RevealSignature), Box<Rejected<AwaitingDhKey>>> {
        let s = self.x.secbytes(&msg.gy);
        let keys = AkeKeys::derive(&s);
        let (encrypted_signature, mac) =
            match sign_and_encrypt(ours, &keys.m1, &keys.c, &keys.m2, self.x.public(), &msg.gy) {
                Ok(v) => v,
                Err(error) => return Err(Box::new(Rejected { state: self, error })),
            };
        let reveal = RevealSignature {
            r: *self.r,
            encrypted_signature,
            mac,
        };
        Ok((
            AwaitingSig {
                x: self.x,
                gy: msg.gy.clone(),
                keys,
                reveal: reveal.clone(),
            },
            reveal,
        ))
    }

    /// Both sides sent a D-H Commit: compare the hashed `g^x` values as 32-byte
    /// big-endian numbers; the higher one's sender stays the initiator.
    pub fn receive_dh_commit<R: rand_core::CryptoRng + ?Sized>(
        self,
        theirs: &DhCommit,
        rng: &mut R,
    ) -> CommitCollision {
        if self.commit.hashed_gx > theirs.hashed_gx {
            let c = self.commit.clone();
            CommitCollision::KeepOurs(self, c)
        } else {
            let (state, key) = receive_dh_commit(theirs, rng);
            CommitCollision::TakeTheirs(state, key)
        }
    }
}

/// Alice after answering a D-H Commit: AUTHSTATE_AWAITING_REVEALSIG.
pub struct AwaitingRevealSig {
    y: KeyPair,
    commit: DhCommit,
}

redacted_debug!(AwaitingRevealSig { commit, .. });

/// Answers a D-H Commit with a D-H Key (Protocol-v3.html §"D-H Key Message").
pub fn receive_dh_commit<R: rand_core::CryptoRng + ?Sized>(
    commit: &DhCommit,
    rng: &mut R,
) -> (AwaitingRevealSig, DhKey) {
    let y = KeyPair::generate(rng);
    let key = DhKey {
        gy: y.public().clone(),
    };
    (
        AwaitingRevealSig {
            y,
            commit: commit.clone(),
        },
        key,
    )
}

impl AwaitingRevealSig {
    /// The D-H Key we sent (to retransmit).
    pub fn dh_key(&self) -> DhKey {
        DhKey {
            gy: self.y.public().clone(),
        }
    }

    /// A new D-H Commit while awaiting the Reveal Signature: "Retransmit your D-H Key
    /// Message … Forget the old D-H Commit message, and use this new one instead."
    pub fn receive_dh_commit(self, commit: &DhCommit) -> (AwaitingRevealSig, DhKey) {
        let key = self.dh_key();
        (
            AwaitingRevealSig {
                y: self.y,
                commit: commit.clone(),
            },
            key,
        )
    }

    /// Receives the Reveal Signature: decrypts and checks `g^x` against the commitment,
    /// verifies the MAC and Bob's signature, and returns our Signature message
    /// (Protocol-v3.html §"Signature Message").
    pub fn receive_reveal_signature(
        self,
        msg: &RevealSignature,
        ours: &DsaPrivateKey,
    ) -> Result<(AkeComplete, SignatureMessage), Box<Rejected<AwaitingRevealSig>>> {
        match self.reveal(msg, ours) {
            Ok(v) => Ok(v),
            Err(error) => Err(Box::new(Rejected { state: self, error })),
        }
    }

    fn reveal(
        &self,
        msg: &RevealSignature,
        ours: &DsaPrivateKey,
    ) -> Result<(AkeComplete, SignatureMessage), V3Error> {
        let mut gx_mpi = self.commit.encrypted_gx.clone();
        aes_ctr(&msg.r, [0; 8], &mut gx_mpi);
        let hash: [u8; 32] = Sha256::digest(&gx_mpi).into();
        if !ct_eq(&hash, &self.commit.hashed_gx) {
            return Err(V3Error::CommitMismatch);
        }
        let mut r = Reader::new(&gx_mpi);
        let gx = r
            .mpi("g^x")
            .ok()
            .filter(|_| r.is_empty())
            .and_then(PublicValue::from_be_bytes)
            .ok_or(V3Error::CommitMismatch)?;
        let s = self.y.secbytes(&gx);
        let keys = AkeKeys::derive(&s);
        let signed = verify_and_decrypt(
            &msg.encrypted_signature,
            &msg.mac,
            &keys.m1,
            &keys.c,
            &keys.m2,
            &gx,
            self.y.public(),
        )?;
        let (encrypted_signature, mac) = sign_and_encrypt(
            ours,
            &keys.m1_prime,
            &keys.c_prime,
            &keys.m2_prime,
            self.y.public(),
            &gx,
        )?;
        let our_dh = KeyPair::clone_of(&self.y);
        Ok((
            AkeComplete {
                ssid: keys.ssid,
                sent_reveal_signature: false,
                their_public: signed.public,
                their_keyid: signed.keyid,
                their_dh: gx,
                our_dh,
            },
            SignatureMessage {
                encrypted_signature,
                mac,
            },
        ))
    }
}

/// Bob after sending the Reveal Signature: AUTHSTATE_AWAITING_SIG.
pub struct AwaitingSig {
    x: KeyPair,
    gy: PublicValue,
    keys: AkeKeys,
    reveal: RevealSignature,
}

redacted_debug!(AwaitingSig { gy, .. });

impl AwaitingSig {
    /// A D-H Key while awaiting the Signature: the Reveal Signature to retransmit if it is
    /// the one already answered, else [`V3Error::UnexpectedDhKey`] (ignore it).
    pub fn receive_dh_key(&self, msg: &DhKey) -> Result<RevealSignature, V3Error> {
        if msg.gy == self.gy {
            Ok(self.reveal.clone())
        } else {
            Err(V3Error::UnexpectedDhKey)
        }
    }

    /// Receives the Signature message: verifies the MAC and Alice's signature.
    pub fn receive_signature(
        self,
        msg: &SignatureMessage,
    ) -> Result<AkeComplete, Box<Rejected<AwaitingSig>>> {
        let k = &self.keys;
        match verify_and_decrypt(
            &msg.encrypted_signature,
            &msg.mac,
            &k.m1_prime,
            &k.c_prime,
            &k.m2_prime,
            &self.gy,
            self.x.public(),
        ) {
            Ok(signed) => Ok(AkeComplete {
                ssid: k.ssid,
                sent_reveal_signature: true,
                their_public: signed.public,
                their_keyid: signed.keyid,
                their_dh: self.gy.clone(),
                our_dh: KeyPair::clone_of(&self.x),
            }),
            Err(error) => Err(Box::new(Rejected { state: self, error })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::pubkey::tests::test_key;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Runs the AKE between two parties with the same test key (enough for the AKE; the
    /// interop test uses libotr's own key).
    fn run() -> (AkeComplete, AkeComplete, DsaPrivateKey) {
        let mut rng = StdRng::seed_from_u64(1);
        let key = test_key();
        let (bob, commit) = start(&mut rng);
        let (alice, dh_key) = receive_dh_commit(&commit, &mut rng);
        let (bob, reveal) = bob.receive_dh_key(&dh_key, &key).unwrap();
        let (alice_done, sig) = alice.receive_reveal_signature(&reveal, &key).unwrap();
        let bob_done = bob.receive_signature(&sig).unwrap();
        (alice_done, bob_done, key)
    }

    #[test]
    fn ake_agrees() {
        let (a, b, key) = run();
        assert_eq!(a.ssid, b.ssid);
        assert!(b.sent_reveal_signature && !a.sent_reveal_signature);
        assert_eq!(&a.their_public, key.public());
        assert_eq!(a.their_keyid, AKE_KEYID);
        assert_eq!(&a.their_dh, b.our_dh.public());
        assert_eq!(&b.their_dh, a.our_dh.public());
    }

    #[test]
    fn tampering_is_rejected_and_state_kept() {
        let mut rng = StdRng::seed_from_u64(2);
        let key = test_key();
        let (bob, commit) = start(&mut rng);
        let (alice, dh_key) = receive_dh_commit(&commit, &mut rng);
        let (bob, reveal) = bob.receive_dh_key(&dh_key, &key).unwrap();
        // Wrong r: the commitment does not open.
        let mut bad = reveal.clone();
        bad.r[0] ^= 1;
        let alice = match alice.receive_reveal_signature(&bad, &key) {
            Err(r) => {
                assert_eq!(r.error, V3Error::CommitMismatch);
                r.state
            }
            Ok(_) => panic!("accepted a wrong r"),
        };
        // Flipped ciphertext: the MAC fails.
        let mut bad = reveal.clone();
        bad.encrypted_signature[5] ^= 1;
        let alice = match alice.receive_reveal_signature(&bad, &key) {
            Err(r) => {
                assert_eq!(r.error, V3Error::BadMac);
                r.state
            }
            Ok(_) => panic!("accepted a bad MAC"),
        };
        // The same D-H Key again: Bob retransmits; another one is ignored.
        assert_eq!(bob.receive_dh_key(&dh_key).unwrap(), reveal);
        let other = DhKey {
            gy: KeyPair::generate(&mut rng).public().clone(),
        };
        assert_eq!(bob.receive_dh_key(&other), Err(V3Error::UnexpectedDhKey));
        // The untouched message still works after the rejections.
        let (_, sig) = alice.receive_reveal_signature(&reveal, &key).unwrap();
        let mut bad = sig.clone();
        bad.mac[0] ^= 1;
        let bob = match bob.receive_signature(&bad) {
            Err(r) => {
                assert_eq!(r.error, V3Error::BadMac);
                r.state
            }
            Ok(_) => panic!("accepted a bad MAC"),
        };
        assert!(bob.receive_signature(&sig).is_ok());
    }

    #[test]
    fn commit_collision_is_decided_by_hash() {
        let mut rng = StdRng::seed_from_u64(3);
        let (a, ca) = start(&mut rng);
        let (b, cb) = start(&mut rng);
        let a_high = ca.hashed_gx > cb.hashed_gx;
        match (a.receive_dh_commit(&cb, &mut rng), a_high) {
            (CommitCollision::KeepOurs(_, resend), true) => assert_eq!(resend, ca),
            (CommitCollision::TakeTheirs(..), false) => {}
            _ => panic!("wrong side won"),
        }
        match (b.receive_dh_commit(&ca, &mut rng), a_high) {
            (CommitCollision::TakeTheirs(..), true) | (CommitCollision::KeepOurs(..), false) => {}
            _ => panic!("wrong side won"),
        }
    }
}
