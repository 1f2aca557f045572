//! Offline-conversation vectors: a whole non-interactive DAKE (Bob's Prekey Ensemble, Alice's
//! Non-Interactive-Auth message with `tmp_k`, `auth_mac_k`, the Auth MAC, `K` and the SSID,
//! then her first data message), and a whole prekey publication (DAKE-1/2/3, `SK`,
//! `prekey_mac_k`, the proofs, the Prekey MAC and the Success MAC).
//!
//! Every random byte is recorded (inputs `random_*`) and replayed into otr4; the checker also
//! recomputes every derived key and MAC directly from the spec's formulas (SHAKE-256 KDFs
//! over the secrets given as inputs) and compares both.

use otr4::hazmat::wire::codec::Codec;
use std::collections::BTreeMap;

use super::{draw_arr, expect, expect_text};
use crate::format::{Suite, Vector};
use crate::rng::{RecordingRng, ReplayRng};
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::PrekeyStore;
use otr4::ValidatedEnsemble;
use otr4::hazmat::crypto::dh::{DhKeyPair, DhPublic};
use otr4::hazmat::crypto::ecdh::{ecdh, prekey_ecdh};
use otr4::hazmat::crypto::ed448::{KeyPair, Point, SymmetricKey};
use otr4::hazmat::crypto::kdf::{Otrv4, PrekeyUsage, Usage, kdf, prekey_kdf};
use otr4::hazmat::crypto::keys::{ForgingPublicKey, generate_forging_point};
use otr4::hazmat::dake::PhiPrime;
use otr4::hazmat::dake::non_interactive::{
    receive_non_interactive_auth, send_non_interactive_auth,
};
use otr4::hazmat::prekey::messages::PrekeyPublication;
use otr4::hazmat::prekey::proofs::{
    EcdhProofKind, ProofContext, verify_dh_proof, verify_ecdh_proof,
};
use otr4::hazmat::prekey::server::Dake3Outcome;
use otr4::hazmat::prekey::{PrekeyClient, PrekeyServer};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Writer;
use otr4::hazmat::wire::encoded::encode_otr;
use otr4::hazmat::wire::messages::PrekeyEnsemble;
use otr4::hazmat::wire::messages::PrekeyMessage;
use otr4::hazmat::wire::tlv::{encode_plaintext, parse_plaintext};

const NIA: &str = "otrv4.md §\"Non-Interactive DAKE Overview\"; §\"Non-Interactive-Auth \
Message\"; §\"Validating Prekey Ensembles\"; §\"Sending a Data Message to an offline \
participant\"";
const PUBLICATION: &str = "otrv4-prekey-server.md §\"Key Exchange\"; §\"Publishing Prekey \
Values\"; §\"Prekey Publication Message\"; §\"Proofs\"; §\"Success Message\"";

/// Fixed inputs (times and tags) shared by both vectors.
const NOW: i64 = 1_700_000_000;
const WEEK: i64 = 7 * 86_400;
const ALICE_TAG: u32 = 0x0100_0a0a;
const BOB_TAG: u32 = 0x0100_0b0b;
const ALICE_JID: &str = "alice@example.org";
const BOB_JID: &str = "bob@example.org";
const SERVER_JID: &str = "prekey.example.org";

type Outputs = BTreeMap<String, Vec<u8>>;

fn keypair(sym: [u8; 57]) -> KeyPair {
    KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym))
}

fn err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e:?}")
}

fn i64_in(v: &Vector, k: &str) -> Result<i64, String> {
    Ok(i64::from_be_bytes(v.arr_in(k)?))
}

fn u32_in(v: &Vector, k: &str) -> Result<u32, String> {
    Ok(u32::from_be_bytes(v.arr_in(k)?))
}

fn forging(v: &Vector, k: &str) -> Result<ForgingPublicKey, String> {
    Point::decode(&v.arr_in(k)?)
        .map(ForgingPublicKey)
        .map_err(|e| format!("{k}: {e:?}"))
}

fn mpi(d: &DhPublic) -> Vec<u8> {
    let mut w = Vec::new();
    w.dh_public(d);
    w
}

/// A prekey store holding exactly the given secrets, through `PrekeyStore::import` (its
/// export format: version 1, owner tag, the prekeys, the shared prekeys).
fn store_with(
    tag: InstanceTag,
    prekeys: &[(u32, [u8; 57], [u8; 80])],
    created: i64,
    shared: &[([u8; 57], &PrekeyProfile)],
) -> Result<PrekeyStore, String> {
    let mut w = Vec::new();
    w.u8(1).u32(tag.0).u32(prekeys.len() as u32);
    for (id, y, b) in prekeys {
        w.u32(*id).i64(created).bytes(y).bytes(b);
        w.dh_public(
            DhKeyPair::from_secret_bytes(*b)
                .map_err(err("prekey DH secret"))?
                .public(),
        );
    }
    w.u32(shared.len() as u32);
    for (d, pp) in shared {
        w.bytes(d);
        pp.write(&mut w);
    }
    PrekeyStore::import(&w).map_err(err("prekey store"))
}

fn check_outputs(v: &Vector, got: &Outputs) -> Result<(), String> {
    if v.outputs.len() != got.len() {
        return Err(format!(
            "{} outputs stored, {} recomputed",
            v.outputs.len(),
            got.len()
        ));
    }
    for (k, val) in got {
        if k.ends_with("_text") {
            expect_text(v, k, &String::from_utf8_lossy(val))?;
        } else {
            expect(v, k, val)?;
        }
    }
    Ok(())
}

/// Adds the outputs (`*_text` ones as text, the rest as hex).
fn with_outputs(mut v: Vector, got: Outputs) -> Vector {
    for (k, val) in got {
        v = if k.ends_with("_text") {
            v.output_text(&k, &String::from_utf8_lossy(&val))
        } else {
            v.output(&k, &val)
        };
    }
    v
}

fn ensure(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("cross-check failed: {what}"))
    }
}

// ---- the non-interactive DAKE ------------------------------------------------------

fn tags(v: &Vector) -> Result<(InstanceTag, InstanceTag), String> {
    Ok((
        InstanceTag(u32_in(v, "alice_instance_tag")?),
        InstanceTag(u32_in(v, "bob_instance_tag")?),
    ))
}

/// Runs the non-interactive DAKE of `v` (replaying `random_nia` and `random_data`) and
/// recomputes every intermediate value from the secrets.
fn non_interactive(v: &Vector) -> Result<Outputs, String> {
    let mut out = Outputs::new();
    let (alice_tag, bob_tag) = tags(v)?;
    let now = i64_in(v, "now")?;
    let bob_lt = keypair(v.arr_in("bob_long_term_sym")?);
    let alice_lt = keypair(v.arr_in("alice_long_term_sym")?);
    let bob_cp = ClientProfile::build_and_sign(
        bob_tag,
        &bob_lt,
        &forging(v, "bob_forging_key")?,
        b"4",
        i64_in(v, "bob_client_profile_expiration")?,
    );
    let alice_cp = ClientProfile::build_and_sign(
        alice_tag,
        &alice_lt,
        &forging(v, "alice_forging_key")?,
        b"4",
        i64_in(v, "alice_client_profile_expiration")?,
    );
    let d_sym: [u8; 57] = v.arr_in("bob_shared_prekey_sym")?;
    let d = keypair(d_sym);
    let pp = PrekeyProfile::build_and_sign(
        bob_tag,
        i64_in(v, "bob_prekey_profile_expiration")?,
        &d,
        &bob_lt,
    );
    let (id, y_sym, b_secret) = (
        u32_in(v, "prekey_id")?,
        v.arr_in::<57>("prekey_y_sym")?,
        v.arr_in::<80>("prekey_b_secret")?,
    );
    let (y, b) = (
        keypair(y_sym),
        DhKeyPair::from_secret_bytes(b_secret).map_err(err("prekey_b_secret"))?,
    );
    let pm = PrekeyMessage {
        id,
        owner_tag: bob_tag,
        y: *y.public(),
        b: b.public().clone(),
    };
    let ensemble = PrekeyEnsemble {
        client_profile: bob_cp.clone(),
        prekey_profile: pp.clone(),
        prekey_message: pm.clone(),
    };
    let mut w = Vec::new();
    ensemble.write(&mut w);
    out.insert("bob_client_profile".into(), bob_cp.encode());
    out.insert("bob_prekey_profile".into(), pp.encode());
    out.insert("prekey_message".into(), pm.encode());
    out.insert("ensemble".into(), w);
    out.insert("alice_client_profile".into(), alice_cp.encode());
    let valid = ValidatedEnsemble::validate(&ensemble, now).map_err(err("ensemble"))?;
    let phi_prime =
        PhiPrime::from_strings(&[v.text_in("alice_jid_text")?, v.text_in("bob_jid_text")?]);

    // Alice: the Non-Interactive-Auth message.
    let mut rng = ReplayRng::new(v.hex_in("random_nia")?);
    let (nia, done) = send_non_interactive_auth(&mut rng, &valid, &alice_lt, &alice_cp, &phi_prime)
        .map_err(err("send_non_interactive_auth"))?;
    ensure(rng.exhausted_exactly(), "random_nia consumed exactly")?;
    let nia_bin = nia.encode();
    out.insert("non_interactive_auth".into(), nia_bin.clone());
    out.insert(
        "non_interactive_auth_text".into(),
        encode_otr(&nia_bin).into_bytes(),
    );

    // The spec's formulas, from the secrets: x is the first 57 random bytes, a the next 80.
    let random = v.hex_in("random_nia")?;
    let x = keypair(
        random
            .get(..57)
            .ok_or("random_nia")?
            .try_into()
            .map_err(err("x"))?,
    );
    let a = DhKeyPair::from_secret_bytes(
        random
            .get(57..137)
            .ok_or("random_nia")?
            .try_into()
            .map_err(err("a"))?,
    )
    .map_err(err("a"))?;
    ensure(
        &nia.x == x.public() && &nia.a == a.public(),
        "X, A from the random bytes",
    )?;
    // phi: the two (tag || POINT || MPI) tuples in ascending byte order, then phi'.
    let tuple = |t: InstanceTag, e: &Point, d: &DhPublic| {
        [t.0.to_be_bytes().as_slice(), &e.encode(), &mpi(d)].concat()
    };
    let mut tuples = [
        tuple(alice_tag, &nia.our_ecdh_first, &nia.our_dh_first),
        tuple(bob_tag, y.public(), b.public()),
    ];
    tuples.sort();
    let phi = [tuples[0].as_slice(), &tuples[1], phi_prime.as_bytes()].concat();
    let t = [
        kdf::<64>(Usage::NonIntAuthBobClientProfile, &[&bob_cp.encode()]).as_slice(),
        &kdf::<64>(Usage::NonIntAuthAliceClientProfile, &[&alice_cp.encode()]),
        &y.public().encode(),
        &x.public().encode(),
        &mpi(b.public()),
        &mpi(a.public()),
        &{
            let mut w = Vec::new();
            pp.shared_prekey.write(&mut w);
            w
        },
        &kdf::<64>(Usage::NonIntAuthPhi, &[&phi]),
    ]
    .concat();
    nia.sigma
        .verify::<Otrv4>(
            [bob_cp.forging_key().point(), alice_lt.public(), y.public()],
            &t,
        )
        .map_err(err("sigma does not verify over t"))?;
    let k_ecdh = ecdh(x.secret(), y.public()).map_err(err("K_ecdh"))?;
    let k_dh = a.shared_secret(b.public());
    let brace_key = kdf::<32>(Usage::ThirdBraceKey, &[k_dh.k_dh()]);
    let tmp_k = kdf::<64>(
        Usage::TmpKey,
        &[
            k_ecdh.as_bytes(),
            ecdh(x.secret(), d.public())
                .map_err(err("ECDH(x, D)"))?
                .as_bytes(),
            ecdh(x.secret(), bob_lt.public())
                .map_err(err("ECDH(x, H_b)"))?
                .as_bytes(),
            &brace_key,
        ],
    );
    let auth_mac_k = kdf::<64>(Usage::AuthMacKey, &[&tmp_k]);
    let auth_mac = kdf::<64>(Usage::AuthMac, &[&auth_mac_k, &t]);
    let k = kdf::<64>(Usage::SharedSecret, &[&tmp_k]);
    let ssid = kdf::<8>(Usage::Ssid, &[&k]);
    ensure(nia.auth_mac == auth_mac, "the message's Auth MAC")?;
    ensure(done.shared_secret().as_bytes() == &k, "Alice's K")?;
    ensure(done.ssid().0 == ssid, "Alice's SSID")?;
    for (name, val) in [
        ("phi", phi.as_slice()),
        ("t", &t),
        ("k_ecdh", k_ecdh.as_bytes()),
        ("brace_key", &brace_key),
        ("tmp_k", &tmp_k),
        ("auth_mac_k", &auth_mac_k),
        ("auth_mac", &auth_mac),
        ("k", &k),
        ("ssid", &ssid),
    ] {
        out.insert(name.into(), val.to_vec());
    }

    // Bob verifies with his secrets; the prekey is then gone.
    let mut store = store_with(bob_tag, &[(id, y_sym, b_secret)], now, &[(d_sym, &pp)])?;
    let bob_done = receive_non_interactive_auth(
        &nia,
        &bob_lt,
        std::slice::from_ref(&bob_cp),
        &mut store,
        &phi_prime,
        now,
    )
    .map_err(err("receive_non_interactive_auth"))?;
    ensure(bob_done.shared_secret().as_bytes() == &k, "Bob's K")?;
    ensure(store.get(id).is_none(), "the prekey is used up")?;

    // Alice's first data message on the initial sending chain; Bob reads it.
    let text = v.text_in("plaintext_text")?;
    let plaintext = encode_plaintext(text.as_bytes(), &[]).map_err(err("plaintext"))?;
    let mut alice_ratchet = done.into_double_ratchet();
    let mut rng = ReplayRng::new(v.hex_in("random_data")?);
    let enc = alice_ratchet
        .encrypt(alice_tag, bob_tag, 0, &plaintext, &mut rng)
        .map_err(err("encrypt"))?;
    ensure(rng.exhausted_exactly(), "random_data consumed exactly")?;
    ensure(
        enc.message.i == 0 && enc.message.j == 0,
        "ratchet id 0, message id 0",
    )?;
    out.insert("data_message".into(), enc.message.encode());
    let mut bob_ratchet = bob_done.into_double_ratchet();
    let dec = bob_ratchet.decrypt(&enc.message).map_err(err("decrypt"))?;
    ensure(
        parse_plaintext(&dec.plaintext).message == text.as_bytes(),
        "Bob reads the plaintext",
    )?;
    Ok(out)
}

fn generate_non_interactive(rng: &mut RecordingRng) -> Result<Vector, String> {
    let bob_lt: [u8; 57] = draw_arr(rng);
    let alice_lt: [u8; 57] = draw_arr(rng);
    let bob_forging = generate_forging_point(rng);
    let alice_forging = generate_forging_point(rng);
    let d_sym: [u8; 57] = draw_arr(rng);
    let y_sym: [u8; 57] = draw_arr(rng);
    let b_secret: [u8; 80] = draw_arr(rng);
    let id = u32::from_be_bytes(draw_arr(rng)) | 1;
    rng.take();
    let v = Vector::new("non_interactive_dake/alice_to_bob", NIA)
        .input("now", &NOW.to_be_bytes())
        .input_text("alice_jid_text", ALICE_JID)
        .input_text("bob_jid_text", BOB_JID)
        .input("alice_instance_tag", &ALICE_TAG.to_be_bytes())
        .input("bob_instance_tag", &BOB_TAG.to_be_bytes())
        .input("bob_long_term_sym", &bob_lt)
        .input("bob_forging_key", &bob_forging.point().encode())
        .input(
            "bob_client_profile_expiration",
            &(NOW + 2 * WEEK).to_be_bytes(),
        )
        .input("bob_shared_prekey_sym", &d_sym)
        .input("bob_prekey_profile_expiration", &(NOW + WEEK).to_be_bytes())
        .input("prekey_id", &id.to_be_bytes())
        .input("prekey_y_sym", &y_sym)
        .input("prekey_b_secret", &b_secret)
        .input("alice_long_term_sym", &alice_lt)
        .input("alice_forging_key", &alice_forging.point().encode())
        .input(
            "alice_client_profile_expiration",
            &(NOW + 2 * WEEK).to_be_bytes(),
        )
        .input_text("plaintext_text", "Hi Bob, I wrote while you were offline.");
    // Record the random bytes the two randomised steps draw.
    let (random_nia, random_data) = record_non_interactive(&v, rng)?;
    let v = v
        .input("random_nia", &random_nia)
        .input("random_data", &random_data);
    let got = non_interactive(&v)?;
    Ok(with_outputs(v, got))
}

/// Runs Alice's two randomised steps with the recording RNG; returns what each drew.
fn record_non_interactive(
    v: &Vector,
    rng: &mut RecordingRng,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (alice_tag, bob_tag) = tags(v)?;
    let bob_lt = keypair(v.arr_in("bob_long_term_sym")?);
    let alice_lt = keypair(v.arr_in("alice_long_term_sym")?);
    let bob_cp = ClientProfile::build_and_sign(
        bob_tag,
        &bob_lt,
        &forging(v, "bob_forging_key")?,
        b"4",
        i64_in(v, "bob_client_profile_expiration")?,
    );
    let alice_cp = ClientProfile::build_and_sign(
        alice_tag,
        &alice_lt,
        &forging(v, "alice_forging_key")?,
        b"4",
        i64_in(v, "alice_client_profile_expiration")?,
    );
    let d = keypair(v.arr_in("bob_shared_prekey_sym")?);
    let pp = PrekeyProfile::build_and_sign(
        bob_tag,
        i64_in(v, "bob_prekey_profile_expiration")?,
        &d,
        &bob_lt,
    );
    let y = keypair(v.arr_in("prekey_y_sym")?);
    let b = DhKeyPair::from_secret_bytes(v.arr_in("prekey_b_secret")?)
        .map_err(err("prekey_b_secret"))?;
    let ensemble = PrekeyEnsemble {
        client_profile: bob_cp,
        prekey_profile: pp,
        prekey_message: PrekeyMessage {
            id: u32_in(v, "prekey_id")?,
            owner_tag: bob_tag,
            y: *y.public(),
            b: b.public().clone(),
        },
    };
    let valid =
        ValidatedEnsemble::validate(&ensemble, i64_in(v, "now")?).map_err(err("ensemble"))?;
    let phi_prime =
        PhiPrime::from_strings(&[v.text_in("alice_jid_text")?, v.text_in("bob_jid_text")?]);
    rng.take();
    let (_, done) = send_non_interactive_auth(rng, &valid, &alice_lt, &alice_cp, &phi_prime)
        .map_err(err("send_non_interactive_auth"))?;
    let random_nia = rng.take();
    let plaintext =
        encode_plaintext(v.text_in("plaintext_text")?.as_bytes(), &[]).map_err(err("plaintext"))?;
    done.into_double_ratchet()
        .encrypt(alice_tag, bob_tag, 0, &plaintext, rng)
        .map_err(err("encrypt"))?;
    Ok((random_nia, rng.take()))
}

// ---- the prekey publication ----------------------------------------------------------

/// The publisher's setup of `v`: its prekey client (with a fresh exchange), the items and
/// the server.
struct Publisher {
    client: PrekeyClient,
    store: PrekeyStore,
    cp: ClientProfile,
    ids: Vec<u32>,
    server: PrekeyServer,
    tag: InstanceTag,
}

fn publisher(v: &Vector) -> Result<Publisher, String> {
    let tag = InstanceTag(u32_in(v, "publisher_instance_tag")?);
    let now = i64_in(v, "now")?;
    let lt = keypair(v.arr_in("publisher_long_term_sym")?);
    let cp = ClientProfile::build_and_sign(
        tag,
        &lt,
        &forging(v, "publisher_forging_key")?,
        b"4",
        i64_in(v, "client_profile_expiration")?,
    );
    let d_sym: [u8; 57] = v.arr_in("shared_prekey_sym")?;
    let pp = PrekeyProfile::build_and_sign(
        tag,
        i64_in(v, "prekey_profile_expiration")?,
        &keypair(d_sym),
        &lt,
    );
    let mut prekeys = Vec::new();
    for n in 0..2 {
        prekeys.push((
            u32_in(v, &format!("prekey{n}_id"))?,
            v.arr_in::<57>(&format!("prekey{n}_y_sym"))?,
            v.arr_in::<80>(&format!("prekey{n}_b_secret"))?,
        ));
    }
    let ids = prekeys.iter().map(|(id, _, _)| *id).collect();
    let store = store_with(tag, &prekeys, now, &[(d_sym, &pp)])?;
    let server = PrekeyServer::new(
        v.text_in("server_identity_text")?.as_bytes().to_vec(),
        keypair(v.arr_in("server_long_term_sym")?),
    );
    let client = PrekeyClient::new(
        v.text_in("publisher_identity_text")?.as_bytes().to_vec(),
        lt,
        cp.clone(),
        v.text_in("server_identity_text")?.as_bytes().to_vec(),
        server.fingerprint(),
    )
    .map_err(err("prekey client"))?;
    Ok(Publisher {
        client,
        store,
        cp,
        ids,
        server,
        tag,
    })
}

/// The three randomised steps, each with its own RNG; returns the messages.
fn run_publication<R1, R2, R3>(
    p: &mut Publisher,
    identity: &[u8],
    now: i64,
    r1: &mut R1,
    r2: &mut R2,
    r3: &mut R3,
) -> Result<
    (
        PrekeyServerMessage,
        PrekeyServerMessage,
        PrekeyServerMessage,
        PrekeyServerMessage,
    ),
    String,
>
where
    R1: rand_core::CryptoRng,
    R2: rand_core::CryptoRng,
    R3: rand_core::CryptoRng,
{
    let items = p
        .store
        .publish_items(&p.ids, true)
        .map_err(err("publish items"))?
        .with_client_profile(p.cp.clone());
    let d1 = p.client.publish(r1, items).map_err(err("DAKE-1"))?;
    let (session, d2) = p
        .server
        .receive_dake1(r2, identity, &d1, now)
        .map_err(err("DAKE-2"))?;
    let d3 = p.client.receive_dake2(r3, &d2).map_err(err("DAKE-3"))?;
    let success = match p
        .server
        .receive_dake3(session, &d3, now)
        .map_err(err("server"))?
    {
        Dake3Outcome::Publication(pending) => pending.stored(),
        other => {
            return Err(format!(
                "the server did not accept the publication: {other:?}"
            ));
        }
    };
    Ok((
        PrekeyServerMessage::Dake1(d1),
        PrekeyServerMessage::Dake2(d2),
        PrekeyServerMessage::Dake3(d3),
        PrekeyServerMessage::Success(success),
    ))
}

fn publication(v: &Vector) -> Result<Outputs, String> {
    let mut out = Outputs::new();
    let mut p = publisher(v)?;
    let now = i64_in(v, "now")?;
    let identity = v.text_in("publisher_identity_text")?.as_bytes().to_vec();
    let (random1, random2, random3) = (
        v.hex_in("random_dake1")?,
        v.hex_in("random_dake2")?,
        v.hex_in("random_dake3")?,
    );
    let (mut r1, mut r2, mut r3) = (
        ReplayRng::new(random1.clone()),
        ReplayRng::new(random2.clone()),
        ReplayRng::new(random3),
    );
    let (d1, d2, d3, success) = run_publication(&mut p, &identity, now, &mut r1, &mut r2, &mut r3)?;
    ensure(
        r1.exhausted_exactly() && r2.exhausted_exactly() && r3.exhausted_exactly(),
        "the random bytes consumed exactly",
    )?;
    let reply = p
        .client
        .receive_reply(&success)
        .map_err(err("the Success reply"))?;
    ensure(
        matches!(reply, otr4::hazmat::prekey::ServerReply::Published { .. }),
        "the publisher accepts the Success message",
    )?;
    for (name, m) in [
        ("dake1", &d1),
        ("dake2", &d2),
        ("dake3", &d3),
        ("success", &success),
    ] {
        out.insert(name.into(), m.encode());
    }
    let (
        PrekeyServerMessage::Dake1(d1),
        PrekeyServerMessage::Dake2(d2),
        PrekeyServerMessage::Dake3(d3),
        PrekeyServerMessage::Success(success),
    ) = (d1, d2, d3, success)
    else {
        return Err("message kinds".into());
    };

    // SK from both sides: i is DAKE-1's first 57 random bytes, s the server's.
    let i = keypair(
        random1
            .get(..57)
            .ok_or("random_dake1")?
            .try_into()
            .map_err(err("i"))?,
    );
    let s = keypair(
        random2
            .get(..57)
            .ok_or("random_dake2")?
            .try_into()
            .map_err(err("s"))?,
    );
    ensure(
        &d1.i == i.public() && &d2.s == s.public(),
        "I, S from the random bytes",
    )?;
    let sk_ecdh = prekey_ecdh(i.secret(), s.public()).map_err(err("ECDH(i, S)"))?;
    let sk_ecdh_server = prekey_ecdh(s.secret(), i.public()).map_err(err("ECDH(s, I)"))?;
    ensure(
        sk_ecdh.as_bytes() == sk_ecdh_server.as_bytes(),
        "both sides' SK_ecdh",
    )?;
    let sk = prekey_kdf::<64>(PrekeyUsage::Sk, &[sk_ecdh.as_bytes()]);
    let prekey_mac_k = prekey_kdf::<64>(PrekeyUsage::PreMacKey, &[&sk]);
    let proof_context = prekey_kdf::<64>(PrekeyUsage::ProofContext, &[&sk]);

    // The publication: proofs verify under m; the Prekey MAC from the spec's formula.
    let publication = PrekeyPublication::decode(&d3.message).map_err(err("publication"))?;
    let pms = publication
        .prekey_messages
        .as_ref()
        .ok_or("no prekey messages")?;
    let (pp, pp_proof) = publication
        .prekey_profile
        .as_ref()
        .ok_or("no prekey profile")?;
    let cp = publication
        .client_profile
        .as_ref()
        .ok_or("no client profile")?;
    let m = ProofContext::from_shared_secret(&sk);
    let ys: Vec<&Point> = pms.messages().iter().map(|pm| &pm.y).collect();
    let bs: Vec<&DhPublic> = pms.messages().iter().map(|pm| &pm.b).collect();
    verify_ecdh_proof(&pms.ecdh_proof, EcdhProofKind::PrekeyMessages, &ys, &m)
        .map_err(err("ECDH proof"))?;
    verify_dh_proof(&pms.dh_proof, &bs, &m).map_err(err("DH proof"))?;
    verify_ecdh_proof(
        pp_proof,
        EcdhProofKind::SharedPrekey,
        &[pp.shared_prekey.point()],
        &m,
    )
    .map_err(err("shared prekey proof"))?;
    let enc = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut w = Vec::new();
        f(&mut w);
        w
    };
    let ecdh_proof = enc(&|w| pms.ecdh_proof.write(w));
    let dh_proof = enc(&|w| pms.dh_proof.write(w));
    let shared_proof = enc(&|w| pp_proof.write(w));
    let messages = enc(&|w| {
        for pm in pms.messages() {
            pm.write(w);
        }
    });
    let proofs = [ecdh_proof.as_slice(), &dh_proof, &shared_proof].concat();
    let n = u8::try_from(pms.messages().len()).map_err(err("N"))?;
    let prekey_mac = prekey_kdf::<64>(
        PrekeyUsage::PreMac,
        &[
            &prekey_mac_k,
            &[0x08, n],
            &prekey_kdf::<64>(PrekeyUsage::PrekeyMessage, &[&messages]),
            &[1],
            &prekey_kdf::<64>(PrekeyUsage::ClientProfile, &[&cp.encode()]),
            &[1],
            &prekey_kdf::<64>(PrekeyUsage::PrekeyProfile, &[&pp.encode()]),
            &prekey_kdf::<64>(PrekeyUsage::MacProofs, &[&proofs]),
        ],
    );
    ensure(
        publication.mac == prekey_mac,
        "the publication's Prekey MAC",
    )?;
    let success_mac = prekey_kdf::<64>(
        PrekeyUsage::SuccessMac,
        &[&prekey_mac_k, &[0x06], &p.tag.0.to_be_bytes()],
    );
    ensure(success.mac == success_mac, "the Success MAC")?;
    for (name, val) in [
        ("sk", sk.as_slice()),
        ("prekey_mac_k", &prekey_mac_k),
        ("proof_context", &proof_context),
        ("prekey_messages_ecdh_proof", &ecdh_proof),
        ("prekey_messages_dh_proof", &dh_proof),
        ("shared_prekey_proof", &shared_proof),
        ("prekey_publication", &d3.message),
        ("prekey_mac", &prekey_mac),
        ("success_mac", &success_mac),
    ] {
        out.insert(name.into(), val.to_vec());
    }
    Ok(out)
}

fn generate_publication(rng: &mut RecordingRng) -> Result<Vector, String> {
    let lt: [u8; 57] = draw_arr(rng);
    let forging_key = generate_forging_point(rng);
    let d_sym: [u8; 57] = draw_arr(rng);
    let server_lt: [u8; 57] = draw_arr(rng);
    let mut v = Vector::new("publication/two_prekeys_and_both_profiles", PUBLICATION)
        .input("now", &NOW.to_be_bytes())
        .input_text("publisher_identity_text", BOB_JID)
        .input_text("server_identity_text", SERVER_JID)
        .input("publisher_instance_tag", &BOB_TAG.to_be_bytes())
        .input("publisher_long_term_sym", &lt)
        .input("publisher_forging_key", &forging_key.point().encode())
        .input("client_profile_expiration", &(NOW + 2 * WEEK).to_be_bytes())
        .input("shared_prekey_sym", &d_sym)
        .input("prekey_profile_expiration", &(NOW + WEEK).to_be_bytes())
        .input("server_long_term_sym", &server_lt);
    for n in 0..2 {
        let id = u32::from_be_bytes(draw_arr(rng)) | 1;
        let y: [u8; 57] = draw_arr(rng);
        let b: [u8; 80] = draw_arr(rng);
        v = v
            .input(&format!("prekey{n}_id"), &id.to_be_bytes())
            .input(&format!("prekey{n}_y_sym"), &y)
            .input(&format!("prekey{n}_b_secret"), &b);
    }
    rng.take();
    // Record each step's random bytes (three RNG streams from one seed, in step order).
    let mut p = publisher(&v)?;
    let mut r1 = RecordingRng::new("otr4 offline publication dake1");
    let mut r2 = RecordingRng::new("otr4 offline publication dake2");
    let mut r3 = RecordingRng::new("otr4 offline publication dake3");
    run_publication(&mut p, BOB_JID.as_bytes(), NOW, &mut r1, &mut r2, &mut r3)?;
    let v = v
        .input("random_dake1", &r1.take())
        .input("random_dake2", &r2.take())
        .input("random_dake3", &r3.take());
    let got = publication(&v)?;
    Ok(with_outputs(v, got))
}

// ---- the suite ------------------------------------------------------------------------

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 offline vectors");
    let mut vectors = Vec::new();
    for made in [
        generate_non_interactive(&mut rng),
        generate_publication(&mut rng),
    ] {
        match made {
            Ok(v) => vectors.push(v),
            Err(e) => eprintln!("offline: cannot generate a vector: {e}"),
        }
    }
    Suite {
        suite: "offline".into(),
        description: "Offline conversations. `non_interactive_dake/*`: Bob's Prekey Ensemble \
            (Client Profile, Prekey Profile, Prekey message built from the secret inputs and \
            signed deterministically), Alice's Non-Interactive-Auth message (`random_nia`: x \
            (57), a (80), our_ecdh_first (57), our_dh_first (80), then RSig's 513 bytes), the \
            values phi (the two tag||POINT||MPI tuples in ascending byte order, then phi' = \
            the two sorted bare JIDs as DATA), t, K_ecdh, brace_key, tmp_k, auth_mac_k, the \
            Auth MAC, K and the SSID, then Alice's first data message on the initial chain \
            (`random_data`) for `plaintext_text`; Bob verifies it with his prekey and reads \
            the data message. `publication/*`: a Prekey Publication of two Prekey messages \
            with both profiles: DAKE-1 (`random_dake1` starts with i's 57 bytes), DAKE-2 \
            (`random_dake2`, the server's, starts with s's 57 bytes), DAKE-3 with the \
            publication (`random_dake3`: RSig then the proofs), SK = KDF(0x01, \
            ECDH_prekey(i, S)), prekey_mac_k, the proof context m, the three proofs (which \
            verify under m), the Prekey MAC from the spec's formula, the server's Success \
            message and its MAC. Integers are big-endian; times are seconds."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let op = v.name.split('/').next().unwrap_or("");
    let got = match op {
        "non_interactive_dake" => non_interactive(v)?,
        "publication" => publication(v)?,
        _ => return Err(format!("unknown operation {op}")),
    };
    check_outputs(v, &got)
}
