//! The XML stream bounded below tokio-xmpp (docs/xmpp-glue.md §8): every top-level stanza
//! is held until complete and reaches the XML parser only within the limits of [`crate::xml`].
//!
//! tokio-xmpp builds each stanza's tree recursively and in time quadratic in its depth, so
//! a deep stanza must never reach it. [`StanzaFilter`] is a byte-level scanner (lexical
//! states of XML 1.0 §2–3: tags, quoted attribute values, comments, CDATA, processing
//! instructions) that tracks the nesting depth across reads; a stanza over the size, depth
//! or element limit is dropped whole, so the parser sees a well-formed stream without it.
//! [`GuardedStartTls`] is tokio-xmpp's STARTTLS connector with the filter over the TLS
//! stream.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_xmpp::connect::starttls::starttls;
use tokio_xmpp::connect::tls_common::TlsStream;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::error::{Error, ProtocolError};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, PendingFeaturesRecv, StreamHeader, Timeouts, initiate_stream,
};

use crate::xml::{MAX_DEPTH, MAX_ELEMENTS, MAX_STANZA_BYTES};

/// Where the scanner is in the XML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data between tags.
    Text,
    /// Right after `<`.
    Lt,
    /// In a start tag: its name so far is being read (`name`), or its attributes.
    Open { quote: Option<u8>, prev: u8 },
    /// In an end tag.
    Close,
    /// In `<!…>` or `<?…?>`, until the terminator (`-->`, `]]>`, `?>` or `>`).
    Markup { end: &'static [u8], tail: [u8; 2] },
    /// After `<!`, deciding between a comment, CDATA and other markup.
    Bang,
}

/// Holds each top-level stanza of an XML stream until it is complete and passes it on only
/// within [`MAX_STANZA_BYTES`], [`MAX_DEPTH`] and [`MAX_ELEMENTS`]; everything else (the
/// stream header, whitespace keep-alives, the closing tag) passes unchanged.
#[derive(Debug)]
pub struct StanzaFilter {
    lex: Lex,
    /// Element depth in the stream; the stream root is depth 1, a stanza depth 2.
    depth: usize,
    /// The name of the start tag being read (only while it is short).
    name: Vec<u8>,
    /// Whether a top-level stanza is being held.
    holding: bool,
    /// Its bytes so far (empty once it is dropped).
    stanza: Vec<u8>,
    /// Whether it broke a limit: its bytes are discarded until it ends.
    dropping: bool,
    /// Elements in it so far.
    elements: usize,
    dropped: u64,
}

impl Default for StanzaFilter {
    fn default() -> StanzaFilter {
        StanzaFilter::new()
    }
}

impl StanzaFilter {
    /// A filter at the start of a stream.
    pub fn new() -> StanzaFilter {
        StanzaFilter {
            lex: Lex::Text,
            depth: 0,
            name: Vec::new(),
            holding: false,
            stanza: Vec::new(),
            dropping: false,
            elements: 0,
            dropped: 0,
        }
    }

    /// How many stanzas were dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Scans `input`, appending to `out` what may reach the parser now.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    fn keep(&mut self, b: u8, out: &mut Vec<u8>) {
        if !self.holding {
            out.push(b);
        } else if !self.dropping {
            self.stanza.push(b);
            if self.stanza.len() > MAX_STANZA_BYTES {
                self.drop_stanza();
            }
        }
    }

    fn drop_stanza(&mut self) {
        self.dropping = true;
        self.stanza = Vec::new();
    }

    /// The held stanza ended: pass it on, or count it dropped.
    fn end_stanza(&mut self, out: &mut Vec<u8>) {
        if self.dropping {
            self.dropped += 1;
        } else {
            out.append(&mut self.stanza);
        }
        self.stanza = Vec::new();
        self.holding = false;
        self.dropping = false;
        self.elements = 0;
    }

    /// Stops holding (what followed `<` at depth 1 was not a stanza): passes the held
    /// bytes on.
    fn release(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.stanza);
        self.holding = false;
        self.dropping = false;
        self.elements = 0;
    }

    fn close_element(&mut self, out: &mut Vec<u8>) {
        self.depth = self.depth.saturating_sub(1);
        if self.holding && self.depth <= 1 {
            self.end_stanza(out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    self.lex = Lex::Lt;
                    if self.depth == 1 && !self.holding {
                        // Perhaps a stanza: hold from its `<`.
                        self.holding = true;
                    }
                }
                self.keep(b, out);
            }
            Lex::Lt => match b {
                b'/' => {
                    self.lex = Lex::Close;
                    if self.holding && self.depth == 1 {
                        self.release(out); // the stream's end tag
                    }
                    self.keep(b, out);
                }
                b'!' => {
                    self.lex = Lex::Bang;
                    if self.holding && self.depth == 1 {
                        self.release(out);
                    }
                    self.keep(b, out);
                }
                b'?' => {
                    self.lex = Lex::Markup {
                        end: b"?>",
                        tail: [0; 2],
                    };
                    if self.holding && self.depth == 1 {
                        self.release(out);
                    }
                    self.keep(b, out);
                }
                _ => {
                    self.lex = Lex::Open {
                        quote: None,
                        prev: b,
                    };
                    self.name.clear();
                    self.name.push(b);
                    self.keep(b, out);
                }
            },
            Lex::Open { quote, prev } => {
                if !self.name.is_empty() {
                    if b.is_ascii_whitespace() || b == b'>' || b == b'/' {
                        self.start_tag(out);
                    } else {
                        self.name.push(b);
                        if self.name.len() > 64 {
                            self.start_tag(out);
                        }
                    }
                }
                match quote {
                    Some(q) if b == q => {
                        self.lex = Lex::Open {
                            quote: None,
                            prev: b,
                        };
                    }
                    Some(_) => self.lex = Lex::Open { quote, prev: b },
                    None if b == b'"' || b == b'\'' => {
                        self.lex = Lex::Open {
                            quote: Some(b),
                            prev: b,
                        };
                    }
                    None if b == b'>' => {
                        self.lex = Lex::Text;
                        self.keep(b, out);
                        if prev == b'/' {
                            self.close_element(out);
                        }
                        return;
                    }
                    None => {
                        self.lex = Lex::Open {
                            quote: None,
                            prev: b,
                        }
                    }
                }
                self.keep(b, out);
            }
            Lex::Close => {
                self.keep(b, out);
                if b == b'>' {
                    self.lex = Lex::Text;
                    self.close_element(out);
                }
            }
            Lex::Bang => {
                self.lex = match b {
                    b'-' => Lex::Markup {
                        end: b"-->",
                        tail: [0; 2],
                    },
                    b'[' => Lex::Markup {
                        end: b"]]>",
                        tail: [0; 2],
                    },
                    b'>' => Lex::Text,
                    _ => Lex::Markup {
                        end: b">",
                        tail: [0; 2],
                    },
                };
                self.keep(b, out);
            }
            Lex::Markup { end, tail } => {
                self.keep(b, out);
                let done = match end {
                    [last] => b == *last,
                    [a, last] => tail[1] == *a && b == *last,
                    [a, c, last] => tail[0] == *a && tail[1] == *c && b == *last,
                    _ => b == b'>',
                };
                self.lex = if done {
                    Lex::Text
                } else {
                    Lex::Markup {
                        end,
                        tail: [tail[1], b],
                    }
                };
            }
        }
    }

    /// The name of a start tag is known: a stream (re)start, or an element one deeper.
    fn start_tag(&mut self, out: &mut Vec<u8>) {
        let stream = self.depth <= 1
            && (self.name.as_slice() == b"stream" || self.name.ends_with(b":stream"));
        self.name.clear();
        if stream {
            // The stream header (again after STARTTLS or SASL): the root, depth 1.
            if self.holding {
                self.release(out);
            }
            self.depth = 1;
            return;
        }
        self.depth += 1;
        if self.holding {
            self.elements += 1;
            if self.depth > MAX_DEPTH + 1 || self.elements > MAX_ELEMENTS {
                self.drop_stanza();
            }
        }
    }
}

/// An I/O stream whose reads go through a [`StanzaFilter`]; writes pass unchanged.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    filter: StanzaFilter,
    ready: Vec<u8>,
    pos: usize,
    dropped: Arc<AtomicU64>,
}

impl<S> Guarded<S> {
    /// Wraps `inner`; every dropped stanza is counted in `dropped`.
    pub fn new(inner: S, dropped: Arc<AtomicU64>) -> Guarded<S> {
        Guarded {
            inner,
            filter: StanzaFilter::new(),
            ready: Vec::new(),
            pos: 0,
            dropped,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(rest) = this.ready.get(this.pos..).filter(|r| !r.is_empty()) {
                let n = rest.len().min(dst.remaining());
                if let Some(chunk) = rest.get(..n) {
                    dst.put_slice(chunk);
                }
                this.pos += n;
                if this.pos >= this.ready.len() {
                    this.ready.clear();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut buf = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            let before = this.filter.dropped();
            this.filter.feed(rb.filled(), &mut this.ready);
            let newly = this.filter.dropped() - before;
            if newly > 0 {
                this.dropped.fetch_add(newly, Ordering::Relaxed);
                tracing::warn!(
                    stanzas = newly,
                    "stanzas over the size, depth or element limit were dropped"
                );
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// tokio-xmpp's STARTTLS connector with a [`StanzaFilter`] over the TLS stream: no stanza
/// over the limits of [`crate::xml`] reaches tokio-xmpp's parser.
#[derive(Debug, Clone)]
pub struct GuardedStartTls {
    dns: DnsConfig,
    dropped: Arc<AtomicU64>,
}

/// The STARTTLS negotiation or the TLS handshake failed (for example the server's
/// certificate is not trusted): [`crate::client::ClientError::Tls`] says so at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsFailed(#[source] pub Error);

impl tokio_xmpp::connect::ServerConnectorError for TlsFailed {}

impl TlsFailed {
    /// Whether a connection attempt failed in TLS (this connector marks those).
    pub fn caused(e: &Error) -> bool {
        match e {
            Error::Connection(c) => {
                let c: &(dyn std::error::Error + 'static) = &**c;
                c.downcast_ref::<TlsFailed>().is_some()
            }
            _ => false,
        }
    }
}

impl GuardedStartTls {
    /// A connector for `dns`; dropped stanzas are counted in `dropped`.
    pub fn new(dns: DnsConfig, dropped: Arc<AtomicU64>) -> GuardedStartTls {
        GuardedStartTls { dns, dropped }
    }
}

impl ServerConnector for GuardedStartTls {
    type Stream = BufStream<Guarded<TlsStream<TcpStream>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        Error,
    > {
        let header = || StreamHeader {
            to: Some(Cow::Borrowed(jid.domain().as_str())),
            from: None,
            id: None,
        };
        let tcp = BufStream::new(self.dns.resolve().await?);
        let plain = initiate_stream(tcp, ns, header(), timeouts).await?;
        let (features, plain) = plain.recv_features::<FallibleStreamElement>().await?;
        if !features.can_starttls() {
            return Err(Error::Protocol(ProtocolError::NoTls));
        }
        let (tls, binding) = starttls(plain, jid.domain().as_str())
            .await
            .map_err(|e| Error::Connection(Box::new(TlsFailed(e))))?;
        let guarded = BufStream::new(Guarded::new(tls, self.dropped.clone()));
        Ok((
            initiate_stream(guarded, ns, header(), timeouts).await?,
            binding,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>";

    /// Feeds `input` in chunks of `chunk` bytes; returns what passed and the drop count.
    fn run(input: &str, chunk: usize) -> (String, u64) {
        let mut f = StanzaFilter::new();
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(chunk) {
            f.feed(c, &mut out);
        }
        (String::from_utf8(out).unwrap(), f.dropped())
    }

    fn deep(levels: usize) -> String {
        format!(
            "<message to='a@b'>{}{}</message>",
            "<a>".repeat(levels),
            "</a>".repeat(levels)
        )
    }

    #[test]
    fn ordinary_streams_pass_byte_for_byte_whatever_the_chunking() {
        let stream = format!(
            "{HEAD}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features> \
             <message from='b@c/d' to='a@b' type='chat'><body>1 &lt; 2 &amp;&amp; 3 > 2 'q' \"q\"</body>\
             <x a='&gt;/&apos;' b=\"'>'\"/><![CDATA[ <not-a-tag> ]]></message>\n\
             <presence/><iq type='result' id='1'><query xmlns='jabber:iq:roster'/></iq>\
             <?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <message><body>after a restart</body></message></stream:stream>"
        );
        for chunk in [1, 2, 3, 7, 64, 100_000] {
            assert_eq!(run(&stream, chunk), (stream.clone(), 0), "chunk {chunk}");
        }
    }

    #[test]
    fn a_stanza_is_held_until_it_ends() {
        let mut f = StanzaFilter::new();
        let mut out = Vec::new();
        f.feed(HEAD.as_bytes(), &mut out);
        let head = out.len();
        f.feed(b"<message><body>hel", &mut out);
        assert_eq!(out.len(), head, "half a stanza reached the parser");
        f.feed(b"lo</body></message>", &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("<message><body>hello</body></message>")
        );
    }

    #[test]
    fn too_deep_stanzas_are_dropped_whole_and_the_stream_goes_on() {
        // The stanza itself is depth 1 of MAX_DEPTH.
        let at_limit = deep(MAX_DEPTH - 1);
        let over = deep(MAX_DEPTH);
        let huge = deep(20_000);
        let next = "<presence/>";
        let stream = format!("{HEAD}{at_limit}{over}{huge}{next}</stream:stream>");
        for chunk in [1, 5, 4096] {
            let (out, dropped) = run(&stream, chunk);
            assert_eq!(dropped, 2, "chunk {chunk}");
            assert_eq!(out, format!("{HEAD}{at_limit}{next}</stream:stream>"));
        }
    }

    #[test]
    fn oversized_and_overfull_stanzas_are_dropped() {
        let body = "x".repeat(MAX_STANZA_BYTES);
        let big = format!("<message><body>{body}</body></message>");
        let many = format!("<iq>{}</iq>", "<x/>".repeat(MAX_ELEMENTS));
        let fine = format!("<iq>{}</iq>", "<x/>".repeat(MAX_ELEMENTS - 1));
        let stream = format!("{HEAD}{big}{many}{fine}");
        let (out, dropped) = run(&stream, 65_536);
        assert_eq!(dropped, 2);
        assert_eq!(out, format!("{HEAD}{fine}"));
    }

    /// A reader that hands out its bytes `chunk` at a time, answering `Pending` before
    /// every chunk (and waking its task at once, as a socket that becomes readable does).
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        pending: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            dst: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.pending {
                self.pending = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending = true;
            let end = (self.pos + self.chunk).min(self.data.len());
            let n = (end - self.pos).min(dst.remaining());
            dst.put_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Everything read through the guard (1-byte or larger reads by the caller) until it
    /// reports the end of the stream.
    async fn read_all(data: &str, chunk: usize, dst_len: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let inner = Trickle {
            data: data.as_bytes().to_vec(),
            pos: 0,
            chunk,
            pending: true,
        };
        let mut g = Guarded::new(inner, Arc::new(AtomicU64::new(0)));
        let mut out = Vec::new();
        let mut buf = vec![0u8; dst_len];
        loop {
            let n = g.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn the_guarded_reader_loses_nothing_across_pending_and_partial_reads() {
        // A stream header, many small stanzas (iq replies among them), one stanza held over
        // many reads, one dropped, then the stream's end.
        let mut stream = HEAD.to_owned();
        for i in 0..200 {
            stream.push_str(&format!(
                "<iq type='result' id='r{i}' from='a@b'><x xmlns='y'>{i}</x></iq> "
            ));
        }
        stream.push_str(&format!(
            "<message><body>{}</body></message>",
            "z".repeat(20_000)
        ));
        stream.push_str(&deep(MAX_DEPTH));
        stream.push_str("<presence/></stream:stream>");
        let expected = stream.replace(&deep(MAX_DEPTH), "");
        for (chunk, dst_len) in [
            (1, 1),
            (1, 4096),
            (3, 2),
            (7, 8192),
            (8192, 5),
            (100_000, 64),
        ] {
            let out = read_all(&stream, chunk, dst_len).await;
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunk {chunk}, reads of {dst_len}"
            );
        }
    }

    #[tokio::test]
    async fn a_stanza_cut_by_the_end_of_the_stream_is_not_passed_on() {
        use tokio::io::AsyncReadExt;
        let data = format!("{HEAD}<message><body>cut");
        let inner = Trickle {
            data: data.clone().into_bytes(),
            pos: 0,
            chunk: 4,
            pending: true,
        };
        let mut g = Guarded::new(inner, Arc::new(AtomicU64::new(0)));
        let mut out = Vec::new();
        g.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, HEAD.as_bytes());
    }

    #[test]
    fn quoted_gt_and_slash_do_not_confuse_depth() {
        let s = format!("{HEAD}<a x='/>' y=\"/>\"><b c='>'/></a><presence/>");
        assert_eq!(run(&s, 1), (s.clone(), 0));
    }
}
