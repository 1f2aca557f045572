//! The interactive DAKE (DAKEZ) of otrv4.md §"Interactive DAKE Overview" as typestates:
//! [`start`] → [`WaitingAuthR`] → [`DakeComplete`], and [`receive_identity`] → [`WaitingAuthI`].
//!
//! Every transition consumes the state and one message. A rejected message hands the state
//! back unchanged in [`Rejected`] ("ignore the message, stay in state …"). Each check
//! yields a value the next step takes as an argument — a validated profile
//! ([`ValidatedClientProfile`]), a checked receiver tag, a verified ring signature — so
//! skipping a check does not compile.
//!
//! Naming follows the spec: **Bob** sends the Identity message (`Y`, `B`) and the Auth-I
//! message; **Alice** answers with the Auth-R message (`X`, `A`). After a simultaneous
//! start, the side that yields the tie-break becomes Alice.

use crate::debug::redacted_debug;
use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::crypto::dh::{DhKeyPair, DhPublic};
use crate::crypto::ecdh::ecdh;
use crate::crypto::ed448::{KeyPair, Point};
use crate::crypto::kdf::{Otrv4, shake256};
use crate::crypto::rsig::RingSignature;
use crate::dake::phi::{PhiParty, PhiPrime, phi};
use crate::dake::transcript::Transcript;
use crate::dake::{DakeError, MixedSecret, Rejected, Ssid};
use crate::instance_tag::InstanceTag;
use crate::profile::client::{ClientProfile, ValidatedClientProfile};
use crate::ratchet::{DoubleRatchet, RatchetError};
use crate::wire::codec::Writer;
use crate::wire::messages::{AuthI, AuthR, IdentityMessage};

// ---------------------------------------------------------------------------------------
// Inputs and outputs.

/// Our side of one conversation: the long-term key pair `(sk_h, H)`, the Client Profile we
/// send, and the application's `phi'`. Our sender instance tag is the profile's owner tag.
/// Pass the same value to every step of one DAKE.
#[derive(Clone, Copy)]
pub struct LocalParty<'a> {
    long_term: &'a KeyPair,
    profile: &'a ClientProfile,
    phi_prime: &'a PhiPrime,
}

impl<'a> LocalParty<'a> {
    /// Bundles our long-term key, our Client Profile and `phi'`. Fails with
    /// [`DakeError::OwnProfileKeyMismatch`] if the profile's `H` is not `long_term`'s public
    /// key (we could not sign as the profile's owner).
    pub fn new(
        long_term: &'a KeyPair,
        profile: &'a ClientProfile,
        phi_prime: &'a PhiPrime,
    ) -> Result<LocalParty<'a>, DakeError> {
        if profile.public_key().point() != long_term.public() {
            return Err(DakeError::OwnProfileKeyMismatch);
        }
        Ok(LocalParty {
            long_term,
            profile,
            phi_prime,
        })
    }

    /// A party that signs its ring signatures with `signer`, any key of the ring
    /// (otrv4.md §"Forging Transcripts"): the other side's forging key or an ephemeral
    /// key the forger made, instead of the long-term key of `profile`'s owner.
    #[cfg(feature = "forge")]
    pub(crate) fn forger(
        signer: &'a KeyPair,
        profile: &'a ClientProfile,
        phi_prime: &'a PhiPrime,
    ) -> LocalParty<'a> {
        LocalParty {
            long_term: signer,
            profile,
            phi_prime,
        }
    }

    /// Our sender instance tag (the owner tag of our Client Profile).
    pub fn instance_tag(&self) -> InstanceTag {
        self.profile.owner_tag()
    }
}

redacted_debug!(LocalParty<'_> {
    instance_tag = |s| s.instance_tag(),
    long_term = |s| s.long_term,
    phi_prime = |s| s.phi_prime,
    ..
});

/// Which side of the interactive DAKE we ended up on (otrv4.md §"Interactive DAKE
/// Overview"); it decides how the double ratchet is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Bob: sent the Identity message and the Auth-I message. Initialises the ratchet by
    /// deriving the receiving chain from the first keys, then the sending chain with a
    /// freshly generated ECDH and DH key pair (`i = 1`).
    Bob,
    /// Alice: sent the Auth-R message, received and validated the Auth-I message.
    /// Initialises the ratchet by deriving the sending chain from the first keys.
    Alice,
}

impl Role {
    /// Which 4-byte half of the SSID to show in bold: `0` (first) for the Auth-R sender
    /// (Alice), `1` (second) for the Auth-I sender (Bob) (otrv4.md §"Secure Session ID").
    pub fn ssid_bold_half(self) -> usize {
        match self {
            Role::Alice => 0,
            Role::Bob => 1,
        }
    }
}

/// The end of a successful interactive DAKE: Bob holds it after sending Auth-I, Alice after
/// validating Auth-I. Only the DAKE transitions create it.
///
/// Holds `K`, the SSID, and the first key pairs that replace `our_ecdh`/`our_dh`/
/// `their_ecdh`/`their_dh` for the double-ratchet initialisation (otrv4.md §"Interactive
/// DAKE Overview"); the DAKE ephemerals `x`/`y`, `a`/`b` are already wiped.
#[derive(Debug)]
pub struct DakeComplete {
    init: Box<RatchetInit>,
}

impl DakeComplete {
    /// Our role.
    #[cfg(feature = "hazmat")]
    pub fn role(&self) -> Role {
        self.init.role
    }

    /// The mixed shared secret `K`.
    #[cfg(feature = "hazmat")]
    pub fn shared_secret(&self) -> &MixedSecret {
        &self.init.shared_secret
    }

    /// The secure session ID.
    #[cfg(feature = "hazmat")]
    pub fn ssid(&self) -> Ssid {
        self.init.ssid
    }

    /// Our sender instance tag.
    #[cfg(feature = "hazmat")]
    pub fn our_tag(&self) -> InstanceTag {
        self.init.our_tag
    }

    /// The peer's instance tag (receiver tag of our future messages).
    #[cfg(feature = "hazmat")]
    pub fn their_tag(&self) -> InstanceTag {
        self.init.their_tag
    }

    /// The peer's validated Client Profile.
    #[cfg(feature = "hazmat")]
    pub fn their_profile(&self) -> &ValidatedClientProfile {
        &self.init.their_profile
    }

    /// Our `our_ecdh_first` key pair (the ratchet's initial `our_ecdh`).
    #[cfg(feature = "hazmat")]
    pub fn our_ecdh_first(&self) -> &KeyPair {
        &self.init.our_ecdh
    }

    /// Our `our_dh_first` key pair (the ratchet's initial `our_dh`).
    #[cfg(feature = "hazmat")]
    pub fn our_dh_first(&self) -> &DhKeyPair {
        &self.init.our_dh
    }

    /// The peer's `our_ecdh_first.public` (the ratchet's initial `their_ecdh`).
    #[cfg(feature = "hazmat")]
    pub fn their_ecdh_first(&self) -> &Point {
        &self.init.their_ecdh
    }

    /// The peer's `our_dh_first.public` (the ratchet's initial `their_dh`).
    #[cfg(feature = "hazmat")]
    pub fn their_dh_first(&self) -> &DhPublic {
        &self.init.their_dh
    }

    /// Unwraps into the plain record the double-ratchet initialisation consumes.
    pub fn into_ratchet_init(self) -> RatchetInit {
        *self.init
    }
}

/// What the double ratchet is initialised from after the interactive DAKE (otrv4.md
/// §"Interactive DAKE Overview", "Initializes the double-ratchet algorithm"): `K` (→
/// `prev_root_key = KDF(usage_first_root_key || K, 64)`), `our_ecdh = our_ecdh_first`,
/// `our_dh = our_dh_first`, `their_ecdh = their_ecdh_first`, `their_dh = their_dh_first`,
/// and the role. Secrets zeroize on drop; `Debug` prints public values only.
#[derive(Debug)]
pub struct RatchetInit {
    /// Our role in the DAKE.
    pub role: Role,
    /// The mixed shared secret `K`.
    pub shared_secret: MixedSecret,
    /// `SSID = HWC(usage_SSID || K, 8)`.
    pub ssid: Ssid,
    /// Our sender instance tag.
    pub our_tag: InstanceTag,
    /// The peer's instance tag.
    pub their_tag: InstanceTag,
    /// The peer's validated Client Profile.
    pub their_profile: ValidatedClientProfile,
    /// `our_ecdh` := `our_ecdh_first`.
    pub our_ecdh: KeyPair,
    /// `our_dh` := `our_dh_first`.
    pub our_dh: DhKeyPair,
    /// `their_ecdh` := `their_ecdh_first`.
    pub their_ecdh: Point,
    /// `their_dh` := `their_dh_first`.
    pub their_dh: DhPublic,
}

impl RatchetInit {
    /// Initialises the double ratchet for our role (otrv4.md §"Interactive DAKE
    /// Overview"): Bob with [`DoubleRatchet::init_after_sending_auth_i`] (receiving chain,
    /// then a sending chain with fresh keys drawn from `rng`), Alice with
    /// [`DoubleRatchet::init_after_receiving_auth_i`] (sending chain). `K` is wiped when
    /// `self` is dropped; read the SSID, tags and profile before calling this.
    pub fn into_double_ratchet<R: rand_core::CryptoRng + ?Sized>(
        self,
        rng: &mut R,
    ) -> Result<DoubleRatchet, RatchetError> {
        let RatchetInit {
            role,
            shared_secret,
            our_ecdh,
            our_dh,
            their_ecdh,
            their_dh,
            ..
        } = self;
        let k = shared_secret.as_bytes();
        match role {
            Role::Bob => DoubleRatchet::init_after_sending_auth_i(
                k, our_ecdh, our_dh, their_ecdh, their_dh, rng,
            ),
            Role::Alice => DoubleRatchet::init_after_receiving_auth_i(
                k, our_ecdh, our_dh, their_ecdh, their_dh,
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Proofs. Private constructors: only the checks below create them.

/// The receiver instance tag of a message was checked against ours.
struct ReceiverTagChecked(());

/// A received ring signature verified over the transcript `t`.
struct RingSigVerified(());

/// How an Identity message's receiver tag is checked.
#[derive(Clone, Copy)]
enum IdentityTagRule {
    /// 0 ("no particular instance") or ours: `START`, `WAITING_AUTH_R`,
    /// `ENCRYPTED_MESSAGES`, `FINISHED` (otrv4.md §"Protocol Events").
    UnknownOrOurs,
    /// Exactly ours: `WAITING_AUTH_I` (otrv4.md §"Receiving an Identity Message").
    Ours,
}

/// Checks a receiver tag; `allow_unknown` admits 0.
fn check_receiver_tag(
    found: InstanceTag,
    ours: InstanceTag,
    allow_unknown: bool,
) -> Result<ReceiverTagChecked, DakeError> {
    if found == ours || (allow_unknown && found == InstanceTag::UNKNOWN) {
        Ok(ReceiverTagChecked(()))
    } else {
        Err(DakeError::WrongReceiverTag {
            expected: ours,
            found,
        })
    }
}

/// An Identity message that passed otrv4.md §"Identity Message" "To verify": receiver tag,
/// Client Profile; `Y`, `B`, `our_ecdh_first.public` and `our_dh_first.public` are valid
/// by type (strictly decoded [`Point`]s and group-checked [`DhPublic`]s).
struct ValidIdentity<'m> {
    msg: &'m IdentityMessage,
    profile: ValidatedClientProfile,
}

impl<'m> ValidIdentity<'m> {
    fn new(
        msg: &'m IdentityMessage,
        _tag: ReceiverTagChecked,
        profile: ValidatedClientProfile,
    ) -> ValidIdentity<'m> {
        ValidIdentity { msg, profile }
    }
}

/// Validates an Identity message (otrv4.md §"Identity Message", "To verify").
fn validate_identity<'m>(
    our_tag: InstanceTag,
    msg: &'m IdentityMessage,
    now: i64,
    rule: IdentityTagRule,
) -> Result<ValidIdentity<'m>, DakeError> {
    let allow_unknown = matches!(rule, IdentityTagRule::UnknownOrOurs);
    let tag = check_receiver_tag(msg.receiver_tag, our_tag, allow_unknown)?;
    let profile = msg.client_profile.validate(msg.sender_tag, now)?;
    Ok(ValidIdentity::new(msg, tag, profile))
}

/// The ephemeral keys one side generates for its DAKE message (otrv4.md §"Identity
/// Message", §"Auth-R Message"): `(y, Y)`/`(x, X)`, `(b, B)`/`(a, A)`, and the first
/// ratchet keys. Generated in the spec's order.
pub(crate) struct Ephemerals {
    ecdh: KeyPair,
    dh: DhKeyPair,
    ecdh_first: KeyPair,
    dh_first: DhKeyPair,
}

impl Ephemerals {
    /// The DAKE ECDH key pair `(y, Y)` or `(x, X)`: a ring member, so a forger who made
    /// it can sign for the other side.
    #[cfg(feature = "forge")]
    pub(crate) fn ecdh(&self) -> &KeyPair {
        &self.ecdh
    }

    pub(crate) fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Ephemerals {
        let ecdh = KeyPair::generate(rng);
        let dh = DhKeyPair::generate(rng);
        let ecdh_first = KeyPair::generate(rng);
        let dh_first = DhKeyPair::generate(rng);
        Ephemerals {
            ecdh,
            dh,
            ecdh_first,
            dh_first,
        }
    }

    /// `K` from our DAKE ephemerals and theirs; consumes (and so wipes) `ecdh` and `dh`,
    /// returning the first ratchet keys.
    fn mix(
        self,
        their_ecdh: &Point,
        their_dh: &DhPublic,
    ) -> Result<(MixedSecret, KeyPair, DhKeyPair), DakeError> {
        let k = mixed_secret(&self.ecdh, &self.dh, their_ecdh, their_dh)?;
        Ok((k, self.ecdh_first, self.dh_first))
    }
}

/// `K_ecdh = ECDH(our_ecdh.secret, their_ecdh)`, `k_dh = DH(our_dh.secret, their_dh)`,
/// `K = KDF(usage_shared_secret || K_ecdh || KDF(usage_third_brace_key || k_dh, 32), 64)`.
fn mixed_secret(
    our_ecdh: &KeyPair,
    our_dh: &DhKeyPair,
    their_ecdh: &Point,
    their_dh: &DhPublic,
) -> Result<MixedSecret, DakeError> {
    let k_ecdh = ecdh(our_ecdh.secret(), their_ecdh).map_err(|_| DakeError::ZeroEcdhSecret)?;
    let k_dh = our_dh.shared_secret(their_dh);
    Ok(MixedSecret::derive(&k_ecdh, &k_dh))
}

/// The tie-break value of a DH public key for simultaneous Identity messages:
/// `SHAKE-256(MPI(B), 32)`, compared as a 32-byte unsigned big-endian number (otrv4.md
/// §"Receiving an Identity Message"; see docs/spec-notes.md).
pub fn tie_break_hash(b: &DhPublic) -> [u8; 32] {
    let mut w = Vec::with_capacity(4 + 384);
    w.dh_public(b);
    let mut out = [0u8; 32];
    shake256(&[w.as_slice()], &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// Bob: START → WAITING_AUTH_R.

/// Starts the DAKE as Bob (otrv4.md §"Identity Message", §"Receiving a Query Message",
/// §"Starting a conversation interactively"): generates `y`, `b`, `our_ecdh_first`,
/// `our_dh_first`, and returns the state `WAITING_AUTH_R` with the Identity message to
/// send. `their_tag` is the peer's instance tag if known, else [`InstanceTag::UNKNOWN`].
pub fn start<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalParty<'_>,
    their_tag: InstanceTag,
) -> (WaitingAuthR, IdentityMessage) {
    start_with(local, their_tag, Ephemerals::generate(rng))
}

/// [`start`] with the ephemerals `ours`.
pub(crate) fn start_with(
    local: &LocalParty<'_>,
    their_tag: InstanceTag,
    ours: Ephemerals,
) -> (WaitingAuthR, IdentityMessage) {
    let identity = IdentityMessage {
        sender_tag: local.instance_tag(),
        receiver_tag: their_tag,
        client_profile: local.profile.clone(),
        y: *ours.ecdh.public(),
        b: ours.dh.public().clone(),
        our_ecdh_first: *ours.ecdh_first.public(),
        our_dh_first: ours.dh_first.public().clone(),
    };
    let state = WaitingAuthR(Box::new(AuthRWait {
        ours,
        identity: identity.clone(),
    }));
    (state, identity)
}

/// State `WAITING_AUTH_R` (otrv4.md §"Protocol States"): we sent an Identity message and
/// hold its ephemeral secrets.
///
/// The secrets live in one heap allocation, so moving the state copies no key material.
pub struct WaitingAuthR(Box<AuthRWait>);

struct AuthRWait {
    ours: Ephemerals,
    identity: IdentityMessage,
}

/// Outcome of an Identity message received in `WAITING_AUTH_R` (otrv4.md §"Receiving an
/// Identity Message": both sides sent Identity messages; the hashed `B` values decide).
#[derive(Debug)]
// A one-shot return value that is matched at once; boxing the messages would only make
// the API clumsier (the states themselves are already boxed).
#[allow(clippy::large_enum_variant)]
pub enum SimultaneousIdentity {
    /// Our hashed `B` is higher: their Identity message is ignored; resend ours (`resend`,
    /// byte-identical to the first one) and stay in `WAITING_AUTH_R`.
    KeepOurs {
        /// The unchanged state.
        state: WaitingAuthR,
        /// Our Identity message, to send again.
        resend: IdentityMessage,
    },
    /// Their hashed `B` is higher: our ephemerals are forgotten and we answered as Alice;
    /// send `auth_r` and move to `WAITING_AUTH_I`.
    BecameResponder {
        /// The new state.
        state: WaitingAuthI,
        /// The Auth-R message to send.
        auth_r: AuthR,
    },
}

/// What Bob learned from a verified Auth-R message.
struct VerifiedAuthR {
    profile: ValidatedClientProfile,
    t_i: Vec<u8>,
    _sig: RingSigVerified,
}

impl WaitingAuthR {
    /// The Identity message we sent (to resend it).
    pub fn identity_message(&self) -> &IdentityMessage {
        &self.0.identity
    }

    /// Our sender instance tag.
    pub fn our_tag(&self) -> InstanceTag {
        self.0.identity.sender_tag
    }

    /// An Identity message arrived while we wait for Auth-R (otrv4.md §"Receiving an
    /// Identity Message", state `WAITING_AUTH_R`): validate it (receiver tag 0 or ours,
    /// Client Profile); then compare `SHAKE-256(MPI(B), 32)` of our `B` and theirs as
    /// 32-byte big-endian numbers ([`tie_break_hash`]). If ours is higher, keep waiting and
    /// resend our Identity message; otherwise forget our keys and reply with Auth-R as
    /// from `START`. Equal values mean our own message came back:
    /// [`DakeError::ReflectedIdentity`]. Any failure leaves the state unchanged.
    pub fn receive_identity<R: rand_core::CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        local: &LocalParty<'_>,
        msg: &IdentityMessage,
        now: i64,
    ) -> Result<SimultaneousIdentity, Rejected<WaitingAuthR>> {
        let valid =
            match validate_identity(self.our_tag(), msg, now, IdentityTagRule::UnknownOrOurs) {
                Ok(v) => v,
                Err(error) => return Err(Rejected { state: self, error }),
            };
        let ours = tie_break_hash(self.0.ours.dh.public());
        let theirs = tie_break_hash(&msg.b);
        match ours.cmp(&theirs) {
            Ordering::Greater => Ok(SimultaneousIdentity::KeepOurs {
                resend: self.0.identity.clone(),
                state: self,
            }),
            Ordering::Equal => Err(Rejected {
                state: self,
                error: DakeError::ReflectedIdentity,
            }),
            Ordering::Less => {
                let fresh = Ephemerals::generate(rng);
                match respond(rng, local, valid, fresh) {
                    // `self` (our y, b and first keys) is dropped, which wipes the secrets.
                    Ok((state, auth_r)) => {
                        Ok(SimultaneousIdentity::BecameResponder { state, auth_r })
                    }
                    Err(error) => Err(Rejected { state: self, error }),
                }
            }
        }
    }

    /// Bob receives Auth-R (otrv4.md §"Receiving an Auth-R Message", §"Auth-R Message" "To
    /// verify", §"Interactive DAKE Overview"): checks the receiver tag is ours, the sender
    /// tag is the one our Identity message was addressed to (if it named one), validates
    /// Alice's Client Profile, verifies `RVrf({F_b, H_a, Y}, sigma, t)`; then computes `K`
    /// and the SSID, signs `RSig(H_b, sk_hb, {H_b, F_a, X}, t)` and returns the completed
    /// DAKE with the Auth-I message to send. On any failure the state is unchanged.
    pub fn receive_auth_r<R: rand_core::CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        local: &LocalParty<'_>,
        msg: &AuthR,
        now: i64,
    ) -> Result<(DakeComplete, AuthI), Rejected<WaitingAuthR>> {
        let finished = self
            .verify_auth_r(local, msg, now)
            .and_then(|v| self.sign_auth_i(rng, local, msg, v));
        match finished {
            Ok((k, profile, auth_i)) => {
                let AuthRWait { ours, identity } = *self.0;
                // Wipes y and b, keeping the first keys.
                let Ephemerals {
                    ecdh_first,
                    dh_first,
                    ..
                } = ours;
                let done = DakeComplete {
                    init: Box::new(RatchetInit {
                        role: Role::Bob,
                        ssid: k.ssid(),
                        shared_secret: k,
                        our_tag: identity.sender_tag,
                        their_tag: msg.sender_tag,
                        their_profile: profile,
                        our_ecdh: ecdh_first,
                        our_dh: dh_first,
                        their_ecdh: msg.our_ecdh_first,
                        their_dh: msg.our_dh_first.clone(),
                    }),
                };
                Ok((done, auth_i))
            }
            Err(error) => Err(Rejected { state: self, error }),
        }
    }

    /// The checks of otrv4.md §"Auth-R Message", "To verify", in order.
    fn verify_auth_r(
        &self,
        local: &LocalParty<'_>,
        msg: &AuthR,
        now: i64,
    ) -> Result<VerifiedAuthR, DakeError> {
        let bob = &self.0.identity;
        let _tag = check_receiver_tag(msg.receiver_tag, bob.sender_tag, false)?;
        if bob.receiver_tag != InstanceTag::UNKNOWN && msg.sender_tag != bob.receiver_tag {
            return Err(DakeError::WrongSenderTag {
                expected: bob.receiver_tag,
                found: msg.sender_tag,
            });
        }
        let profile = msg.client_profile.validate(msg.sender_tag, now)?;
        let phi = phi(
            PhiParty {
                tag: bob.sender_tag,
                ecdh_first: &bob.our_ecdh_first,
                dh_first: &bob.our_dh_first,
            },
            PhiParty {
                tag: msg.sender_tag,
                ecdh_first: &msg.our_ecdh_first,
                dh_first: &msg.our_dh_first,
            },
            local.phi_prime,
        );
        let transcript = Transcript {
            bob_profile: &bob.client_profile,
            alice_profile: profile.profile(),
            y: &bob.y,
            x: &msg.x,
            b: &bob.b,
            a: &msg.a,
            phi: &phi,
        };
        let sig = verify_ring(
            &msg.sigma,
            [
                bob.client_profile.forging_key().point(),
                profile.public_key().point(),
                &bob.y,
            ],
            &transcript.auth_r(),
        )?;
        Ok(VerifiedAuthR {
            t_i: transcript.auth_i(),
            profile,
            _sig: sig,
        })
    }

    /// Bob's part after a verified Auth-R: `K`, and the Auth-I message with
    /// `sigma = RSig(H_b, sk_hb, {H_b, F_a, X}, t)`.
    fn sign_auth_i<R: rand_core::CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        local: &LocalParty<'_>,
        msg: &AuthR,
        verified: VerifiedAuthR,
    ) -> Result<(MixedSecret, ValidatedClientProfile, AuthI), DakeError> {
        let VerifiedAuthR { profile, t_i, _sig } = verified;
        let k = mixed_secret(&self.0.ours.ecdh, &self.0.ours.dh, &msg.x, &msg.a)?;
        let sigma = RingSignature::sign::<Otrv4, R>(
            rng,
            local.long_term,
            [
                self.0.identity.client_profile.public_key().point(),
                profile.forging_key().point(),
                &msg.x,
            ],
            &t_i,
        )
        .map_err(DakeError::Signing)?;
        let auth_i = AuthI {
            sender_tag: self.0.identity.sender_tag,
            receiver_tag: msg.sender_tag,
            sigma,
        };
        Ok((k, profile, auth_i))
    }
}

redacted_debug!(WaitingAuthR {
    our_tag = |s| s.0.identity.sender_tag,
    their_tag = |s| s.0.identity.receiver_tag,
    ..
});

/// `RVrf(ring, sigma, t)` in the OTRv4 domain, yielding the proof.
fn verify_ring(
    sigma: &RingSignature,
    ring: [&Point; 3],
    t: &[u8],
) -> Result<RingSigVerified, DakeError> {
    sigma
        .verify::<Otrv4>(ring, t)
        .map_err(|_| DakeError::BadRingSignature)?;
    Ok(RingSigVerified(()))
}

// ---------------------------------------------------------------------------------------
// Alice: START → WAITING_AUTH_I → ENCRYPTED_MESSAGES.

/// Alice receives an Identity message in `START`, `ENCRYPTED_MESSAGES` or `FINISHED`
/// (otrv4.md §"Receiving an Identity Message"): validates it (receiver tag 0 or ours,
/// Client Profile against its sender tag and `now`), generates `x`, `a` and her first keys,
/// signs `RSig(H_a, sk_ha, {F_b, H_a, Y}, t)`, computes `K` and the SSID, and returns
/// `WAITING_AUTH_I` with the Auth-R message to send. On error, ignore the message.
pub fn receive_identity<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalParty<'_>,
    msg: &IdentityMessage,
    now: i64,
) -> Result<(WaitingAuthI, AuthR), DakeError> {
    let valid = validate_identity(
        local.instance_tag(),
        msg,
        now,
        IdentityTagRule::UnknownOrOurs,
    )?;
    // The ephemerals are drawn only once the message is valid.
    let ours = Ephemerals::generate(rng);
    respond(rng, local, valid, ours)
}

/// [`receive_identity`] answering with the ephemerals `ours`.
#[cfg(feature = "forge")]
pub(crate) fn receive_identity_with<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalParty<'_>,
    msg: &IdentityMessage,
    now: i64,
    ours: Ephemerals,
) -> Result<(WaitingAuthI, AuthR), DakeError> {
    let valid = validate_identity(
        local.instance_tag(),
        msg,
        now,
        IdentityTagRule::UnknownOrOurs,
    )?;
    respond(rng, local, valid, ours)
}

/// Alice's answer to a validated Identity message with her ephemerals `ours` (otrv4.md
/// §"Auth-R Message", §"Interactive DAKE Overview").
fn respond<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalParty<'_>,
    valid: ValidIdentity<'_>,
    ours: Ephemerals,
) -> Result<(WaitingAuthI, AuthR), DakeError> {
    let ValidIdentity { msg: bob, profile } = valid;
    let our_tag = local.instance_tag();
    let phi = phi(
        PhiParty {
            tag: bob.sender_tag,
            ecdh_first: &bob.our_ecdh_first,
            dh_first: &bob.our_dh_first,
        },
        PhiParty {
            tag: our_tag,
            ecdh_first: ours.ecdh_first.public(),
            dh_first: ours.dh_first.public(),
        },
        local.phi_prime,
    );
    let transcript = Transcript {
        bob_profile: profile.profile(),
        alice_profile: local.profile,
        y: &bob.y,
        x: ours.ecdh.public(),
        b: &bob.b,
        a: ours.dh.public(),
        phi: &phi,
    };
    let sigma = RingSignature::sign::<Otrv4, R>(
        rng,
        local.long_term,
        [
            profile.forging_key().point(),
            local.profile.public_key().point(),
            &bob.y,
        ],
        &transcript.auth_r(),
    )
    .map_err(DakeError::Signing)?;
    let t_i = transcript.auth_i();
    let auth_r = AuthR {
        sender_tag: our_tag,
        receiver_tag: bob.sender_tag,
        client_profile: local.profile.clone(),
        x: *ours.ecdh.public(),
        a: ours.dh.public().clone(),
        sigma,
        our_ecdh_first: *ours.ecdh_first.public(),
        our_dh_first: ours.dh_first.public().clone(),
    };
    let (k, ecdh_first, dh_first) = ours.mix(&bob.y, &bob.b)?;
    let state = WaitingAuthI(Box::new(AuthIWait {
        init: Box::new(RatchetInit {
            role: Role::Alice,
            ssid: k.ssid(),
            shared_secret: k,
            our_tag,
            their_tag: bob.sender_tag,
            their_profile: profile,
            our_ecdh: ecdh_first,
            our_dh: dh_first,
            their_ecdh: bob.our_ecdh_first,
            their_dh: bob.our_dh_first.clone(),
        }),
        our_forging_key: *local.profile.forging_key().point(),
        t_i,
        identity: bob.clone(),
        auth_r: auth_r.clone(),
    }));
    Ok((state, auth_r))
}

/// State `WAITING_AUTH_I` (otrv4.md §"Protocol States"): Alice sent Auth-R. `K` and the
/// SSID are computed and the DAKE ephemerals `x`, `a` wiped; what remains is the
/// Auth-I transcript `t` and the ring `{H_b, F_a, X}` to verify against.
///
/// The secrets live in one heap allocation, so moving the state copies no key material.
pub struct WaitingAuthI(Box<AuthIWait>);

struct AuthIWait {
    init: Box<RatchetInit>,
    our_forging_key: Point,
    t_i: Vec<u8>,
    identity: IdentityMessage,
    auth_r: AuthR,
}

impl WaitingAuthI {
    /// The Auth-R message we sent.
    #[cfg(feature = "hazmat")]
    pub fn auth_r(&self) -> &AuthR {
        &self.0.auth_r
    }

    /// Our sender instance tag.
    pub fn our_tag(&self) -> InstanceTag {
        self.0.init.our_tag
    }

    /// The peer's (Bob's) instance tag.
    #[cfg(feature = "hazmat")]
    pub fn their_tag(&self) -> InstanceTag {
        self.0.init.their_tag
    }

    /// An Identity message arrived while we wait for Auth-I (otrv4.md §"Receiving an
    /// Identity Message", state `WAITING_AUTH_I`): its receiver tag must be exactly ours
    /// and it must validate, else it is ignored (state unchanged). If it is the Identity
    /// message we already answered (a retransmission), our Auth-R message is returned again
    /// and the state is unchanged; otherwise the old peer values are forgotten and a new
    /// Auth-R message with fresh keys answers the new Identity message.
    pub fn receive_identity<R: rand_core::CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        local: &LocalParty<'_>,
        msg: &IdentityMessage,
        now: i64,
    ) -> Result<(WaitingAuthI, AuthR), Rejected<WaitingAuthI>> {
        let valid = match validate_identity(self.our_tag(), msg, now, IdentityTagRule::Ours) {
            Ok(v) => v,
            Err(error) => return Err(Rejected { state: self, error }),
        };
        if valid.msg.encode() == self.0.identity.encode() {
            let auth_r = self.0.auth_r.clone();
            return Ok((self, auth_r));
        }
        let ours = Ephemerals::generate(rng);
        match respond(rng, local, valid, ours) {
            Ok(next) => Ok(next),
            Err(error) => Err(Rejected { state: self, error }),
        }
    }

    /// Alice receives Auth-I (otrv4.md §"Receiving an Auth-I Message", §"Auth-I Message" "To
    /// verify"): checks the receiver tag is ours and the sender tag is Bob's, then verifies
    /// `RVrf({H_b, F_a, X}, sigma, t)`. On success the DAKE is complete; on failure the
    /// state is unchanged.
    pub fn receive_auth_i(self, msg: &AuthI) -> Result<DakeComplete, Rejected<WaitingAuthI>> {
        match self.verify_auth_i(msg) {
            Ok(_proof) => Ok(DakeComplete { init: self.0.init }),
            Err(error) => Err(Rejected { state: self, error }),
        }
    }

    fn verify_auth_i(&self, msg: &AuthI) -> Result<RingSigVerified, DakeError> {
        let _tag = check_receiver_tag(msg.receiver_tag, self.0.init.our_tag, false)?;
        if msg.sender_tag != self.0.init.their_tag {
            return Err(DakeError::WrongSenderTag {
                expected: self.0.init.their_tag,
                found: msg.sender_tag,
            });
        }
        verify_ring(
            &msg.sigma,
            [
                self.0.init.their_profile.public_key().point(),
                &self.0.our_forging_key,
                &self.0.auth_r.x,
            ],
            &self.0.t_i,
        )
    }
}

redacted_debug!(WaitingAuthI {
    our_tag = |s| s.0.init.our_tag,
    their_tag = |s| s.0.init.their_tag,
    ..
});
