//! Framing of prekey-server messages, written once for the client, the server and the tests
//! (otrv4-prekey-server.md §"Encoded Messages", §"Fragmentation of some Messages").
//!
//! Outgoing: [`frame`] encodes a binary message as `<base64>.` and, when asked, splits it
//! into `?OTRP|` fragments. Incoming: [`unframe`] turns one received text into the binary
//! message, handing fragments to the caller's reassembler; [`receive`] also decodes it with
//! [`PrekeyServerMessage`]'s dispatch on the type byte. A client's end of the link is
//! [`PrekeyFraming`]: both directions, with its own reassembler.

use alloc::string::String;
use alloc::vec::Vec;

use crate::instance_tag::InstanceTag;
use crate::prekey::messages::PrekeyServerMessage;
use crate::wire::codec::{Codec, DecodeError};
use crate::wire::encoded::{IncomingPrekey, classify_prekey, encode_prekey};
use crate::wire::fragment::{Fragment, FragmentError, FragmentKind, Reassembler};
// Fragmenting outgoing messages is the server's side (`hazmat`).
#[cfg(feature = "hazmat")]
use {crate::wire::fragment::fragment, alloc::vec};

/// How to split an outgoing message that is too long (§"Transmitting Fragments").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg(feature = "hazmat")]
pub struct Split {
    /// The longest text to send unfragmented, and the size of each fragment.
    pub max: usize,
    /// The fragment identifier: random and unique while the message is in flight.
    pub id: u32,
    /// The receiver instance tag the fragments carry.
    pub receiver: InstanceTag,
}

/// Frames the binary message `bin`: its `<base64>.` encoding, or, with `split` given and an
/// encoding longer than `split.max`, the `?OTRP|` fragments of it. On a fragmentation error
/// the unfragmented text comes back with the error, for the caller to send whole or drop.
#[cfg(feature = "hazmat")]
pub fn frame(bin: &[u8], split: Option<Split>) -> Result<Vec<String>, (String, FragmentError)> {
    let text = encode_prekey(bin);
    match split {
        Some(s) if text.len() > s.max => fragment(
            &text,
            s.max,
            s.id,
            InstanceTag::UNKNOWN,
            s.receiver,
            FragmentKind::Prekey,
        )
        .map_err(|e| (text, e)),
        _ => Ok(vec![text]),
    }
}

/// The `<base64>.` encoding of one message, unfragmented.
pub fn encode<M: Codec>(msg: &M) -> String {
    encode_prekey(&msg.encode())
}

/// Why an incoming prekey-server text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnframeError<E> {
    /// The text, or the reassembled message, is not a valid encoding (or the message does
    /// not decode).
    #[error("{0}")]
    Malformed(DecodeError),
    /// The reassembled message is itself a fragment.
    #[error("nested fragment")]
    NestedFragment,
    /// The caller's reassembler refused the fragment.
    #[error("{0}")]
    Reassembly(E),
}

/// Unframes one incoming text: an encoded message gives its bytes; a fragment goes to
/// `reassemble` (the caller's reassembler, with its limits), which returns the whole text
/// once the last piece arrived (`Ok(None)` until then, and from here too).
pub fn unframe<E>(
    text: &str,
    reassemble: impl FnOnce(&Fragment<'_>) -> Result<Option<String>, E>,
) -> Result<Option<Vec<u8>>, UnframeError<E>> {
    match classify_prekey(text).map_err(UnframeError::Malformed)? {
        IncomingPrekey::Encoded(b) => Ok(Some(b)),
        IncomingPrekey::Fragment(f) => {
            let Some(whole) = reassemble(&f).map_err(UnframeError::Reassembly)? else {
                return Ok(None);
            };
            match classify_prekey(&whole).map_err(UnframeError::Malformed)? {
                IncomingPrekey::Encoded(b) => Ok(Some(b)),
                IncomingPrekey::Fragment(_) => Err(UnframeError::NestedFragment),
            }
        }
    }
}

/// [`unframe`], then decodes the message (version check and dispatch on the type byte).
pub fn receive<E>(
    text: &str,
    reassemble: impl FnOnce(&Fragment<'_>) -> Result<Option<String>, E>,
) -> Result<Option<PrekeyServerMessage>, UnframeError<E>> {
    match unframe(text, reassemble)? {
        Some(bin) => PrekeyServerMessage::decode(&bin)
            .map(Some)
            .map_err(UnframeError::Malformed),
        None => Ok(None),
    }
}

/// A client's end of the text link to prekey servers: outgoing messages as `<base64>.`,
/// incoming texts whole or as `?OTRP|` fragments, reassembled here within the limits of
/// the crate's fragment reassembler (otrv4-prekey-server.md §"Fragmentation of some
/// Messages").
#[derive(Debug)]
pub struct PrekeyFraming {
    reassembler: Reassembler,
}

impl Default for PrekeyFraming {
    fn default() -> Self {
        PrekeyFraming::new()
    }
}

impl PrekeyFraming {
    /// A link with no fragments pending.
    pub fn new() -> PrekeyFraming {
        PrekeyFraming {
            reassembler: Reassembler::new(FragmentKind::Prekey),
        }
    }

    /// The text of a message to a prekey server, unfragmented.
    pub fn encode(msg: &PrekeyServerMessage) -> String {
        encode(msg)
    }

    /// One text received from a prekey server (`now` in seconds, for the fragments'
    /// timeout): the message, or `Ok(None)` while fragments of it are missing.
    pub fn receive(
        &mut self,
        text: &str,
        now: i64,
    ) -> Result<Option<PrekeyServerMessage>, UnframeError<FragmentError>> {
        let reassembler = &mut self.reassembler;
        receive(text, |f| {
            reassembler.push_fragment(f, InstanceTag::UNKNOWN, now.max(0) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prekey::messages::StorageInfoRequest;
    use crate::wire::fragment::Reassembler;

    fn reassembler() -> Reassembler {
        Reassembler::new(FragmentKind::Prekey)
    }

    #[test]
    fn framed_messages_come_back_whole_or_in_fragments() {
        let bin: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        let whole = frame(&bin, None).unwrap();
        assert_eq!(whole, vec![encode_prekey(&bin)]);
        let split = Split {
            max: 100,
            id: 7,
            receiver: InstanceTag(0x100),
        };
        let pieces = frame(&bin, Some(split)).unwrap();
        assert!(pieces.len() > 1 && pieces.iter().all(|p| p.len() <= 100));
        let mut r = reassembler();
        let mut got = None;
        for p in &pieces {
            let out = unframe(p, |f| r.push_fragment(f, InstanceTag::UNKNOWN, 0)).unwrap();
            assert!(got.is_none());
            got = out;
        }
        assert_eq!(got.unwrap(), bin);
        let unsplit = Split {
            max: 10_000,
            ..split
        };
        assert_eq!(frame(&bin, Some(unsplit)).unwrap(), whole);
        let too_small = Split { max: 5, ..split };
        assert!(matches!(frame(&bin, Some(too_small)), Err((t, _)) if t == whole[0]));
    }

    #[test]
    fn receive_decodes_and_rejects() {
        let none = |_: &Fragment<'_>| -> Result<Option<String>, ()> { Ok(None) };
        let m = StorageInfoRequest { mac: [3; 64] };
        // A message that travels inside DAKE-3 is not a stand-alone message.
        assert_eq!(
            receive(&encode(&m), none),
            Err(UnframeError::Malformed(DecodeError::BadMessageType(0x09)))
        );
        assert!(matches!(
            receive("not base64!.", none),
            Err(UnframeError::Malformed(_))
        ));
        assert_eq!(
            unframe(
                "?OTRP|1234|BEEF|CADE,1,2,abc,",
                |_| Err::<Option<String>, _>("full")
            ),
            Err(UnframeError::Reassembly("full"))
        );
        let nested = |_: &Fragment<'_>| -> Result<Option<String>, ()> {
            Ok(Some("?OTRP|1234|BEEF|CADE,1,1,abc,".into()))
        };
        assert_eq!(
            unframe("?OTRP|1234|BEEF|CADE,1,2,abc,", nested),
            Err(UnframeError::NestedFragment)
        );
        assert_eq!(unframe("?OTRP|1234|BEEF|CADE,1,2,abc,", none), Ok(None));
    }
}
