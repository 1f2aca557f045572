//! The forging toolkit of otrv4.md §"Forging Transcripts" (feature `forge`): every tool the
//! spec lists, built on the honest encoders, KDFs, ring signatures and DAKE state machines.
//!
//! OTRv4's offline deniability means that anyone holding what a transcript's parties give
//! away (revealed MAC keys, a chain key, one party's long-term key) can make another
//! transcript that passes every check. These functions do that, so that a user can show it
//! (`docs/deniability.md`; the `otr4-forge` command line). No forged value is made by code
//! of its own: the DAKEs run the honest state machines (`crate::dake`), with only the
//! ring-signature signer swapped for another member of the same ring; data messages are
//! encrypted, MACed and decrypted by the honest double ratchet and key derivations.
//!
//! Naming follows the spec: **Bob** sends the Identity message (interactive) or publishes
//! the Prekey Ensemble (non-interactive); **Alice** answers with the Auth-R message or the
//! Non-Interactive-Auth message.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::conversation::Padding;
use crate::crypto::chacha;
use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::{KeyPair, Point};
use crate::dake::ensemble::ValidatedEnsemble;
use crate::dake::interactive::{
    DakeComplete, Ephemerals, LocalParty, WaitingAuthI, receive_identity, receive_identity_with,
    start_with,
};
use crate::dake::non_interactive::{
    NonInteractiveComplete, NonInteractiveError, receive_non_interactive_auth, send_signed_by,
};
use crate::dake::phi::PhiPrime;
use crate::dake::{DakeError, Ssid};
use crate::instance_tag::InstanceTag;
use crate::prekey::PrekeyError;
use crate::prekey::ensemble::PrekeyStore;
use crate::profile::client::ClientProfile;
use crate::ratchet::keys::{self, KEY_LEN};
use crate::ratchet::{DoubleRatchet, RatchetError, SecretBytes};
use crate::wire::codec::{Codec, DecodeError, Writer};
use crate::wire::messages::{
    AuthI, AuthR, DataMessage, IdentityMessage, Message, NonInteractiveAuth, PrekeyEnsemble,
};
use crate::wire::tlv::Tlv;

/// Why a forging tool could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForgeError {
    /// The input is not an OTRv4 message of the kind the tool takes.
    #[error("not an OTRv4 message: {0}")]
    Decode(#[from] DecodeError),
    /// The tool takes a Data message.
    #[error("not a Data message")]
    NotDataMessage,
    /// The old text at the offset runs past the encrypted message.
    #[error("offset {offset} + {len} bytes runs past the {available}-byte encrypted message")]
    OutOfRange {
        /// The offset given.
        offset: usize,
        /// The length of the old text.
        len: usize,
        /// The encrypted message's length.
        available: usize,
    },
    /// The old and the new text must be as long as each other.
    #[error("the old text is {old} bytes, the new text {new}: they must be as long")]
    LengthMismatch {
        /// The old text's length.
        old: usize,
        /// The new text's length.
        new: usize,
    },
    /// The message's MAC does not verify with the key given: it is not the key of this
    /// message.
    #[error("the message's MAC does not verify with this chain key: not this message's key")]
    WrongKey,
    /// The secret key is not the key of the Client Profile given with it.
    #[error("the secret key is not the long-term key of this Client Profile")]
    KeyMismatch,
    /// An honest DAKE step refused the forged message (a bug, or an invalid profile).
    #[error("interactive DAKE: {0}")]
    Dake(#[from] DakeError),
    /// An honest non-interactive DAKE step refused a message (invalid profile, wrong key).
    #[error("non-interactive DAKE: {0}")]
    NonInteractive(#[from] NonInteractiveError),
    /// The double ratchet refused (e.g. a message out of its chain).
    #[error("double ratchet: {0}")]
    Ratchet(#[from] RatchetError),
    /// The false Prekey Ensemble could not be made.
    #[error("prekey: {0}")]
    Prekey(#[from] PrekeyError),
    /// A made-up ensemble did not validate (a bug, or an expired Client Profile).
    #[error("prekey ensemble: {0}")]
    Ensemble(#[from] crate::dake::ensemble::EnsembleError),
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn enc(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut w = Vec::new();
    f(&mut w);
    hex(&w)
}

fn point_hex(p: &Point) -> String {
    enc(|w| {
        w.point(p);
    })
}

fn dh_hex(d: &DhPublic) -> String {
    enc(|w| {
        w.dh_public(d);
    })
}

fn profile_fields(out: &mut Vec<(&'static str, String)>, p: &ClientProfile) {
    out.push((
        "client profile owner tag",
        format!("{:08x}", p.owner_tag().0),
    ));
    out.push(("client profile public key", hex(&p.public_key().encode())));
    out.push(("client profile forging key", hex(&p.forging_key().encode())));
    out.push(("client profile expiration", format!("{}", p.expiration())));
    out.push(("client profile", hex(&p.encode())));
}

/// **Parse** (otrv4.md §"Forging Transcripts"): decodes a binary OTRv4 message (the bytes
/// inside `?OTR:…`) with the honest decoder and lists its fields, in wire order, as
/// `(name, value)`: numbers in decimal, instance tags as 8 hex digits, everything else as
/// the hex of its wire encoding.
pub fn parse(bytes: &[u8]) -> Result<Vec<(&'static str, String)>, ForgeError> {
    let msg = Message::decode(bytes)?;
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let tags = |out: &mut Vec<(&'static str, String)>, s: InstanceTag, r: InstanceTag| {
        out.push(("sender instance tag", format!("{:08x}", s.0)));
        out.push(("receiver instance tag", format!("{:08x}", r.0)));
    };
    match &msg {
        Message::Identity(m) => {
            out.push(("type", "Identity (0x35)".into()));
            tags(&mut out, m.sender_tag, m.receiver_tag);
            profile_fields(&mut out, &m.client_profile);
            out.push(("Y", point_hex(&m.y)));
            out.push(("B", dh_hex(&m.b)));
            out.push(("our_ecdh_first", point_hex(&m.our_ecdh_first)));
            out.push(("our_dh_first", dh_hex(&m.our_dh_first)));
        }
        Message::AuthR(m) => {
            out.push(("type", "Auth-R (0x36)".into()));
            tags(&mut out, m.sender_tag, m.receiver_tag);
            profile_fields(&mut out, &m.client_profile);
            out.push(("X", point_hex(&m.x)));
            out.push(("A", dh_hex(&m.a)));
            out.push(("sigma", enc(|w| m.sigma.write(w))));
            out.push(("our_ecdh_first", point_hex(&m.our_ecdh_first)));
            out.push(("our_dh_first", dh_hex(&m.our_dh_first)));
        }
        Message::AuthI(m) => {
            out.push(("type", "Auth-I (0x37)".into()));
            tags(&mut out, m.sender_tag, m.receiver_tag);
            out.push(("sigma", enc(|w| m.sigma.write(w))));
        }
        Message::NonInteractiveAuth(m) => {
            out.push(("type", "Non-Interactive-Auth (0x0D)".into()));
            tags(&mut out, m.sender_tag, m.receiver_tag);
            profile_fields(&mut out, &m.client_profile);
            out.push(("X", point_hex(&m.x)));
            out.push(("A", dh_hex(&m.a)));
            out.push(("sigma", enc(|w| m.sigma.write(w))));
            out.push(("prekey message id", format!("{}", m.prekey_message_id)));
            out.push(("auth MAC", hex(&m.auth_mac)));
            out.push(("our_ecdh_first", point_hex(&m.our_ecdh_first)));
            out.push(("our_dh_first", dh_hex(&m.our_dh_first)));
        }
        Message::Prekey(m) => {
            out.push(("type", "Prekey (0x0F)".into()));
            out.push(("prekey message id", format!("{}", m.id)));
            out.push(("owner instance tag", format!("{:08x}", m.owner_tag.0)));
            out.push(("Y", point_hex(&m.y)));
            out.push(("B", dh_hex(&m.b)));
        }
        Message::Data(m) => {
            out.push(("type", "Data (0x03)".into()));
            tags(&mut out, m.sender_tag, m.receiver_tag);
            out.push(("flags", format!("{:#04x}", m.flags)));
            out.push(("previous chain message number", format!("{}", m.pn)));
            out.push(("ratchet id", format!("{}", m.i)));
            out.push(("message id", format!("{}", m.j)));
            out.push(("public ECDH key", point_hex(&m.ecdh)));
            out.push((
                "public DH key",
                m.dh.as_ref().map_or_else(String::new, dh_hex),
            ));
            out.push(("encrypted message", hex(&m.encrypted)));
            out.push(("authenticator", hex(&m.mac)));
            out.push(("old MAC keys to be revealed", hex(&m.revealed_mac_keys)));
        }
    }
    Ok(out)
}

/// A Data message from its binary encoding.
pub fn data_message(bytes: &[u8]) -> Result<DataMessage, ForgeError> {
    match Message::decode(bytes)? {
        Message::Data(d) => Ok(d),
        _ => Err(ForgeError::NotDataMessage),
    }
}

/// `Authenticator = KDF(usage_authenticator || MKmac || data message sections, 64)` under
/// `mac_key`: the honest MAC of otrv4.md §"When you send a Data Message".
fn authenticate(msg: &mut DataMessage, mac_key: &[u8; KEY_LEN]) {
    msg.mac = keys::authenticator(mac_key, &msg.authenticated_bytes());
}

/// **Modify Data Message** (otrv4.md §"Forging Transcripts", appendix §"Modify an
/// Encrypted Data Message"): XORs `old ^ new` into the encrypted message at `offset`
/// (ChaCha20 is a stream cipher, so the plaintext changes the same way without the key) and
/// recomputes the authenticator with the revealed `mac_key` of this message. `old` and
/// `new` must be as long as each other and fit in the encrypted message.
pub fn modify_data_message(
    msg: &DataMessage,
    offset: usize,
    old: &[u8],
    new: &[u8],
    mac_key: &[u8; KEY_LEN],
) -> Result<DataMessage, ForgeError> {
    if old.len() != new.len() {
        return Err(ForgeError::LengthMismatch {
            old: old.len(),
            new: new.len(),
        });
    }
    let mut out = msg.clone();
    let available = out.encrypted.len();
    let target = offset
        .checked_add(old.len())
        .and_then(|end| out.encrypted.get_mut(offset..end))
        .ok_or(ForgeError::OutOfRange {
            offset,
            len: old.len(),
            available,
        })?;
    for ((c, o), n) in target.iter_mut().zip(old).zip(new) {
        *c ^= o ^ n;
    }
    authenticate(&mut out, mac_key);
    Ok(out)
}

/// The keys of one message, from its chain key (otrv4.md §"Calculating Encryption and MAC
/// Keys"): what **Read and Forge** and **Show MAC Key** work from. Zeroized on drop.
pub struct MessageKeys {
    /// `MKenc = KDF(usage_message_key || chain_key, 64)` (its first 32 bytes are the
    /// ChaCha20 key).
    pub message_key: SecretBytes,
    /// `MKmac = KDF(usage_MAC_key || MKenc, 64)`.
    pub mac_key: SecretBytes,
    /// `chain_key[j+1]`: the chain key of the next message of the chain.
    pub next_chain_key: SecretBytes,
}

/// The keys of the message whose chain key is `chain_key`, and the next chain key.
pub fn message_keys(chain_key: &[u8; KEY_LEN]) -> MessageKeys {
    let mk_enc = keys::message_key(chain_key);
    MessageKeys {
        mac_key: SecretBytes::new(keys::mac_key(&mk_enc).to_vec()),
        message_key: SecretBytes::new(mk_enc.to_vec()),
        next_chain_key: SecretBytes::new(keys::next_chain_key(chain_key).to_vec()),
    }
}

/// **Show MAC Key** (otrv4.md §"Forging Transcripts"): the MAC key of a message key,
/// `MKmac = KDF(usage_MAC_key || MKenc, 64)`.
pub fn show_mac_key(message_key: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(keys::mac_key(message_key).as_ref());
    out
}

/// **ReMAC Message** (otrv4.md §"Forging Transcripts"): `msg` with a new authenticator
/// under `mac_key` (everything else, the encrypted message included, unchanged).
pub fn remac_message(msg: &DataMessage, mac_key: &[u8; KEY_LEN]) -> DataMessage {
    let mut out = msg.clone();
    authenticate(&mut out, mac_key);
    out
}

/// **Read and Forge Data Message** (otrv4.md §"Forging Transcripts"): with the chain key
/// of `msg`, checks its authenticator (so a wrong key is reported, not silently read as
/// noise), decrypts it, and if `new_plaintext` is given, encrypts that instead (the whole
/// plaintext: text, NUL and TLVs, see [`plaintext`]) with the same message key and
/// attaches the new authenticator. Returns the old plaintext and the forged message.
pub fn read_and_forge(
    msg: &DataMessage,
    chain_key: &[u8; KEY_LEN],
    new_plaintext: Option<&[u8]>,
) -> Result<(SecretBytes, Option<DataMessage>), ForgeError> {
    let k = message_keys(chain_key);
    let (mk_enc, mk_mac) = (key64(&k.message_key), key64(&k.mac_key));
    let expected = keys::authenticator(&mk_mac, &msg.authenticated_bytes());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &msg.mac[..])) {
        return Err(ForgeError::WrongKey);
    }
    let old = SecretBytes::new(chacha::decrypt(&mk_enc, &msg.encrypted));
    let forged = new_plaintext.map(|p| {
        let mut out = msg.clone();
        out.encrypted = chacha::encrypt(&mk_enc, p);
        authenticate(&mut out, &mk_mac);
        out
    });
    Ok((old, forged))
}

fn key64(s: &SecretBytes) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
    let mut k = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    k.copy_from_slice(s.as_slice());
    k
}

/// A plaintext as the honest client encodes it (otrv4.md §"Data Message"): `text`, and
/// with `tlvs` a NUL and the records, padded as `padding` says.
pub fn plaintext(text: &str, tlvs: &[Tlv], padding: Padding) -> Result<SecretBytes, ForgeError> {
    Ok(SecretBytes::new(
        padding.encode_plaintext(text.as_bytes(), tlvs)?,
    ))
}

/// The chain key the next message `ratchet` sends will be encrypted from (`chain_key_s[j]`),
/// if it has a sending chain: the session key **Read and Forge** takes.
pub fn sending_chain_key(ratchet: &DoubleRatchet) -> Option<[u8; KEY_LEN]> {
    ratchet.sending_chain_key().copied()
}

/// The side of a DAKE (and of a conversation) a forger holds the long-term secret key of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bob: sends the Identity message and the Auth-I message, or publishes the Prekey
    /// Ensemble.
    Bob,
    /// Alice: sends the Auth-R message or the Non-Interactive-Auth message.
    Alice,
}

/// One party as the forger knows it: its Client Profile, and its long-term secret key if
/// the forger holds it.
pub struct Party<'a> {
    /// The party's Client Profile (its owner tag is the party's instance tag).
    pub profile: &'a ClientProfile,
    /// The long-term key pair of `profile`, if known.
    pub long_term: Option<&'a KeyPair>,
}

/// A forged interactive DAKE and its session keys (**Forge DAKE and Session Keys**).
pub struct ForgedDake {
    /// Bob's Identity message.
    pub identity: IdentityMessage,
    /// Alice's Auth-R message.
    pub auth_r: AuthR,
    /// Bob's Auth-I message.
    pub auth_i: AuthI,
    /// The session's SSID (the same for both sides).
    pub ssid: Ssid,
    /// Bob's double ratchet, as his honest client initialised it.
    pub bob: DoubleRatchet,
    /// Alice's double ratchet, as her honest client initialised it.
    pub alice: DoubleRatchet,
}

fn check_key<'a>(party: &Party<'a>) -> Result<Option<&'a KeyPair>, ForgeError> {
    match party.long_term {
        Some(k) if k.public() != party.profile.public_key().point() => Err(ForgeError::KeyMismatch),
        k => Ok(k),
    }
}

/// **Forge DAKE and Session Keys** (otrv4.md §"Forging Transcripts"), interactive: a
/// complete Identity / Auth-R / Auth-I exchange between `bob` and `alice`, of whom the
/// forger holds only one long-term secret key (the side `holder`). The forger makes both
/// sides' ephemeral keys, so it holds a member of the other side's ring too: the other
/// side's ring signature is made with the ephemeral key the forger made for the holder's
/// side (`Y` for Alice's `{F_b, H_a, Y}`, `X` for Bob's `{H_b, F_a, X}`). Both honest
/// state machines run, and each verifies the other's message: the result passes every
/// check an honest party makes, and a ring signature does not show which member signed.
/// `phi_prime` is the application's shared session state (e.g. the two bare JIDs).
pub fn forge_dake<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    bob: &Party<'_>,
    alice: &Party<'_>,
    holder: Side,
    phi_prime: &PhiPrime,
    now: i64,
) -> Result<ForgedDake, ForgeError> {
    let (bob_key, alice_key) = (check_key(bob)?, check_key(alice)?);
    let alice_tag = alice.profile.owner_tag();
    let bob_ours = Ephemerals::generate(rng);
    let y = bob_ours.ecdh().clone();
    let (identity, auth_r, auth_i, waiting_i, bob_done) = match holder {
        Side::Alice => {
            let alice_key = alice_key.ok_or(ForgeError::KeyMismatch)?;
            // Bob's Identity message (it carries no signature: the signer is not used).
            let bob_start = LocalParty::forger(&y, bob.profile, phi_prime);
            let (waiting_r, identity) = start_with(&bob_start, alice_tag, bob_ours);
            // Alice's honest Auth-R, with ephemerals whose x the forger keeps.
            let local = LocalParty::new(alice_key, alice.profile, phi_prime)?;
            let alice_ours = Ephemerals::generate(rng);
            let x = alice_ours.ecdh().clone();
            let (waiting_i, auth_r) =
                receive_identity_with(rng, &local, &identity, now, alice_ours)?;
            // Bob verifies it (honest code) and signs Auth-I over {H_b, F_a, X} with x.
            let bob_local = LocalParty::forger(&x, bob.profile, phi_prime);
            let (bob_done, auth_i) = waiting_r
                .receive_auth_r(rng, &bob_local, &auth_r, now)
                .map_err(|r| ForgeError::Dake(r.into_parts().1))?;
            (identity, auth_r, auth_i, waiting_i, bob_done)
        }
        Side::Bob => {
            let bob_key = bob_key.ok_or(ForgeError::KeyMismatch)?;
            let bob_local = LocalParty::new(bob_key, bob.profile, phi_prime)?;
            let (waiting_r, identity) = start_with(&bob_local, alice_tag, bob_ours);
            // Alice's Auth-R over {F_b, H_a, Y}, signed with y (honest code otherwise).
            let local = LocalParty::forger(&y, alice.profile, phi_prime);
            let (waiting_i, auth_r) = receive_identity(rng, &local, &identity, now)?;
            let (bob_done, auth_i) = waiting_r
                .receive_auth_r(rng, &bob_local, &auth_r, now)
                .map_err(|r| ForgeError::Dake(r.into_parts().1))?;
            (identity, auth_r, auth_i, waiting_i, bob_done)
        }
    };
    // Alice verifies Auth-I (honest code).
    let alice_done: DakeComplete = waiting_i
        .receive_auth_i(&auth_i)
        .map_err(|r| ForgeError::Dake(r.into_parts().1))?;
    let ssid = alice_done.ssid();
    Ok(ForgedDake {
        identity,
        auth_r,
        auth_i,
        ssid,
        bob: bob_done.into_ratchet_init().into_double_ratchet(rng)?,
        alice: alice_done.into_ratchet_init().into_double_ratchet(rng)?,
    })
}

/// **False Prekey Ensemble** (otrv4.md §"Forging Transcripts", §"Prekey Server Forged
/// Conversations"): a Prekey Ensemble of the profile owner (Bob) made outside his client —
/// a new Prekey Profile signed with `long_term` (valid until `expiration`) and a new Prekey
/// message — whose secrets go into `store` (the forging device's), not into Bob's client.
/// A prekey server hands it to whoever should be answered by the forging device; it
/// validates like any other ensemble at `now`.
pub fn false_prekey_ensemble<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    long_term: &KeyPair,
    profile: &ClientProfile,
    store: &mut PrekeyStore,
    expiration: i64,
    now: i64,
) -> Result<PrekeyEnsemble, ForgeError> {
    if long_term.public() != profile.public_key().point() {
        return Err(ForgeError::KeyMismatch);
    }
    if store.owner_tag() != profile.owner_tag() {
        return Err(ForgeError::Prekey(PrekeyError::BadRequest(
            "the store's owner tag is not the profile's",
        )));
    }
    let prekey_profile = store.new_prekey_profile(rng, long_term, expiration);
    let messages = store.generate_prekey_messages(rng, 1, now)?;
    let prekey_message = messages
        .into_iter()
        .next()
        .ok_or(PrekeyError::BadRequest("no prekey message"))?;
    let ensemble = PrekeyEnsemble {
        client_profile: profile.clone(),
        prekey_profile,
        prekey_message,
    };
    ValidatedEnsemble::validate(&ensemble, now)?;
    Ok(ensemble)
}

/// A forged non-interactive DAKE and its session keys (**Forge DAKE and Session Keys**).
pub struct ForgedNonInteractive {
    /// Bob's (false) Prekey Ensemble.
    pub ensemble: PrekeyEnsemble,
    /// Alice's Non-Interactive-Auth message.
    pub auth: NonInteractiveAuth,
    /// The session's SSID.
    pub ssid: Ssid,
    /// Bob's double ratchet, as his honest client initialised it.
    pub bob: DoubleRatchet,
    /// Alice's double ratchet, as her honest client initialised it.
    pub alice: DoubleRatchet,
}

/// **Forge DAKE and Session Keys**, non-interactive, with only Bob's long-term secret key:
/// a false Prekey Ensemble of Bob ([`false_prekey_ensemble`], valid until `expiration`),
/// and Alice's Non-Interactive-Auth message for it, its ring signature
/// `{F_b, H_a, Y}` made with the Prekey message's `y` (which the forger made). Alice's
/// side runs the honest sending code, Bob's the honest verification (ring signature, Auth
/// MAC). With only Alice's secret key no forging is needed: her honest client answers any
/// ensemble of Bob's without Bob taking part.
pub fn forge_non_interactive_dake<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    bob_long_term: &KeyPair,
    bob_profile: &ClientProfile,
    alice_profile: &ClientProfile,
    phi_prime: &PhiPrime,
    expiration: i64,
    now: i64,
) -> Result<ForgedNonInteractive, ForgeError> {
    let mut store = PrekeyStore::new(bob_profile.owner_tag());
    let ensemble =
        false_prekey_ensemble(rng, bob_long_term, bob_profile, &mut store, expiration, now)?;
    let validated = ValidatedEnsemble::validate(&ensemble, now)?;
    let y = store
        .get(ensemble.prekey_message.id)
        .map(|s| s.ecdh().clone())
        .ok_or(PrekeyError::BadRequest("no prekey message"))?;
    let (auth, alice_done) = send_signed_by(rng, &validated, &y, alice_profile, phi_prime)?;
    let bob_done: NonInteractiveComplete = receive_non_interactive_auth(
        &auth,
        bob_long_term,
        core::slice::from_ref(bob_profile),
        &mut store,
        phi_prime,
        now,
    )?;
    Ok(ForgedNonInteractive {
        ssid: alice_done.ssid(),
        ensemble,
        auth,
        bob: bob_done.into_double_ratchet(),
        alice: alice_done.into_double_ratchet(),
    })
}

/// **Impersonate Responder**, interactive (otrv4.md §"Forging Transcripts", §"KCI
/// Attacks"): the owner of Bob's forging key (`forging`, the secret of the `F_b` in his
/// Client Profile) answers Bob's Identity message as Alice (with her Client Profile): the
/// Auth-R ring signature over `{F_b, H_a, Y}` is made with `F_b`. Bob's honest client
/// accepts it; pass his Auth-I to [`WaitingAuthI::receive_auth_i`] to finish.
pub fn impersonate_responder<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &IdentityMessage,
    alice_profile: &ClientProfile,
    forging: &KeyPair,
    phi_prime: &PhiPrime,
    now: i64,
) -> Result<(WaitingAuthI, AuthR), ForgeError> {
    let local = LocalParty::forger(forging, alice_profile, phi_prime);
    Ok(receive_identity(rng, &local, identity, now)?)
}

/// **Impersonate Responder**, non-interactive: the owner of Bob's forging key answers a
/// Prekey Ensemble of Bob's (published by his honest client) with a Non-Interactive-Auth
/// message as Alice, the ring signature over `{F_b, H_a, Y}` made with `F_b` and the Auth
/// MAC from Alice's side of the key exchange (which needs no secret of hers). Bob's honest
/// client accepts it as from Alice.
pub fn impersonate_responder_non_interactive<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    ensemble: &ValidatedEnsemble,
    alice_profile: &ClientProfile,
    forging: &KeyPair,
    phi_prime: &PhiPrime,
) -> Result<(NonInteractiveAuth, NonInteractiveComplete), ForgeError> {
    Ok(send_signed_by(
        rng,
        ensemble,
        forging,
        alice_profile,
        phi_prime,
    )?)
}

/// **Impersonate Initiator** (otrv4.md §"Forging Transcripts"; interactive only, as Bob
/// signs nothing in the non-interactive DAKE but his Prekey Profile): the owner of Alice's
/// forging key (`forging`, the secret of `F_a`) plays Bob (with his Client Profile)
/// against Alice's honest client. Send [`ImpersonatedInitiator::identity`], pass Alice's
/// Auth-R to [`ImpersonatedInitiator::receive_auth_r`]: the Auth-I ring signature over
/// `{H_b, F_a, X}` is made with `F_a`, and Alice's client accepts it as from Bob.
pub struct ImpersonatedInitiator {
    state: crate::dake::interactive::WaitingAuthR,
    forging: KeyPair,
    bob_profile: ClientProfile,
    phi_prime: PhiPrime,
    /// The Identity message to send to Alice.
    pub identity: IdentityMessage,
}

impl ImpersonatedInitiator {
    /// Starts the impersonation: Bob's Identity message to `their_tag` (Alice's instance
    /// tag, or [`InstanceTag::UNKNOWN`]).
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        bob_profile: &ClientProfile,
        forging: &KeyPair,
        their_tag: InstanceTag,
        phi_prime: &PhiPrime,
    ) -> ImpersonatedInitiator {
        let local = LocalParty::forger(forging, bob_profile, phi_prime);
        let (state, identity) = start_with(&local, their_tag, Ephemerals::generate(rng));
        ImpersonatedInitiator {
            state,
            forging: forging.clone(),
            bob_profile: bob_profile.clone(),
            phi_prime: phi_prime.clone(),
            identity,
        }
    }

    /// Alice's Auth-R arrived: verified by Bob's honest code, answered with the Auth-I
    /// message signed with `F_a`. Returns it and Bob's side of the session.
    pub fn receive_auth_r<R: rand_core::CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        auth_r: &AuthR,
        now: i64,
    ) -> Result<(AuthI, DakeComplete), ForgeError> {
        let local = LocalParty::forger(&self.forging, &self.bob_profile, &self.phi_prime);
        let (done, auth_i) = self
            .state
            .receive_auth_r(rng, &local, auth_r, now)
            .map_err(|r| ForgeError::Dake(r.into_parts().1))?;
        Ok((auth_i, done))
    }
}

/// One message of a forged transcript, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgedMessage {
    /// Who sent it.
    pub from: Side,
    /// The binary OTRv4 message (wrap it with `crate::wire::encoded::encode_otr`).
    pub bytes: Vec<u8>,
}

/// **Forge Entire Transcript** (otrv4.md §"Forging Transcripts"): a whole conversation
/// between `bob` and `alice`, forged with the long-term secret key of the `holder` only:
/// the DAKE of [`forge_dake`], then one Data message per `(sender, text)` line, encrypted
/// by the sender's honest double ratchet (plaintext padded as `padding` says, as the
/// honest client pads) and decrypted by the receiver's, so every message verifies and
/// the ratchets move on as in a real conversation. Returns the messages in order, the
/// three DAKE messages first.
#[allow(clippy::too_many_arguments)]
pub fn forge_entire_transcript<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    bob: &Party<'_>,
    alice: &Party<'_>,
    holder: Side,
    phi_prime: &PhiPrime,
    lines: &[(Side, &str)],
    padding: Padding,
    now: i64,
) -> Result<(Ssid, Vec<ForgedMessage>), ForgeError> {
    let mut dake = forge_dake(rng, bob, alice, holder, phi_prime, now)?;
    let (bob_tag, alice_tag) = (bob.profile.owner_tag(), alice.profile.owner_tag());
    let mut out = alloc::vec![
        ForgedMessage {
            from: Side::Bob,
            bytes: dake.identity.encode(),
        },
        ForgedMessage {
            from: Side::Alice,
            bytes: dake.auth_r.encode(),
        },
        ForgedMessage {
            from: Side::Bob,
            bytes: dake.auth_i.encode(),
        },
    ];
    for (from, text) in lines {
        let pt = plaintext(text, &[], padding)?;
        let (tx, rx, ours, theirs) = match from {
            Side::Bob => (&mut dake.bob, &mut dake.alice, bob_tag, alice_tag),
            Side::Alice => (&mut dake.alice, &mut dake.bob, alice_tag, bob_tag),
        };
        let sent = tx.encrypt(ours, theirs, 0, pt.as_slice(), rng)?;
        rx.decrypt(&sent.message)?;
        out.push(ForgedMessage {
            from: *from,
            bytes: sent.message.encode(),
        });
    }
    Ok((dake.ssid, out))
}
