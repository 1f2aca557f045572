//! Incremental parsing of an XMPP stream into its header and top-level stanzas (rxml's
//! namespace-aware push parser), and stanza serialisation through `minidom`.
//!
//! Stanzas are bounded: a stanza larger than the limit (in bytes, or in elements) is reported
//! as [`StreamEvent::Oversized`] with its attributes only, its content is dropped while it
//! streams past. A single token (start tag with its attributes) larger than the limit is a
//! stream error: rxml buffers a start tag whole, so it is refused before it grows further.

use rxml::{Event, Parse, Parser};

/// XEP-0114's stream namespace.
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// The streams namespace.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// A parsed element: namespace, name, unqualified attributes, text and children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Elem {
    /// Namespace URI.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes without a namespace, in document order.
    pub attrs: Vec<(String, String)>,
    /// Concatenated text content.
    pub text: String,
    /// Child elements.
    pub children: Vec<Elem>,
}

impl Elem {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with `name` in `ns`.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name && c.ns == ns)
    }

    /// Whether this is `name` in `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }
}

/// What the stream parser produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer's `<stream:stream>` header (no children).
    Header(Elem),
    /// A complete top-level stanza.
    Stanza(Elem),
    /// A top-level stanza over the size limit: attributes only.
    Oversized(Elem),
    /// The peer closed the stream (`</stream:stream>`).
    End,
}

/// Why the stream is unusable.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed or namespace-invalid XML.
    #[error("XML error: {0}")]
    Parse(String),
    /// Building an outgoing element failed (invalid name).
    #[error("cannot build element: {0}")]
    Build(String),
    /// More than the stanza limit arrived without a complete XML event (e.g. one start tag
    /// with endless attributes).
    #[error("more than {0} bytes without a complete XML token")]
    TokenTooLarge(usize),
}

/// The least number of bytes accepted without a complete XML event (rxml's text chunks and
/// names are up to 8 KiB).
const MIN_TOKEN_BOUND: usize = 16 * 1024;

/// Most elements kept for one stanza (real prekey stanzas have a handful); past it the
/// stanza is treated as oversized, so a stanza of many tiny elements cannot amplify into a
/// large tree.
pub const MAX_STANZA_ELEMENTS: usize = 256;

/// Incremental stream parser: feed bytes as they arrive.
pub struct StreamParser {
    parser: Parser,
    stack: Vec<Elem>,
    in_stream: bool,
    max_stanza_bytes: usize,
    stanza_bytes: usize,
    /// Elements in the stanza being read.
    stanza_elements: usize,
    oversized: bool,
    /// While oversized: the depth below the kept top element (nothing else is kept).
    skip_depth: usize,
    /// Bytes consumed since the last event.
    unreported: usize,
}

impl std::fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParser")
            .field("depth", &self.stack.len())
            .field("in_stream", &self.in_stream)
            .finish_non_exhaustive()
    }
}

fn to_elem(qname: &rxml::QName, attrs: &rxml::AttrMap) -> Elem {
    Elem {
        ns: qname.0.as_str().to_owned(),
        name: qname.1.as_str().to_owned(),
        attrs: attrs
            .iter()
            .filter(|((ns, _), _)| ns.is_empty())
            .map(|((_, n), v)| (n.as_str().to_owned(), v.clone()))
            .collect(),
        text: String::new(),
        children: Vec::new(),
    }
}

impl StreamParser {
    /// A parser reporting stanzas over `max_stanza_bytes` as [`StreamEvent::Oversized`].
    pub fn new(max_stanza_bytes: usize) -> StreamParser {
        StreamParser {
            parser: Parser::new(),
            stack: Vec::new(),
            in_stream: false,
            max_stanza_bytes,
            stanza_bytes: 0,
            stanza_elements: 0,
            oversized: false,
            skip_depth: 0,
            unreported: 0,
        }
    }

    /// Elements held for the stanza being read (its open elements).
    pub fn depth(&self) -> usize {
        self.stack.len() + self.skip_depth
    }

    /// Parses `data` (any split of the stream) and returns the complete events.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut out = Vec::new();
        loop {
            let before = data.len();
            let r = self.parser.parse(&mut data, false);
            self.unreported = self.unreported.saturating_add(before - data.len());
            match r {
                Ok(Some(ev)) => {
                    let used = std::mem::take(&mut self.unreported);
                    self.event(ev, used, &mut out);
                }
                Ok(None) => {
                    out.push(StreamEvent::End);
                    return Ok(out);
                }
                Err(rxml::error::EndOrError::NeedMoreData) => {
                    // rxml emits text in chunks of up to 8 KiB: a limit below that would
                    // refuse ordinary text, so the bound is at least MIN_TOKEN_BOUND.
                    let bound = self.max_stanza_bytes.max(MIN_TOKEN_BOUND);
                    if self.unreported > bound {
                        return Err(XmlError::TokenTooLarge(bound));
                    }
                    return Ok(out);
                }
                Err(rxml::error::EndOrError::Error(e)) => {
                    return Err(XmlError::Parse(e.to_string()));
                }
            }
        }
    }

    fn event(&mut self, ev: Event, used: usize, out: &mut Vec<StreamEvent>) {
        if !self.stack.is_empty() {
            self.stanza_bytes = self.stanza_bytes.saturating_add(used);
            if matches!(ev, Event::StartElement(..)) {
                self.stanza_elements = self.stanza_elements.saturating_add(1);
            }
            if (self.stanza_bytes > self.max_stanza_bytes
                || self.stanza_elements > MAX_STANZA_ELEMENTS)
                && !self.oversized
            {
                self.oversized = true;
                // Keep the stanza's own element (for its attributes) and count the depth
                // below it; drop the content.
                self.skip_depth = self.stack.len().saturating_sub(1);
                self.stack.truncate(1);
                if let Some(top) = self.stack.first_mut() {
                    top.children.clear();
                    top.text.clear();
                }
            }
        }
        match ev {
            Event::XmlDeclaration(..) => {}
            Event::StartElement(_, qname, attrs) => {
                if !self.in_stream {
                    self.in_stream = true;
                    out.push(StreamEvent::Header(to_elem(&qname, &attrs)));
                } else if self.oversized {
                    // Depth tracking only.
                    self.skip_depth = self.skip_depth.saturating_add(1);
                } else {
                    if self.stack.is_empty() {
                        self.stanza_bytes = used;
                        self.stanza_elements = 1;
                    }
                    self.stack.push(to_elem(&qname, &attrs));
                }
            }
            Event::EndElement(_) => {
                if self.oversized && self.skip_depth > 0 {
                    self.skip_depth -= 1;
                    return;
                }
                let Some(done) = self.stack.pop() else {
                    // The stream's own end tag.
                    out.push(StreamEvent::End);
                    return;
                };
                if self.stack.is_empty() {
                    if self.oversized {
                        self.oversized = false;
                        out.push(StreamEvent::Oversized(done));
                    } else {
                        out.push(StreamEvent::Stanza(done));
                    }
                    self.stanza_bytes = 0;
                    self.stanza_elements = 0;
                } else if !self.oversized
                    && let Some(parent) = self.stack.last_mut()
                {
                    parent.children.push(done);
                }
            }
            Event::Text(_, text) => {
                if !self.oversized
                    && let Some(top) = self.stack.last_mut()
                {
                    top.text.push_str(text.as_str());
                }
            }
        }
    }
}

/// Builds `<name xmlns=ns attrs…>` with minidom.
pub fn element(name: &str, ns: &str, attrs: &[(&str, &str)]) -> Result<minidom::Element, XmlError> {
    let mut b = minidom::Element::builder(name, ns);
    for (k, v) in attrs {
        let n = rxml::NcName::try_from(*k).map_err(|e| XmlError::Build(e.to_string()))?;
        b = b.attr(n, *v);
    }
    Ok(b.build())
}

/// Serialises a stanza; the top element carries its namespace explicitly (for a
/// component, `xmlns='jabber:component:accept'`).
pub fn to_string(e: &minidom::Element) -> Result<String, XmlError> {
    let mut buf = Vec::new();
    e.write_to(&mut buf)
        .map_err(|e| XmlError::Build(e.to_string()))?;
    String::from_utf8(buf).map_err(|e| XmlError::Build(e.to_string()))
}

/// Escapes text for an attribute value or character data.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='prekey.localhost' id='abc123'>";

    #[test]
    fn header_stanzas_and_end_in_any_split() {
        let doc = format!(
            "{HEADER}<handshake/><message from='a@b/c' to='prekey.localhost' id='1'><body>AAQ1&amp;.</body><x xmlns='urn:x'/></message><iq type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq></stream:stream>"
        );
        for split in [1usize, 3, 7, 64, doc.len()] {
            let mut p = StreamParser::new(10_000);
            let mut evs = Vec::new();
            for chunk in doc.as_bytes().chunks(split) {
                evs.extend(p.feed(chunk).unwrap());
            }
            assert_eq!(evs.len(), 5, "split {split}: {evs:?}");
            let StreamEvent::Header(h) = &evs[0] else {
                panic!()
            };
            assert!(h.is("stream", NS_STREAMS));
            assert_eq!(h.attr("id"), Some("abc123"));
            let StreamEvent::Stanza(hs) = &evs[1] else {
                panic!()
            };
            assert!(hs.is("handshake", NS_COMPONENT));
            let StreamEvent::Stanza(m) = &evs[2] else {
                panic!()
            };
            assert!(m.is("message", NS_COMPONENT));
            assert_eq!(m.attr("from"), Some("a@b/c"));
            assert_eq!(m.child("body", NS_COMPONENT).unwrap().text, "AAQ1&.");
            assert!(m.child("x", "urn:x").is_some());
            let StreamEvent::Stanza(iq) = &evs[3] else {
                panic!()
            };
            assert!(
                iq.child("query", "http://jabber.org/protocol/disco#info")
                    .is_some()
            );
            assert_eq!(evs[4], StreamEvent::End);
        }
    }

    #[test]
    fn oversized_stanza_reported_and_stream_continues() {
        let big = "A".repeat(5000);
        let doc = format!(
            "{HEADER}<message from='a@b/c' id='big'><body>{big}</body></message><message from='d@e' id='small'><body>x</body></message>"
        );
        let mut p = StreamParser::new(1000);
        let evs = p.feed(doc.as_bytes()).unwrap();
        assert_eq!(evs.len(), 3, "{evs:?}");
        let StreamEvent::Oversized(o) = &evs[1] else {
            panic!("{:?}", evs[1])
        };
        assert_eq!(o.attr("id"), Some("big"));
        assert!(o.children.is_empty());
        let StreamEvent::Stanza(s) = &evs[2] else {
            panic!()
        };
        assert_eq!(s.attr("id"), Some("small"));
    }

    #[test]
    fn deep_nesting_in_an_oversized_stanza_holds_no_elements() {
        let mut p = StreamParser::new(1000);
        p.feed(format!("{HEADER}<message from='a@b' id='deep'>").as_bytes())
            .unwrap();
        let mut max_stack = 0;
        for _ in 0..20_000 {
            assert!(p.feed(b"<a>").unwrap().is_empty());
            max_stack = max_stack.max(p.stack.len());
        }
        assert!(max_stack <= 256, "elements held: {max_stack}");
        assert_eq!(p.depth(), 20_001);
        for _ in 0..20_000 {
            p.feed(b"</a>").unwrap();
        }
        let evs = p
            .feed(b"</message><message id='next'><body>x</body></message>")
            .unwrap();
        assert!(matches!(&evs[0], StreamEvent::Oversized(o) if o.attr("id") == Some("deep")));
        assert!(matches!(&evs[1], StreamEvent::Stanza(s) if s.attr("id") == Some("next")));
    }

    #[test]
    fn many_small_elements_make_a_stanza_oversized() {
        let kids = "<a/>".repeat(MAX_STANZA_ELEMENTS + 1);
        let doc = format!("{HEADER}<message id='wide'>{kids}</message>");
        let mut p = StreamParser::new(1 << 20);
        let evs = p.feed(doc.as_bytes()).unwrap();
        assert!(matches!(&evs[1], StreamEvent::Oversized(o) if o.attr("id") == Some("wide")));
    }

    #[test]
    fn endless_start_tag_is_refused_while_reading() {
        let mut p = StreamParser::new(64 * 1024);
        p.feed(format!("{HEADER}<message").as_bytes()).unwrap();
        let mut fed = 0usize;
        let err = loop {
            let attr = format!(" a{fed}='{}'", "v".repeat(100));
            fed += attr.len();
            match p.feed(attr.as_bytes()) {
                Ok(evs) => assert!(evs.is_empty()),
                Err(e) => break e,
            }
            assert!(fed < 1 << 20, "still buffering after {fed} bytes");
        };
        assert!(matches!(err, XmlError::TokenTooLarge(_)), "{err}");
        assert!(fed <= 64 * 1024 + 200);
    }

    #[test]
    fn malformed_xml_is_an_error() {
        let mut p = StreamParser::new(1000);
        assert!(p.feed(format!("{HEADER}<a></b>").as_bytes()).is_err());
        let mut p = StreamParser::new(1000);
        assert!(
            p.feed(b"<stream:stream xmlns='x'>").is_err(),
            "undeclared prefix"
        );
    }

    #[test]
    fn serialised_stanza_names_its_namespace() {
        let mut m = element(
            "message",
            NS_COMPONENT,
            &[("from", "prekey.localhost"), ("to", "a@b/c'<")],
        )
        .unwrap();
        let mut body = element("body", NS_COMPONENT, &[]).unwrap();
        body.append_text("AAQ2&.");
        m.append_child(body);
        let s = to_string(&m).unwrap();
        assert!(
            s.starts_with("<message xmlns=\"jabber:component:accept\"")
                || s.starts_with("<message xmlns='jabber:component:accept'"),
            "{s}"
        );
        assert!(s.contains("AAQ2&amp;."));
        assert!(!s.contains("'<"));
        // And it parses back inside a stream.
        let mut p = StreamParser::new(10_000);
        let evs = p.feed(format!("{HEADER}{s}").as_bytes()).unwrap();
        let StreamEvent::Stanza(back) = &evs[1] else {
            panic!()
        };
        assert_eq!(back.attr("to"), Some("a@b/c'<"));
        assert_eq!(back.child("body", NS_COMPONENT).unwrap().text, "AAQ2&.");
    }
}
