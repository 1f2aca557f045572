//! Text-framing vectors: `?OTR:` and prekey encodings, fragments, query messages,
//! whitespace tags, Data Message plaintexts with TLVs, and OTR error messages.

use super::{draw, draw_arr, expect, expect_bool, expect_text};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::ErrorCode;
use otr4::InstanceTag;
use otr4::hazmat::wire::encoded::{decode_otr, decode_prekey, encode_otr, encode_prekey};
use otr4::hazmat::wire::error_msg::{build_error, parse_error};
use otr4::hazmat::wire::fragment::{Fragment, FragmentKind, Reassembler, fragment};
use otr4::hazmat::wire::query::{
    Versions, build_query, find_whitespace_tag, parse_query, whitespace_tag,
};
use otr4::hazmat::wire::tlv::{encode_plaintext, parse_plaintext};
use otr4::{Tlv, TlvType};

const ENCODED: &str = "otrv4.md §\"Encoded Messages\"";
const ENCODED_PREKEY: &str = "otrv4-prekey-server.md §\"Encoded Messages\"";
const FRAG: &str = "otrv4.md §\"Transmitting Fragments\", §\"Receiving Fragments\"";
const FRAG_PREKEY: &str = "otrv4-prekey-server.md §\"Fragmentation of some Messages\"";
const QUERY: &str = "otrv4.md §\"Query Messages\"";
const TAG: &str = "otrv4.md §\"Whitespace Tags\"";
const TLV: &str = "otrv4.md §\"Data Message\", §\"TLV Record Types\"";
const ERROR: &str = "otrv4.md §\"OTR Error Messages\"";

fn versions_text(v: Versions) -> String {
    let mut s = String::new();
    if v.has_v3() {
        s.push('3');
    }
    if v.has_v4() {
        s.push('4');
    }
    s
}

fn versions_from(s: &str) -> Versions {
    s.chars()
        .map(Versions::from_identifier)
        .fold(Versions::EMPTY, Versions::union)
}

fn kind_text(k: FragmentKind) -> &'static str {
    match k {
        FragmentKind::Otr => "otr",
        FragmentKind::Prekey => "prekey",
    }
}

fn kind_from(s: &str) -> Result<FragmentKind, String> {
    match s {
        "otr" => Ok(FragmentKind::Otr),
        "prekey" => Ok(FragmentKind::Prekey),
        k => Err(format!("unknown fragment kind {k}")),
    }
}

fn u32_in(v: &Vector, k: &str) -> Result<u32, String> {
    Ok(u32::from_be_bytes(v.arr_in(k)?))
}

/// The fragments of a vector, in order, from the outputs `fragment_NNN_text`.
fn fragment_outputs(v: &Vector) -> Vec<(&String, &String)> {
    v.outputs
        .iter()
        .filter(|(k, _)| k.starts_with("fragment_"))
        .collect()
}

fn tlv_inputs(mut v: Vector, tlvs: &[Tlv]) -> Vector {
    for (i, t) in tlvs.iter().enumerate() {
        v = v
            .input(&format!("tlv_{i}_type"), &t.typ.to_u16().to_be_bytes())
            .input(&format!("tlv_{i}_value"), &t.value);
    }
    v
}

fn tlv_outputs(mut v: Vector, tlvs: &[Tlv]) -> Vector {
    for (i, t) in tlvs.iter().enumerate() {
        v = v
            .output(&format!("tlv_{i}_type"), &t.typ.to_u16().to_be_bytes())
            .output(&format!("tlv_{i}_value"), &t.value);
    }
    v
}

fn read_tlvs(v: &Vector) -> Result<Vec<Tlv>, String> {
    let mut tlvs = Vec::new();
    while v.inputs.contains_key(&format!("tlv_{}_type", tlvs.len())) {
        let i = tlvs.len();
        let typ = u16::from_be_bytes(v.arr_in(&format!("tlv_{i}_type"))?);
        let value = v.hex_in(&format!("tlv_{i}_value"))?;
        tlvs.push(Tlv::new(TlvType::from_u16(typ), value));
    }
    Ok(tlvs)
}

#[allow(clippy::too_many_arguments)]
fn fragment_vector(
    name: &str,
    message: &str,
    max_size: u32,
    identifier: u32,
    sender: u32,
    receiver: u32,
    kind: FragmentKind,
) -> Vector {
    let section = match kind {
        FragmentKind::Otr => FRAG,
        FragmentKind::Prekey => FRAG_PREKEY,
    };
    let mut v = Vector::new(format!("fragment/{name}"), section)
        .input_text("message_text", message)
        .input("max_size", &max_size.to_be_bytes())
        .input("identifier", &identifier.to_be_bytes())
        .input("sender_tag", &sender.to_be_bytes())
        .input("receiver_tag", &receiver.to_be_bytes())
        .input_text("kind_text", kind_text(kind));
    let frags = fragment(
        message,
        max_size as usize,
        identifier,
        InstanceTag(sender),
        InstanceTag(receiver),
        kind,
    )
    .unwrap_or_default();
    for (i, f) in frags.iter().enumerate() {
        v = v.output_text(&format!("fragment_{:03}_text", i + 1), f);
    }
    v
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 framing vectors");
    let mut vectors = Vec::new();

    let mut encoded = Vec::new();
    for (i, len) in [1usize, 2, 3, 100].into_iter().enumerate() {
        let bin = draw(&mut rng, len);
        vectors.push(
            Vector::new(format!("encode_otr/{i}"), ENCODED)
                .input("message", &bin)
                .output_text("encoded_text", &encode_otr(&bin)),
        );
        encoded.push(encode_otr(&bin));
    }
    for (i, len) in [1usize, 50].into_iter().enumerate() {
        let bin = draw(&mut rng, len);
        vectors.push(
            Vector::new(format!("encode_prekey/{i}"), ENCODED_PREKEY)
                .input("message", &bin)
                .output_text("encoded_text", &encode_prekey(&bin)),
        );
    }

    let long = encode_otr(&draw(&mut rng, 300));
    let tag = |rng: &mut RecordingRng| u32::from_be_bytes(draw_arr(rng)) | 0x100;
    let (id, s, r) = (
        u32::from_be_bytes(draw_arr(&mut rng)),
        tag(&mut rng),
        tag(&mut rng),
    );
    vectors.push(fragment_vector(
        "otr_3_pieces",
        &long,
        200,
        id,
        s,
        r,
        FragmentKind::Otr,
    ));
    vectors.push(fragment_vector(
        "otr_receiver_unknown",
        &long,
        120,
        id ^ 1,
        s,
        0,
        FragmentKind::Otr,
    ));
    let single = encoded.first().cloned().unwrap_or_default();
    vectors.push(fragment_vector(
        "otr_single_piece",
        &single,
        100,
        id ^ 2,
        s,
        r,
        FragmentKind::Otr,
    ));
    let prekey = encode_prekey(&draw(&mut rng, 150));
    vectors.push(fragment_vector(
        "prekey_2_pieces",
        &prekey,
        150,
        id ^ 3,
        s,
        0,
        FragmentKind::Prekey,
    ));

    for v in [
        Versions::V3,
        Versions::V4,
        Versions::V3_AND_V4,
        Versions::EMPTY,
    ] {
        let name = versions_text(v);
        vectors.push(
            Vector::new(format!("build_query/v{name}"), QUERY)
                .input_text("versions_text", &name)
                .output_text("query_text", &build_query(v)),
        );
    }
    for (name, text) in [
        ("v4", "?OTRv4?"),
        ("v34_with_text", "?OTRv34? Let's talk privately."),
        ("embedded_with_unknown_versions", "hi ?OTRv4x2? there"),
        ("empty_list", "?OTRv?"),
        ("continues_after_question_mark", "?OTRv?4?"),
        ("no_closing_question_mark", "?OTRv34"),
        ("not_a_query", "hello"),
    ] {
        let result = match parse_query(text) {
            Ok(Some(v)) => format!("versions:{}", versions_text(v)),
            Ok(None) => "none".to_string(),
            Err(_) => "invalid".to_string(),
        };
        vectors.push(
            Vector::new(format!("parse_query/{name}"), QUERY)
                .input_text("message_text", text)
                .output_text("result_text", &result),
        );
    }

    for v in [Versions::V3, Versions::V4, Versions::V3_AND_V4] {
        let name = versions_text(v);
        let tag = whitespace_tag(v).unwrap_or_default();
        let tagged = format!("Hi!{tag} How are you?");
        let (text, found) = find_whitespace_tag(&tagged);
        vectors.push(
            Vector::new(format!("whitespace_tag/v{name}"), TAG)
                .input_text("versions_text", &name)
                .input_text("text_before_text", "Hi!")
                .input_text("text_after_text", " How are you?")
                .output("tag", tag.as_bytes())
                .output("tagged_message", tagged.as_bytes())
                .output_text("stripped_text", &text)
                .output_text(
                    "found_versions_text",
                    &versions_text(found.unwrap_or_default()),
                ),
        );
    }

    let esk = draw(&mut rng, 10);
    let cases: [(&str, &[u8], Vec<Tlv>); 4] = [
        ("message_only", b"hello", vec![]),
        ("disconnected", b"", vec![Tlv::disconnected()]),
        (
            "padding_and_extra_key",
            "héllo".as_bytes(),
            vec![
                Tlv::padding(7),
                Tlv::extra_symmetric_key([0, 0, 0, 1], &esk),
            ],
        ),
        (
            "smp_abort_and_unknown_type",
            b"x",
            vec![
                Tlv::smp_abort(),
                Tlv::new(TlvType::Unknown(0x1234), vec![1, 2]),
            ],
        ),
    ];
    for (name, msg, tlvs) in cases {
        let plaintext = encode_plaintext(msg, &tlvs).unwrap_or_default();
        vectors.push(
            tlv_inputs(Vector::new(format!("tlv_encode/{name}"), TLV), &tlvs)
                .input("message", msg)
                .output("plaintext", &plaintext),
        );
    }
    let parse_cases: [(&str, Vec<u8>); 4] = [
        (
            "well_formed",
            encode_plaintext(b"ok", &[Tlv::padding(2), Tlv::disconnected()]).unwrap_or_default(),
        ),
        ("truncated_value", b"m\x00\x00\x01\x00\x05ab".to_vec()),
        ("truncated_header", b"m\x00\x00\x06\x00\x00\x00".to_vec()),
        (
            "unknown_type_then_known",
            b"\x00\x00\x63\x00\x01z\x00\x01\x00\x00".to_vec(),
        ),
    ];
    for (name, bytes) in parse_cases {
        let p = parse_plaintext(&bytes);
        vectors.push(
            tlv_outputs(Vector::new(format!("tlv_parse/{name}"), TLV), &p.tlvs)
                .input("plaintext", &bytes)
                .output("message", &p.message)
                .output("corrupted", &[u8::from(p.corrupted)]),
        );
    }

    for code in ErrorCode::ALL {
        vectors.push(
            Vector::new(format!("build_error/{}", code.identifier()), ERROR)
                .input("code", &[code.number()])
                .output_text("error_text", &build_error(code)),
        );
    }
    for (name, text) in [
        (
            "code_2",
            "?OTR Error: ERROR_2: Not in private state message",
        ),
        ("no_space", "?OTR Error:ERROR_1:Unreadable message"),
        ("unknown_code", "?OTR Error: ERROR_9: what"),
        ("no_code", "?OTR Error: something broke"),
        ("not_at_start", "x ?OTR Error: ERROR_1: Unreadable message"),
    ] {
        let (code, rest) = match parse_error(text) {
            Some(e) => (
                e.code
                    .map_or("none".to_string(), |c| c.identifier().to_string()),
                e.text.to_string(),
            ),
            None => ("not_an_error".to_string(), String::new()),
        };
        vectors.push(
            Vector::new(format!("parse_error/{name}"), ERROR)
                .input_text("message_text", text)
                .output_text("code_text", &code)
                .output_text("text_text", &rest),
        );
    }

    Suite {
        suite: "framing".into(),
        description: "Text framing. encode_otr: \"?OTR:\" || base64(message) || \".\" (RFC 4648 \
            standard alphabet, padded). encode_prekey: base64(message) || \".\". fragment: \
            pieces of ceil-sized chunks of max_size - overhead characters, each \
            \"?OTR|\" (or \"?OTRP|\") %08x identifier \"|\" %08x sender \"|\" %08x receiver \
            \",\" %05u index \",\" %05u total \",\" piece \",\"; max_size, identifier and tags \
            are big-endian u32 inputs. build_query/parse_query, whitespace_tag, tlv_encode \
            (message || 0x00 || (type u16 BE || length u16 BE || value)* when there are TLVs), \
            tlv_parse (corrupted = 01 when a record is of unknown type or incomplete), \
            build_error/parse_error: see test-vectors/README.md."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    match v.name.split('/').next().unwrap_or("") {
        "encode_otr" => {
            let bin = v.hex_in("message")?;
            let s = encode_otr(&bin);
            if decode_otr(&s).map_err(|e| format!("{e:?}"))? != bin {
                return Err("decode_otr does not give the message back".into());
            }
            expect_text(v, "encoded_text", &s)
        }
        "encode_prekey" => {
            let bin = v.hex_in("message")?;
            let s = encode_prekey(&bin);
            if decode_prekey(&s).map_err(|e| format!("{e:?}"))? != bin {
                return Err("decode_prekey does not give the message back".into());
            }
            expect_text(v, "encoded_text", &s)
        }
        "fragment" => check_fragment(v),
        "build_query" => {
            let q = build_query(versions_from(v.text_in("versions_text")?));
            let parsed = parse_query(&q).map_err(|e| format!("{e:?}"))?;
            if parsed.map(versions_text).as_deref() != Some(v.text_in("versions_text")?) {
                return Err("the query does not parse back".into());
            }
            expect_text(v, "query_text", &q)
        }
        "parse_query" => {
            let result = match parse_query(v.text_in("message_text")?) {
                Ok(Some(x)) => format!("versions:{}", versions_text(x)),
                Ok(None) => "none".to_string(),
                Err(_) => "invalid".to_string(),
            };
            expect_text(v, "result_text", &result)
        }
        "whitespace_tag" => {
            let versions = versions_from(v.text_in("versions_text")?);
            let tag = whitespace_tag(versions).ok_or("no tag for these versions")?;
            let tagged = format!(
                "{}{tag}{}",
                v.text_in("text_before_text")?,
                v.text_in("text_after_text")?
            );
            let (text, found) = find_whitespace_tag(&tagged);
            expect(v, "tag", tag.as_bytes())?;
            expect(v, "tagged_message", tagged.as_bytes())?;
            expect_text(v, "stripped_text", &text)?;
            expect_text(
                v,
                "found_versions_text",
                &versions_text(found.ok_or("tag not found")?),
            )
        }
        "tlv_encode" => {
            let msg = v.hex_in("message")?;
            let tlvs = read_tlvs(v)?;
            let plaintext = encode_plaintext(&msg, &tlvs).map_err(|e| format!("{e:?}"))?;
            let back = parse_plaintext(&plaintext);
            if back.message != msg || back.tlvs != tlvs {
                return Err("the plaintext does not parse back".into());
            }
            let unknown = tlvs.iter().any(|t| !t.typ.is_known());
            if back.corrupted != unknown {
                return Err("corrupted flag wrong on round trip".into());
            }
            expect(v, "plaintext", &plaintext)
        }
        "tlv_parse" => {
            let p = parse_plaintext(&v.hex_in("plaintext")?);
            let n = v
                .outputs
                .keys()
                .filter(|k| k.starts_with("tlv_") && k.ends_with("_type"))
                .count();
            if n != p.tlvs.len() {
                return Err(format!("want {n} TLVs, got {}", p.tlvs.len()));
            }
            for (i, t) in p.tlvs.iter().enumerate() {
                expect(v, &format!("tlv_{i}_type"), &t.typ.to_u16().to_be_bytes())?;
                expect(v, &format!("tlv_{i}_value"), &t.value)?;
            }
            expect(v, "message", &p.message)?;
            expect_bool(v, "corrupted", p.corrupted)
        }
        "build_error" => {
            let n = *v.hex_in("code")?.first().ok_or("empty code")?;
            let code = ErrorCode::ALL
                .into_iter()
                .find(|c| c.number() == n)
                .ok_or("unknown code")?;
            let s = build_error(code);
            let parsed = parse_error(&s).ok_or("does not parse back")?;
            if parsed.code != Some(code) || parsed.text != code.default_text() {
                return Err("the error message does not parse back".into());
            }
            expect_text(v, "error_text", &s)
        }
        "parse_error" => {
            let (code, rest) = match parse_error(v.text_in("message_text")?) {
                Some(e) => (
                    e.code
                        .map_or("none".to_string(), |c| c.identifier().to_string()),
                    e.text.to_string(),
                ),
                None => ("not_an_error".to_string(), String::new()),
            };
            expect_text(v, "code_text", &code)?;
            expect_text(v, "text_text", &rest)
        }
        other => Err(format!("unknown operation {other}")),
    }
}

fn check_fragment(v: &Vector) -> Result<(), String> {
    let message = v.text_in("message_text")?;
    let kind = kind_from(v.text_in("kind_text")?)?;
    let (id, sender, receiver) = (
        u32_in(v, "identifier")?,
        InstanceTag(u32_in(v, "sender_tag")?),
        InstanceTag(u32_in(v, "receiver_tag")?),
    );
    let frags = fragment(
        message,
        u32_in(v, "max_size")? as usize,
        id,
        sender,
        receiver,
        kind,
    )
    .map_err(|e| format!("{e:?}"))?;
    let want = fragment_outputs(v);
    if want.len() != frags.len() {
        return Err(format!(
            "want {} fragments, got {}",
            want.len(),
            frags.len()
        ));
    }
    for (i, f) in frags.iter().enumerate() {
        expect_text(v, &format!("fragment_{:03}_text", i + 1), f)?;
        let parsed = Fragment::parse(f).map_err(|e| format!("fragment {}: {e:?}", i + 1))?;
        if parsed.encode() != *f
            || parsed.identifier != id
            || parsed.sender != sender
            || parsed.receiver != receiver
            || usize::from(parsed.index) != i + 1
            || usize::from(parsed.total) != frags.len()
        {
            return Err(format!("fragment {} does not parse back", i + 1));
        }
    }
    // Reassemble in reverse order: the last piece completes the message.
    let our = if kind == FragmentKind::Otr {
        receiver
    } else {
        InstanceTag(0)
    };
    let mut re = Reassembler::new(kind);
    let mut done = None;
    for f in frags.iter().rev() {
        done = re.push(f, our, 0).map_err(|e| format!("{e:?}"))?;
    }
    if done.as_deref() != Some(message) {
        return Err("reassembly does not give the message back".into());
    }
    Ok(())
}
