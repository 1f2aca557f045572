//! Query messages and whitespace tags (otrv4.md §"Query Messages", §"Whitespace Tags"):
//! the two ways a sender advertises the OTR versions it is willing to use.
//!
//! Only versions 3 and 4 are meaningful here; other version identifiers are accepted
//! syntactically and ignored.

use crate::debug::redacted_debug;
use alloc::borrow::Cow;
use alloc::string::String;

use crate::wire::codec::DecodeError;

/// A set of offered OTR protocol versions (otrv4.md §"Query Messages").
///
/// Only versions 3 and 4 are represented; identifiers of other versions are ignored
/// when parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Versions(u8);

impl Versions {
    /// No version.
    pub const EMPTY: Versions = Versions(0);
    /// OTR version 3 only.
    pub const V3: Versions = Versions(0b01);
    /// OTR version 4 only.
    pub const V4: Versions = Versions(0b10);
    /// OTR versions 3 and 4.
    pub const V3_AND_V4: Versions = Versions(0b11);

    /// Whether no (meaningful) version is offered.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every version of `other` is in `self`.
    pub fn contains(self, other: Versions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether version 3 is offered.
    pub fn has_v3(self) -> bool {
        self.contains(Versions::V3)
    }

    /// Whether version 4 is offered.
    pub fn has_v4(self) -> bool {
        self.contains(Versions::V4)
    }

    /// The versions in either set.
    pub fn union(self, other: Versions) -> Versions {
        Versions(self.0 | other.0)
    }

    /// The versions in both sets (e.g. offered ∩ allowed by policy).
    pub fn intersection(self, other: Versions) -> Versions {
        Versions(self.0 & other.0)
    }

    /// The version for one query-message identifier character (`'3'`, `'4'`), or
    /// [`Versions::EMPTY`] for any other character.
    pub fn from_identifier(c: char) -> Versions {
        match c {
            '3' => Versions::V3,
            '4' => Versions::V4,
            _ => Versions::EMPTY,
        }
    }
}

redacted_debug!(Versions(|v| format_args!(
    "{}{}",
    if v.has_v3() { "3" } else { "" },
    if v.has_v4() { "4" } else { "" }
)));

/// The string that starts a query message (otrv4.md §"Query Messages").
pub const QUERY_PREFIX: &str = "?OTRv";

/// Builds the query message `?OTRv<ids>?` for `versions`, identifiers in ascending
/// order (otrv4.md §"Query Messages"). An empty set gives the "bizarre" `?OTRv?`.
pub fn build_query(versions: Versions) -> String {
    let mut s = String::with_capacity(QUERY_PREFIX.len() + 3);
    s.push_str(QUERY_PREFIX);
    if versions.has_v3() {
        s.push('3');
    }
    if versions.has_v4() {
        s.push('4');
    }
    s.push('?');
    s
}

/// Builds a query message followed by a space and an explanatory text (which should
/// not reveal anything about the participants; otrv4.md §"Query Messages").
#[cfg(feature = "hazmat")]
pub fn build_query_with_text(versions: Versions, explanation: &str) -> String {
    let mut s = build_query(versions);
    if !explanation.is_empty() {
        s.push(' ');
        s.push_str(explanation);
    }
    s
}

/// Finds and parses the query message in `text` (otrv4.md §"Query Messages": "a message
/// containing the string ?OTRv").
///
/// Returns `Ok(None)` if `text` does not contain `?OTRv`. Only the first occurrence is
/// considered. The version identifiers are the characters between `?OTRv` and the next
/// `?`; each must be a printable, non-space ASCII character. Duplicates are accepted.
/// The query is syntactically invalid (`Err(BadFraming)`, the receiver must not reply) if
/// - there is no closing `?`,
/// - an identifier is whitespace, a control character or non-ASCII,
/// - the closing `?` is immediately followed by another `?` or an ASCII letter or digit,
///   which would continue the version list (the spec's example `?OTRv?4?`).
pub fn parse_query(text: &str) -> Result<Option<Versions>, DecodeError> {
    let Some(pos) = text.find(QUERY_PREFIX) else {
        return Ok(None);
    };
    // The prefix is ASCII, so `pos + len` is a char boundary.
    let rest = text.get(pos + QUERY_PREFIX.len()..).unwrap_or("");
    let Some((ids, after)) = rest.split_once('?') else {
        return Err(DecodeError::BadFraming("query message without closing '?'"));
    };
    let mut versions = Versions::EMPTY;
    for c in ids.chars() {
        if !c.is_ascii_graphic() {
            return Err(DecodeError::BadFraming(
                "query message version identifier is not printable ASCII",
            ));
        }
        versions = versions.union(Versions::from_identifier(c));
    }
    if after
        .chars()
        .next()
        .is_some_and(|c| c == '?' || c.is_ascii_alphanumeric())
    {
        return Err(DecodeError::BadFraming(
            "query message version list continues after '?'",
        ));
    }
    Ok(Some(versions))
}

/// The 16 bytes that start every whitespace tag (otrv4.md §"Whitespace Tags").
pub const WHITESPACE_TAG_BASE: &str =
    "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20";
/// The 8-byte whitespace tag of OTR version 3 (otrv4.md §"Whitespace Tags").
pub const WHITESPACE_TAG_V3: &str = "\x20\x20\x09\x09\x20\x20\x09\x09";
/// The 8-byte whitespace tag of OTR version 4 (otrv4.md §"Whitespace Tags").
pub const WHITESPACE_TAG_V4: &str = "\x20\x20\x09\x09\x20\x09\x20\x20";
/// The version 1 and 2 tags of the OTRv3 specification: recognised (and stripped) after
/// a base tag, but they offer nothing to this crate.
const WHITESPACE_TAG_V1: &str = "\x20\x09\x20\x09\x20\x20\x09\x20";
const WHITESPACE_TAG_V2: &str = "\x20\x20\x09\x09\x20\x20\x09\x20";

/// The whitespace tag for `versions` (base tag, then the v3 and v4 tags), or `None` if
/// `versions` is empty (a tag carries "one or more" version tags; otrv4.md
/// §"Whitespace Tags").
pub fn whitespace_tag(versions: Versions) -> Option<String> {
    if versions.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(WHITESPACE_TAG_BASE.len() + 16);
    s.push_str(WHITESPACE_TAG_BASE);
    if versions.has_v3() {
        s.push_str(WHITESPACE_TAG_V3);
    }
    if versions.has_v4() {
        s.push_str(WHITESPACE_TAG_V4);
    }
    Some(s)
}

/// Appends the whitespace tag for `versions` to `text` (otrv4.md §"Whitespace Tags":
/// the tag may occur anywhere). With an empty `versions`, `text` is returned unchanged.
pub fn tag_message(text: &str, versions: Versions) -> String {
    let mut s = String::from(text);
    if let Some(tag) = whitespace_tag(versions) {
        s.push_str(&tag);
    }
    s
}

/// Finds the first whitespace tag in `text` (otrv4.md §"Whitespace Tags": "only the
/// first one should be considered as valid").
///
/// Returns the text with that tag (the base and the version tags directly following it)
/// removed, and the versions it offers; `None` if `text` has no base tag. Version tags
/// of versions 1 and 2 are stripped but ignored; a base tag followed by no known version
/// tag yields an empty set. Later tags are left in the text.
pub fn find_whitespace_tag(text: &str) -> (Cow<'_, str>, Option<Versions>) {
    let Some(start) = text.find(WHITESPACE_TAG_BASE) else {
        return (Cow::Borrowed(text), None);
    };
    // All tag bytes are ASCII, so every offset used below is a char boundary.
    let before = text.get(..start).unwrap_or("");
    let mut rest = text.get(start + WHITESPACE_TAG_BASE.len()..).unwrap_or("");
    let mut versions = Versions::EMPTY;
    loop {
        let found = [
            (WHITESPACE_TAG_V1, Versions::EMPTY),
            (WHITESPACE_TAG_V2, Versions::EMPTY),
            (WHITESPACE_TAG_V3, Versions::V3),
            (WHITESPACE_TAG_V4, Versions::V4),
        ]
        .into_iter()
        .find_map(|(tag, v)| rest.strip_prefix(tag).map(|r| (r, v)));
        match found {
            Some((r, v)) => {
                rest = r;
                versions = versions.union(v);
            }
            None => break,
        }
    }
    let mut out = String::with_capacity(before.len() + rest.len());
    out.push_str(before);
    out.push_str(rest);
    (Cow::Owned(out), Some(versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_build_and_parse_round_trip() {
        for v in [
            Versions::EMPTY,
            Versions::V3,
            Versions::V4,
            Versions::V3_AND_V4,
        ] {
            let q = build_query(v);
            assert_eq!(parse_query(&q), Ok(Some(v)));
            let q = build_query_with_text(
                v,
                "Your buddy has requested an Off-the-Record private conversation.",
            );
            assert_eq!(parse_query(&q), Ok(Some(v)));
        }
        assert_eq!(build_query(Versions::V3_AND_V4), "?OTRv34?");
        assert_eq!(build_query(Versions::EMPTY), "?OTRv?");
    }

    #[test]
    fn query_spec_examples() {
        assert_eq!(parse_query("?OTRv3?"), Ok(Some(Versions::V3)));
        assert_eq!(parse_query("?OTRv45x?"), Ok(Some(Versions::V4)));
        assert_eq!(parse_query("?OTRv?"), Ok(Some(Versions::EMPTY)));
        assert_eq!(
            parse_query("?OTRv?4?"),
            Err(DecodeError::BadFraming(
                "query message version list continues after '?'"
            ))
        );
    }

    #[test]
    fn query_anywhere_in_message_and_order_duplicates() {
        assert_eq!(
            parse_query("hello <b>?OTRv43?</b> there"),
            Ok(Some(Versions::V3_AND_V4))
        );
        assert_eq!(parse_query("?OTRv443?\n"), Ok(Some(Versions::V3_AND_V4)));
        assert_eq!(parse_query("?OTRv4?\" title"), Ok(Some(Versions::V4)));
        assert_eq!(parse_query("no query here ?OTR:AAQD"), Ok(None));
        assert_eq!(parse_query("?OTR?v2?"), Ok(None));
    }

    #[test]
    fn query_malformed() {
        assert_eq!(
            parse_query("?OTRv34"),
            Err(DecodeError::BadFraming("query message without closing '?'"))
        );
        assert_eq!(
            parse_query("do you know ?OTRv is a thing?"),
            Err(DecodeError::BadFraming(
                "query message version identifier is not printable ASCII"
            ))
        );
        assert_eq!(
            parse_query("?OTRv4é?"),
            Err(DecodeError::BadFraming(
                "query message version identifier is not printable ASCII"
            ))
        );
        assert!(parse_query("?OTRv4??").is_err());
        assert!(parse_query("?OTRv4?x").is_err());
    }

    #[test]
    fn whitespace_tag_build_and_find() {
        let tagged = tag_message("hi there", Versions::V3_AND_V4);
        assert_eq!(tagged.len(), 8 + 16 + 16);
        let (text, v) = find_whitespace_tag(&tagged);
        assert_eq!(text, "hi there");
        assert_eq!(v, Some(Versions::V3_AND_V4));

        let t = alloc::format!("a{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V4}b");
        let (text, v) = find_whitespace_tag(&t);
        assert_eq!((text.as_ref(), v), ("ab", Some(Versions::V4)));

        assert_eq!(whitespace_tag(Versions::EMPTY), None);
        assert_eq!(tag_message("x", Versions::EMPTY), "x");
    }

    #[test]
    fn whitespace_tag_edge_cases() {
        let (text, v) = find_whitespace_tag("plain text");
        assert!(matches!(text, Cow::Borrowed("plain text")));
        assert_eq!(v, None);

        // Base tag alone: recognised, no versions.
        let t = alloc::format!("{WHITESPACE_TAG_BASE}x");
        assert_eq!(
            find_whitespace_tag(&t),
            (Cow::Owned(String::from("x")), Some(Versions::EMPTY))
        );

        // v2 tag is stripped but offers nothing; v3 after it counts.
        let t = alloc::format!("{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V2}{WHITESPACE_TAG_V3}!");
        assert_eq!(
            find_whitespace_tag(&t),
            (Cow::Owned(String::from("!")), Some(Versions::V3))
        );

        // Only the first tag is considered and stripped.
        let t = alloc::format!(
            "{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V3}x{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V4}"
        );
        let (text, v) = find_whitespace_tag(&t);
        assert_eq!(v, Some(Versions::V3));
        assert_eq!(
            text,
            alloc::format!("x{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V4}")
        );

        // Non-ASCII text around the tag survives.
        let t = alloc::format!("é{WHITESPACE_TAG_BASE}{WHITESPACE_TAG_V4}ü");
        assert_eq!(find_whitespace_tag(&t).0, "éü");
    }

    #[test]
    fn versions_set_operations() {
        assert!(Versions::V3_AND_V4.contains(Versions::V4));
        assert!(!Versions::V3.contains(Versions::V4));
        assert_eq!(Versions::V3.union(Versions::V4), Versions::V3_AND_V4);
        assert_eq!(Versions::V3_AND_V4.intersection(Versions::V4), Versions::V4);
        assert!(Versions::EMPTY.is_empty());
        assert_eq!(alloc::format!("{:?}", Versions::V3_AND_V4), "Versions(34)");
    }
}
