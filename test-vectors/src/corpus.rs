//! Fuzz-corpus seeding: turns the committed vectors into seed inputs for every fuzz target
//! (`test-vectors corpus <dir>` writes `<dir>/<target>/<n>`).
//!
//! Each target gets the inputs its decoder should see in practice: binary messages and
//! profiles, their `?OTR:` texts, fragments, query and error messages, TLV plaintexts,
//! points, scalars and DH values, SMP messages and exported ratchet states.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The conversation scenario of the `conversation_receive` and `persist_import` targets.
#[path = "../../fuzz/fuzz_targets/common/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use crate::format::{Suite, Vector};
use crate::suites::{SUITES, dake_transcript};
use otr4::Fingerprint;
use otr4::Tlv;
use otr4::hazmat::crypto::ed448::{KeyPair, SymmetricKey};
use otr4::hazmat::crypto::keys::{Ed448PublicKey, ForgingPublicKey};
use otr4::hazmat::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::wire::encoded::{encode_otr, encode_prekey};

/// Seeds by fuzz target.
pub type Corpus = BTreeMap<&'static str, BTreeSet<Vec<u8>>>;

/// Every fuzz target in fuzz/Cargo.toml this command seeds.
pub const TARGETS: &[&str] = &[
    "classify",
    "client_profile",
    "conversation_receive",
    "decode_otr",
    "dh_public",
    "error_msg",
    "fragment",
    "message",
    "point_scalar",
    "persist_import",
    "prekey_message",
    "prekey_profile",
    "query",
    "ratchet_import",
    "smp_message",
    "tlv",
];

/// Message-suite operations that are OTRv4 conversation messages (`Message::decode`).
const OTR_MESSAGES: &[&str] = &[
    "identity",
    "auth_r",
    "auth_i",
    "non_interactive_auth",
    "prekey_message",
    "data",
];

fn op(v: &Vector) -> &str {
    v.name.split('/').next().unwrap_or_default()
}

/// Stored values whose name matches `pred`, as bytes (hex decoded, or the text itself).
fn values<'a>(
    map: &'a BTreeMap<String, String>,
    pred: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    map.iter()
        .filter(move |(k, _)| pred(k))
        .filter_map(|(k, v)| {
            if k.ends_with("_text") {
                Some(v.as_bytes().to_vec())
            } else {
                hex::decode(v).ok()
            }
        })
}

struct Builder {
    corpus: Corpus,
}

impl Builder {
    fn add(&mut self, target: &'static str, seed: impl Into<Vec<u8>>) {
        let seed = seed.into();
        if !seed.is_empty() {
            self.corpus.entry(target).or_default().insert(seed);
        }
    }

    fn add_all(&mut self, target: &'static str, seeds: impl IntoIterator<Item = Vec<u8>>) {
        for s in seeds {
            self.add(target, s);
        }
    }

    /// A binary OTRv4 message: the decoder, and its `?OTR:` text for the text-level targets.
    fn otr_message(&mut self, bin: Vec<u8>) {
        let text = encode_otr(&bin);
        self.add("decode_otr", text.clone());
        self.add("classify", text);
        self.add("message", bin);
    }

    fn prekey_message(&mut self, bin: Vec<u8>) {
        let text = encode_prekey(&bin);
        self.add("decode_otr", text.clone());
        self.add("classify", text);
        self.add("prekey_message", bin);
    }

    fn point(&mut self, p: Vec<u8>) {
        if p.len() == 57 {
            // Typed ED448-PUBKEY, shared prekey and forging-key encodings (2-byte LE type).
            for typ in [[0x10, 0x00], [0x11, 0x00], [0x12, 0x00]] {
                self.add("point_scalar", [&typ[..], &p].concat());
            }
        }
        self.add("point_scalar", p);
    }

    fn vector(&mut self, suite: &str, v: &Vector) -> Result<(), String> {
        let (i, o) = (&v.inputs, &v.outputs);
        match (suite, op(v)) {
            ("messages", "decode_error") => {
                let bin = v.hex_in("encoded")?;
                match v.text_in("kind_text")? {
                    "otrv4" => self.otr_message(bin),
                    _ => self.add("prekey_message", bin),
                }
            }
            ("messages", m) => {
                let bin = crate::suites::hex_out(v, "encoded")?;
                if OTR_MESSAGES.contains(&m) {
                    self.otr_message(bin);
                } else if o.contains_key("encoded_text") {
                    self.prekey_message(bin);
                } else {
                    self.add("prekey_message", bin);
                }
                self.add_all(
                    "client_profile",
                    values(i, |k| k.ends_with("client_profile")),
                );
                self.add_all(
                    "prekey_profile",
                    values(i, |k| k.ends_with("prekey_profile")),
                );
            }
            ("profiles", "client_profile" | "client_profile_validate") => {
                self.add_all("client_profile", values(i, |k| k == "profile"));
                self.add_all("client_profile", values(o, |k| k == "profile"));
            }
            ("profiles", _) => {
                self.add_all("prekey_profile", values(i, |k| k == "profile"));
                self.add_all("prekey_profile", values(o, |k| k == "profile"));
            }
            ("framing", "fragment") => {
                let frags: Vec<Vec<u8>> = values(o, |k| k.starts_with("fragment_")).collect();
                self.add("fragment", frags.join(&b'\n'));
                for f in frags {
                    self.add("classify", f.clone());
                    self.add("fragment", f);
                }
            }
            ("framing", "build_query" | "parse_query" | "whitespace_tag") => {
                let texts: Vec<Vec<u8>> = values(i, |k| k == "message_text")
                    .chain(values(o, |k| k == "query_text" || k == "tagged_message"))
                    .collect();
                for t in texts {
                    self.add("classify", t.clone());
                    self.add("query", t);
                }
            }
            ("framing", "tlv_encode" | "tlv_parse") => {
                self.add_all("tlv", values(i, |k| k == "plaintext"));
                self.add_all("tlv", values(o, |k| k == "plaintext"));
            }
            ("framing", "build_error" | "parse_error") => {
                let texts: Vec<Vec<u8>> = values(i, |k| k == "message_text")
                    .chain(values(o, |k| k == "error_text"))
                    .collect();
                for t in texts {
                    self.add("classify", t.clone());
                    self.add("error_msg", t);
                }
            }
            ("framing", "encode_otr" | "encode_prekey") => {
                self.add_all("decode_otr", values(o, |k| k == "encoded_text"));
            }
            ("ecdh", "point_decode") => self.point(v.hex_in("point")?),
            ("ecdh", "scalar_decode") => self.add("point_scalar", v.hex_in("scalar")?),
            ("ecdh" | "keygen" | "eddsa", _) => {
                for p in values(o, |k| k.starts_with("public")).collect::<Vec<_>>() {
                    self.point(p);
                }
                self.add_all("point_scalar", values(o, |k| k.contains("scalar")));
            }
            ("dh3072", _) => {
                self.add_all("dh_public", values(i, |k| k == "value"));
                self.add_all(
                    "dh_public",
                    values(o, |k| k.starts_with("public") || k == "k_dh"),
                );
            }
            ("dake_transcript", _) => {
                for bin in values(o, |k| k.ends_with("_message") || k.ends_with("_encoded"))
                    .collect::<Vec<_>>()
                {
                    self.otr_message(bin);
                }
                self.add_all(
                    "client_profile",
                    values(o, |k| k.ends_with("client_profile")),
                );
                self.add_all("tlv", values(i, |k| k.ends_with("_plaintext")));
                self.add_all(
                    "dh_public",
                    values(o, |k| {
                        ["bob_b", "alice_a", "bob_dh_first", "alice_dh_first"].contains(&k)
                            || k.ends_with("dh_public")
                            || k.ends_with("k_dh")
                    }),
                );
                for p in values(o, |k| {
                    ["bob_y", "alice_x", "bob_ecdh_first", "alice_ecdh_first"].contains(&k)
                        || k.ends_with("ecdh_public")
                })
                .collect::<Vec<_>>()
                {
                    self.point(p);
                }
                self.add_all("ratchet_import", dake_transcript::ratchet_exports(v)?);
            }
            _ => {}
        }
        Ok(())
    }

    /// SMP messages 1–4 (with and without a question) from seeded exchanges, and each
    /// message's TLV value, which is what the decoders see.
    fn smp(&mut self) -> Result<(), String> {
        let mut rng = crate::rng::RecordingRng::new("corpus/smp");
        let fp = |seed: u8| {
            let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes([seed; 57]));
            Fingerprint::otrv4(
                &Ed448PublicKey(*kp.public()),
                &ForgingPublicKey(*kp.public()),
            )
        };
        let alice_ctx = SmpContext {
            our_fingerprint: fp(1),
            their_fingerprint: fp(2),
            ssid: [7; 8],
        };
        let bob_ctx = SmpContext {
            our_fingerprint: fp(2),
            their_fingerprint: fp(1),
            ssid: [7; 8],
        };
        let e = |e: otr4::SmpError| e.to_string();
        for (question, bob_secret) in [
            (None, &b"secret"[..]),
            (Some(&b"What is our password?"[..]), &b"wrong"[..]),
        ] {
            let (mut alice, mut bob) = (Smp::new(), Smp::new());
            let m1 = alice
                .start(&mut rng, &alice_ctx, b"secret", question)
                .map_err(e)?;
            bob.receive(&mut rng, &m1).map_err(e)?;
            let m2 = bob.respond(&mut rng, &bob_ctx, bob_secret).map_err(e)?;
            let SmpEvent::SendTlv(m3) = alice.receive(&mut rng, &m2).map_err(e)? else {
                return Err("SMP: no message 3".into());
            };
            let m4: Option<Tlv> = match bob.receive(&mut rng, &m3).map_err(e)? {
                SmpEvent::Succeeded { reply } | SmpEvent::Failed { reply } => reply,
                other => return Err(format!("SMP: unexpected {other:?}")),
            };
            let m4 = m4.ok_or("SMP: no message 4")?;
            for tlv in [m1, m2, m3, m4] {
                self.add("smp_message", tlv.value);
            }
        }
        Ok(())
    }

    /// The conversation scenario: for each state, its index byte followed by the messages
    /// Alice sent in that state (newline-separated); the exports of Bob's account and
    /// client, as they are (mode byte 0/1) and opened (mode byte 2/3, the contents the
    /// target seals itself).
    fn conversation(&mut self) -> Result<(), String> {
        let p = scenario::prepare().ok_or("the conversation scenario failed")?;
        for (state, texts) in &p.seeds {
            let seed = [&[*state][..], texts.join("\n").as_bytes()].concat();
            self.add("conversation_receive", seed);
            for t in texts {
                self.add("classify", t.clone());
            }
        }
        for (mode, export) in
            std::iter::once((0u8, &p.bob_account)).chain(p.client_exports.iter().map(|e| (1u8, e)))
        {
            self.add("persist_import", [&[mode][..], export].concat());
            let (_, contents) = scenario::open(export).ok_or("an export does not open")?;
            self.add("persist_import", [&[mode | 2][..], &contents].concat());
        }
        Ok(())
    }
}

/// Builds the seeds from the vector files in `vectors_dir`.
pub fn build(vectors_dir: &Path) -> Result<Corpus, String> {
    let mut b = Builder {
        corpus: Corpus::new(),
    };
    for s in SUITES {
        let path = vectors_dir.join(format!("{}.json", s.name));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let suite: Suite = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        for v in &suite.vectors {
            b.vector(s.name, v)
                .map_err(|e| format!("{}: {}: {e}", s.name, v.name))?;
        }
    }
    b.smp()?;
    b.conversation()?;
    // Plain text as a user would type it, for the text-level targets.
    for t in [
        "Hello, world!",
        "?OTRv4?",
        "?OTR Error: ERROR_1: text",
        "?OTR:AAQ=.",
    ] {
        b.add("classify", t);
    }
    for t in TARGETS {
        if b.corpus.get(t).is_none_or(BTreeSet::is_empty) {
            return Err(format!("no seeds for fuzz target {t}"));
        }
    }
    Ok(b.corpus)
}

/// Writes the seeds as `<out>/<target>/<n>` (numbered from 0 in sorted order) and returns
/// the number of seeds per target. Existing files with other names (inputs libFuzzer added)
/// are left alone.
pub fn write(vectors_dir: &Path, out: &Path) -> Result<BTreeMap<&'static str, usize>, String> {
    let corpus = build(vectors_dir)?;
    let mut counts = BTreeMap::new();
    for (target, seeds) in &corpus {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (n, seed) in seeds.iter().enumerate() {
            let path = dir.join(n.to_string());
            std::fs::write(&path, seed).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        counts.insert(*target, seeds.len());
    }
    Ok(counts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::scenario::{ALICE, NOW, bob_in, no_prekeys, prepare, rng_for};
    use otr4::Event;

    /// The seeds are valid in their state when the state is rebuilt as the fuzz target
    /// does: Auth-R and Auth-I complete the DAKE, the data messages are read.
    #[test]
    fn scenario_seeds_are_valid_in_their_state() {
        let p = prepare().unwrap();
        for (state, texts) in &p.seeds {
            let mut rng = rng_for(*state);
            let (mut bob, _) = bob_in(*state, &p, &mut rng).unwrap();
            let mut events = Vec::new();
            let mut prekeys = no_prekeys(&bob);
            for t in texts {
                events.extend(bob.receive(ALICE, t, &mut prekeys, NOW, &mut rng));
            }
            let errors: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, Event::Error { .. }))
                .collect();
            assert!(errors.is_empty(), "state {state}: {errors:?}");
            let secure = events.iter().any(|e| matches!(e, Event::Secure { .. }));
            let received = events.iter().any(|e| {
                matches!(
                    e,
                    Event::Received {
                        encrypted: true,
                        ..
                    }
                )
            });
            match state {
                1 if texts.len() == 1 && texts[0] == p.alice_identity => {}
                1 | 2 => assert!(secure, "state {state}: {events:?}"),
                3 => assert!(
                    received
                        || events.iter().any(|e| matches!(
                            e,
                            Event::Smp { .. }
                                | Event::Finished { .. }
                                | Event::ExtraSymmetricKey { .. }
                        )),
                    "{events:?}"
                ),
                _ => {}
            }
        }
    }
}
