//! Fragmentation of encoded messages (otrv4.md §"Fragmentation", otrv4-prekey-server.md
//! §"Fragmentation of some Messages"): building, parsing and bounded reassembly.
//!
//! Both formats are `<prefix>%x|%x|%x,%hu,%hu,%s,` (identifier, sender tag, receiver tag,
//! index, total, piece) with prefix `?OTR|` or `?OTRP|`. Parsing and building are here; the
//! bounded reassembly buffer, [`Reassembler`], is in `reassembly` (sans-IO: the caller
//! passes the current time in seconds).

use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::wire::codec::DecodeError;

/// Which fragment format: OTRv4 conversation or prekey-server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentKind {
    /// `?OTR|…` (otrv4.md §"Transmitting Fragments").
    Otr,
    /// `?OTRP|…` (otrv4-prekey-server.md §"Transmitting Fragments").
    Prekey,
}

impl FragmentKind {
    /// The prefix every fragment of this kind starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            FragmentKind::Otr => "?OTR|",
            FragmentKind::Prekey => "?OTRP|",
        }
    }

    /// The length of a fragment of this kind apart from its piece, as built by
    /// [`fragment`]: prefix, three 8-digit hex fields, two 5-digit decimal fields, and
    /// the separators including the trailing `,`.
    pub const fn overhead(self) -> usize {
        self.prefix().len() + 3 * 8 + 2 * 5 + 6
    }
}

/// One parsed fragment (otrv4.md §"Transmitting Fragments").
///
/// [`Fragment::parse`] only returns fragments with `1 <= index <= total` and a non-empty
/// piece without `,`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// `?OTR|` or `?OTRP|`.
    pub kind: FragmentKind,
    /// The identifier shared by all fragments of one message.
    pub identifier: u32,
    /// The sender's instance tag (not validated here).
    pub sender: InstanceTag,
    /// The receiver's instance tag, 0 if unknown to the sender.
    pub receiver: InstanceTag,
    /// The 1-based position of this piece.
    pub index: u16,
    /// The number of pieces.
    pub total: u16,
    /// This piece of the encoded message.
    pub piece: &'a str,
}

/// Parses 1 to 8 hex digits (either case, leading zeros allowed, no sign).
fn parse_hex32(field: &str, what: &'static str) -> Result<u32, DecodeError> {
    if field.is_empty() || field.len() > 8 {
        return Err(DecodeError::BadValue(what));
    }
    field.chars().try_fold(0u32, |acc, c| {
        c.to_digit(16)
            .map(|d| (acc << 4) | d)
            .ok_or(DecodeError::BadValue(what))
    })
}

/// Parses 1 to 5 decimal digits (leading zeros allowed, no sign) into a value <= 65535.
fn parse_dec16(field: &str, what: &'static str) -> Result<u16, DecodeError> {
    if field.is_empty() || field.len() > 5 {
        return Err(DecodeError::BadValue(what));
    }
    let v = field.chars().try_fold(0u32, |acc, c| {
        c.to_digit(10)
            .map(|d| acc * 10 + d)
            .ok_or(DecodeError::BadValue(what))
    })?;
    u16::try_from(v).map_err(|_| DecodeError::BadValue(what))
}

/// Splits `s` at the first `sep`, or fails with `BadFraming(what)`.
fn field<'a>(s: &'a str, sep: char, what: &'static str) -> Result<(&'a str, &'a str), DecodeError> {
    s.split_once(sep).ok_or(DecodeError::BadFraming(what))
}

impl<'a> Fragment<'a> {
    /// Parses one fragment strictly (otrv4.md §"Receiving Fragments", otrv4-prekey-server.md
    /// §"Receiving Fragments"): the whole string must be
    /// `?OTR|` or `?OTRP|`, identifier `|` sender `|` receiver `,` index `,` total `,`
    /// piece `,` with 1–8 hex digits per tag/identifier and 1–5 decimal digits (value
    /// <= 65535) per index/total; leading zeros are allowed. Illegal fragments (index 0,
    /// total 0, index > total) and empty pieces are rejected.
    pub fn parse(s: &'a str) -> Result<Fragment<'a>, DecodeError> {
        let (kind, body) = if let Some(b) = s.strip_prefix(FragmentKind::Prekey.prefix()) {
            (FragmentKind::Prekey, b)
        } else if let Some(b) = s.strip_prefix(FragmentKind::Otr.prefix()) {
            (FragmentKind::Otr, b)
        } else {
            return Err(DecodeError::BadFraming("fragment prefix missing"));
        };
        let body = body
            .strip_suffix(',')
            .ok_or(DecodeError::BadFraming("fragment does not end with ','"))?;
        let (id, rest) = field(body, '|', "fragment identifier not followed by '|'")?;
        let (sender, rest) = field(rest, '|', "fragment sender tag not followed by '|'")?;
        let (receiver, rest) = field(rest, ',', "fragment receiver tag not followed by ','")?;
        let (index, rest) = field(rest, ',', "fragment index not followed by ','")?;
        let (total, piece) = field(rest, ',', "fragment total not followed by ','")?;

        let identifier = parse_hex32(id, "fragment identifier")?;
        let sender = InstanceTag(parse_hex32(sender, "fragment sender tag")?);
        let receiver = InstanceTag(parse_hex32(receiver, "fragment receiver tag")?);
        let index = parse_dec16(index, "fragment index")?;
        let total = parse_dec16(total, "fragment total")?;
        if piece.is_empty() {
            return Err(DecodeError::BadFraming("fragment piece is empty"));
        }
        if piece.contains(',') {
            return Err(DecodeError::BadFraming("fragment piece contains ','"));
        }
        if index == 0 {
            return Err(DecodeError::BadValue("fragment index is 0"));
        }
        if total == 0 {
            return Err(DecodeError::BadValue("fragment total is 0"));
        }
        if index > total {
            return Err(DecodeError::BadValue("fragment index exceeds total"));
        }
        Ok(Fragment {
            kind,
            identifier,
            sender,
            receiver,
            index,
            total,
            piece,
        })
    }

    /// Formats the fragment with fixed-width fields (`%08x`, `%05hu`), the form
    /// [`fragment`] produces.
    pub fn encode(&self) -> String {
        alloc::format!(
            "{}{:08x}|{:08x}|{:08x},{:05},{:05},{},",
            self.kind.prefix(),
            self.identifier,
            self.sender.0,
            self.receiver.0,
            self.index,
            self.total,
            self.piece
        )
    }
}

/// Why a fragment was not built or not accepted. Every receive-side error means the
/// fragment was discarded; the caller may warn the user (e.g. for [`FragmentError::NotForUs`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The fragment is not syntactically valid, or is illegal (index 0, total 0,
    /// index > total).
    #[error("malformed fragment: {0}")]
    Malformed(#[from] DecodeError),
    /// A `?OTRP|` fragment was given to a `?OTR|` reassembler or vice versa.
    #[error("fragment of the wrong kind for this reassembler")]
    WrongKind,
    /// The listed receiver tag is neither ours nor 0 (otrv4.md §"Receiving Fragments").
    #[error("fragment addressed to instance {receiver}")]
    NotForUs {
        /// The receiver tag in the fragment.
        receiver: InstanceTag,
    },
    /// A piece for this index was already received; it is not counted again.
    #[error("duplicate fragment {index}")]
    Duplicate {
        /// The repeated index.
        index: u16,
    },
    /// The fragment's total differs from the one of its buffer; the buffer was dropped.
    #[error("fragment total {got} differs from the buffer's {expected}; buffer dropped")]
    TotalMismatch {
        /// The total of the buffer.
        expected: u16,
        /// The total in the fragment.
        got: u16,
    },
    /// The message has more pieces than `MAX_FRAGMENTS_PER_MESSAGE`.
    #[error("message of {total} fragments exceeds the limit")]
    TooManyPieces {
        /// The total in the fragment.
        total: u16,
    },
    /// The message alone would exceed `MAX_BUFFERED_BYTES`; its buffer was dropped.
    #[error("fragmented message too large; buffer dropped")]
    MessageTooLarge,
    /// The reassembled message is itself a fragment ("you can't fragment a fragment").
    #[error("reassembled message is a fragment")]
    NestedFragment,
    /// Sending: `max_size` cannot hold the fragment header and one character.
    #[error("maximum message size {max_size} is below the minimum {min}")]
    MaxSizeTooSmall {
        /// The size asked for.
        max_size: usize,
        /// The smallest workable size.
        min: usize,
    },
    /// Sending: the message would need more than 65535 fragments.
    #[error("message needs {needed} fragments, more than 65535")]
    TooManyFragments {
        /// The number of fragments needed.
        needed: usize,
    },
    /// Sending: the message cannot be fragmented (empty, not ASCII, contains `,`, or is
    /// itself a fragment).
    #[error("message cannot be fragmented: {0}")]
    InvalidInput(&'static str),
}

/// Splits an encoded message (e.g. `?OTR:…​.`, or base64 + `.` for the prekey server) into
/// fragments of at most `max_size` bytes each, header included (otrv4.md §"Transmitting
/// Fragments", otrv4-prekey-server.md §"Transmitting Fragments").
///
/// Always fragments (even into a single piece): the caller sends `message` unfragmented
/// if it fits. `identifier` must be random and unique while this message is in flight.
/// `message` must be non-empty ASCII without `,` and not itself a fragment.
pub fn fragment(
    message: &str,
    max_size: usize,
    identifier: u32,
    sender: InstanceTag,
    receiver: InstanceTag,
    kind: FragmentKind,
) -> Result<Vec<String>, FragmentError> {
    if message.is_empty() {
        return Err(FragmentError::InvalidInput("empty message"));
    }
    if !message.is_ascii() {
        return Err(FragmentError::InvalidInput("message is not ASCII"));
    }
    if message.contains(',') {
        return Err(FragmentError::InvalidInput("message contains ','"));
    }
    if message.starts_with(FragmentKind::Otr.prefix())
        || message.starts_with(FragmentKind::Prekey.prefix())
    {
        return Err(FragmentError::InvalidInput("message is a fragment"));
    }
    let min = kind.overhead() + 1;
    if max_size < min {
        return Err(FragmentError::MaxSizeTooSmall { max_size, min });
    }
    let piece_len = max_size - kind.overhead();
    let needed = message.len().div_ceil(piece_len);
    let total = u16::try_from(needed).map_err(|_| FragmentError::TooManyFragments { needed })?;
    let mut out = Vec::with_capacity(needed);
    for (i, chunk) in message.as_bytes().chunks(piece_len).enumerate() {
        let piece = core::str::from_utf8(chunk)
            .map_err(|_| FragmentError::InvalidInput("message is not ASCII"))?;
        let index = u16::try_from(i + 1).map_err(|_| FragmentError::TooManyFragments { needed })?;
        out.push(
            Fragment {
                kind,
                identifier,
                sender,
                receiver,
                index,
                total,
                piece,
            }
            .encode(),
        );
    }
    Ok(out)
}

mod reassembly;

pub use reassembly::{DEFAULT_FRAGMENT_TIMEOUT_SECS, Reassembler};
// The reassembly limits, for the tests and fuzz targets (`otr4::hazmat`).
#[cfg(feature = "hazmat")]
pub use reassembly::{
    MAX_BUFFERED_BYTES, MAX_FRAGMENTS_PER_MESSAGE, MAX_PENDING_MESSAGES, PIECE_OVERHEAD,
};

#[cfg(test)]
mod tests;
