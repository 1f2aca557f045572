//! The bounded reassembly buffer of otrv4.md §"Receiving Fragments" (and
//! otrv4-prekey-server.md §"Receiving Fragments"): [`Reassembler`] and its limits.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Fragment, FragmentError, FragmentKind};
use crate::InstanceTag;
use crate::debug::redacted_debug;
use crate::wire::codec::DecodeError;

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
