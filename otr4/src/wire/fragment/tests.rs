//! Tests of fragment parsing, building and reassembly (the spec's example, every malformed
//! case, the limits of the reassembly buffer).

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
