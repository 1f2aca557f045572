//! Full interactive-DAKE transcripts: Identity, Auth-R, Auth-I, then Data Messages both ways
//! across several DH ratchets, with every intermediate key (otrv4.md §"Interactive DAKE").
//!
//! The checker recomputes every output twice: once with an independent model of the spec's
//! formulas (byte concatenation and SHAKE-256 with literal usage IDs, building each message's
//! encoding field by field), and once by replaying the recorded random bytes through otr4's
//! DAKE typestates and double ratchet, which must reproduce the same encodings, `K`, SSID and
//! extra symmetric keys, and decrypt every message to its plaintext.

use otr4::hazmat::wire::codec::Codec;
use std::collections::BTreeMap;

use super::draw;
use crate::format::{Suite, Vector};
use crate::rng::{RecordingRng, ReplayRng};
use otr4::InstanceTag;
use otr4::Tlv;
use otr4::hazmat::crypto::chacha::apply_keystream;
use otr4::hazmat::crypto::dh::DhKeyPair;
use otr4::hazmat::crypto::ecdh::ecdh;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, SymmetricKey};
use otr4::hazmat::crypto::kdf::Otrv4;
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::crypto::rsig::RingSignature;
use otr4::hazmat::dake::{self, LocalParty, PhiPrime};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::ratchet::DoubleRatchet;
use otr4::hazmat::wire::messages::{AuthI, AuthR, DataMessage, IdentityMessage};
use otr4::hazmat::wire::tlv::encode_plaintext;
use otr4::shake_into;

const SECTION: &str = "otrv4.md §\"Interactive DAKE Overview\", §\"Shared Session State\", \
§\"Secure Session ID\", §\"Deriving Double Ratchet Keys\", §\"Data Message\", \
§\"When you send a Data Message:\", §\"When you receive a Data Message:\"";

/// Bytes drawn by one `generateECDH()` and one `generateDH()`.
const ECDH_RANDOM: usize = 57;
const DH_RANDOM: usize = 80;
/// The four ephemeral key pairs of an Identity or Auth-R message: `Y`/`X`, `B`/`A`,
/// `our_ecdh_first`, `our_dh_first`.
const EPHEMERALS_RANDOM: usize = 2 * (ECDH_RANDOM + DH_RANDOM);
/// Nine uniform scalars of one ring signature.
const RSIG_RANDOM: usize = 9 * 57;

/// One of the two parties. Bob sends the Identity message (and Auth-I), Alice answers with
/// Auth-R, as in otrv4.md §"Interactive DAKE Overview".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Alice,
    Bob,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Alice => "alice",
            Who::Bob => "bob",
        }
    }

    fn parse(s: &str) -> Result<Who, String> {
        match s {
            "alice" => Ok(Who::Alice),
            "bob" => Ok(Who::Bob),
            _ => Err(format!("unknown party {s:?}")),
        }
    }

    fn other(self) -> Who {
        match self {
            Who::Alice => Who::Bob,
            Who::Bob => Who::Alice,
        }
    }
}

/// A party's long-term inputs.
#[derive(Clone)]
struct Party {
    tag: u32,
    sym_h: [u8; 57],
    forging_key: [u8; 57],
    expiration: i64,
    jid: String,
}

/// One Data Message: who sends it, its plaintext, and the random bytes its `encrypt` draws.
#[derive(Clone)]
struct MessageIn {
    sender: Who,
    plaintext: Vec<u8>,
    random: Vec<u8>,
}

/// Everything a transcript is computed from.
#[derive(Clone)]
struct Inputs {
    now: i64,
    bob: Party,
    alice: Party,
    identity_receiver_tag: u32,
    bob_identity_random: Vec<u8>,
    alice_auth_r_random: Vec<u8>,
    bob_auth_i_random: Vec<u8>,
    bob_ratchet_init_random: Vec<u8>,
    messages: Vec<MessageIn>,
}

impl Inputs {
    fn party(&self, w: Who) -> &Party {
        match w {
            Who::Alice => &self.alice,
            Who::Bob => &self.bob,
        }
    }

    fn to_vector(&self, v: Vector) -> Vector {
        let mut v = v
            .input("now", &self.now.to_be_bytes())
            .input(
                "identity_receiver_tag",
                &self.identity_receiver_tag.to_be_bytes(),
            )
            .input("bob_identity_random", &self.bob_identity_random)
            .input("alice_auth_r_random", &self.alice_auth_r_random)
            .input("bob_auth_i_random", &self.bob_auth_i_random)
            .input("bob_ratchet_init_random", &self.bob_ratchet_init_random);
        for w in [Who::Alice, Who::Bob] {
            let p = self.party(w);
            let n = w.name();
            v = v
                .input(&format!("{n}_instance_tag"), &p.tag.to_be_bytes())
                .input(&format!("{n}_sym_h"), &p.sym_h)
                .input(&format!("{n}_forging_key"), &p.forging_key)
                .input(
                    &format!("{n}_profile_expiration"),
                    &p.expiration.to_be_bytes(),
                )
                .input_text(&format!("{n}_jid_text"), &p.jid);
        }
        for (m, msg) in self.messages.iter().enumerate() {
            v = v
                .input_text(&format!("message_{m:02}_sender_text"), msg.sender.name())
                .input(&format!("message_{m:02}_plaintext"), &msg.plaintext)
                .input(&format!("message_{m:02}_random"), &msg.random);
        }
        v
    }

    fn from_vector(v: &Vector) -> Result<Inputs, String> {
        let party = |n: &str| -> Result<Party, String> {
            Ok(Party {
                tag: u32::from_be_bytes(v.arr_in(&format!("{n}_instance_tag"))?),
                sym_h: v.arr_in(&format!("{n}_sym_h"))?,
                forging_key: v.arr_in(&format!("{n}_forging_key"))?,
                expiration: i64::from_be_bytes(v.arr_in(&format!("{n}_profile_expiration"))?),
                jid: v.text_in(&format!("{n}_jid_text"))?.to_owned(),
            })
        };
        let mut messages = Vec::new();
        while v
            .inputs
            .contains_key(&format!("message_{:02}_sender_text", messages.len()))
        {
            let m = messages.len();
            messages.push(MessageIn {
                sender: Who::parse(v.text_in(&format!("message_{m:02}_sender_text"))?)?,
                plaintext: v.hex_in(&format!("message_{m:02}_plaintext"))?,
                random: v.hex_in(&format!("message_{m:02}_random"))?,
            });
        }
        Ok(Inputs {
            now: i64::from_be_bytes(v.arr_in("now")?),
            bob: party("bob")?,
            alice: party("alice")?,
            identity_receiver_tag: u32::from_be_bytes(v.arr_in("identity_receiver_tag")?),
            bob_identity_random: v.hex_in("bob_identity_random")?,
            alice_auth_r_random: v.hex_in("alice_auth_r_random")?,
            bob_auth_i_random: v.hex_in("bob_auth_i_random")?,
            bob_ratchet_init_random: v.hex_in("bob_ratchet_init_random")?,
            messages,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Which DH ratchet ("chain") each message belongs to.

/// The sending chains in the order they are created: chain 0 is Alice's first chain (from
/// the first keys of Auth-R and the Identity message), chain 1 Bob's first chain (made at
/// his ratchet initialisation), and chain `n >= 2` is the `n`-th DH ratchet, with ratchet id
/// `n - 1`, sent by Alice for even `n` and Bob for odd `n`.
fn chain_sender(n: usize) -> Who {
    if n.is_multiple_of(2) {
        Who::Alice
    } else {
        Who::Bob
    }
}

fn chain_ratchet_id(n: usize) -> u32 {
    u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX)
}

/// Whether chain `n` mixes a fresh 3072-bit DH secret into its brace key.
fn chain_has_dh(n: usize) -> bool {
    chain_ratchet_id(n).is_multiple_of(3)
}

/// The chain of each message: a message continues its sender's current chain unless the
/// other party spoke since, in which case the sender performs a new DH ratchet. Every
/// message is delivered before the next one is sent.
fn chains_of(messages: &[MessageIn]) -> Vec<usize> {
    let mut out = Vec::with_capacity(messages.len());
    let mut current: Option<usize> = None;
    for m in messages {
        let n = match current {
            None => match m.sender {
                Who::Alice => 0,
                Who::Bob => 1,
            },
            Some(c) if chain_sender(c) == m.sender => c,
            Some(c) => c + 1,
        };
        out.push(n);
        current = Some(n);
    }
    out
}

/// Bytes `DoubleRatchet::encrypt` draws for each message: a new ECDH key pair (and a new DH
/// key pair in chains whose ratchet id is a multiple of 3) for the first message of chain
/// `n >= 2`; nothing otherwise (chains 0 and 1 are keyed at initialisation).
fn random_sizes(messages: &[MessageIn]) -> Vec<usize> {
    let chains = chains_of(messages);
    let mut prev = None;
    chains
        .iter()
        .map(|&n| {
            let first = prev != Some(n);
            prev = Some(n);
            if first && n >= 2 {
                ECDH_RANDOM + if chain_has_dh(n) { DH_RANDOM } else { 0 }
            } else {
                0
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The independent model.

/// `KDF(usage || parts, n) = SHAKE-256("OTRv4" || usage || parts, n)`.
fn kdf(usage: u8, parts: &[&[u8]], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    shake_into(b"OTRv4", usage, parts, &mut out);
    out
}

/// A 4-byte length followed by the bytes: DATA, and MPI when `b` is minimal big-endian.
fn data(b: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(b.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(b);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Consumes a recorded random string in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Cursor { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (head, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or_else(|| format!("{}: too short", self.what))?;
        self.bytes = rest;
        Ok(head)
    }

    fn keypair(&mut self) -> Result<KeyPair, String> {
        let b: [u8; 57] = self.take(ECDH_RANDOM)?.try_into().map_err(|_| "57")?;
        Ok(KeyPair::from_symmetric_key(SymmetricKey::from_bytes(b)))
    }

    fn dh_keypair(&mut self) -> Result<DhKeyPair, String> {
        let b: [u8; 80] = self.take(DH_RANDOM)?.try_into().map_err(|_| "80")?;
        DhKeyPair::from_secret_bytes(b).map_err(|e| format!("DH secret: {e}"))
    }

    fn finish(self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: {} bytes left over",
                self.what,
                self.bytes.len()
            ))
        }
    }
}

fn keypair(sym: [u8; 57]) -> KeyPair {
    KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym))
}

fn profile(p: &Party) -> Result<ClientProfile, String> {
    let forging = Point::decode(&p.forging_key).map_err(|e| format!("forging key: {e:?}"))?;
    Ok(ClientProfile::build_and_sign(
        InstanceTag(p.tag),
        &keypair(p.sym_h),
        &ForgingPublicKey(forging),
        b"4",
        p.expiration,
    ))
}

fn sigma_bytes(s: &RingSignature) -> Vec<u8> {
    let mut w = Vec::new();
    s.write(&mut w);
    w
}

/// One party's view while the model replays the message script.
struct ModelParty {
    /// Messages sent in the current sending chain (`j`).
    j: u32,
    /// `pn`.
    pn: u32,
    /// The chain we receive in, if any.
    receiving: Option<usize>,
    /// MAC keys of received messages not yet revealed.
    pending_mac_keys: Vec<u8>,
}

/// The model's outputs: hex (or `_text`) strings by name, as stored in a vector.
type Outputs = BTreeMap<String, String>;

fn put(o: &mut Outputs, k: &str, v: &[u8]) {
    o.insert(k.to_owned(), hex::encode(v));
}

/// Computes every output of a transcript from its inputs by the spec's formulas.
fn model(inp: &Inputs) -> Result<Outputs, String> {
    let mut o = Outputs::new();
    let (bob_h, alice_h) = (keypair(inp.bob.sym_h), keypair(inp.alice.sym_h));
    let bob_profile = profile(&inp.bob)?.encode();
    let alice_profile = profile(&inp.alice)?.encode();
    put(&mut o, "bob_client_profile", &bob_profile);
    put(&mut o, "alice_client_profile", &alice_profile);

    // phi' = the bare JIDs, sorted, each as DATA (otrv4.md §"Shared Session State").
    let mut jids = [inp.bob.jid.as_bytes(), inp.alice.jid.as_bytes()];
    jids.sort();
    let phi_prime = cat(&[&data(jids[0]), &data(jids[1])]);
    put(&mut o, "phi_prime", &phi_prime);

    // Identity message: Y, B, our_ecdh_first, our_dh_first, drawn in this order.
    let mut r = Cursor::new(&inp.bob_identity_random, "bob_identity_random");
    let (y, b) = (r.keypair()?, r.dh_keypair()?);
    let (bob_ecdh_first, bob_dh_first) = (r.keypair()?, r.dh_keypair()?);
    r.finish()?;
    let (y_pub, b_pub) = (y.public().encode(), b.public().to_be_bytes());
    let bef_pub = bob_ecdh_first.public().encode();
    let bdf_pub = bob_dh_first.public().to_be_bytes();
    put(&mut o, "bob_y", &y_pub);
    put(&mut o, "bob_b", &b_pub);
    put(&mut o, "bob_ecdh_first", &bef_pub);
    put(&mut o, "bob_dh_first", &bdf_pub);
    let (bob_tag, alice_tag) = (inp.bob.tag.to_be_bytes(), inp.alice.tag.to_be_bytes());
    let identity = cat(&[
        &[0, 4, 0x35],
        &bob_tag,
        &inp.identity_receiver_tag.to_be_bytes(),
        &bob_profile,
        &y_pub,
        &data(&b_pub),
        &bef_pub,
        &data(&bdf_pub),
    ]);
    put(&mut o, "identity_message", &identity);

    // Auth-R: X, A, our_ecdh_first, our_dh_first, then the ring signature's nine scalars.
    let mut r = Cursor::new(&inp.alice_auth_r_random, "alice_auth_r_random");
    let (x, a) = (r.keypair()?, r.dh_keypair()?);
    let (alice_ecdh_first, alice_dh_first) = (r.keypair()?, r.dh_keypair()?);
    let sigma_r_random = r.take(RSIG_RANDOM)?;
    r.finish()?;
    let (x_pub, a_pub) = (x.public().encode(), a.public().to_be_bytes());
    let aef_pub = alice_ecdh_first.public().encode();
    let adf_pub = alice_dh_first.public().to_be_bytes();
    put(&mut o, "alice_x", &x_pub);
    put(&mut o, "alice_a", &a_pub);
    put(&mut o, "alice_ecdh_first", &aef_pub);
    put(&mut o, "alice_dh_first", &adf_pub);

    // phi: both parties' INT(tag) || POINT(ecdh_first) || MPI(dh_first), ascending, then phi'.
    let mut tuples = [
        cat(&[&bob_tag, &bef_pub, &data(&bdf_pub)]),
        cat(&[&alice_tag, &aef_pub, &data(&adf_pub)]),
    ];
    tuples.sort();
    let phi = cat(&[&tuples[0], &tuples[1], &phi_prime]);
    put(&mut o, "phi", &phi);

    // t = prefix || HWC(bob profile) || HWC(alice profile) || Y || X || B || A || HWC(phi).
    let t = |prefix: u8, u: [u8; 3]| {
        cat(&[
            &[prefix],
            &kdf(u[0], &[&bob_profile], 64),
            &kdf(u[1], &[&alice_profile], 64),
            &y_pub,
            &x_pub,
            &data(&b_pub),
            &data(&a_pub),
            &kdf(u[2], &[&phi], 64),
        ])
    };
    let t_auth_r = t(0x00, [0x05, 0x06, 0x07]);
    let t_auth_i = t(0x01, [0x08, 0x09, 0x0A]);
    put(&mut o, "t_auth_r", &t_auth_r);
    put(&mut o, "t_auth_i", &t_auth_i);

    // sigma of Auth-R: RSig(H_a, {F_b, H_a, Y}, t_auth_r).
    let bob_forging = Point::decode(&inp.bob.forging_key).map_err(|e| format!("{e:?}"))?;
    let alice_forging = Point::decode(&inp.alice.forging_key).map_err(|e| format!("{e:?}"))?;
    let ring_r = [&bob_forging, alice_h.public(), y.public()];
    let sigma_r = sign_replayed(sigma_r_random, &alice_h, ring_r, &t_auth_r)?;
    let auth_r = cat(&[
        &[0, 4, 0x36],
        &alice_tag,
        &bob_tag,
        &alice_profile,
        &x_pub,
        &data(&a_pub),
        &sigma_r,
        &aef_pub,
        &data(&adf_pub),
    ]);
    put(&mut o, "auth_r_message", &auth_r);

    // sigma of Auth-I: RSig(H_b, {H_b, F_a, X}, t_auth_i).
    let ring_i = [bob_h.public(), &alice_forging, x.public()];
    let sigma_i = sign_replayed(&inp.bob_auth_i_random, &bob_h, ring_i, &t_auth_i)?;
    let auth_i = cat(&[&[0, 4, 0x37], &bob_tag, &alice_tag, &sigma_i]);
    put(&mut o, "auth_i_message", &auth_i);

    // K_ecdh = ECDH(x, Y) = ECDH(y, X); k_dh = DH(a, B) = DH(b, A).
    let k_ecdh = ecdh(x.secret(), y.public()).map_err(|e| format!("{e:?}"))?;
    let k_ecdh2 = ecdh(y.secret(), x.public()).map_err(|e| format!("{e:?}"))?;
    let k_dh = a.shared_secret(b.public());
    if k_ecdh.as_bytes() != k_ecdh2.as_bytes() || k_dh.k_dh() != b.shared_secret(a.public()).k_dh()
    {
        return Err("the DAKE's shared secrets differ between the parties".into());
    }
    let brace_key = kdf(0x01, &[k_dh.k_dh()], 32);
    let k = kdf(0x03, &[k_ecdh.as_bytes(), &brace_key], 64);
    let ssid = kdf(0x04, &[&k], 8);
    let first_root_key = kdf(0x0B, &[&k], 64);
    put(&mut o, "k_ecdh", k_ecdh.as_bytes());
    put(&mut o, "k_dh", k_dh.k_dh());
    put(&mut o, "brace_key", &brace_key);
    put(&mut o, "mixed_shared_secret", &k);
    put(&mut o, "ssid", &ssid);
    put(&mut o, "first_root_key", &first_root_key);

    // The DH ratchets.
    let chains = chains_of(&inp.messages);
    let last_chain = chains.iter().copied().max().unwrap_or(1).max(1);
    let mut chain_keys: Vec<Vec<u8>> = Vec::new();
    let mut chain_ecdh: Vec<[u8; 57]> = Vec::new();
    let mut chain_dh: Vec<Option<Vec<u8>>> = Vec::new();
    let mut ecdh_keys: Vec<KeyPair> = Vec::new();
    // Each party's newest DH key pair.
    let mut latest_dh_alice = alice_dh_first;
    let mut latest_dh_bob = bob_dh_first;
    let mut root = first_root_key;
    let mut brace = Vec::new();
    for n in 0..=last_chain {
        let sender = chain_sender(n);
        let (ours, new_dh): (KeyPair, Option<DhKeyPair>) = match n {
            0 => (
                KeyPair::from_symmetric_key(alice_ecdh_first.symmetric_key().clone()),
                None,
            ),
            1 => {
                let mut r = Cursor::new(&inp.bob_ratchet_init_random, "bob_ratchet_init_random");
                let kp = (r.keypair()?, r.dh_keypair()?);
                r.finish()?;
                (kp.0, Some(kp.1))
            }
            _ => {
                let first = chains
                    .iter()
                    .position(|&c| c == n)
                    .ok_or_else(|| format!("chain {n} has no message but a later chain has one"))?;
                let msg = inp.messages.get(first).ok_or("message index")?;
                let mut r = Cursor::new(&msg.random, "message random");
                let e = r.keypair()?;
                let d = if chain_has_dh(n) {
                    Some(r.dh_keypair()?)
                } else {
                    None
                };
                r.finish()?;
                (e, d)
            }
        };
        let their_ecdh: Point = match n {
            0 => *bob_ecdh_first.public(),
            1 => *alice_ecdh_first.public(),
            _ => *ecdh_keys.get(n - 1).ok_or("chain index")?.public(),
        };
        let p = format!("ratchet_{n:02}_");
        o.insert(format!("{p}sender_text"), sender.name().to_owned());
        put(
            &mut o,
            &format!("{p}id"),
            &chain_ratchet_id(n).to_be_bytes(),
        );
        put(&mut o, &format!("{p}ecdh_public"), &ours.public().encode());
        let k_ecdh = ecdh(ours.secret(), &their_ecdh).map_err(|e| format!("{e:?}"))?;
        put(&mut o, &format!("{p}k_ecdh"), k_ecdh.as_bytes());
        let mut dh_public = None;
        if chain_has_dh(n) {
            // Chain 0 uses Alice's and Bob's first DH keys; later ones a fresh key of the
            // sender and the other party's newest DH public key.
            let (ours_dh, theirs) = match (n, sender) {
                (0, _) => (&latest_dh_alice, latest_dh_bob.public()),
                (_, Who::Alice) => {
                    let d = new_dh.as_ref().ok_or("missing DH key")?;
                    (d, latest_dh_bob.public())
                }
                (_, Who::Bob) => {
                    let d = new_dh.as_ref().ok_or("missing DH key")?;
                    (d, latest_dh_alice.public())
                }
            };
            let k_dh = ours_dh.shared_secret(theirs);
            put(&mut o, &format!("{p}k_dh"), k_dh.k_dh());
            brace = kdf(0x01, &[k_dh.k_dh()], 32);
            dh_public = Some(ours_dh.public().to_be_bytes());
        } else {
            brace = kdf(0x02, &[&brace], 32);
        }
        if let Some(d) = new_dh {
            match sender {
                Who::Alice => latest_dh_alice = d,
                Who::Bob => latest_dh_bob = d,
            }
        }
        if let Some(d) = &dh_public {
            put(&mut o, &format!("{p}dh_public"), d);
        }
        put(&mut o, &format!("{p}brace_key"), &brace);
        let k = kdf(0x03, &[k_ecdh.as_bytes(), &brace], 64);
        put(&mut o, &format!("{p}mixed_shared_secret"), &k);
        let chain = kdf(0x13, &[&root, &k], 64);
        root = kdf(0x12, &[&root, &k], 64);
        put(&mut o, &format!("{p}root_key"), &root);
        put(&mut o, &format!("{p}chain_key"), &chain);
        chain_keys.push(chain);
        chain_ecdh.push(ours.public().encode());
        chain_dh.push(dh_public);
        ecdh_keys.push(ours);
    }

    // The messages, each delivered before the next is sent.
    let mut alice = ModelParty {
        j: 0,
        pn: 0,
        receiving: None,
        pending_mac_keys: Vec::new(),
    };
    let mut bob = ModelParty {
        j: 0,
        pn: 0,
        receiving: Some(0),
        pending_mac_keys: Vec::new(),
    };
    for (m, (msg, &n)) in inp.messages.iter().zip(&chains).enumerate() {
        let (s, rcv) = match msg.sender {
            Who::Alice => (&mut alice, &mut bob),
            Who::Bob => (&mut bob, &mut alice),
        };
        let (s_tag, r_tag) = (inp.party(msg.sender).tag, inp.party(msg.sender.other()).tag);
        let ck = chain_keys.get_mut(n).ok_or("chain index")?;
        let mk_enc = kdf(0x15, &[ck], 64);
        let mk_mac = kdf(0x16, &[&mk_enc], 64);
        let extra = kdf(0x17, &[&[0xFF], ck], 64);
        let p = format!("message_{m:02}_");
        put(
            &mut o,
            &format!("{p}ratchet_id"),
            &chain_ratchet_id(n).to_be_bytes(),
        );
        put(&mut o, &format!("{p}message_id"), &s.j.to_be_bytes());
        put(&mut o, &format!("{p}chain_key"), ck);
        put(&mut o, &format!("{p}mk_enc"), &mk_enc);
        put(&mut o, &format!("{p}mk_mac"), &mk_mac);
        put(&mut o, &format!("{p}extra_symmetric_key"), &extra);
        *ck = kdf(0x14, &[ck], 64);
        let mut encrypted = msg.plaintext.clone();
        let key: &[u8; 32] = mk_enc
            .first_chunk()
            .ok_or("MKenc is shorter than 32 bytes")?;
        apply_keystream(key, &mut encrypted);
        let revealed = if s.j == 0 {
            std::mem::take(&mut s.pending_mac_keys)
        } else {
            Vec::new()
        };
        let dh_field = match chain_dh.get(n).ok_or("chain index")? {
            Some(d) => data(d),
            None => data(&[]),
        };
        let authenticated = cat(&[
            &[0, 4, 0x03],
            &s_tag.to_be_bytes(),
            &r_tag.to_be_bytes(),
            &[0],
            &s.pn.to_be_bytes(),
            &chain_ratchet_id(n).to_be_bytes(),
            &s.j.to_be_bytes(),
            chain_ecdh.get(n).ok_or("chain index")?,
            &dh_field,
            &data(&encrypted),
        ]);
        let mac = kdf(0x18, &[&mk_mac, &authenticated], 64);
        put(
            &mut o,
            &format!("{p}encoded"),
            &cat(&[&authenticated, &mac, &data(&revealed)]),
        );
        s.j += 1;
        // Delivery: a message of a chain other than the current receiving one is a DH
        // ratchet for the receiver, which saves `pn = j` and restarts `j`.
        if rcv.receiving != Some(n) {
            rcv.receiving = Some(n);
            rcv.pn = rcv.j;
            rcv.j = 0;
        }
        rcv.pending_mac_keys.extend_from_slice(&mk_mac);
    }
    Ok(o)
}

/// `RSig` with the nine scalars taken from `random` (as in suite `rsig`).
fn sign_replayed(
    random: &[u8],
    key: &KeyPair,
    ring: [&Point; 3],
    t: &[u8],
) -> Result<Vec<u8>, String> {
    let mut rng = ReplayRng::new(random.to_vec());
    let sigma = RingSignature::sign::<Otrv4, _>(&mut rng, key, ring, t)
        .map_err(|e| format!("RSig: {e:?}"))?;
    if !rng.exhausted_exactly() {
        return Err("RSig did not consume exactly its 513 random bytes".into());
    }
    sigma
        .verify::<Otrv4>(ring, t)
        .map_err(|e| format!("RSig does not verify: {e:?}"))?;
    Ok(sigma_bytes(&sigma))
}

// ---------------------------------------------------------------------------------------
// otr4's run.

/// What otr4 produced when replaying a transcript.
struct Run {
    outputs: Outputs,
    /// Each message's plaintext as the receiver decrypted it.
    decrypted: Vec<Vec<u8>>,
    /// Both ratchets' [`DoubleRatchet::export`] after initialisation and after each message.
    exports: Vec<Vec<u8>>,
}

fn replay_step<T>(
    random: &[u8],
    what: &str,
    f: impl FnOnce(&mut ReplayRng) -> Result<T, String>,
) -> Result<T, String> {
    let mut rng = ReplayRng::new(random.to_vec());
    let out = f(&mut rng)?;
    if rng.exhausted_exactly() {
        Ok(out)
    } else {
        Err(format!(
            "{what}: otr4 did not consume exactly the recorded random bytes"
        ))
    }
}

/// Runs the DAKE and the message script through otr4, replaying the recorded randomness.
fn run_otr4(inp: &Inputs) -> Result<Run, String> {
    let mut o = Outputs::new();
    let (bob_h, alice_h) = (keypair(inp.bob.sym_h), keypair(inp.alice.sym_h));
    let (bob_profile, alice_profile) = (profile(&inp.bob)?, profile(&inp.alice)?);
    put(&mut o, "bob_client_profile", &bob_profile.encode());
    put(&mut o, "alice_client_profile", &alice_profile.encode());
    let phi_prime = PhiPrime::from_strings(&[&inp.bob.jid, &inp.alice.jid]);
    put(&mut o, "phi_prime", phi_prime.as_bytes());
    let err = |e: dake::DakeError| format!("{e}");
    let bob = LocalParty::new(&bob_h, &bob_profile, &phi_prime).map_err(err)?;
    let alice = LocalParty::new(&alice_h, &alice_profile, &phi_prime).map_err(err)?;

    let (waiting_r, identity) = replay_step(&inp.bob_identity_random, "Identity", |rng| {
        Ok(dake::start(
            rng,
            &bob,
            InstanceTag(inp.identity_receiver_tag),
        ))
    })?;
    let identity = identity.encode();
    put(&mut o, "identity_message", &identity);
    let identity = IdentityMessage::decode(&identity).map_err(|e| format!("{e:?}"))?;
    let (waiting_i, auth_r) = replay_step(&inp.alice_auth_r_random, "Auth-R", |rng| {
        dake::receive_identity(rng, &alice, &identity, inp.now).map_err(err)
    })?;
    let auth_r = auth_r.encode();
    put(&mut o, "auth_r_message", &auth_r);
    let auth_r = AuthR::decode(&auth_r).map_err(|e| format!("{e:?}"))?;
    let (bob_done, auth_i) = replay_step(&inp.bob_auth_i_random, "Auth-I", |rng| {
        waiting_r
            .receive_auth_r(rng, &bob, &auth_r, inp.now)
            .map_err(|r| err(r.error))
    })?;
    let auth_i = auth_i.encode();
    put(&mut o, "auth_i_message", &auth_i);
    let auth_i = AuthI::decode(&auth_i).map_err(|e| format!("{e:?}"))?;
    let alice_done = waiting_i
        .receive_auth_i(&auth_i)
        .map_err(|r| err(r.error))?;
    if bob_done.ssid() != alice_done.ssid()
        || bob_done.shared_secret().as_bytes() != alice_done.shared_secret().as_bytes()
    {
        return Err("the parties' K or SSID differ".into());
    }
    put(&mut o, "ssid", &bob_done.ssid().0);
    put(
        &mut o,
        "mixed_shared_secret",
        bob_done.shared_secret().as_bytes(),
    );

    let rerr = |e: otr4::RatchetError| format!("ratchet: {e}");
    let mut bob_dr = replay_step(&inp.bob_ratchet_init_random, "Bob's ratchet init", |rng| {
        bob_done
            .into_ratchet_init()
            .into_double_ratchet(rng)
            .map_err(rerr)
    })?;
    let mut alice_dr = replay_step(&[], "Alice's ratchet init", |rng| {
        alice_done
            .into_ratchet_init()
            .into_double_ratchet(rng)
            .map_err(rerr)
    })?;
    let mut decrypted = Vec::new();
    let mut exports = vec![bob_dr.export().to_vec(), alice_dr.export().to_vec()];
    for (m, msg) in inp.messages.iter().enumerate() {
        let (s, r): (&mut DoubleRatchet, &mut DoubleRatchet) = match msg.sender {
            Who::Alice => (&mut alice_dr, &mut bob_dr),
            Who::Bob => (&mut bob_dr, &mut alice_dr),
        };
        let (s_tag, r_tag) = (inp.party(msg.sender).tag, inp.party(msg.sender.other()).tag);
        let enc = replay_step(&msg.random, &format!("message {m}"), |rng| {
            s.encrypt(
                InstanceTag(s_tag),
                InstanceTag(r_tag),
                0,
                &msg.plaintext,
                rng,
            )
            .map_err(rerr)
        })?;
        let p = format!("message_{m:02}_");
        let encoded = enc.message.encode();
        put(&mut o, &format!("{p}encoded"), &encoded);
        put(
            &mut o,
            &format!("{p}extra_symmetric_key"),
            enc.extra_symm_key.as_bytes(),
        );
        let received = DataMessage::decode(&encoded).map_err(|e| format!("{e:?}"))?;
        let d = r.decrypt(&received).map_err(rerr)?;
        if d.extra_symm_key.as_bytes() != enc.extra_symm_key.as_bytes() {
            return Err(format!(
                "message {m}: the parties' extra symmetric keys differ"
            ));
        }
        decrypted.push(d.plaintext.to_vec());
        exports.push(s.export().to_vec());
        exports.push(r.export().to_vec());
    }
    Ok(Run {
        outputs: o,
        decrypted,
        exports,
    })
}

// ---------------------------------------------------------------------------------------
// Generation and checking.

/// A transcript to generate.
struct Case {
    name: &'static str,
    bob: (u32, &'static str),
    alice: (u32, &'static str),
    /// Whether Bob's Identity message names Alice's instance tag (else 0).
    identity_knows_alice: bool,
    /// `(sender, text, padding)`: a padding TLV of that many bytes when non-zero.
    script: &'static [(Who, &'static str, usize)],
}

const NOW: i64 = 1_780_000_000;
const WEEK: i64 = 7 * 24 * 3600;

const CASES: &[Case] = &[
    Case {
        name: "alice_first",
        bob: (0x8765_4321, "bob@jabber.example"),
        alice: (0x1234_5678, "alice@jabber.example"),
        identity_knows_alice: false,
        script: &[
            (Who::Alice, "Hi Bob, the DAKE is done.", 0),
            (Who::Alice, "Second message in my first chain.", 0),
            (
                Who::Bob,
                "Hi Alice. This is my first chain, ratchet id 0.",
                0,
            ),
            (Who::Bob, "And its second message.", 0),
            (
                Who::Alice,
                "Ratchet id 1: the brace key is hashed forward.",
                0,
            ),
            (Who::Bob, "Ratchet id 2: hashed forward again.", 0),
            (Who::Alice, "Ratchet id 3: a new 3072-bit DH brace key.", 0),
            (Who::Alice, "Still ratchet id 3, message id 1.", 0),
            (Who::Bob, "Ratchet id 4.", 0),
        ],
    },
    Case {
        name: "bob_first",
        bob: (0x0000_0100, "rené@example.org"),
        alice: (0xffff_ffff, "alice@example.org"),
        identity_knows_alice: true,
        script: &[
            (Who::Bob, "Bob speaks first, in his ratchet id 0.", 0),
            (Who::Alice, "Alice replies in ratchet id 1.", 0),
            (Who::Bob, "Ratchet id 2, with a padding TLV.", 16),
            (Who::Bob, "Ratchet id 2, message id 1.", 0),
            (Who::Alice, "Ratchet id 3: new DH brace key.", 0),
            (Who::Bob, "Ratchet id 4.", 0),
            (Who::Alice, "Ratchet id 5.", 0),
            (Who::Bob, "Ratchet id 6: new DH brace key again.", 0),
        ],
    },
    Case {
        name: "long",
        bob: (0x0101_0101, "b@example.net"),
        alice: (0x0101_0102, "a@example.net"),
        identity_knows_alice: false,
        script: &[
            (Who::Alice, "", 0),
            (Who::Bob, "", 8),
            (Who::Alice, "1", 0),
            (Who::Bob, "2", 0),
            (Who::Alice, "3 (DH)", 0),
            (Who::Bob, "4", 0),
            (Who::Alice, "5", 0),
            (Who::Bob, "6 (DH)", 0),
            (Who::Alice, "7", 0),
            (Who::Bob, "8", 0),
            (Who::Alice, "9 (DH)", 0),
            (Who::Alice, "9, message id 1", 0),
            (Who::Alice, "9, message id 2", 0),
            (Who::Bob, "10", 0),
        ],
    },
];

fn plaintext(text: &str, padding: usize) -> Vec<u8> {
    if padding == 0 {
        text.as_bytes().to_vec()
    } else {
        encode_plaintext(text.as_bytes(), &[Tlv::padding(padding)]).unwrap_or_default()
    }
}

fn generate_case(c: &Case) -> Result<Vector, String> {
    let mut rng = RecordingRng::new(&format!("dake_transcript/{}", c.name));
    let mut party = |(tag, jid): (u32, &str)| Party {
        tag,
        sym_h: super::draw_arr(&mut rng),
        forging_key: keypair(super::draw_arr(&mut rng)).public().encode(),
        expiration: NOW + 2 * WEEK,
        jid: jid.to_owned(),
    };
    let bob = party(c.bob);
    let alice = party(c.alice);
    let mut messages: Vec<MessageIn> = c
        .script
        .iter()
        .map(|&(sender, text, padding)| MessageIn {
            sender,
            plaintext: plaintext(text, padding),
            random: Vec::new(),
        })
        .collect();
    let sizes = random_sizes(&messages);
    let mut inp = Inputs {
        now: NOW,
        identity_receiver_tag: if c.identity_knows_alice { alice.tag } else { 0 },
        bob,
        alice,
        bob_identity_random: draw(&mut rng, EPHEMERALS_RANDOM),
        alice_auth_r_random: draw(&mut rng, EPHEMERALS_RANDOM + RSIG_RANDOM),
        bob_auth_i_random: draw(&mut rng, RSIG_RANDOM),
        bob_ratchet_init_random: draw(&mut rng, ECDH_RANDOM + DH_RANDOM),
        messages: Vec::new(),
    };
    for (m, n) in messages.iter_mut().zip(sizes) {
        m.random = draw(&mut rng, n);
    }
    inp.messages = messages;
    let mut v = inp.to_vector(Vector::new(format!("interactive/{}", c.name), SECTION));
    v.outputs = model(&inp)?;
    Ok(v)
}

/// Builds the suite.
pub fn generate() -> Suite {
    Suite {
        suite: "dake_transcript".into(),
        description: "Complete interactive DAKEs (Identity, Auth-R, Auth-I) between Bob (who \
            sends the Identity message) and Alice, followed by Data Messages in both \
            directions across several DH ratchets, with every intermediate value: phi, the \
            transcripts t, K_ecdh, k_dh, the brace key, K, the SSID, each ratchet's root and \
            chain keys, and each message's chain key, MKenc, MKmac, extra symmetric key and \
            encoding. Each step's random bytes are stored."
            .into(),
        vectors: CASES
            .iter()
            .map(|c| {
                generate_case(c).unwrap_or_else(|e| Vector::new(format!("error: {e}"), SECTION))
            })
            .collect(),
    }
}

/// Recomputes every output with the model and with otr4.
pub fn check(v: &Vector) -> Result<(), String> {
    let inp = Inputs::from_vector(v)?;
    let model = model(&inp)?;
    compare("model", &model, &v.outputs, true)?;
    let run = run_otr4(&inp)?;
    compare("otr4", &run.outputs, &v.outputs, false)?;
    for (m, (msg, got)) in inp.messages.iter().zip(&run.decrypted).enumerate() {
        if &msg.plaintext != got {
            return Err(format!("message {m}: otr4 decrypted another plaintext"));
        }
    }
    Ok(())
}

/// The double-ratchet states of a transcript ([`DoubleRatchet::export`] of both parties
/// after initialisation and after each message), as seeds for the `ratchet_import` fuzz
/// target.
pub fn ratchet_exports(v: &Vector) -> Result<Vec<Vec<u8>>, String> {
    Ok(run_otr4(&Inputs::from_vector(v)?)?.exports)
}

/// Compares computed outputs with the stored ones: every computed value must be stored and
/// equal; with `exhaustive`, every stored value must also have been computed.
fn compare(
    who: &str,
    got: &Outputs,
    want: &BTreeMap<String, String>,
    exhaustive: bool,
) -> Result<(), String> {
    for (k, g) in got {
        match want.get(k) {
            Some(w) if w == g => {}
            Some(w) => return Err(format!("{who}: output {k}: want {w}, got {g}")),
            None => return Err(format!("{who}: computed {k}, which the vector lacks")),
        }
    }
    if exhaustive && let Some(k) = want.keys().find(|k| !got.contains_key(*k)) {
        return Err(format!("{who}: stored output {k} was not recomputed"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn chains_follow_the_ratchet_bookkeeping() {
        let m = |sender| MessageIn {
            sender,
            plaintext: Vec::new(),
            random: Vec::new(),
        };
        use Who::{Alice as A, Bob as B};
        let script: Vec<_> = [A, A, B, A, B, B, A].into_iter().map(m).collect();
        assert_eq!(chains_of(&script), [0, 0, 1, 2, 3, 3, 4]);
        assert_eq!(random_sizes(&script), [0, 0, 0, 57, 57, 0, 57 + 80]);
        let script: Vec<_> = [B, A, B].into_iter().map(m).collect();
        assert_eq!(chains_of(&script), [1, 2, 3]);
        assert_eq!((chain_ratchet_id(4), chain_has_dh(4)), (3, true));
        assert_eq!((chain_ratchet_id(1), chain_has_dh(1)), (0, true));
        assert!(!chain_has_dh(2));
    }

    /// A tampered stored value, random string or plaintext is caught.
    #[test]
    fn tampering_is_detected() {
        let v = generate_case(&CASES[0]).unwrap();
        check(&v).unwrap();
        for (k, tweak_input) in [
            ("ratchet_04_k_dh", false),
            ("message_03_mk_mac", false),
            ("message_05_encoded", false),
            ("t_auth_i", false),
            ("message_04_random", true),
            ("bob_auth_i_random", true),
            ("message_02_plaintext", true),
        ] {
            let mut bad = v.clone();
            let map = if tweak_input {
                &mut bad.inputs
            } else {
                &mut bad.outputs
            };
            let s = map.get_mut(k).unwrap();
            let flipped = if s.starts_with('0') { "1" } else { "0" };
            s.replace_range(0..1, flipped);
            assert!(check(&bad).is_err(), "{k}");
        }
        let mut short = v.clone();
        short
            .inputs
            .get_mut("message_04_random")
            .unwrap()
            .truncate(2);
        assert!(check(&short).is_err());
    }
}
