//! Message-encoding vectors: every OTRv4 and prekey-server message built from typed fields,
//! its binary encoding and its text form, decoded back; and rejected encodings.

use super::dh3072::DH_P_HEX;
use super::{draw, draw_arr, expect, expect_text, hex_out, text_out};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::DecodeError;
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::dh::{DhKeyPair, DhPublic};
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar, SymmetricKey};
use otr4::hazmat::crypto::keys::{Ed448PublicKey, generate_forging_point};
use otr4::hazmat::crypto::rsig::RingSignature;
use otr4::hazmat::prekey::messages::{
    CompositeIdentity, Dake1, Dake2, Dake3, Dake3Inner, DhProof, EcdhProof, EnsembleQuery,
    EnsembleRetrieval, Failure, NO_PREKEY_ENSEMBLES_TEXT, NoPrekeyEnsembles, PrekeyPublication,
    PublishedPrekeyMessages, StorageInfoRequest, StorageStatus, Success,
};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::codec::Reader;
use otr4::hazmat::wire::encoded::{decode_otr, decode_prekey, encode_otr, encode_prekey};
use otr4::hazmat::wire::messages::{
    AuthI, AuthR, DataMessage, IdentityMessage, Message, NonInteractiveAuth, PrekeyEnsemble,
    PrekeyMessage,
};

/// How a message travels as text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An OTRv4 conversation message: `?OTR:<base64>.`.
    Otr,
    /// A prekey-server message: `<base64>.`.
    Prekey,
    /// Only carried inside a DAKE-3 message: no text form of its own.
    Inner,
}

/// Decodes bytes and compares the result with a built message.
type DecodeCheck = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// A message built from a vector's inputs.
struct Built {
    kind: Kind,
    bin: Vec<u8>,
    /// Decodes bytes and compares the result with the built message.
    decodes_to_inputs: DecodeCheck,
}

fn built<T: PartialEq + 'static>(
    kind: Kind,
    value: T,
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Built {
    let bin = encode(&value);
    Built {
        kind,
        bin,
        decodes_to_inputs: Box::new(move |bytes| match decode(bytes) {
            Ok(d) if d == value => Ok(()),
            Ok(_) => Err("the encoding decodes to other field values".into()),
            Err(e) => Err(format!("the encoding does not decode: {e:?}")),
        }),
    }
}

fn otr(m: Message) -> Built {
    built(Kind::Otr, m, Message::encode, Message::decode)
}

fn prekey(m: PrekeyServerMessage) -> Built {
    built(
        Kind::Prekey,
        m,
        PrekeyServerMessage::encode,
        PrekeyServerMessage::decode,
    )
}

fn inner(m: Dake3Inner) -> Built {
    built(Kind::Inner, m, Dake3Inner::encode, Dake3Inner::decode)
}

// ---- typed inputs ------------------------------------------------------------------

fn tag(v: &Vector, k: &str) -> Result<InstanceTag, String> {
    Ok(InstanceTag(u32_in(v, k)?))
}

fn u32_in(v: &Vector, k: &str) -> Result<u32, String> {
    Ok(u32::from_be_bytes(v.arr_in(k)?))
}

fn point(v: &Vector, k: &str) -> Result<Point, String> {
    Point::decode(&v.arr_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

fn dh(v: &Vector, k: &str) -> Result<DhPublic, String> {
    DhPublic::from_be_bytes(&v.hex_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

fn scalar(v: &Vector, k: &str) -> Result<Scalar, String> {
    Scalar::decode(&v.arr_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

fn sigma(v: &Vector, k: &str) -> Result<RingSignature, String> {
    let bytes = v.hex_in(k)?;
    let mut r = Reader::new(&bytes);
    let s = RingSignature::read(&mut r).map_err(|e| format!("{k}: {e:?}"))?;
    r.finish().map_err(|e| format!("{k}: {e:?}"))?;
    Ok(s)
}

fn client_profile(v: &Vector, k: &str) -> Result<ClientProfile, String> {
    ClientProfile::decode(&v.hex_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

fn prekey_profile(v: &Vector, k: &str) -> Result<PrekeyProfile, String> {
    PrekeyProfile::decode(&v.hex_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

fn mac(v: &Vector, k: &str) -> Result<[u8; 64], String> {
    v.arr_in(k)
}

/// A Prekey message from the fields `<p>id`, `<p>owner_tag`, `<p>y`, `<p>b`.
fn prekey_message(v: &Vector, p: &str) -> Result<PrekeyMessage, String> {
    Ok(PrekeyMessage {
        id: u32_in(v, &format!("{p}id"))?,
        owner_tag: tag(v, &format!("{p}owner_tag"))?,
        y: point(v, &format!("{p}y"))?,
        b: dh(v, &format!("{p}b"))?,
    })
}

/// An ECDH proof from `<p>c` (64 bytes) and `<p>v` (SCALAR).
fn ecdh_proof(v: &Vector, p: &str) -> Result<EcdhProof, String> {
    Ok(EcdhProof {
        c: v.arr_in(&format!("{p}c"))?,
        v: scalar(v, &format!("{p}v"))?,
    })
}

/// Builds the message a vector describes from its typed inputs.
fn build(v: &Vector) -> Result<Built, String> {
    let op = v.name.split('/').next().unwrap_or("");
    Ok(match op {
        "identity" => otr(Message::Identity(IdentityMessage {
            sender_tag: tag(v, "sender_tag")?,
            receiver_tag: tag(v, "receiver_tag")?,
            client_profile: client_profile(v, "client_profile")?,
            y: point(v, "y")?,
            b: dh(v, "b")?,
            our_ecdh_first: point(v, "our_ecdh_first")?,
            our_dh_first: dh(v, "our_dh_first")?,
        })),
        "auth_r" => otr(Message::AuthR(AuthR {
            sender_tag: tag(v, "sender_tag")?,
            receiver_tag: tag(v, "receiver_tag")?,
            client_profile: client_profile(v, "client_profile")?,
            x: point(v, "x")?,
            a: dh(v, "a")?,
            sigma: sigma(v, "sigma")?,
            our_ecdh_first: point(v, "our_ecdh_first")?,
            our_dh_first: dh(v, "our_dh_first")?,
        })),
        "auth_i" => otr(Message::AuthI(AuthI {
            sender_tag: tag(v, "sender_tag")?,
            receiver_tag: tag(v, "receiver_tag")?,
            sigma: sigma(v, "sigma")?,
        })),
        "non_interactive_auth" => otr(Message::NonInteractiveAuth(NonInteractiveAuth {
            sender_tag: tag(v, "sender_tag")?,
            receiver_tag: tag(v, "receiver_tag")?,
            client_profile: client_profile(v, "client_profile")?,
            x: point(v, "x")?,
            a: dh(v, "a")?,
            sigma: sigma(v, "sigma")?,
            prekey_message_id: u32_in(v, "prekey_message_id")?,
            auth_mac: mac(v, "auth_mac")?,
            our_ecdh_first: point(v, "our_ecdh_first")?,
            our_dh_first: dh(v, "our_dh_first")?,
        })),
        "prekey_message" => otr(Message::Prekey(prekey_message(v, "")?)),
        "data" => otr(Message::Data(DataMessage {
            sender_tag: tag(v, "sender_tag")?,
            receiver_tag: tag(v, "receiver_tag")?,
            flags: *v.hex_in("flags")?.first().ok_or("flags")?,
            pn: u32_in(v, "pn")?,
            i: u32_in(v, "i")?,
            j: u32_in(v, "j")?,
            ecdh: point(v, "ecdh")?,
            dh: if v.hex_in("dh")?.is_empty() {
                None
            } else {
                Some(dh(v, "dh")?)
            },
            encrypted: v.hex_in("encrypted")?,
            mac: mac(v, "mac")?,
            revealed_mac_keys: v.hex_in("revealed_mac_keys")?,
        })),
        "dake1" => prekey(PrekeyServerMessage::Dake1(Dake1 {
            sender_tag: tag(v, "sender_tag")?,
            client_profile: client_profile(v, "client_profile")?,
            i: point(v, "i")?,
        })),
        "dake2" => prekey(PrekeyServerMessage::Dake2(Dake2 {
            receiver_tag: tag(v, "receiver_tag")?,
            composite_identity: CompositeIdentity {
                identity: v.hex_in("server_identity")?,
                public_key: Ed448PublicKey(point(v, "server_public_key")?),
            },
            s: point(v, "s")?,
            sigma: sigma(v, "sigma")?,
        })),
        "dake3" => {
            let inner_msg =
                Dake3Inner::decode(&v.hex_in("message")?).map_err(|e| format!("message: {e:?}"))?;
            let m = Dake3::new(tag(v, "sender_tag")?, sigma(v, "sigma")?, &inner_msg);
            if m.inner().map_err(|e| format!("{e:?}"))? != inner_msg {
                return Err("DAKE-3 inner message does not round-trip".into());
            }
            prekey(PrekeyServerMessage::Dake3(m))
        }
        "prekey_publication" => {
            let n = *v.hex_in("n")?.first().ok_or("n")?;
            let mut messages = Vec::new();
            for i in 0..n {
                messages.push(prekey_message(v, &format!("prekey_message_{i}_"))?);
            }
            let prekey_messages = if messages.is_empty() {
                None
            } else {
                Some(
                    PublishedPrekeyMessages::new(
                        messages,
                        ecdh_proof(v, "prekey_messages_ecdh_proof_")?,
                        DhProof {
                            c: v.arr_in("prekey_messages_dh_proof_c")?,
                            v: v.hex_in("prekey_messages_dh_proof_v")?,
                        },
                    )
                    .map_err(|e| format!("{e:?}"))?,
                )
            };
            let client_profile = if v.inputs.contains_key("client_profile") {
                Some(client_profile(v, "client_profile")?)
            } else {
                None
            };
            let prekey_profile = if v.inputs.contains_key("prekey_profile") {
                Some((
                    prekey_profile(v, "prekey_profile")?,
                    ecdh_proof(v, "prekey_profile_proof_")?,
                ))
            } else {
                None
            };
            inner(Dake3Inner::Publication(Box::new(PrekeyPublication {
                prekey_messages,
                client_profile,
                prekey_profile,
                mac: mac(v, "mac")?,
            })))
        }
        "storage_info_request" => inner(Dake3Inner::StorageInfoRequest(StorageInfoRequest {
            mac: mac(v, "mac")?,
        })),
        "storage_status" => prekey(PrekeyServerMessage::StorageStatus(StorageStatus {
            receiver_tag: tag(v, "receiver_tag")?,
            stored_prekey_messages: u32_in(v, "stored_prekey_messages")?,
            mac: mac(v, "mac")?,
        })),
        "success" => prekey(PrekeyServerMessage::Success(Success {
            receiver_tag: tag(v, "receiver_tag")?,
            mac: mac(v, "mac")?,
        })),
        "failure" => prekey(PrekeyServerMessage::Failure(Failure {
            receiver_tag: tag(v, "receiver_tag")?,
            mac: mac(v, "mac")?,
        })),
        "ensemble_query" => prekey(PrekeyServerMessage::EnsembleQuery(EnsembleQuery {
            sender_tag: tag(v, "sender_tag")?,
            identity: v.hex_in("identity")?,
            versions: v.hex_in("versions")?,
        })),
        "ensemble_retrieval" => {
            let l = u32_in(v, "l")?;
            let mut ensembles = Vec::new();
            for i in 0..l {
                let p = format!("ensemble_{i}_");
                ensembles.push(PrekeyEnsemble {
                    client_profile: client_profile(v, &format!("{p}client_profile"))?,
                    prekey_profile: prekey_profile(v, &format!("{p}prekey_profile"))?,
                    prekey_message: prekey_message(v, &format!("{p}prekey_message_"))?,
                });
            }
            prekey(PrekeyServerMessage::EnsembleRetrieval(
                EnsembleRetrieval::new(tag(v, "receiver_tag")?, v.hex_in("identity")?, ensembles)
                    .map_err(|e| format!("{e:?}"))?,
            ))
        }
        "no_prekey_ensembles" => {
            prekey(PrekeyServerMessage::NoPrekeyEnsembles(NoPrekeyEnsembles {
                receiver_tag: tag(v, "receiver_tag")?,
                identity: v.hex_in("identity")?,
                message: v.hex_in("message")?,
            }))
        }
        other => return Err(format!("unknown message type {other}")),
    })
}

/// The text form of an encoding, if the message travels alone.
fn text(kind: Kind, bin: &[u8]) -> Option<String> {
    match kind {
        Kind::Otr => Some(encode_otr(bin)),
        Kind::Prekey => Some(encode_prekey(bin)),
        Kind::Inner => None,
    }
}

/// Adds the outputs of a message vector (generation).
fn finish(v: Vector) -> Vector {
    match build(&v) {
        Ok(b) => {
            let t = text(b.kind, &b.bin);
            let v = v.output("encoded", &b.bin);
            match t {
                Some(t) => v.output_text("encoded_text", &t),
                None => v,
            }
        }
        // Only if the generator is wrong; `generate_all` then reports the vector as failing.
        Err(e) => v.output_text("error_text", &e),
    }
}

/// The result of decoding a (possibly invalid) encoding of the given kind.
fn decode_result(kind: &str, bytes: &[u8]) -> Result<String, String> {
    let r = match kind {
        "otrv4" => Message::decode(bytes).map(|_| ()),
        "prekey" => PrekeyServerMessage::decode(bytes).map(|_| ()),
        "prekey_inner" => Dake3Inner::decode(bytes).map(|_| ()),
        k => return Err(format!("unknown kind {k}")),
    };
    Ok(match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    })
}

fn section(op: &str) -> &'static str {
    match op {
        "identity" => "otrv4.md §\"Identity Message\"",
        "auth_r" => "otrv4.md §\"Auth-R Message\"",
        "auth_i" => "otrv4.md §\"Auth-I Message\"",
        "non_interactive_auth" => "otrv4.md §\"Non-Interactive-Auth Message\"",
        "prekey_message" => "otrv4.md §\"Prekey Message\"",
        "data" => "otrv4.md §\"Data Message Format\"",
        "dake1" => "otrv4-prekey-server.md §\"DAKE-1 Message\"",
        "dake2" => "otrv4-prekey-server.md §\"DAKE-2 Message\"",
        "dake3" => "otrv4-prekey-server.md §\"DAKE-3 Message\"",
        "prekey_publication" => "otrv4-prekey-server.md §\"Prekey Publication Message\"",
        "storage_info_request" => "otrv4-prekey-server.md §\"Storage Information Request Message\"",
        "storage_status" => "otrv4-prekey-server.md §\"Storage Status Message\"",
        "success" => "otrv4-prekey-server.md §\"Success Message\"",
        "failure" => "otrv4-prekey-server.md §\"Failure Message\"",
        "ensemble_query" => "otrv4-prekey-server.md §\"Prekey Ensemble Query Retrieval Message\"",
        "ensemble_retrieval" => "otrv4-prekey-server.md §\"Prekey Ensemble Retrieval Message\"",
        "no_prekey_ensembles" => {
            "otrv4-prekey-server.md §\"No Prekey Ensembles in Storage Message\""
        }
        _ => "otrv4.md §\"Data Types\"",
    }
}

// ---- generation ----------------------------------------------------------------------

/// Seeded field values.
struct Gen {
    rng: RecordingRng,
}

impl Gen {
    fn tag(&mut self) -> u32 {
        u32::from_be_bytes(draw_arr(&mut self.rng)) | 0x100
    }
    fn keypair(&mut self) -> KeyPair {
        KeyPair::from_symmetric_key(SymmetricKey::from_bytes(draw_arr(&mut self.rng)))
    }
    fn point(&mut self) -> [u8; 57] {
        self.keypair().public().encode()
    }
    fn dh(&mut self) -> Vec<u8> {
        let kp = DhKeyPair::generate(&mut self.rng);
        self.rng.take();
        kp.public().to_be_bytes()
    }
    fn scalar(&mut self) -> [u8; 57] {
        let s = Scalar::random(&mut self.rng);
        self.rng.take();
        s.encode()
    }
    fn sigma(&mut self) -> Vec<u8> {
        let parts = core::array::from_fn(|_| Scalar::random(&mut self.rng));
        self.rng.take();
        let mut w = Vec::new();
        RingSignature { parts }.write(&mut w);
        w
    }
    fn mac(&mut self) -> [u8; 64] {
        draw_arr(&mut self.rng)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        draw(&mut self.rng, n)
    }
    fn client_profile(&mut self, owner: u32) -> Vec<u8> {
        let h = self.keypair();
        let f = generate_forging_point(&mut self.rng);
        self.rng.take();
        ClientProfile::build_and_sign(InstanceTag(owner), &h, &f, b"4", 1_801_209_600).encode()
    }
    fn prekey_profile(&mut self, owner: u32) -> Vec<u8> {
        let (d, h) = (self.keypair(), self.keypair());
        PrekeyProfile::build_and_sign(InstanceTag(owner), 1_800_604_800, &d, &h).encode()
    }
    fn prekey_message_fields(&mut self, v: Vector, p: &str, owner: u32) -> Vector {
        let id = u32::from_be_bytes(draw_arr(&mut self.rng));
        let (y, b) = (self.point(), self.dh());
        v.input(&format!("{p}id"), &id.to_be_bytes())
            .input(&format!("{p}owner_tag"), &owner.to_be_bytes())
            .input(&format!("{p}y"), &y)
            .input(&format!("{p}b"), &b)
    }
}

fn new(op: &str, case: &str) -> Vector {
    Vector::new(format!("{op}/{case}"), section(op))
}

pub fn generate() -> Suite {
    let mut g = Gen {
        rng: RecordingRng::new("otr4 message vectors"),
    };
    let mut vectors = Vec::new();
    let (alice, bob) = (g.tag(), g.tag());

    let cp = g.client_profile(alice);
    let (y, b, ecdh_first, dh_first) = (g.point(), g.dh(), g.point(), g.dh());
    vectors.push(finish(
        new("identity", "0")
            .input("sender_tag", &alice.to_be_bytes())
            .input("receiver_tag", &0u32.to_be_bytes())
            .input("client_profile", &cp)
            .input("y", &y)
            .input("b", &b)
            .input("our_ecdh_first", &ecdh_first)
            .input("our_dh_first", &dh_first),
    ));
    let cp_bob = g.client_profile(bob);
    let (x, a, s, ecdh_first, dh_first) = (g.point(), g.dh(), g.sigma(), g.point(), g.dh());
    vectors.push(finish(
        new("auth_r", "0")
            .input("sender_tag", &bob.to_be_bytes())
            .input("receiver_tag", &alice.to_be_bytes())
            .input("client_profile", &cp_bob)
            .input("x", &x)
            .input("a", &a)
            .input("sigma", &s)
            .input("our_ecdh_first", &ecdh_first)
            .input("our_dh_first", &dh_first),
    ));
    let s = g.sigma();
    vectors.push(finish(
        new("auth_i", "0")
            .input("sender_tag", &alice.to_be_bytes())
            .input("receiver_tag", &bob.to_be_bytes())
            .input("sigma", &s),
    ));
    let (x, a, s, id, m) = (g.point(), g.dh(), g.sigma(), g.tag(), g.mac());
    let (ecdh_first, dh_first) = (g.point(), g.dh());
    vectors.push(finish(
        new("non_interactive_auth", "0")
            .input("sender_tag", &bob.to_be_bytes())
            .input("receiver_tag", &alice.to_be_bytes())
            .input("client_profile", &cp_bob)
            .input("x", &x)
            .input("a", &a)
            .input("sigma", &s)
            .input("prekey_message_id", &id.to_be_bytes())
            .input("auth_mac", &m)
            .input("our_ecdh_first", &ecdh_first)
            .input("our_dh_first", &dh_first),
    ));
    let v = g.prekey_message_fields(new("prekey_message", "0"), "", alice);
    vectors.push(finish(v));
    for (case, with_dh, enc_len, revealed) in [
        ("with_dh", true, 37usize, 0usize),
        ("without_dh", false, 5, 2),
    ] {
        let (ecdh, dh) = (g.point(), if with_dh { g.dh() } else { Vec::new() });
        let (enc, m, rev) = (g.bytes(enc_len), g.mac(), g.bytes(64 * revealed));
        let (pn, i, j) = (3u32, 6u32, 2u32);
        vectors.push(finish(
            new("data", case)
                .input("sender_tag", &alice.to_be_bytes())
                .input("receiver_tag", &bob.to_be_bytes())
                .input("flags", &[u8::from(!with_dh)])
                .input("pn", &pn.to_be_bytes())
                .input("i", &i.to_be_bytes())
                .input("j", &j.to_be_bytes())
                .input("ecdh", &ecdh)
                .input("dh", &dh)
                .input("encrypted", &enc)
                .input("mac", &m)
                .input("revealed_mac_keys", &rev),
        ));
    }

    // Prekey-server messages.
    let i_point = g.point();
    vectors.push(finish(
        new("dake1", "0")
            .input("sender_tag", &alice.to_be_bytes())
            .input("client_profile", &cp)
            .input("i", &i_point),
    ));
    let (server_h, s_point, s) = (g.point(), g.point(), g.sigma());
    vectors.push(finish(
        new("dake2", "0")
            .input("receiver_tag", &alice.to_be_bytes())
            .input("server_identity", b"prekeys.example.org")
            .input("server_public_key", &server_h)
            .input("s", &s_point)
            .input("sigma", &s),
    ));

    // Prekey Publication: all parts, then only a Prekey Profile, then only a Client Profile.
    let mut full = new("prekey_publication", "two_messages_and_both_profiles")
        .input("n", &[2])
        .input("client_profile", &cp);
    for i in 0..2 {
        full = g.prekey_message_fields(full, &format!("prekey_message_{i}_"), alice);
    }
    let (pp, c1, v1, c2, v2, c3, v3, m) = (
        g.prekey_profile(alice),
        g.mac(),
        g.scalar(),
        g.mac(),
        [vec![0x42], g.bytes(47)].concat(),
        g.mac(),
        g.scalar(),
        g.mac(),
    );
    let full = finish(
        full.input("prekey_profile", &pp)
            .input("prekey_messages_ecdh_proof_c", &c1)
            .input("prekey_messages_ecdh_proof_v", &v1)
            .input("prekey_messages_dh_proof_c", &c2)
            .input("prekey_messages_dh_proof_v", &v2)
            .input("prekey_profile_proof_c", &c3)
            .input("prekey_profile_proof_v", &v3)
            .input("mac", &m),
    );
    let publication = hex_out(&full, "encoded").ok();
    vectors.push(full);
    let (c, pv, m) = (g.mac(), g.scalar(), g.mac());
    vectors.push(finish(
        new("prekey_publication", "prekey_profile_only")
            .input("n", &[0])
            .input("prekey_profile", &pp)
            .input("prekey_profile_proof_c", &c)
            .input("prekey_profile_proof_v", &pv)
            .input("mac", &m),
    ));
    let m = g.mac();
    vectors.push(finish(
        new("prekey_publication", "client_profile_only")
            .input("n", &[0])
            .input("client_profile", &cp)
            .input("mac", &m),
    ));
    let m = g.mac();
    let storage_request = finish(new("storage_info_request", "0").input("mac", &m));
    let storage_bytes = hex_out(&storage_request, "encoded").ok();
    vectors.push(storage_request);
    for (case, inner_bytes) in [
        ("publication", publication),
        ("storage_info_request", storage_bytes),
    ] {
        let s = g.sigma();
        vectors.push(finish(
            new("dake3", case)
                .input("sender_tag", &alice.to_be_bytes())
                .input("sigma", &s)
                .input("message", &inner_bytes.unwrap_or_default()),
        ));
    }
    let m = g.mac();
    vectors.push(finish(
        new("storage_status", "0")
            .input("receiver_tag", &alice.to_be_bytes())
            .input("stored_prekey_messages", &17u32.to_be_bytes())
            .input("mac", &m),
    ));
    for op in ["success", "failure"] {
        let m = g.mac();
        vectors.push(finish(
            new(op, "0")
                .input("receiver_tag", &alice.to_be_bytes())
                .input("mac", &m),
        ));
    }
    vectors.push(finish(
        new("ensemble_query", "0")
            .input("sender_tag", &bob.to_be_bytes())
            .input("identity", b"alice@example.org")
            .input("versions", b"4"),
    ));
    let mut retrieval = new("ensemble_retrieval", "two_ensembles")
        .input("receiver_tag", &bob.to_be_bytes())
        .input("identity", b"alice@example.org")
        .input("l", &2u32.to_be_bytes());
    for i in 0..2 {
        let owner = g.tag();
        let p = format!("ensemble_{i}_");
        let (cpi, ppi) = (g.client_profile(owner), g.prekey_profile(owner));
        retrieval = retrieval
            .input(&format!("{p}client_profile"), &cpi)
            .input(&format!("{p}prekey_profile"), &ppi);
        retrieval = g.prekey_message_fields(retrieval, &format!("{p}prekey_message_"), owner);
    }
    vectors.push(finish(retrieval));
    vectors.push(finish(
        new("no_prekey_ensembles", "0")
            .input("receiver_tag", &bob.to_be_bytes())
            .input("identity", b"alice@example.org")
            .input("message", NO_PREKEY_ENSEMBLES_TEXT),
    ));

    // Rejected encodings, derived from the valid ones above.
    let enc = |name: &str| -> Vec<u8> {
        vectors
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| hex_out(v, "encoded").ok())
            .unwrap_or_default()
    };
    let set = |mut b: Vec<u8>, i: usize, x: u8| {
        if let Some(p) = b.get_mut(i) {
            *p = x;
        }
        b
    };
    let auth_i = enc("auth_i/0");
    let prekey_msg = enc("prekey_message/0");
    let data_no_dh = enc("data/without_dh");
    let success = enc("success/0");
    let retrieval = enc("ensemble_retrieval/two_ensembles");
    let publication = enc("prekey_publication/client_profile_only");
    let p_minus_1 = {
        let mut p = hex::decode(DH_P_HEX).unwrap_or_default();
        if let Some(last) = p.last_mut() {
            *last -= 1;
        }
        p
    };
    let mut bad_dh = prekey_msg.get(..68).unwrap_or_default().to_vec();
    bad_dh.extend_from_slice(&(p_minus_1.len() as u32).to_be_bytes());
    bad_dh.extend_from_slice(&p_minus_1);
    let mut identity_y = prekey_msg.clone();
    for (k, b) in identity_y.iter_mut().skip(11).take(57).enumerate() {
        *b = u8::from(k == 0);
    }
    let revealed_len_at = data_no_dh.len().saturating_sub(2 * 64 + 4);
    let mut bad_revealed = data_no_dh
        .get(..revealed_len_at)
        .unwrap_or_default()
        .to_vec();
    bad_revealed.extend_from_slice(&63u32.to_be_bytes());
    bad_revealed.extend_from_slice(&[7; 63]);
    // L is after header (3), receiver tag (4) and the identity DATA (4 + 17).
    let mut l_zero = retrieval.get(..28).unwrap_or_default().to_vec();
    l_zero.extend_from_slice(&0u32.to_be_bytes());
    let errors: Vec<(&str, &str, Vec<u8>)> = vec![
        ("otrv4", "version_3", set(auth_i.clone(), 1, 3)),
        ("otrv4", "unknown_type", set(auth_i.clone(), 2, 0x99)),
        ("otrv4", "trailing_byte", [auth_i.clone(), vec![0]].concat()),
        (
            "otrv4",
            "truncated",
            auth_i
                .get(..auth_i.len().saturating_sub(1))
                .unwrap_or_default()
                .to_vec(),
        ),
        ("otrv4", "sender_tag_below_0x100", {
            let mut b = auth_i.clone();
            for (k, x) in b.iter_mut().skip(3).take(4).enumerate() {
                *x = [0, 0, 0, 0xff].get(k).copied().unwrap_or(0);
            }
            b
        }),
        (
            "otrv4",
            "non_canonical_sigma_scalar",
            set(auth_i.clone(), 11 + 56, 1),
        ),
        ("otrv4", "dh_value_not_in_group", bad_dh),
        ("otrv4", "identity_point", identity_y),
        (
            "otrv4",
            "revealed_mac_keys_not_multiple_of_64",
            bad_revealed,
        ),
        ("prekey", "version_5", set(success.clone(), 1, 5)),
        ("prekey", "receiver_tag_below_0x100", {
            let mut b = success.clone();
            for (k, x) in b.iter_mut().skip(3).take(4).enumerate() {
                *x = [0, 0, 0, 0x01].get(k).copied().unwrap_or(0);
            }
            b
        }),
        ("prekey", "ensemble_count_zero", l_zero),
        (
            "prekey",
            "storage_info_request_alone",
            enc("storage_info_request/0"),
        ),
        ("prekey_inner", "k_flag_2", set(publication.clone(), 4, 2)),
    ];
    for (kind, name, bytes) in errors {
        let result = decode_result(kind, &bytes).unwrap_or_else(|e| e);
        vectors.push(
            Vector::new(
                format!("decode_error/{name}"),
                "otrv4.md §\"Data Types\"; see README",
            )
            .input_text("kind_text", kind)
            .input("encoded", &bytes)
            .output_text("result_text", &result),
        );
    }

    Suite {
        suite: "messages".into(),
        description: "Every OTRv4 and prekey-server message built from typed fields (inputs; \
            INT fields 4 bytes big-endian, MPI fields as their minimal big-endian magnitude, \
            POINTs 57 bytes, RING-SIGs 342 bytes, Client and Prekey Profiles as their \
            encodings, nested Prekey messages as prefixed typed fields); outputs `encoded` \
            (the binary message) and `encoded_text` (`?OTR:<base64>.` for OTRv4 messages, \
            `<base64>.` for prekey-server messages; none for the Prekey Publication and \
            Storage Information Request, which only travel inside DAKE-3). decode_error: \
            encodings that must be rejected, with otr4's error."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    if v.name.starts_with("decode_error/") {
        let result = decode_result(v.text_in("kind_text")?, &v.hex_in("encoded")?)?;
        return expect_text(v, "result_text", &result);
    }
    let b = build(v)?;
    expect(v, "encoded", &b.bin)?;
    // Decode the stored encoding: it must give back exactly the typed inputs.
    let stored = hex_out(v, "encoded")?;
    (b.decodes_to_inputs)(&stored)?;
    match (text(b.kind, &b.bin), b.kind) {
        (Some(t), kind) => {
            let back = if kind == Kind::Otr {
                decode_otr(text_out(v, "encoded_text")?)
            } else {
                decode_prekey(text_out(v, "encoded_text")?)
            }
            .map_err(|e| format!("encoded_text: {e:?}"))?;
            if back != stored {
                return Err("encoded_text does not decode to encoded".into());
            }
            expect_text(v, "encoded_text", &t)
        }
        (None, _) => {
            if v.outputs.contains_key("encoded_text") {
                return Err("unexpected encoded_text".into());
            }
            Ok(())
        }
    }
}
