//! OTRv3 fragments with instance tags (Protocol-v3.html §"Fragmentation"):
//! `?OTR|sender|receiver,k,n,piece,`, fragmenting and the spec's one-message reassembly.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::instance_tag::InstanceTag;
use crate::wire::codec::DecodeError;

/// The prefix of an OTRv3 fragment.
pub const PREFIX: &str = "?OTR|";
/// The most bytes a reassembled message may reach (a generous bound on one encoded
/// message; beyond it the stored fragment is dropped).
pub const MAX_REASSEMBLED: usize = 1 << 20;

/// One parsed OTRv3 fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V3Fragment<'a> {
    /// The sender's instance tag.
    pub sender: InstanceTag,
    /// The receiver's instance tag (0: any).
    pub receiver: InstanceTag,
    /// `k`, 1-based.
    pub index: u16,
    /// `n`.
    pub total: u16,
    /// The piece (non-empty).
    pub piece: &'a str,
}

fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

fn dec_u16(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<'a> V3Fragment<'a> {
    /// Parses `?OTR|%x|%x,%hu,%hu,%s,` (the whole string). Rejects `k == 0`, `n == 0`,
    /// `k > n`, an empty piece, and instance tags the spec says to discard (sender below
    /// 0x100, receiver in 1..0x100).
    pub fn parse(s: &'a str) -> Result<V3Fragment<'a>, DecodeError> {
        let bad = DecodeError::BadFraming;
        let rest = s.strip_prefix(PREFIX).ok_or(bad("not an OTRv3 fragment"))?;
        let rest = rest
            .strip_suffix(',')
            .ok_or(bad("fragment does not end with ','"))?;
        let (sender, rest) = rest.split_once('|').ok_or(bad("fragment sender tag"))?;
        let mut parts = rest.splitn(4, ',');
        let receiver = parts.next().ok_or(bad("fragment receiver tag"))?;
        let k = parts.next().ok_or(bad("fragment index"))?;
        let n = parts.next().ok_or(bad("fragment count"))?;
        let piece = parts.next().ok_or(bad("fragment piece"))?;
        let sender = InstanceTag(hex_u32(sender).ok_or(bad("fragment sender tag"))?);
        let receiver = InstanceTag(hex_u32(receiver).ok_or(bad("fragment receiver tag"))?);
        if !sender.is_valid_sender() {
            return Err(DecodeError::BadInstanceTag(sender.0));
        }
        if !receiver.is_valid_receiver() {
            return Err(DecodeError::BadInstanceTag(receiver.0));
        }
        let index = dec_u16(k).ok_or(bad("fragment index"))?;
        let total = dec_u16(n).ok_or(bad("fragment count"))?;
        if index == 0 || total == 0 || index > total {
            return Err(bad("fragment index out of range"));
        }
        if piece.is_empty() || piece.contains(',') {
            return Err(bad("fragment piece"));
        }
        Ok(V3Fragment {
            sender,
            receiver,
            index,
            total,
            piece,
        })
    }

    /// The encoding, as libotr writes it (`%08x` tags, `%05hu` numbers).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{PREFIX}{:08x}|{:08x},{:05},{:05},{},",
            self.sender.0, self.receiver.0, self.index, self.total, self.piece
        );
        s
    }
}

/// Splits an encoded message into fragments of at most `max` characters each; `None` if
/// `max` leaves no room for a piece or more than 65535 fragments would be needed.
pub fn fragment(
    msg: &str,
    max: usize,
    sender: InstanceTag,
    receiver: InstanceTag,
) -> Option<Vec<String>> {
    if msg.len() <= max {
        return Some(alloc::vec![String::from(msg)]);
    }
    // "?OTR|" + 8 + "|" + 8 + "," + 5 + "," + 5 + "," + piece + ",".
    let overhead = PREFIX.len() + 8 + 1 + 8 + 1 + 5 + 1 + 5 + 1 + 1;
    let room = max.checked_sub(overhead).filter(|&r| r > 0)?;
    // The encoded message is ASCII (base64); split on bytes.
    if !msg.is_ascii() {
        return None;
    }
    let n = msg.len().div_ceil(room);
    let total = u16::try_from(n).ok()?;
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in msg.as_bytes().chunks(room).enumerate() {
        let piece = core::str::from_utf8(chunk).ok()?;
        let index = u16::try_from(i + 1).ok()?;
        out.push(
            V3Fragment {
                sender,
                receiver,
                index,
                total,
                piece,
            }
            .encode(),
        );
    }
    Some(out)
}

/// The spec's reassembly state `(K, N, F)` for one correspondent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reassembler {
    k: u16,
    n: u16,
    f: String,
}

impl Reassembler {
    /// Feeds one fragment addressed to `ours`; returns the whole message once complete.
    /// Follows Protocol-v3.html §"Receiving Fragments" step by step; a fragment for
    /// another instance is discarded without touching the stored one.
    pub fn push(&mut self, frag: &V3Fragment<'_>, ours: InstanceTag) -> Option<String> {
        if frag.receiver != InstanceTag(0) && frag.receiver != ours {
            return None;
        }
        if frag.index == 1 {
            self.f.clear();
            self.f.push_str(frag.piece);
            self.k = 1;
            self.n = frag.total;
        } else if frag.total == self.n && frag.index == self.k.wrapping_add(1) {
            self.f.push_str(frag.piece);
            self.k = frag.index;
        } else {
            self.reset();
        }
        if self.f.len() > MAX_REASSEMBLED {
            self.reset();
        }
        if self.n > 0 && self.k == self.n {
            let msg = core::mem::take(&mut self.f);
            self.reset();
            return Some(msg);
        }
        None
    }

    /// Forgets any stored fragment ("If you receive a non-OTR message, or an unfragmented
    /// message, forget any stored fragment").
    pub fn reset(&mut self) {
        self.k = 0;
        self.n = 0;
        self.f.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example (Protocol-v3.html §"Fragmentation"), reassembled.
    #[test]
    fn spec_example() {
        let frags = [
            "?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hbrL3KAbGDdzE2ZkMyTKl7XfkSxh8YJnudstiB74i4BzT0W2haClg6dMary/jo9sMudwmUdlnKpIGEKXWdvJKT+hQ26h9nzMgEditLB8v,",
            "?OTR|5a73a599|27e31597,00002,00003,jPEWAJ6gBXvZrY6ZQrx3gb4v0UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjScajVba6dqlDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAAAAAEAAAAHwNiIi5Ms+4PsY/L2i,",
            "?OTR|5a73a599|27e31597,00003,00003,pkTtquknfx6HodLvk3RAAAAAA==.,",
        ];
        let ours = InstanceTag(0x27e3_1597);
        let mut r = Reassembler::default();
        let mut out = None;
        for f in frags {
            let p = V3Fragment::parse(f).unwrap();
            assert_eq!(p.encode(), f);
            out = r.push(&p, ours);
        }
        let msg = out.unwrap();
        assert!(msg.starts_with("?OTR:AAMDJ+MV") && msg.ends_with("AAAAAA==."));
        // Out of order: dropped.
        let mut r = Reassembler::default();
        assert!(
            r.push(&V3Fragment::parse(frags[1]).unwrap(), ours)
                .is_none()
        );
        assert!(
            r.push(&V3Fragment::parse(frags[2]).unwrap(), ours)
                .is_none()
        );
        // Another instance's fragment is discarded.
        let mut r = Reassembler::default();
        assert!(
            r.push(&V3Fragment::parse(frags[0]).unwrap(), InstanceTag(0x100))
                .is_none()
        );
        assert_eq!(r, Reassembler::default());
    }

    #[test]
    fn fragment_and_reassemble() {
        let msg: String = core::iter::repeat_n('A', 1000).collect::<String>() + ".";
        let (s, rcv) = (InstanceTag(0x101), InstanceTag(0x202));
        let frags = fragment(&msg, 100, s, rcv).unwrap();
        assert!(frags.len() > 10 && frags.iter().all(|f| f.len() <= 100));
        let mut r = Reassembler::default();
        let got: Vec<String> = frags
            .iter()
            .filter_map(|f| r.push(&V3Fragment::parse(f).unwrap(), rcv))
            .collect();
        assert_eq!(got, core::slice::from_ref(&msg));
        assert_eq!(
            fragment(&msg, 2000, s, rcv).unwrap(),
            core::slice::from_ref(&msg)
        );
        assert!(fragment(&msg, 30, s, rcv).is_none());
    }

    #[test]
    fn rejects() {
        for bad in [
            "?OTR|101|0,1,0,x,",
            "?OTR|101|0,2,1,x,",
            "?OTR|101|0,0,1,x,",
            "?OTR|ff|0,1,1,x,",
            "?OTR|101|1,1,1,x,",
            "?OTR|101|0,1,1,,",
            "?OTR|101|0,1,1,x",
            "?OTR|1010101010|0,1,1,x,",
            "?OTR|101|0,1,99999,x,",
            "?OTR|zz|0,1,1,x,",
        ] {
            assert!(V3Fragment::parse(bad).is_err(), "{bad}");
        }
    }
}
