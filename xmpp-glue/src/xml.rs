//! Bounded XML (docs/xmpp-glue.md §8): stanza size, nesting depth and element count are
//! checked by a streaming scan before any tree is built, so no input can exhaust the stack.
//!
//! minidom builds and drops trees recursively (one stack frame chain per nesting level), so
//! a stanza is parsed into an [`Element`] only after [`scan`] has bounded its depth.
//! [`check_tree`] applies the same limits, without recursion, to a tree that another XML
//! stack (tokio-xmpp) already built.

use minidom::Element;
use minidom::rxml::{self, Event};

/// Largest stanza accepted, in bytes (Prosody's default s2s limit is 512 KiB; a maximal
/// OTRv4 multicast carries 64 payloads, far less).
pub const MAX_STANZA_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted, the stanza itself being depth 1 (the deepest stanza of the
/// protocol, a MAM result carrying a message with its payload, is 6 deep).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one stanza (a disco#items result of a large domain fits).
pub const MAX_ELEMENTS: usize = 10_000;

/// Why a stanza was refused before it was processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// More than [`MAX_STANZA_BYTES`].
    #[error("stanza of {0} bytes is over the {MAX_STANZA_BYTES}-byte limit")]
    TooLarge(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("stanza nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("stanza with more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// Not one well-formed, namespace-valid element.
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Checks `xml` (one stanza) against the limits with a streaming parser, building nothing.
pub fn scan(xml: &str) -> Result<(), XmlError> {
    if xml.len() > MAX_STANZA_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    let mut reader = rxml::Reader::new(xml.as_bytes());
    let (mut depth, mut elements, mut roots) = (0usize, 0usize, 0usize);
    loop {
        match reader.read() {
            Ok(Some(Event::StartElement(..))) => {
                depth += 1;
                elements += 1;
                if depth == 1 {
                    roots += 1;
                }
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
            }
            Ok(Some(Event::EndElement(_))) => depth = depth.saturating_sub(1),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(XmlError::Malformed(e.to_string())),
        }
    }
    if roots != 1 || depth != 0 {
        return Err(XmlError::Malformed("not exactly one element".to_owned()));
    }
    Ok(())
}

/// Parses one stanza after the streaming `scan` accepted it.
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    scan(xml)?;
    xml.parse::<Element>()
        .map_err(|e| XmlError::Malformed(e.to_string()))
}

/// Checks a tree built elsewhere against [`MAX_DEPTH`] and [`MAX_ELEMENTS`], iteratively.
pub fn check_tree(root: &Element) -> Result<(), XmlError> {
    let mut stack: Vec<(&Element, usize)> = vec![(root, 1)];
    let mut elements = 0usize;
    while let Some((e, depth)) = stack.pop() {
        elements += 1;
        if depth > MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        if elements > MAX_ELEMENTS {
            return Err(XmlError::TooManyElements);
        }
        stack.extend(e.children().map(|c| (c, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        let mut s = String::from("<message xmlns='jabber:client'>");
        for _ in 1..depth {
            s.push_str("<a>");
        }
        for _ in 1..depth {
            s.push_str("</a>");
        }
        s.push_str("</message>");
        s
    }

    #[test]
    fn depth_at_the_limit_parses_and_one_more_is_refused() {
        let ok = parse(&nested(MAX_DEPTH)).map(|e| check_tree(&e));
        assert_eq!(ok, Ok(Ok(())));
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), Err(XmlError::TooDeep));
    }

    #[test]
    fn twenty_thousand_levels_are_refused_without_building_a_tree() {
        // 20 000 levels (≈ 140 KB): minidom would recurse 20 000 deep to drop it.
        let xml = nested(20_000);
        assert!(xml.len() < 200_000);
        assert_eq!(scan(&xml), Err(XmlError::TooDeep));
    }

    #[test]
    fn element_count_at_the_limit_and_past_it() {
        let body = |n: usize| {
            let mut s = String::from("<iq xmlns='jabber:client'>");
            for _ in 1..n {
                s.push_str("<x/>");
            }
            s.push_str("</iq>");
            s
        };
        assert!(parse(&body(MAX_ELEMENTS)).is_ok());
        assert_eq!(
            parse(&body(MAX_ELEMENTS + 1)),
            Err(XmlError::TooManyElements)
        );
    }

    #[test]
    fn size_at_the_limit_and_past_it() {
        let open = "<message xmlns='jabber:client'><body>";
        let close = "</body></message>";
        let fill = MAX_STANZA_BYTES - open.len() - close.len();
        let xml = format!("{open}{}{close}", "x".repeat(fill));
        assert_eq!(xml.len(), MAX_STANZA_BYTES);
        assert!(parse(&xml).is_ok());
        let over = format!("{open}{}{close}", "x".repeat(fill + 1));
        assert_eq!(parse(&over), Err(XmlError::TooLarge(MAX_STANZA_BYTES + 1)));
    }

    #[test]
    fn check_tree_refuses_a_deep_tree_built_elsewhere() {
        let mut e = Element::bare("a", "urn:x");
        for _ in 0..MAX_DEPTH {
            let mut p = Element::bare("a", "urn:x");
            p.append_child(e);
            e = p;
        }
        assert_eq!(check_tree(&e), Err(XmlError::TooDeep));
    }

    #[test]
    fn malformed_and_multiple_roots_are_errors_not_panics() {
        for bad in [
            "",
            "<a",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<a xmlns='x'><b></a>",
        ] {
            assert!(matches!(parse(bad), Err(XmlError::Malformed(_))), "{bad}");
            assert!(matches!(scan(bad), Err(XmlError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn check_tree_counts_elements_at_the_limit_and_past_it() {
        let flat = |n: usize| {
            let mut root = Element::bare("iq", "jabber:client");
            for _ in 1..n {
                root.append_child(Element::bare("x", "urn:x"));
            }
            root
        };
        assert_eq!(check_tree(&flat(MAX_ELEMENTS)), Ok(()));
        assert_eq!(
            check_tree(&flat(MAX_ELEMENTS + 1)),
            Err(XmlError::TooManyElements)
        );
    }
}
