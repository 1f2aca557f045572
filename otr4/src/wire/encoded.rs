//! The `?OTR:<base64>.` and `<base64>.` encodings (§"Encoded Messages" of both specs) and
//! the classifier of incoming text: fragment, encoded message, query, error or plaintext.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::wire::codec::DecodeError;
use crate::wire::error_msg::{ErrorMessage, parse_error};
use crate::wire::fragment::{Fragment, FragmentKind};
use crate::wire::query::{Versions, find_whitespace_tag, parse_query};

/// The prefix of an encoded OTRv4 message (otrv4.md §"Encoded Messages").
pub const OTR_PREFIX: &str = "?OTR:";
/// The byte that ends an encoded message.
pub const OTR_SUFFIX: char = '.';

/// Encodes a binary message as `?OTR:<base64>.` (otrv4.md §"Encoded Messages").
pub fn encode_otr(bin: &[u8]) -> String {
    let mut s = String::with_capacity(OTR_PREFIX.len() + bin.len().div_ceil(3) * 4 + 1);
    s.push_str(OTR_PREFIX);
    STANDARD.encode_string(bin, &mut s);
    s.push(OTR_SUFFIX);
    s
}

/// Decodes `?OTR:<base64>.` (otrv4.md §"Encoded Messages"). Strict: the whole string
/// must be the prefix, canonical padded standard base64 with no whitespace, and the
/// final `.`; the payload must not be empty. The output is at most 3/4 of the input.
pub fn decode_otr(s: &str) -> Result<Vec<u8>, DecodeError> {
    let body = s.strip_prefix(OTR_PREFIX).ok_or(DecodeError::BadFraming(
        "encoded message does not start with ?OTR:",
    ))?;
    decode_body(body)
}

/// Encodes a prekey-server message as `<base64>.` (otrv4-prekey-server.md §"Encoded Messages").
pub fn encode_prekey(bin: &[u8]) -> String {
    let mut s = String::with_capacity(bin.len().div_ceil(3) * 4 + 1);
    STANDARD.encode_string(bin, &mut s);
    s.push(OTR_SUFFIX);
    s
}

/// Decodes a prekey-server message `<base64>.` (otrv4-prekey-server.md §"Encoded
/// Messages"), with the same strictness as [`decode_otr`].
pub fn decode_prekey(s: &str) -> Result<Vec<u8>, DecodeError> {
    decode_body(s)
}

fn decode_body(body: &str) -> Result<Vec<u8>, DecodeError> {
    let b64 = body
        .strip_suffix(OTR_SUFFIX)
        .ok_or(DecodeError::BadFraming(
            "encoded message does not end with '.'",
        ))?;
    if b64.is_empty() {
        return Err(DecodeError::BadFraming("encoded message is empty"));
    }
    STANDARD
        .decode(b64)
        .map_err(|_| DecodeError::BadFraming("invalid base64 in encoded message"))
}

/// What an incoming message on an OTR conversation is (otrv4.md §"Receiving Fragments",
/// §"Encoded Messages", §"Query Messages", §"Whitespace Tags", §"OTR Error Messages").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// An OTRv4 fragment, to be passed to a [`crate::wire::fragment::Reassembler`].
    Fragment(Fragment<'a>),
    /// The binary form of an encoded message (`?OTR:…​.`), not yet parsed.
    Encoded(Vec<u8>),
    /// A query message offering these versions (possibly none: then do not reply).
    Query(Versions),
    /// An OTR error message.
    Error(ErrorMessage<'a>),
    /// Plaintext, with its first whitespace tag (if any) removed.
    Plaintext {
        /// The text to display.
        text: Cow<'a, str>,
        /// The versions offered by the whitespace tag, if the message had one.
        whitespace_tag: Option<Versions>,
    },
}

/// Classifies an incoming message. Checks, in order:
/// 1. starts with `?OTR|`: a fragment, parsed strictly (errors are returned; an OTRv3
///    fragment, which lacks the identifier, is rejected as malformed). This comes before
///    any other `?OTR` check, as otrv4.md §"Receiving Fragments" requires;
/// 2. starts with `?OTR Error:`: an error message (only at the start; otrv4.md §"OTR
///    Error Messages");
/// 3. starts with `?OTR:`: an encoded message; the whole message must be the encoding
///    (errors are returned);
/// 4. contains `?OTRv` anywhere with a valid version list: a query message. A
///    syntactically invalid query (e.g. `?OTRv?4?`) gets no reply, so it is treated as
///    plaintext;
/// 5. otherwise plaintext, with the first whitespace tag found and removed.
pub fn classify(msg: &str) -> Result<Incoming<'_>, DecodeError> {
    if msg.starts_with(FragmentKind::Otr.prefix()) {
        return Fragment::parse(msg).map(Incoming::Fragment);
    }
    if let Some(e) = parse_error(msg) {
        return Ok(Incoming::Error(e));
    }
    if msg.starts_with(OTR_PREFIX) {
        return decode_otr(msg).map(Incoming::Encoded);
    }
    if let Ok(Some(v)) = parse_query(msg) {
        return Ok(Incoming::Query(v));
    }
    let (text, whitespace_tag) = find_whitespace_tag(msg);
    Ok(Incoming::Plaintext {
        text,
        whitespace_tag,
    })
}

/// What an incoming message from or to a prekey server is (otrv4-prekey-server.md
/// §"Encoded Messages", §"Fragmentation of some Messages").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingPrekey<'a> {
    /// A `?OTRP|` fragment, to be passed to a prekey-kind reassembler.
    Fragment(Fragment<'a>),
    /// The binary form of an encoded prekey-server message.
    Encoded(Vec<u8>),
}

/// Classifies a prekey-server message: a fragment if it starts with `?OTRP|`, otherwise
/// it must be a strictly encoded `<base64>.` message.
pub fn classify_prekey(msg: &str) -> Result<IncomingPrekey<'_>, DecodeError> {
    if msg.starts_with(FragmentKind::Prekey.prefix()) {
        return Fragment::parse(msg).map(IncomingPrekey::Fragment);
    }
    decode_prekey(msg).map(IncomingPrekey::Encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceTag;
    use crate::wire::error_msg::ErrorCode;
    use crate::wire::query::{WHITESPACE_TAG_BASE, WHITESPACE_TAG_V4};
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        assert_eq!(encode_otr(&[0x00, 0x04, 0x03]), "?OTR:AAQD.");
        assert_eq!(decode_otr("?OTR:AAQD.").unwrap(), [0x00, 0x04, 0x03]);
        assert_eq!(encode_otr(b"ab"), "?OTR:YWI=.");
        assert_eq!(encode_prekey(&[0x00, 0x04, 0x0d]), "AAQN.");
        assert_eq!(decode_prekey("YWI=.").unwrap(), b"ab");
    }

    #[test]
    fn decode_is_strict() {
        let e = |s: &'static str| DecodeError::BadFraming(s);
        assert_eq!(
            decode_otr("AAQD."),
            Err(e("encoded message does not start with ?OTR:"))
        );
        assert_eq!(
            decode_otr("?OTR:AAQD"),
            Err(e("encoded message does not end with '.'"))
        );
        assert_eq!(decode_otr("?OTR:."), Err(e("encoded message is empty")));
        assert_eq!(
            decode_otr("?OTR:YWI."),
            Err(e("invalid base64 in encoded message"))
        ); // missing padding
        assert_eq!(
            decode_otr("?OTR:YWJ=."),
            Err(e("invalid base64 in encoded message"))
        ); // non-zero trailing bits
        assert_eq!(
            decode_otr("?OTR:AA QD."),
            Err(e("invalid base64 in encoded message"))
        );
        assert_eq!(
            decode_otr("?OTR:AAQD.\n"),
            Err(e("encoded message does not end with '.'"))
        );
        assert_eq!(
            decode_otr("?OTR:AAQD.."),
            Err(e("invalid base64 in encoded message"))
        );
        assert_eq!(
            decode_otr(" ?OTR:AAQD."),
            Err(e("encoded message does not start with ?OTR:"))
        );
        assert_eq!(
            decode_prekey("?OTR:AAQD."),
            Err(e("invalid base64 in encoded message"))
        );
        assert_eq!(decode_prekey("."), Err(e("encoded message is empty")));
    }

    #[test]
    fn fragment_marker_is_checked_before_every_other_marker() {
        // otrv4.md §"Receiving Fragments": `?OTR|` first. These pieces also carry a query
        // marker, an error marker and an encoded-message prefix: if any of those checks ran
        // first the piece would be taken for a query, an error or an encoded message.
        for piece in [
            "?OTRv4? hi",
            "?OTR Error: ERROR_1: x",
            "?OTR:AAQD.",
            "x ?OTRv34?",
        ] {
            let msg = alloc::format!("?OTR|1|100|0,1,2,{piece},");
            match classify(&msg) {
                Ok(Incoming::Fragment(f)) => assert_eq!(f.piece, piece),
                other => panic!("{msg}: {other:?}"),
            }
        }
    }

    #[test]
    fn classify_each_kind() {
        assert_eq!(
            classify("?OTR:AAQD.").unwrap(),
            Incoming::Encoded(alloc::vec![0, 4, 3])
        );
        assert_eq!(
            classify("?OTR:AAQD"),
            Err(DecodeError::BadFraming(
                "encoded message does not end with '.'"
            ))
        );
        match classify("?OTR|1|100|0,1,2,?OTR:AA,").unwrap() {
            Incoming::Fragment(f) => assert_eq!(
                (f.identifier, f.sender, f.index, f.total, f.piece),
                (1, InstanceTag(0x100), 1, 2, "?OTR:AA")
            ),
            other => panic!("{other:?}"),
        }
        // An OTRv3-format fragment is malformed for this crate.
        assert!(classify("?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMD,").is_err());
        assert_eq!(
            classify("?OTRv34? please").unwrap(),
            Incoming::Query(Versions::V3_AND_V4)
        );
        assert_eq!(
            classify("hi ?OTRv4?").unwrap(),
            Incoming::Query(Versions::V4)
        );
        assert_eq!(
            classify("?OTR Error: ERROR_2: Not in private state message").unwrap(),
            Incoming::Error(ErrorMessage {
                code: Some(ErrorCode::NotInPrivateState),
                text: "Not in private state message"
            })
        );
    }

    #[test]
    fn classify_plaintext_cases() {
        assert_eq!(
            classify("hello").unwrap(),
            Incoming::Plaintext {
                text: Cow::Borrowed("hello"),
                whitespace_tag: None
            }
        );
        // Error prefix embedded: plaintext.
        assert!(matches!(
            classify("x ?OTR Error: ERROR_1: y").unwrap(),
            Incoming::Plaintext {
                whitespace_tag: None,
                ..
            }
        ));
        // ?OTR: not at the start: plaintext.
        assert!(matches!(
            classify("see ?OTR:AAQD.").unwrap(),
            Incoming::Plaintext { .. }
        ));
        // Invalid query: plaintext (no reply).
        assert_eq!(
            classify("?OTRv?4?").unwrap(),
            Incoming::Plaintext {
                text: Cow::Borrowed("?OTRv?4?"),
                whitespace_tag: None
            }
        );
        // ?OTRP| on the OTR channel is not an OTR fragment.
        assert!(matches!(
            classify("?OTRP|1|1|1,1,1,a,").unwrap(),
            Incoming::Plaintext { .. }
        ));
        let tagged = alloc::format!("hi{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V4}");
        assert_eq!(
            classify(&tagged).unwrap(),
            Incoming::Plaintext {
                text: Cow::Owned(String::from("hi")),
                whitespace_tag: Some(Versions::V4)
            }
        );
    }

    #[test]
    fn classify_prekey_cases() {
        assert_eq!(
            classify_prekey("AAQN.").unwrap(),
            IncomingPrekey::Encoded(alloc::vec![0, 4, 13])
        );
        match classify_prekey("?OTRP|1234|BEEF|CADE,2,2,dmFsaWQ=.,").unwrap() {
            IncomingPrekey::Fragment(f) => assert_eq!(
                (f.kind, f.index, f.piece),
                (FragmentKind::Prekey, 2, "dmFsaWQ=.")
            ),
            other => panic!("{other:?}"),
        }
        assert!(classify_prekey("?OTRP|1234|BEEF,2,2,x,").is_err());
        assert!(classify_prekey("hello").is_err());
    }

    proptest! {
        #[test]
        fn encodings_round_trip(bin in proptest::collection::vec(any::<u8>(), 1..300)) {
            let (otr, pk) = (encode_otr(&bin), encode_prekey(&bin));
            prop_assert_eq!(decode_otr(&otr).unwrap(), bin.clone());
            prop_assert_eq!(decode_prekey(&pk).unwrap(), bin.clone());
            prop_assert_eq!(classify(&otr).unwrap(), Incoming::Encoded(bin.clone()));
            prop_assert_eq!(classify_prekey(&pk).unwrap(), IncomingPrekey::Encoded(bin));
        }

        #[test]
        fn classify_never_panics(s in "(\\?OTR[:|v ]|\\?OTR Error: )?[ -~\\t]{0,60}") {
            let _ = classify(&s);
            let _ = classify_prekey(&s);
        }
    }
}
