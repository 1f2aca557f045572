//! Fragmentation of encoded messages (otrv4.md §"Fragmentation", otrv4-prekey-server.md
//! §"Fragmentation of some Messages"): building, parsing and bounded reassembly.
//!
//! Both formats are `<prefix>%x|%x|%x,%hu,%hu,%s,` (identifier, sender tag, receiver tag,
//! index, total, piece) with prefix `?OTR|` or `?OTRP|`. The [`Reassembler`] is sans-IO:
//! the caller passes the current time in seconds.

use crate::debug::redacted_debug;
use alloc::collections::BTreeMap;
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

/// At most this many messages are reassembled at once. When a fragment of a new message
/// arrives and this many buffers exist, the oldest buffer (first created; closest to
/// timing out) is evicted. Reason: bounds state per peer; legitimate senders rarely have
/// more than a few fragmented messages in flight, and evicting (rather than rejecting)
/// lets new traffic through after a flood instead of blocking it until the timeout.
pub const MAX_PENDING_MESSAGES: usize = 32;

/// A message with a larger `total` is rejected on its first fragment. Reason: with
/// networks' small message limits (~150 bytes, of which 45 are fragment header),
/// 10 000 pieces already carry about [`MAX_BUFFERED_BYTES`], so a larger total can only
/// come from a misbehaving sender; it also bounds per-buffer bookkeeping.
pub const MAX_FRAGMENTS_PER_MESSAGE: u16 = 10_000;

/// Bookkeeping cost charged per stored piece in addition to its bytes (string header,
/// index and map node), so that many one-byte pieces cannot exceed the memory budget.
pub const PIECE_OVERHEAD: usize = 32;

/// Budget for all buffered pieces (bytes plus [`PIECE_OVERHEAD`] each), 1 MiB. Reason:
/// far above any legitimate OTRv4 message (data messages carry chat text; a prekey
/// ensemble is a few KiB) yet affordable on small devices. When a piece would exceed it,
/// the oldest other buffers are evicted; a message that alone exceeds it is dropped with
/// [`FragmentError::MessageTooLarge`].
pub const MAX_BUFFERED_BYTES: usize = 1 << 20;

/// Default reassembly timeout: a buffer is discarded this many seconds after its first
/// fragment arrived (otrv4.md §"Receiving Fragments": the optional timer). Five minutes,
/// as the default of the Go prekey server.
pub const DEFAULT_FRAGMENT_TIMEOUT_SECS: u64 = 300;

/// The pieces received so far of one fragmented message.
struct Buffer {
    identifier: u32,
    total: u16,
    pieces: BTreeMap<u16, String>,
    cost: usize,
    created_at: u64,
    /// Creation order, to find the oldest buffer when times are equal.
    seq: u64,
}

/// Reassembles fragments of one kind (otrv4.md §"Receiving Fragments",
/// otrv4-prekey-server.md §"Receiving Fragments"), e.g. one per conversation.
///
/// Buffers are keyed by the fragment identifier. Out-of-order arrival is supported. All
/// memory is bounded by [`MAX_PENDING_MESSAGES`], [`MAX_FRAGMENTS_PER_MESSAGE`] and
/// [`MAX_BUFFERED_BYTES`]; stale buffers are dropped after the timeout (checked on every
/// [`Reassembler::push`] and by [`Reassembler::expire`]).
pub struct Reassembler {
    kind: FragmentKind,
    timeout_secs: u64,
    buffers: Vec<Buffer>,
    cost: usize,
    next_seq: u64,
}

redacted_debug!(Reassembler {
    kind,
    timeout_secs,
    pending = |s| s.buffers.len(),
    buffered_bytes = |s| s.cost,
});

impl Reassembler {
    /// A reassembler for `kind` with [`DEFAULT_FRAGMENT_TIMEOUT_SECS`].
    pub fn new(kind: FragmentKind) -> Self {
        Self::with_timeout(kind, DEFAULT_FRAGMENT_TIMEOUT_SECS)
    }

    /// A reassembler for `kind` whose buffers expire `timeout_secs` after their first
    /// fragment.
    pub fn with_timeout(kind: FragmentKind, timeout_secs: u64) -> Self {
        Reassembler {
            kind,
            timeout_secs,
            buffers: Vec::new(),
            cost: 0,
            next_seq: 0,
        }
    }

    /// The kind of fragments accepted.
    #[cfg(feature = "hazmat")]
    pub fn kind(&self) -> FragmentKind {
        self.kind
    }

    /// Number of partially received messages.
    #[cfg(feature = "hazmat")]
    pub fn pending(&self) -> usize {
        self.buffers.len()
    }

    /// Bytes charged against [`MAX_BUFFERED_BYTES`].
    #[cfg(feature = "hazmat")]
    pub fn buffered_bytes(&self) -> usize {
        self.cost
    }

    /// Drops every buffer whose first fragment arrived `timeout` or more seconds before
    /// `now`; returns how many were dropped. A clock going backwards expires nothing.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.buffers.len();
        let timeout = self.timeout_secs;
        let mut freed = 0;
        self.buffers.retain(|b| {
            let keep = now.saturating_sub(b.created_at) < timeout;
            if !keep {
                freed += b.cost;
            }
            keep
        });
        self.cost = self.cost.saturating_sub(freed);
        before - self.buffers.len()
    }

    /// Drops every buffer.
    #[cfg(feature = "hazmat")]
    pub fn clear(&mut self) {
        self.buffers.clear();
        self.cost = 0;
    }

    /// Parses `frag` and adds it; see [`Reassembler::push_fragment`].
    #[cfg(feature = "hazmat")]
    pub fn push(
        &mut self,
        frag: &str,
        our_tag: InstanceTag,
        now: u64,
    ) -> Result<Option<String>, FragmentError> {
        let f = Fragment::parse(frag)?;
        self.push_fragment(&f, our_tag, now)
    }

    /// Adds a parsed fragment; returns the whole message once its last piece arrived
    /// (its buffer is then removed).
    ///
    /// Rules (otrv4.md §"Receiving Fragments"):
    /// - a fragment whose receiver tag is neither `our_tag` nor 0 is discarded
    ///   ([`FragmentError::NotForUs`]). Passing `our_tag = InstanceTag(0)` means "we have
    ///   no instance tag" (the prekey server side) and skips this check;
    /// - a fragment whose total differs from its buffer's drops the buffer
    ///   ([`FragmentError::TotalMismatch`]);
    /// - a second piece for an index is rejected and not counted
    ///   ([`FragmentError::Duplicate`]);
    /// - stale buffers are expired first, using `now` (seconds).
    pub fn push_fragment(
        &mut self,
        frag: &Fragment<'_>,
        our_tag: InstanceTag,
        now: u64,
    ) -> Result<Option<String>, FragmentError> {
        if frag.kind != self.kind {
            return Err(FragmentError::WrongKind);
        }
        self.expire(now);
        if our_tag != InstanceTag::UNKNOWN
            && frag.receiver != InstanceTag::UNKNOWN
            && frag.receiver != our_tag
        {
            return Err(FragmentError::NotForUs {
                receiver: frag.receiver,
            });
        }
        // Fragment::parse guarantees this; re-check for hand-built fragments.
        if frag.index == 0 || frag.total == 0 || frag.index > frag.total || frag.piece.is_empty() {
            return Err(FragmentError::Malformed(DecodeError::BadValue(
                "fragment index/total",
            )));
        }

        let existing = self
            .buffers
            .iter()
            .enumerate()
            .find(|(_, b)| b.identifier == frag.identifier)
            .map(|(pos, b)| (pos, b.total, b.pieces.contains_key(&frag.index)));
        let pos = match existing {
            Some((pos, expected, duplicate)) => {
                if expected != frag.total {
                    self.remove(pos);
                    return Err(FragmentError::TotalMismatch {
                        expected,
                        got: frag.total,
                    });
                }
                if duplicate {
                    return Err(FragmentError::Duplicate { index: frag.index });
                }
                pos
            }
            None => {
                if frag.total > MAX_FRAGMENTS_PER_MESSAGE {
                    return Err(FragmentError::TooManyPieces { total: frag.total });
                }
                if frag.total == 1 {
                    return finish(String::from(frag.piece)).map(Some);
                }
                while self.buffers.len() >= MAX_PENDING_MESSAGES {
                    self.evict_oldest(None);
                }
                self.buffers.push(Buffer {
                    identifier: frag.identifier,
                    total: frag.total,
                    pieces: BTreeMap::new(),
                    cost: 0,
                    created_at: now,
                    seq: self.next_seq,
                });
                self.next_seq = self.next_seq.wrapping_add(1);
                self.buffers.len() - 1
            }
        };

        let piece_cost = frag.piece.len().saturating_add(PIECE_OVERHEAD);
        // A message that alone exceeds the budget is dropped without evicting others.
        let own = self.buffers.get(pos).map_or(0, |b| b.cost);
        if own.saturating_add(piece_cost) > MAX_BUFFERED_BYTES {
            self.remove(pos);
            return Err(FragmentError::MessageTooLarge);
        }
        let mut pos = pos;
        while self.cost.saturating_add(piece_cost) > MAX_BUFFERED_BYTES {
            match self.evict_oldest(Some(pos)) {
                Some(removed) if removed < pos => pos -= 1,
                Some(_) => {}
                None => {
                    self.remove(pos);
                    return Err(FragmentError::MessageTooLarge);
                }
            }
        }

        // `pos` is valid here; the error arm cannot be taken.
        let b = self
            .buffers
            .get_mut(pos)
            .ok_or(FragmentError::MessageTooLarge)?;
        b.pieces.insert(frag.index, String::from(frag.piece));
        b.cost += piece_cost;
        self.cost += piece_cost;
        if b.pieces.len() < usize::from(b.total) {
            return Ok(None);
        }
        let done = self.remove(pos).ok_or(FragmentError::MessageTooLarge)?;
        let len = done.pieces.values().map(String::len).sum();
        let mut out = String::with_capacity(len);
        for p in done.pieces.values() {
            out.push_str(p);
        }
        finish(out).map(Some)
    }

    /// Removes the buffer at `pos`, releasing its cost.
    fn remove(&mut self, pos: usize) -> Option<Buffer> {
        if pos >= self.buffers.len() {
            return None;
        }
        let b = self.buffers.remove(pos);
        self.cost = self.cost.saturating_sub(b.cost);
        Some(b)
    }

    /// Evicts the oldest buffer other than `keep`; returns its former position.
    fn evict_oldest(&mut self, keep: Option<usize>) -> Option<usize> {
        let victim = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != keep)
            .min_by_key(|(_, b)| (b.created_at, b.seq))
            .map(|(i, _)| i)?;
        self.remove(victim).map(|_| victim)
    }
}

/// Rejects a reassembled message that is itself a fragment.
fn finish(msg: String) -> Result<String, FragmentError> {
    if msg.starts_with(FragmentKind::Otr.prefix()) || msg.starts_with(FragmentKind::Prekey.prefix())
    {
        return Err(FragmentError::NestedFragment);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OURS: InstanceTag = InstanceTag(0x27e3_1597);

    /// The spec's three fragments (otrv4.md §"Receiving Fragments"), line breaks joined.
    const SPEC_FRAGMENTS: [&str; 3] = [
        concat!(
            "?OTR|3c5b5f03|5a73a599|27e31597,00001,00003,?OTR:AAMDJ+MVmSfjFZcAAAAA",
            "AQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hbrL3KAbGDdzE2ZkMyTKl7XfkSx",
            "h8YJnudstiB74i4BzT0W2haClg6dMary/jo9sMudwmUdlnKpIGEKXWdvJKT+",
            "hQ26h9nzMgEditLB8v,"
        ),
        concat!(
            "?OTR|3c5b5f03|5a73a599|27e31597,00002,00003,jPEWAJ6gBXvZrY6ZQrx3gb4v0",
            "UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjScajVba6dq",
            "lDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAAAAAEAAAA",
            "HwNiIi5Ms+4PsY/L2i,"
        ),
        concat!(
            "?OTR|3c5b5f03|5a73a599|27e31597,00003,00003,pkTtquknfx6HodLvk3RAAAAAA",
            "==.,"
        ),
    ];
    const SPEC_MESSAGE: &str = concat!(
        "?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hb",
        "rL3KAbGDdzE2ZkMyTKl7XfkSxh8YJnudstiB74i4BzT0W2haClg6dMary/jo",
        "9sMudwmUdlnKpIGEKXWdvJKT+hQ26h9nzMgEditLB8vjPEWAJ6gBXvZrY6ZQ",
        "rx3gb4v0UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjSc",
        "ajVba6dqlDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAA",
        "AAAEAAAAHwNiIi5Ms+4PsY/L2ipkTtquknfx6HodLvk3RAAAAAA==."
    );

    fn frag(id: u32, index: u16, total: u16, piece: &str) -> String {
        Fragment {
            kind: FragmentKind::Otr,
            identifier: id,
            sender: InstanceTag(0x100),
            receiver: OURS,
            index,
            total,
            piece,
        }
        .encode()
    }

    #[test]
    fn spec_example_parses_and_reassembles_in_any_order() {
        let f = Fragment::parse(SPEC_FRAGMENTS[0]).unwrap();
        assert_eq!(f.kind, FragmentKind::Otr);
        assert_eq!(f.identifier, 0x3c5b_5f03);
        assert_eq!(f.sender, InstanceTag(0x5a73_a599));
        assert_eq!(f.receiver, OURS);
        assert_eq!((f.index, f.total), (1, 3));
        assert!(f.piece.starts_with("?OTR:AAMD"));
        // Canonical encoding reproduces the spec's text exactly.
        for s in SPEC_FRAGMENTS {
            assert_eq!(Fragment::parse(s).unwrap().encode(), s);
        }
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
            let mut r = Reassembler::new(FragmentKind::Otr);
            assert_eq!(r.push(SPEC_FRAGMENTS[order[0]], OURS, 10), Ok(None));
            assert_eq!(r.push(SPEC_FRAGMENTS[order[1]], OURS, 11), Ok(None));
            assert_eq!(
                r.push(SPEC_FRAGMENTS[order[2]], OURS, 12),
                Ok(Some(String::from(SPEC_MESSAGE)))
            );
            assert_eq!(r.pending(), 0);
            assert_eq!(r.buffered_bytes(), 0);
        }
    }

    #[test]
    fn parse_accepts_short_upper_case_and_prekey() {
        let f = Fragment::parse("?OTRP|1234|BEEF|CADE,2,2,dmFsaWQ=.,").unwrap();
        assert_eq!(f.kind, FragmentKind::Prekey);
        assert_eq!(
            (f.identifier, f.sender, f.receiver),
            (0x1234, InstanceTag(0xbeef), InstanceTag(0xcade))
        );
        assert_eq!((f.index, f.total, f.piece), (2, 2, "dmFsaWQ=."));
        let f = Fragment::parse("?OTR|00000000|0|ffffffff,65535,65535,x|y,").unwrap();
        assert_eq!(
            (f.receiver, f.index, f.total, f.piece),
            (InstanceTag(u32::MAX), 65535, 65535, "x|y")
        );
        assert_eq!(Fragment::parse("?OTR|1|1|1,00001,01,a,").unwrap().total, 1);
    }

    #[test]
    fn parse_rejects_every_malformed_case() {
        use DecodeError::{BadFraming, BadValue};
        let cases: &[(&str, DecodeError)] = &[
            ("?OTR|1|1|1,0,1,a,", BadValue("fragment index is 0")),
            ("?OTR|1|1|1,1,0,a,", BadValue("fragment total is 0")),
            (
                "?OTR|1|1|1,3,2,a,",
                BadValue("fragment index exceeds total"),
            ),
            ("?OTR|1g|1|1,1,1,a,", BadValue("fragment identifier")),
            ("?OTR|1|x|1,1,1,a,", BadValue("fragment sender tag")),
            ("?OTR|1|1|-1,1,1,a,", BadValue("fragment receiver tag")),
            ("?OTR|+1|1|1,1,1,a,", BadValue("fragment identifier")),
            ("?OTR||1|1,1,1,a,", BadValue("fragment identifier")),
            ("?OTR|123456789|1|1,1,1,a,", BadValue("fragment identifier")),
            ("?OTR|000000001|1|1,1,1,a,", BadValue("fragment identifier")),
            ("?OTR|1|1|1,1a,2,a,", BadValue("fragment index")),
            ("?OTR|1|1|1,+1,2,a,", BadValue("fragment index")),
            ("?OTR|1|1|1,1,65536,a,", BadValue("fragment total")),
            ("?OTR|1|1|1,1,000001,a,", BadValue("fragment total")),
            ("?OTR|1|1|1,,1,a,", BadValue("fragment index")),
            ("?OTR|1|1|1,1,1,,", BadFraming("fragment piece is empty")),
            (
                "?OTR|1|1|1,1,1,a,b,",
                BadFraming("fragment piece contains ','"),
            ),
            (
                "?OTR|1|1|1,1,1,a",
                BadFraming("fragment does not end with ','"),
            ),
            (
                "?OTR|1|1|1,1,1,",
                BadFraming("fragment total not followed by ','"),
            ),
            (
                "?OTR|1|1,1,1,a,",
                BadFraming("fragment sender tag not followed by '|'"),
            ),
            ("?OTR|1|1|1|1,1,1,a,", BadValue("fragment receiver tag")),
            ("?OTR|1|1|1", BadFraming("fragment does not end with ','")),
            (
                "?OTR|1|1|1,",
                BadFraming("fragment receiver tag not followed by ','"),
            ),
            (
                "?OTR|1,1,1,a,",
                BadFraming("fragment identifier not followed by '|'"),
            ),
            ("?OTR:AAQD,", BadFraming("fragment prefix missing")),
            ("x?OTR|1|1|1,1,1,a,", BadFraming("fragment prefix missing")),
            (
                "?OTR|1|1|1,1,1,a,\n",
                BadFraming("fragment does not end with ','"),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(Fragment::parse(s), Err(want.clone()), "{s}");
        }
    }

    #[test]
    fn duplicate_is_rejected_and_not_counted() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        assert_eq!(r.push(&frag(7, 1, 3, "aa"), OURS, 0), Ok(None));
        assert_eq!(
            r.push(&frag(7, 1, 3, "zz"), OURS, 0),
            Err(FragmentError::Duplicate { index: 1 })
        );
        assert_eq!(r.push(&frag(7, 2, 3, "bb"), OURS, 0), Ok(None));
        // Had the duplicate counted, the buffer would now think it is complete.
        assert_eq!(r.pending(), 1);
        assert_eq!(
            r.push(&frag(7, 3, 3, "cc"), OURS, 0),
            Ok(Some(String::from("aabbcc")))
        );
    }

    #[test]
    fn total_mismatch_drops_buffer() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        assert_eq!(r.push(&frag(7, 1, 3, "aa"), OURS, 0), Ok(None));
        assert_eq!(
            r.push(&frag(7, 2, 4, "bb"), OURS, 0),
            Err(FragmentError::TotalMismatch {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(r.pending(), 0);
        assert_eq!(r.buffered_bytes(), 0);
        // The old pieces are gone: a fresh start with total 3 needs all three again.
        assert_eq!(r.push(&frag(7, 2, 3, "bb"), OURS, 0), Ok(None));
        assert_eq!(r.push(&frag(7, 3, 3, "cc"), OURS, 0), Ok(None));
        assert_eq!(
            r.push(&frag(7, 1, 3, "aa"), OURS, 0),
            Ok(Some(String::from("aabbcc")))
        );
    }

    #[test]
    fn receiver_tag_rules() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        let other = Fragment {
            kind: FragmentKind::Otr,
            identifier: 1,
            sender: InstanceTag(0x100),
            receiver: InstanceTag(0x999),
            index: 1,
            total: 1,
            piece: "m",
        };
        assert_eq!(
            r.push(&other.encode(), OURS, 0),
            Err(FragmentError::NotForUs {
                receiver: InstanceTag(0x999)
            })
        );
        let zero = Fragment {
            receiver: InstanceTag::UNKNOWN,
            ..other
        };
        assert_eq!(r.push(&zero.encode(), OURS, 0), Ok(Some(String::from("m"))));
        // No own tag (prekey-server side): no check.
        let mut p = Reassembler::new(FragmentKind::Prekey);
        let pk = Fragment {
            kind: FragmentKind::Prekey,
            ..other
        };
        assert_eq!(
            p.push(&pk.encode(), InstanceTag::UNKNOWN, 0),
            Ok(Some(String::from("m")))
        );
        assert_eq!(
            p.push(&pk.encode(), OURS, 0),
            Err(FragmentError::NotForUs {
                receiver: InstanceTag(0x999)
            })
        );
        assert_eq!(
            p.push(&other.encode(), OURS, 0),
            Err(FragmentError::WrongKind)
        );
    }

    #[test]
    fn distinct_identifiers_interleave() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        assert_eq!(r.push(&frag(1, 2, 2, "B"), OURS, 0), Ok(None));
        assert_eq!(r.push(&frag(2, 1, 2, "x"), OURS, 0), Ok(None));
        assert_eq!(
            r.push(&frag(1, 1, 2, "A"), OURS, 0),
            Ok(Some(String::from("AB")))
        );
        assert_eq!(
            r.push(&frag(2, 2, 2, "y"), OURS, 0),
            Ok(Some(String::from("xy")))
        );
    }

    #[test]
    fn timeout_expires_from_first_fragment() {
        let mut r = Reassembler::with_timeout(FragmentKind::Otr, 60);
        assert_eq!(r.push(&frag(1, 1, 3, "a"), OURS, 1000), Ok(None));
        assert_eq!(r.push(&frag(1, 2, 3, "b"), OURS, 1059), Ok(None));
        assert_eq!(r.expire(1059), 0);
        assert_eq!(r.expire(10), 0); // clock went backwards: nothing expires
        assert_eq!(r.expire(1060), 1);
        assert_eq!((r.pending(), r.buffered_bytes()), (0, 0));
        // Expiry also happens inside push: the late last piece starts a new buffer.
        assert_eq!(r.push(&frag(2, 1, 2, "a"), OURS, 2000), Ok(None));
        assert_eq!(r.push(&frag(2, 2, 2, "b"), OURS, 2060), Ok(None));
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn too_many_buffers_evicts_oldest() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        for id in 0..MAX_PENDING_MESSAGES as u32 {
            assert_eq!(r.push(&frag(id, 1, 2, "a"), OURS, u64::from(id)), Ok(None));
        }
        assert_eq!(r.pending(), MAX_PENDING_MESSAGES);
        assert_eq!(r.push(&frag(1000, 1, 2, "a"), OURS, 100), Ok(None));
        assert_eq!(r.pending(), MAX_PENDING_MESSAGES);
        // Buffer 0 (oldest) was evicted: its second piece starts a new buffer.
        assert_eq!(r.push(&frag(0, 2, 2, "b"), OURS, 100), Ok(None));
        // Buffer 1 was evicted by that, buffer 2 survives.
        assert_eq!(
            r.push(&frag(2, 2, 2, "b"), OURS, 100),
            Ok(Some(String::from("ab")))
        );
    }

    #[test]
    fn too_many_pieces_rejected() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        assert_eq!(
            r.push(&frag(1, 1, MAX_FRAGMENTS_PER_MESSAGE + 1, "a"), OURS, 0),
            Err(FragmentError::TooManyPieces {
                total: MAX_FRAGMENTS_PER_MESSAGE + 1
            })
        );
        assert_eq!(r.pending(), 0);
        assert_eq!(
            r.push(&frag(1, 1, MAX_FRAGMENTS_PER_MESSAGE, "a"), OURS, 0),
            Ok(None)
        );
    }

    #[test]
    fn byte_budget_enforced() {
        let piece = "p".repeat(60_000);
        let cost = piece.len() + PIECE_OVERHEAD;
        let per_msg = MAX_BUFFERED_BYTES / cost; // pieces that fit in the budget
        let mut r = Reassembler::new(FragmentKind::Otr);
        // One message larger than the whole budget: dropped once the budget is hit.
        let total = u16::try_from(per_msg + 2).unwrap();
        for i in 1..=u16::try_from(per_msg).unwrap() {
            assert_eq!(r.push(&frag(9, i, total, &piece), OURS, 0), Ok(None));
        }
        assert!(r.buffered_bytes() <= MAX_BUFFERED_BYTES);
        let next = u16::try_from(per_msg + 1).unwrap();
        assert_eq!(
            r.push(&frag(9, next, total, &piece), OURS, 0),
            Err(FragmentError::MessageTooLarge)
        );
        assert_eq!((r.pending(), r.buffered_bytes()), (0, 0));

        // Two messages: the second evicts the first (older) when the budget is hit.
        for i in 1..=u16::try_from(per_msg).unwrap() {
            assert_eq!(r.push(&frag(1, i, total, &piece), OURS, 0), Ok(None));
        }
        assert_eq!(r.push(&frag(2, 1, 2, &piece), OURS, 1), Ok(None));
        assert_eq!(r.pending(), 1);
        assert!(r.buffered_bytes() <= MAX_BUFFERED_BYTES);
        assert_eq!(
            r.push(&frag(2, 2, 2, "x"), OURS, 1),
            Ok(Some(piece.clone() + "x"))
        );

        // A single piece over the budget is dropped without evicting other buffers.
        assert_eq!(r.push(&frag(3, 1, 2, "a"), OURS, 2), Ok(None));
        let huge = "h".repeat(MAX_BUFFERED_BYTES);
        assert_eq!(
            r.push(&frag(4, 1, 2, &huge), OURS, 3),
            Err(FragmentError::MessageTooLarge)
        );
        assert_eq!(r.pending(), 1);
        assert_eq!(r.buffered_bytes(), 1 + PIECE_OVERHEAD);
    }

    #[test]
    fn nested_fragment_rejected() {
        // A whole inner fragment contains ',' and cannot be a piece; its prefix can.
        let mut r = Reassembler::new(FragmentKind::Otr);
        assert_eq!(r.push(&frag(6, 1, 2, "?OTR|"), OURS, 0), Ok(None));
        assert_eq!(
            r.push(&frag(6, 2, 2, "x"), OURS, 0),
            Err(FragmentError::NestedFragment)
        );
        assert_eq!(
            r.push(&frag(7, 1, 1, "?OTRP|x"), OURS, 0),
            Err(FragmentError::NestedFragment)
        );
    }

    #[test]
    fn fragment_builder_errors_and_sizes() {
        let k = FragmentKind::Otr;
        assert_eq!(k.overhead(), 45);
        assert_eq!(FragmentKind::Prekey.overhead(), 46);
        assert_eq!(
            fragment("abc", 45, 1, OURS, OURS, k),
            Err(FragmentError::MaxSizeTooSmall {
                max_size: 45,
                min: 46
            })
        );
        assert_eq!(
            fragment("", 100, 1, OURS, OURS, k),
            Err(FragmentError::InvalidInput("empty message"))
        );
        assert_eq!(
            fragment("a,b", 100, 1, OURS, OURS, k),
            Err(FragmentError::InvalidInput("message contains ','"))
        );
        assert_eq!(
            fragment("é", 100, 1, OURS, OURS, k),
            Err(FragmentError::InvalidInput("message is not ASCII"))
        );
        assert_eq!(
            fragment("?OTR|x", 100, 1, OURS, OURS, k),
            Err(FragmentError::InvalidInput("message is a fragment"))
        );
        let long = "a".repeat(65_536);
        assert_eq!(
            fragment(&long, 46, 1, OURS, OURS, k),
            Err(FragmentError::TooManyFragments { needed: 65_536 })
        );
        let ok = fragment(&long[..65_535], 46, 1, OURS, OURS, k).unwrap();
        assert_eq!(ok.len(), 65_535);
        let frags = fragment(
            SPEC_MESSAGE,
            100,
            0x3c5b_5f03,
            InstanceTag(0x5a73_a599),
            OURS,
            k,
        )
        .unwrap();
        assert_eq!(frags.len(), SPEC_MESSAGE.len().div_ceil(55));
        assert!(frags.iter().all(|f| f.len() <= 100));
        assert!(frags[0].starts_with("?OTR|3c5b5f03|5a73a599|27e31597,00001,"));
    }

    #[test]
    fn debug_does_not_print_pieces() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        r.push(&frag(1, 1, 2, "secretpiece"), OURS, 0).unwrap();
        let d = alloc::format!("{r:?}");
        assert!(!d.contains("secretpiece"));
        assert!(d.contains("pending: 1"));
    }

    proptest! {
        #[test]
        fn fragments_round_trip_shuffled(
            payload in "[A-Za-z0-9+/=.:?]{1,600}",
            max_size in 47usize..200,
            kind_is_prekey in any::<bool>(),
            id in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let kind = if kind_is_prekey { FragmentKind::Prekey } else { FragmentKind::Otr };
            prop_assume!(!payload.starts_with(FragmentKind::Otr.prefix()) && !payload.starts_with(FragmentKind::Prekey.prefix()));
            let mut frags = fragment(&payload, max_size, id, InstanceTag(0x100), OURS, kind).unwrap();
            prop_assert!(frags.iter().all(|f| f.len() <= max_size));
            // Fisher-Yates with a simple LCG from the seed.
            let mut s = seed;
            for i in (1..frags.len()).rev() {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let j = usize::try_from((s >> 33) % (i as u64 + 1)).unwrap();
                frags.swap(i, j);
            }
            let mut r = Reassembler::new(kind);
            let n = frags.len();
            for (i, f) in frags.iter().enumerate() {
                let got = r.push(f, OURS, 0).unwrap();
                if i + 1 < n {
                    prop_assert_eq!(got, None);
                } else {
                    prop_assert_eq!(got, Some(payload.clone()));
                }
            }
            prop_assert_eq!(r.pending(), 0);
        }

        #[test]
        fn parse_never_panics(s in "\\?OTRP?\\|[0-9a-fA-F|,xg+-]{0,40}") {
            if let Ok(f) = Fragment::parse(&s) {
                prop_assert!(f.index >= 1 && f.index <= f.total && !f.piece.is_empty());
            }
        }
    }

    #[test]
    fn single_piece_needs_no_buffer() {
        let mut r = Reassembler::new(FragmentKind::Otr);
        for id in 0..MAX_PENDING_MESSAGES as u32 {
            r.push(&frag(id, 1, 2, "a"), OURS, 0).unwrap();
        }
        assert_eq!(
            r.push(&frag(999, 1, 1, "whole"), OURS, 0),
            Ok(Some(String::from("whole")))
        );
        assert_eq!(r.pending(), MAX_PENDING_MESSAGES);
    }
}
