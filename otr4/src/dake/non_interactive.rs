//! The non-interactive DAKE (otrv4.md §"Non-interactive Deniable Authenticated Key Exchange
//! (DAKE)", §"Non-Interactive DAKE Overview"): the Non-Interactive-Auth message, both sides.
//!
//! Naming follows the spec: **Bob** published the Prekey Ensemble (`Y`, `B`, `D_b`, `H_b`,
//! `F_b`) and receives the Non-Interactive-Auth message; **Alice** retrieved it and sends the
//! Non-Interactive-Auth message (`X`, `A`, `sigma`, Auth MAC). [`send_non_interactive_auth`]
//! is Alice's side, [`receive_non_interactive_auth`] Bob's; both end in a
//! [`NonInteractiveComplete`] that initialises the double ratchet.

use crate::debug::redacted_debug;
use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::vec::Vec;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::CryptoError;
use crate::crypto::ct_eq;
use crate::crypto::dh::{DhKeyPair, DhPublic, SharedDh};
use crate::crypto::ecdh::{SharedSecret, ecdh};
use crate::crypto::ed448::{KeyPair, Point};
use crate::crypto::kdf::{Otrv4, Usage, hcmac, hwc, kdf};
use crate::crypto::keys::SharedPrekeyPublic;
use crate::crypto::rsig::RingSignature;
use crate::dake::ensemble::ValidatedEnsemble;
use crate::dake::phi::{PhiParty, PhiPrime, phi};
use crate::dake::{BRACE_KEY_LEN, MixedSecret, Ssid};
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;
use crate::profile::client::{ClientProfile, ValidatedClientProfile};
use crate::ratchet::DoubleRatchet;
use crate::wire::codec::Writer;
use crate::wire::messages::{MAC_LEN, NonInteractiveAuth};

/// Why a Non-Interactive-Auth message could not be made or was rejected (otrv4.md
/// §"Non-Interactive DAKE Overview", §"Receiving a Non-Interactive-Auth Message"). In
/// every receiving case the message is ignored and nothing is sent; the prekey secrets are
/// kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonInteractiveError {
    /// The message's receiver instance tag is not our (the prekey owner's) tag.
    #[error("receiver instance tag {found} is not ours ({expected})")]
    WrongReceiverTag {
        /// Our instance tag.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// The sender's Client Profile is invalid.
    #[error("client profile rejected: {0}")]
    Profile(#[from] ProfileError),
    /// No local prekey secrets for the message's Prekey Message Identifier ("Aborts the
    /// DAKE"): never published, already used, or expired.
    #[error("no prekey message with id {0}")]
    UnknownPrekey(u32),
    /// None of our Client Profiles can be used (none given, or none for our long-term key).
    #[error("no local client profile")]
    NoClientProfile,
    /// We have no shared prekey / Prekey Profile.
    #[error("no local prekey profile")]
    NoPrekeyProfile,
    /// `sigma` verifies for none of our Client Profile and Prekey Profile combinations.
    #[error("ring signature does not verify")]
    BadRingSignature,
    /// The Auth MAC does not verify ("ignore the Non-Interactive-Auth message").
    #[error("auth MAC does not verify")]
    BadAuthMac,
    /// An ECDH shared secret was the identity.
    #[error("ECDH shared secret is zero")]
    ZeroEcdhSecret,
    /// Our long-term key pair does not match the `H` in our own Client Profile.
    #[error("our long-term key does not match our client profile")]
    OwnProfileKeyMismatch,
    /// Producing our ring signature failed (e.g. the peer's forging key is our `H`).
    #[error("cannot sign: {0}")]
    Signing(CryptoError),
}

/// Which side of the non-interactive DAKE we are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NonInteractiveRole {
    /// Alice: sent the Non-Interactive-Auth message; starts with a sending chain.
    Sender,
    /// Bob: published the prekeys, received the message; starts with a receiving chain.
    Receiver,
}

impl NonInteractiveRole {
    /// Which 4-byte half of the SSID to show in bold: the first for the sender, the second
    /// for the receiver (otrv4.md §"Secure Session ID").
    pub fn ssid_bold_half(self) -> usize {
        match self {
            NonInteractiveRole::Sender => 0,
            NonInteractiveRole::Receiver => 1,
        }
    }
}

/// The keys the ratchet starts from, by role. Boxed as a whole in
/// [`NonInteractiveComplete`], so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum FirstKeys {
    /// Alice: her first key pairs and Bob's prekey values `Y`, `B`.
    Sender {
        our_ecdh_first: KeyPair,
        our_dh_first: DhKeyPair,
        their_ecdh: Point,
        their_dh: DhPublic,
    },
    /// Bob: Alice's first public keys.
    Receiver {
        their_ecdh_first: Point,
        their_dh_first: DhPublic,
    },
}

/// The end of a successful non-interactive DAKE, for either role: `K`, the SSID, the brace
/// key, the tags, the peer's validated Client Profile and the first keys of the double
/// ratchet. Secrets zeroize on drop; `Debug` prints public values only.
pub struct NonInteractiveComplete {
    role: NonInteractiveRole,
    shared_secret: MixedSecret,
    brace_key: Zeroizing<[u8; BRACE_KEY_LEN]>,
    ssid: Ssid,
    our_tag: InstanceTag,
    their_tag: InstanceTag,
    their_profile: ValidatedClientProfile,
    keys: Box<FirstKeys>,
}

redacted_debug!(NonInteractiveComplete {
    role,
    ssid,
    our_tag,
    their_tag,
    ..
});

impl NonInteractiveComplete {
    /// Our role.
    pub fn role(&self) -> NonInteractiveRole {
        self.role
    }

    /// The mixed shared secret `K = KDF(usage_shared_secret || tmp_k, 64)`.
    #[cfg(feature = "hazmat")]
    pub fn shared_secret(&self) -> &MixedSecret {
        &self.shared_secret
    }

    /// `SSID = HWC(usage_SSID || K, 8)`.
    pub fn ssid(&self) -> Ssid {
        self.ssid
    }

    /// Our sender instance tag.
    pub fn our_tag(&self) -> InstanceTag {
        self.our_tag
    }

    /// The peer's instance tag.
    pub fn their_tag(&self) -> InstanceTag {
        self.their_tag
    }

    /// The peer's validated Client Profile.
    pub fn their_profile(&self) -> &ValidatedClientProfile {
        &self.their_profile
    }

    /// Initialises the double ratchet (otrv4.md §"Non-Interactive DAKE Overview",
    /// "Initializes the double-ratchet"): the sender with
    /// [`DoubleRatchet::init_after_sending_non_interactive_auth`] (its first data messages
    /// use the initial sending chain, no new DH ratchet), the receiver with
    /// [`DoubleRatchet::init_after_receiving_non_interactive_auth`] (receiving chain; its
    /// first send performs a DH ratchet). `K` and the brace key are wiped when `self` drops.
    pub fn into_double_ratchet(self) -> DoubleRatchet {
        let k = self.shared_secret.as_bytes();
        let brace = &self.brace_key;
        match *self.keys {
            FirstKeys::Sender {
                our_ecdh_first,
                our_dh_first,
                their_ecdh,
                their_dh,
            } => DoubleRatchet::init_after_sending_non_interactive_auth(
                k,
                brace,
                our_ecdh_first,
                our_dh_first,
                their_ecdh,
                their_dh,
            ),
            FirstKeys::Receiver {
                their_ecdh_first,
                their_dh_first,
            } => DoubleRatchet::init_after_receiving_non_interactive_auth(
                k,
                brace,
                their_ecdh_first,
                their_dh_first,
            ),
        }
    }
}

/// `tmp_k` and the keys derived from it. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct TmpKey([u8; 64]);

impl TmpKey {
    /// `tmp_k = KDF(usage_tmp_key || K_ecdh || ECDH(x, D) || ECDH(x, H_b) || brace_key, 64)`.
    fn derive(
        k_ecdh: &SharedSecret,
        shared_prekey_part: &SharedSecret,
        long_term_part: &SharedSecret,
        brace_key: &[u8; BRACE_KEY_LEN],
    ) -> TmpKey {
        TmpKey(kdf(
            Usage::TmpKey,
            &[
                k_ecdh.as_bytes(),
                shared_prekey_part.as_bytes(),
                long_term_part.as_bytes(),
                brace_key,
            ],
        ))
    }

    /// `Auth MAC = HCMAC(usage_auth_MAC || auth_mac_k || t, 64)` with
    /// `auth_mac_k = KDF(usage_auth_MAC_key || tmp_k, 64)`.
    fn auth_mac(&self, t: &[u8]) -> [u8; MAC_LEN] {
        let auth_mac_k: Zeroizing<[u8; 64]> = Zeroizing::new(kdf(Usage::AuthMacKey, &[&self.0]));
        hcmac(Usage::AuthMac, &[auth_mac_k.as_ref(), t])
    }

    /// `K = KDF(usage_shared_secret || tmp_k, 64)`.
    fn mixed_secret(&self) -> MixedSecret {
        MixedSecret::from_bytes(kdf(Usage::SharedSecret, &[&self.0]))
    }
}

/// `brace_key = KDF(usage_third_brace_key || k_dh, 32)`.
fn brace_key(k_dh: &SharedDh) -> Zeroizing<[u8; BRACE_KEY_LEN]> {
    Zeroizing::new(kdf(Usage::ThirdBraceKey, &[k_dh.k_dh()]))
}

fn zero(_: CryptoError) -> NonInteractiveError {
    NonInteractiveError::ZeroEcdhSecret
}

/// Everything `t` of the Non-Interactive-Auth message covers (otrv4.md
/// §"Non-Interactive-Auth Message").
#[derive(Clone, Copy)]
struct NiaTranscript<'a> {
    bob_profile: &'a ClientProfile,
    alice_profile: &'a ClientProfile,
    y: &'a Point,
    x: &'a Point,
    b: &'a DhPublic,
    a: &'a DhPublic,
    d: &'a SharedPrekeyPublic,
    phi: &'a [u8],
}

impl NiaTranscript<'_> {
    /// `t = HWC(usage_non_int_auth_bob_client_profile || Bob_Client_Profile, 64) ||
    /// HWC(usage_non_int_auth_alice_client_profile || Alice_Client_Profile, 64) || Y || X ||
    /// B || A || their_shared_prekey || HWC(usage_non_int_auth_phi || phi, 64)`: profiles in
    /// their wire encoding, `Y`, `X` as POINT, `B`, `A` as MPI, the shared prekey as
    /// ED448-SHARED-PREKEY (see docs/spec-notes.md).
    fn encode(&self) -> Vec<u8> {
        let bob: [u8; 64] = hwc(
            Usage::NonIntAuthBobClientProfile,
            &[&self.bob_profile.encode()],
        );
        let alice: [u8; 64] = hwc(
            Usage::NonIntAuthAliceClientProfile,
            &[&self.alice_profile.encode()],
        );
        let phi: [u8; 64] = hwc(Usage::NonIntAuthPhi, &[self.phi]);
        let mut w = Vec::with_capacity(3 * 64 + 2 * 57 + 2 * (4 + 384) + 59);
        w.bytes(&bob).bytes(&alice);
        w.point(self.y);
        w.point(self.x);
        w.dh_public(self.b);
        w.dh_public(self.a);
        self.d.write(&mut w);
        w.bytes(&phi);
        w
    }
}

/// `phi` of the non-interactive DAKE: D's [`phi`] with Alice's tuple (her tag,
/// `our_ecdh_first`, `our_dh_first`) and Bob's (his tag and the prekey message's `Y`, `B`,
/// the keys Alice's ratchet starts from), then `phi'` (see docs/spec-notes.md).
fn nia_phi(
    alice_tag: InstanceTag,
    ecdh_first: &Point,
    dh_first: &DhPublic,
    bob_tag: InstanceTag,
    y: &Point,
    b: &DhPublic,
    phi_prime: &PhiPrime,
) -> Vec<u8> {
    phi(
        PhiParty {
            tag: alice_tag,
            ecdh_first,
            dh_first,
        },
        PhiParty {
            tag: bob_tag,
            ecdh_first: y,
            dh_first: b,
        },
        phi_prime,
    )
}

/// Alice's side (otrv4.md §"Non-Interactive DAKE Overview", Alice; §"Non-Interactive-Auth
/// Message", generation): from a validated Prekey Ensemble of Bob, generates `x`, `a` and
/// the first ratchet keys, computes `K_ecdh = ECDH(x, Y)`, `brace_key` from `DH(a, B)`,
/// `tmp_k`, `sigma = RSig(H_a, sk_ha, {F_b, H_a, Y}, t)` and the Auth MAC, and returns the
/// message with the completion (`K`, SSID, the ratchet's first keys). `long_term` and
/// `our_profile` are ours (the profile's owner tag is our sender tag); `phi_prime` is the
/// application's shared state (e.g. both bare JIDs), the same Bob will use.
pub fn send_non_interactive_auth<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    ensemble: &ValidatedEnsemble,
    long_term: &KeyPair,
    our_profile: &ClientProfile,
    phi_prime: &PhiPrime,
) -> Result<(NonInteractiveAuth, NonInteractiveComplete), NonInteractiveError> {
    if our_profile.public_key().point() != long_term.public() {
        return Err(NonInteractiveError::OwnProfileKeyMismatch);
    }
    send_signed_by(rng, ensemble, long_term, our_profile, phi_prime)
}

/// [`send_non_interactive_auth`] with `sigma` made by `signer`, which must be one of the
/// ring `{F_b, H_a, Y}` ([`NonInteractiveError::Signing`] otherwise): `H_a`'s secret when
/// honest, Bob's forging key or `Y`'s secret when forged (otrv4.md §"Forging
/// Transcripts").
pub(crate) fn send_signed_by<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    ensemble: &ValidatedEnsemble,
    signer: &KeyPair,
    our_profile: &ClientProfile,
    phi_prime: &PhiPrime,
) -> Result<(NonInteractiveAuth, NonInteractiveComplete), NonInteractiveError> {
    let bob_profile = ensemble.client_profile();
    let pm = ensemble.prekey_message();
    let d = &ensemble.prekey_profile().shared_prekey;
    let h_b = bob_profile.public_key().point();
    let f_b = bob_profile.forging_key().point();
    let (our_tag, their_tag) = (our_profile.owner_tag(), ensemble.owner_tag());

    let x = KeyPair::generate(rng);
    let a = DhKeyPair::generate(rng);
    let ecdh_first = KeyPair::generate(rng);
    let dh_first = DhKeyPair::generate(rng);

    let k_ecdh = ecdh(x.secret(), &pm.y).map_err(zero)?;
    let brace = brace_key(&a.shared_secret(&pm.b));
    let tmp_k = TmpKey::derive(
        &k_ecdh,
        &ecdh(x.secret(), d.point()).map_err(zero)?,
        &ecdh(x.secret(), h_b).map_err(zero)?,
        &brace,
    );
    drop(k_ecdh);

    let phi = nia_phi(
        our_tag,
        ecdh_first.public(),
        dh_first.public(),
        their_tag,
        &pm.y,
        &pm.b,
        phi_prime,
    );
    let t = NiaTranscript {
        bob_profile,
        alice_profile: our_profile,
        y: &pm.y,
        x: x.public(),
        b: &pm.b,
        a: a.public(),
        d,
        phi: &phi,
    }
    .encode();
    let h_a = our_profile.public_key().point();
    let sigma = RingSignature::sign::<Otrv4, R>(rng, signer, [f_b, h_a, &pm.y], &t)
        .map_err(NonInteractiveError::Signing)?;
    let auth_mac = tmp_k.auth_mac(&t);
    let shared_secret = tmp_k.mixed_secret();
    drop(tmp_k);

    let msg = NonInteractiveAuth {
        sender_tag: our_tag,
        receiver_tag: their_tag,
        client_profile: our_profile.clone(),
        x: *x.public(),
        a: a.public().clone(),
        sigma,
        prekey_message_id: pm.id,
        auth_mac,
        our_ecdh_first: *ecdh_first.public(),
        our_dh_first: dh_first.public().clone(),
    };
    let done = NonInteractiveComplete {
        role: NonInteractiveRole::Sender,
        ssid: shared_secret.ssid(),
        shared_secret,
        brace_key: brace,
        our_tag,
        their_tag,
        their_profile: ensemble_profile(ensemble),
        keys: Box::new(FirstKeys::Sender {
            our_ecdh_first: ecdh_first,
            our_dh_first: dh_first,
            their_ecdh: pm.y,
            their_dh: pm.b.clone(),
        }),
    };
    Ok((msg, done))
}

/// The ensemble's Client Profile, already validated with the ensemble.
fn ensemble_profile(e: &ValidatedEnsemble) -> ValidatedClientProfile {
    e.validated_client_profile().clone()
}

/// The receiver's prekey secrets as the non-interactive DAKE reads them (otrv4.md
/// §"Receiving a Non-Interactive-Auth Message"). The client's store,
/// [`crate::prekey::ensemble::PrekeyStore`], implements it.
pub trait PrekeySecretSource {
    /// The instance tag the secrets belong to.
    fn owner(&self) -> InstanceTag;
    /// The one-time ECDH and DH key pairs `(y, b)` of Prekey message `id`.
    fn one_time_keys(&self, id: u32) -> Option<(&KeyPair, &DhKeyPair)>;
    /// The shared prekey pairs `(d, D)`, oldest first.
    fn shared_prekey_keys(&self) -> Vec<(&KeyPair, &SharedPrekeyPublic)>;
    /// Forgets the one-time secrets of `id` once a verified message used them.
    fn use_up(&mut self, id: u32);
}

/// Bob's side (otrv4.md §"Receiving a Non-Interactive-Auth Message", §"Non-Interactive DAKE
/// Overview", Bob; §"Non-Interactive-Auth Message", verification), in this order:
/// 1. the receiver tag is ours (`store`'s owner tag) — [`NonInteractiveError::WrongReceiverTag`]
///    (type, version, `X`, `A` and the first keys were checked when decoding);
/// 2. Alice's Client Profile is valid for the sender tag at `now` —
///    [`NonInteractiveError::Profile`];
/// 3. the prekey secrets for the message's id exist — [`NonInteractiveError::UnknownPrekey`];
///    we have a Client Profile for `long_term` and a shared prekey —
///    [`NonInteractiveError::NoClientProfile`], [`NonInteractiveError::NoPrekeyProfile`];
/// 4. `RVrf({F_b, H_a, Y}, sigma, t)` for some pair of our Client Profiles (`our_profiles`,
///    newest first; older ones still in their extra validity period may follow) and our
///    shared prekeys (`store`, newest first) — [`NonInteractiveError::BadRingSignature`];
/// 5. `K_ecdh = ECDH(y, X)`, `brace_key` from `DH(b, A)`, `tmp_k` with that pair's `d`, and
///    the Auth MAC (constant-time) — [`NonInteractiveError::BadAuthMac`].
///
/// Only then are the prekey secrets removed from `store` (a forged message never burns a
/// prekey) and `K`, the SSID and the ratchet's first keys returned.
pub fn receive_non_interactive_auth(
    msg: &NonInteractiveAuth,
    long_term: &KeyPair,
    our_profiles: &[ClientProfile],
    store: &mut impl PrekeySecretSource,
    phi_prime: &PhiPrime,
    now: i64,
) -> Result<NonInteractiveComplete, NonInteractiveError> {
    let our_tag = store.owner();
    if msg.receiver_tag != our_tag {
        return Err(NonInteractiveError::WrongReceiverTag {
            expected: our_tag,
            found: msg.receiver_tag,
        });
    }
    let alice = msg.client_profile.validate(msg.sender_tag, now)?;
    let (y, b) = store
        .one_time_keys(msg.prekey_message_id)
        .ok_or(NonInteractiveError::UnknownPrekey(msg.prekey_message_id))?;
    let profiles: Vec<&ClientProfile> = our_profiles
        .iter()
        .filter(|p| p.public_key().point() == long_term.public() && p.owner_tag() == our_tag)
        .collect();
    if profiles.is_empty() {
        return Err(NonInteractiveError::NoClientProfile);
    }
    let shared = store.shared_prekey_keys();
    if shared.is_empty() {
        return Err(NonInteractiveError::NoPrekeyProfile);
    }
    let h_a = alice.public_key().point();
    let phi = nia_phi(
        msg.sender_tag,
        &msg.our_ecdh_first,
        &msg.our_dh_first,
        our_tag,
        y.public(),
        b.public(),
        phi_prime,
    );
    // Step 4: find the (Client Profile, shared prekey) pair sigma was made for.
    let mut found = None;
    'search: for cp in &profiles {
        for (d_key, d_pub) in shared.iter().rev() {
            let t = NiaTranscript {
                bob_profile: cp,
                alice_profile: &msg.client_profile,
                y: y.public(),
                x: &msg.x,
                b: b.public(),
                a: &msg.a,
                d: d_pub,
                phi: &phi,
            }
            .encode();
            let ring = [cp.forging_key().point(), h_a, y.public()];
            if msg.sigma.verify::<Otrv4>(ring, &t).is_ok() {
                found = Some((t, *d_key));
                break 'search;
            }
        }
    }
    let (t, d) = found.ok_or(NonInteractiveError::BadRingSignature)?;
    // Step 5.
    let k_ecdh = ecdh(y.secret(), &msg.x).map_err(zero)?;
    let brace = brace_key(&b.shared_secret(&msg.a));
    let tmp_k = TmpKey::derive(
        &k_ecdh,
        &ecdh(d.secret(), &msg.x).map_err(zero)?,
        &ecdh(long_term.secret(), &msg.x).map_err(zero)?,
        &brace,
    );
    drop(k_ecdh);
    if !ct_eq(&tmp_k.auth_mac(&t), &msg.auth_mac) {
        return Err(NonInteractiveError::BadAuthMac);
    }
    let shared_secret = tmp_k.mixed_secret();
    drop(tmp_k);
    // Verified: now the one-time prekey is used up.
    store.use_up(msg.prekey_message_id);
    Ok(NonInteractiveComplete {
        role: NonInteractiveRole::Receiver,
        ssid: shared_secret.ssid(),
        shared_secret,
        brace_key: brace,
        our_tag,
        their_tag: msg.sender_tag,
        their_profile: alice,
        keys: Box::new(FirstKeys::Receiver {
            their_ecdh_first: msg.our_ecdh_first,
            their_dh_first: msg.our_dh_first.clone(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::shake_into;
    use crate::crypto::keys::generate_forging_point;
    use crate::prekey::ensemble::PrekeyStore;
    use crate::wire::messages::PrekeyEnsemble;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn h(usage: u8, parts: &[&[u8]], out: &mut [u8]) {
        shake_into(b"OTRv4", usage, parts, out);
    }

    fn mpi(d: &DhPublic) -> Vec<u8> {
        let b = d.to_be_bytes();
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&b);
        v
    }

    #[test]
    fn message_fields_match_an_independent_recomputation() {
        const NOW: i64 = 1_700_000_000;
        let mut rng = StdRng::seed_from_u64(7);
        let (bob_lt, alice_lt) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let (bob_tag, alice_tag) = (InstanceTag(0x0100_0b0b), InstanceTag(0x0100_0a0a));
        let f_b = generate_forging_point(&mut rng);
        let f_a = generate_forging_point(&mut rng);
        let bob_cp = ClientProfile::build_and_sign(bob_tag, &bob_lt, &f_b, b"4", NOW + 100);
        let alice_cp = ClientProfile::build_and_sign(alice_tag, &alice_lt, &f_a, b"4", NOW + 100);
        let mut store = PrekeyStore::new(bob_tag);
        let pp = store.new_prekey_profile(&mut rng, &bob_lt, NOW + 100);
        let pm = store
            .generate_prekey_messages(&mut rng, 1, NOW)
            .unwrap()
            .remove(0);
        let ens = ValidatedEnsemble::validate(
            &PrekeyEnsemble {
                client_profile: bob_cp.clone(),
                prekey_profile: pp.clone(),
                prekey_message: pm.clone(),
            },
            NOW,
        )
        .unwrap();
        let phi_prime = PhiPrime::from_opaque(b"ctx");
        let (nia, done) =
            send_non_interactive_auth(&mut rng, &ens, &alice_lt, &alice_cp, &phi_prime).unwrap();

        // phi: the two (tag, ecdh, dh) tuples in ascending order (Alice's tag is lower).
        let mut phi = alice_tag.0.to_be_bytes().to_vec();
        phi.extend_from_slice(&nia.our_ecdh_first.encode());
        phi.extend_from_slice(&mpi(&nia.our_dh_first));
        phi.extend_from_slice(&bob_tag.0.to_be_bytes());
        phi.extend_from_slice(&pm.y.encode());
        phi.extend_from_slice(&mpi(&pm.b));
        phi.extend_from_slice(b"\0\0\0\x03ctx");
        // t, byte by byte.
        let (mut hb, mut ha, mut hp) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        h(0x0E, &[&bob_cp.encode()], &mut hb);
        h(0x0F, &[&alice_cp.encode()], &mut ha);
        h(0x10, &[&phi], &mut hp);
        let mut t = Vec::new();
        t.extend_from_slice(&hb);
        t.extend_from_slice(&ha);
        t.extend_from_slice(&pm.y.encode());
        t.extend_from_slice(&nia.x.encode());
        t.extend_from_slice(&mpi(&pm.b));
        t.extend_from_slice(&mpi(&nia.a));
        t.extend_from_slice(&[0x11, 0x00]);
        t.extend_from_slice(&pp.shared_prekey.point().encode());
        t.extend_from_slice(&hp);
        nia.sigma
            .verify::<Otrv4>([f_b.point(), alice_lt.public(), &pm.y], &t)
            .unwrap();

        // tmp_k, the Auth MAC and K from Bob's secrets.
        let s = store.get(pm.id).unwrap();
        let d = store.current_shared_prekey().unwrap().key();
        let k_ecdh = ecdh(s.ecdh().secret(), &nia.x).unwrap();
        let k_dh = s.dh().shared_secret(&nia.a);
        let mut brace = [0u8; 32];
        h(0x01, &[k_dh.k_dh()], &mut brace);
        let mut tmp_k = [0u8; 64];
        h(
            0x0C,
            &[
                k_ecdh.as_bytes(),
                ecdh(d.secret(), &nia.x).unwrap().as_bytes(),
                ecdh(bob_lt.secret(), &nia.x).unwrap().as_bytes(),
                &brace,
            ],
            &mut tmp_k,
        );
        let (mut mac_k, mut mac, mut k) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        h(0x0D, &[&tmp_k], &mut mac_k);
        h(0x11, &[&mac_k, &t], &mut mac);
        h(0x03, &[&tmp_k], &mut k);
        assert_eq!(nia.auth_mac, mac);
        assert_eq!(done.shared_secret().as_bytes(), &k);
        let mut ssid = [0u8; 8];
        h(0x04, &[&k], &mut ssid);
        assert_eq!(done.ssid().0, ssid);
        assert_eq!(done.role().ssid_bold_half(), 0);
    }
}
