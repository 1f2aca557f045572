//! The XEP-0114 external component transport, written directly over tokio TCP: the stream
//! is opened in `jabber:component:accept`, authenticated with `<handshake>` (lowercase hex
//! SHA-1 of stream id + secret), then stanzas flow, each written with its namespace.
//!
//! Prekey messages travel in `<message>` bodies and the server answers service discovery
//! (otrv4-prekey-server.md §"A Prekey Server for OTRv4 over XMPP"). tokio-xmpp's
//! `component` feature is deliberately not used: it would switch xmpp-parsers' default
//! namespace for the whole build (see docs/prekey-server.md).

use super::xml::{Elem, NS_COMPONENT, NS_STREAMS, StreamEvent, StreamParser, XmlError, element};
use crate::service::Service;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use zeroize::Zeroizing;

/// XEP-0030 disco#info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items namespace.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// The prekey server's feature (otrv4-prekey-server.md §"Discovering a Prekey Server").
pub const FEATURE_PREKEY_SERVER: &str = "http://jabber.org/protocol/otrv4-prekey-server";
/// Stanza error namespace (RFC 6120).
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Where and how to connect.
#[derive(Clone)]
pub struct ComponentConfig {
    /// The XMPP server's component port host.
    pub host: String,
    /// The component port (Prosody's default is 5347).
    pub port: u16,
    /// Our JID (the component's domain, e.g. `prekey.example.org`).
    pub jid: String,
    /// The shared secret configured for this component on the XMPP server.
    pub secret: Zeroizing<String>,
    /// The identity name shown in service discovery.
    pub name: String,
    /// Longest wait between reconnection attempts, in seconds.
    pub reconnect_max_secs: u64,
    /// Largest accepted stanza, in bytes.
    pub max_stanza_bytes: usize,
    /// Most stanzas processed at once.
    pub max_in_flight: usize,
}

impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("jid", &self.jid)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why the component stopped.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// Network failure.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The XMPP server sent malformed XML.
    #[error("{0}")]
    Xml(#[from] XmlError),
    /// The XMPP server refused the handshake (wrong secret or unknown component).
    #[error("handshake refused: {0}")]
    NotAuthorized(String),
    /// The XMPP server closed the stream or sent a stream error.
    #[error("stream closed by the server: {0}")]
    Closed(String),
}

/// `<handshake>` content: lowercase hex SHA-1 of the stream id followed by the secret
/// (XEP-0114 §3).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// The stream header a component sends.
pub fn stream_open(jid: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{NS_STREAMS}' to='{}'>",
        super::xml::escape(jid)
    )
}

/// The bare part of a JID (`local@domain/resource` → `local@domain`).
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

fn text_child(name: &str, ns: &str, text: &str) -> Result<minidom::Element, XmlError> {
    let mut e = element(name, ns, &[])?;
    e.append_text(text);
    Ok(e)
}

/// The disco#info result (otrv4-prekey-server.md §"Discovering a Prekey Server").
pub fn disco_info(name: &str) -> Result<minidom::Element, XmlError> {
    let mut q = element("query", NS_DISCO_INFO, &[])?;
    q.append_child(element(
        "identity",
        NS_DISCO_INFO,
        &[("category", "auth"), ("type", "otr-prekey"), ("name", name)],
    )?);
    for f in [NS_DISCO_INFO, NS_DISCO_ITEMS, FEATURE_PREKEY_SERVER] {
        q.append_child(element("feature", NS_DISCO_INFO, &[("var", f)])?);
    }
    Ok(q)
}

/// The disco#items result: the `fingerprint` node item whose name is the server's
/// fingerprint in hex (§"Discovering a Prekey Server"), then one `fingerprint-rotation`
/// item per key-rotation announcement (`announcements`: their disco names,
/// [`crate::rotation`]).
pub fn disco_items(
    jid: &str,
    fingerprint_hex: &str,
    announcements: &[String],
) -> Result<minidom::Element, XmlError> {
    let mut q = element("query", NS_DISCO_ITEMS, &[])?;
    q.append_child(element(
        "item",
        NS_DISCO_ITEMS,
        &[
            ("jid", jid),
            ("node", "fingerprint"),
            ("name", fingerprint_hex),
        ],
    )?);
    for a in announcements {
        q.append_child(element(
            "item",
            NS_DISCO_ITEMS,
            &[("jid", jid), ("node", crate::rotation::NODE), ("name", a)],
        )?);
    }
    Ok(q)
}

fn iq_reply(
    jid: &str,
    req: &Elem,
    typ: &str,
    payload: Option<minidom::Element>,
) -> Result<minidom::Element, XmlError> {
    let to = req.attr("from").unwrap_or_default();
    let id = req.attr("id").unwrap_or_default();
    let mut iq = element(
        "iq",
        NS_COMPONENT,
        &[("type", typ), ("from", jid), ("to", to), ("id", id)],
    )?;
    if let Some(p) = payload {
        iq.append_child(p);
    }
    Ok(iq)
}

fn iq_error(jid: &str, req: &Elem, condition: &str) -> Result<minidom::Element, XmlError> {
    let mut err = element("error", NS_COMPONENT, &[("type", "cancel")])?;
    err.append_child(element(condition, NS_STANZAS, &[])?);
    iq_reply(jid, req, "error", Some(err))
}

/// Handles one stanza addressed to the component and returns the stanzas to send back.
/// Blocking (publication handling verifies proofs and commits to storage).
pub fn handle_stanza(
    service: &Service,
    jid: &str,
    name: &str,
    stanza: &Elem,
) -> Result<Vec<minidom::Element>, XmlError> {
    if stanza.ns != NS_COMPONENT {
        return Ok(Vec::new());
    }
    let from = stanza.attr("from").unwrap_or_default();
    match stanza.name.as_str() {
        "iq" => {
            let typ = stanza.attr("type").unwrap_or_default();
            if typ != "get" && typ != "set" {
                return Ok(Vec::new()); // results and errors need no answer
            }
            let info = stanza.child("query", NS_DISCO_INFO);
            let items = stanza.child("query", NS_DISCO_ITEMS);
            let reply = match (typ, info, items) {
                ("get", Some(q), _) if q.attr("node").is_none() => {
                    debug!(from, "disco#info");
                    iq_reply(jid, stanza, "result", Some(disco_info(name)?))?
                }
                ("get", _, Some(q)) if q.attr("node").is_none() => {
                    debug!(from, "disco#items");
                    iq_reply(
                        jid,
                        stanza,
                        "result",
                        Some(disco_items(
                            jid,
                            &service.fingerprint_hex(),
                            &service.announcement_names(crate::service::unix_now() as u64),
                        )?),
                    )?
                }
                ("get", Some(_), _) | ("get", _, Some(_)) => {
                    iq_error(jid, stanza, "item-not-found")?
                }
                _ => iq_error(jid, stanza, "service-unavailable")?,
            };
            Ok(vec![reply])
        }
        "message" => {
            let typ = stanza.attr("type").unwrap_or("normal");
            if typ == "error" || typ == "groupchat" || typ == "headline" {
                return Ok(Vec::new());
            }
            let Some(body) = stanza.child("body", NS_COMPONENT) else {
                return Ok(Vec::new()); // chat states, receipts…
            };
            let handled = service.handle(bare(from), &body.text);
            let mut out = Vec::with_capacity(handled.replies.len());
            for text in handled.replies {
                let id = format!("{:016x}", rand::random::<u64>());
                let mut attrs = vec![("from", jid), ("to", from), ("id", id.as_str())];
                if typ == "chat" {
                    attrs.push(("type", "chat"));
                }
                let mut m = element("message", NS_COMPONENT, &attrs)?;
                m.append_child(text_child("body", NS_COMPONENT, &text)?);
                out.push(m);
            }
            Ok(out)
        }
        _ => Ok(Vec::new()), // presence
    }
}

/// The XMPP server's own explanation of a stream error: the condition, then its `<text>`
/// if any (e.g. Prosody's "not-authorized: Given token does not match calculated token").
pub fn stream_error_text(e: &Elem) -> String {
    const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    let cond = e
        .children
        .iter()
        .find(|c| c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "unknown-condition".into());
    match e.child("text", NS_STREAM_ERRORS).map(|t| t.text.trim()) {
        Some(t) if !t.is_empty() => format!("{cond}: {t}"),
        _ => cond,
    }
}

/// Marks the transport down when a connection ends, however it ends.
struct TransportDown<'a>(&'a Service);

impl Drop for TransportDown<'_> {
    fn drop(&mut self) {
        self.0.set_transport_up(false);
    }
}

/// How one connection ended without an error.
enum SessionEnd {
    Shutdown,
}

/// Runs the component until `shutdown` becomes true, reconnecting with exponential backoff
/// after network failures. A refused handshake is fatal (retrying cannot fix a wrong secret).
pub async fn run(
    service: Arc<Service>,
    cfg: ComponentConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ComponentError> {
    let mut backoff = 1u64;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match connect_once(&service, &cfg, &mut shutdown, &mut backoff).await {
            Ok(SessionEnd::Shutdown) => return Ok(()),
            Err(ComponentError::NotAuthorized(e)) => {
                error!(error = %e, "component handshake refused");
                return Err(ComponentError::NotAuthorized(e));
            }
            Err(e) => warn!(error = %e, retry_in_secs = backoff, "component connection lost"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(backoff)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        backoff = (backoff * 2).min(cfg.reconnect_max_secs.max(1));
    }
}

async fn read_events(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    parser: &mut StreamParser,
    buf: &mut [u8],
) -> Result<Vec<StreamEvent>, ComponentError> {
    let n = rd.read(buf).await?;
    if n == 0 {
        return Err(ComponentError::Closed("connection closed".into()));
    }
    Ok(parser.feed(buf.get(..n).unwrap_or_default())?)
}

async fn connect_once(
    service: &Arc<Service>,
    cfg: &ComponentConfig,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut u64,
) -> Result<SessionEnd, ComponentError> {
    let stream = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(stream_open(&cfg.jid).as_bytes()).await?;
    let mut parser = StreamParser::new(cfg.max_stanza_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = std::collections::VecDeque::new();

    // Stream header → id → handshake.
    let id = loop {
        if let Some(ev) = pending.pop_front() {
            match ev {
                StreamEvent::Header(h) => {
                    break h.attr("id").map(str::to_owned).ok_or_else(|| {
                        ComponentError::Closed("stream header without id".into())
                    })?;
                }
                other => return Err(ComponentError::Closed(format!("{other:?}"))),
            }
        }
        pending.extend(read_events(&mut rd, &mut parser, &mut buf).await?);
    };
    let hs = format!(
        "<handshake>{}</handshake>",
        handshake_digest(&id, &cfg.secret)
    );
    wr.write_all(hs.as_bytes()).await?;
    loop {
        if let Some(ev) = pending.pop_front() {
            match ev {
                StreamEvent::Stanza(s) if s.is("handshake", NS_COMPONENT) => break,
                StreamEvent::Stanza(s) if s.is("error", NS_STREAMS) => {
                    return Err(ComponentError::NotAuthorized(stream_error_text(&s)));
                }
                StreamEvent::End => {
                    return Err(ComponentError::NotAuthorized("stream closed".into()));
                }
                other => debug!(?other, "ignored before handshake"),
            }
            continue;
        }
        pending.extend(read_events(&mut rd, &mut parser, &mut buf).await?);
    }
    info!(jid = %cfg.jid, host = %cfg.host, port = cfg.port, fingerprint = %service.fingerprint_hex(), "component connected");
    *backoff = 1;
    service.set_transport_up(true);
    let _down = TransportDown(service);

    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let writer = tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            wr.write_all(s.as_bytes()).await?;
        }
        wr.shutdown().await?;
        Ok::<(), std::io::Error>(())
    });
    let mut tasks: JoinSet<()> = JoinSet::new();
    let result = 'session: loop {
        while let Some(ev) = pending.pop_front() {
            match ev {
                StreamEvent::Stanza(s) => {
                    if s.is("error", NS_STREAMS) {
                        let cond = stream_error_text(&s);
                        warn!(condition = %cond, "stream error from server");
                        return finish(tasks, tx, writer, Err(ComponentError::Closed(cond))).await;
                    }
                    while tasks.len() >= cfg.max_in_flight.max(1) {
                        let _ = tasks.join_next().await;
                    }
                    let (service, tx, jid, name) = (
                        service.clone(),
                        tx.clone(),
                        cfg.jid.clone(),
                        cfg.name.clone(),
                    );
                    tasks.spawn(async move {
                        let out = tokio::task::spawn_blocking(move || {
                            handle_stanza(&service, &jid, &name, &s)
                        })
                        .await;
                        match out {
                            Ok(Ok(stanzas)) => {
                                for st in stanzas {
                                    match super::xml::to_string(&st) {
                                        Ok(x) => {
                                            let _ = tx.send(x).await;
                                        }
                                        Err(e) => warn!(error = %e, "could not serialise a stanza"),
                                    }
                                }
                            }
                            Ok(Err(e)) => warn!(error = %e, "could not build a reply"),
                            Err(e) => error!(error = %e, "stanza handler failed"),
                        }
                    });
                }
                StreamEvent::Oversized(s) => {
                    debug!(from = s.attr("from").unwrap_or_default(), name = %s.name, max = cfg.max_stanza_bytes, "oversized stanza dropped");
                    service.hit(crate::limits::LimitKind::StanzaTooLarge);
                }
                StreamEvent::End => {
                    break 'session Err(ComponentError::Closed("server closed the stream".into()));
                }
                StreamEvent::Header(_) => {}
            }
        }
        tokio::select! {
            evs = read_events(&mut rd, &mut parser, &mut buf) => match evs {
                Ok(evs) => pending.extend(evs),
                Err(e) => break Err(e),
            },
            _ = shutdown.changed() => {
                info!("shutting down: finishing in-flight stanzas");
                break Ok(SessionEnd::Shutdown);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    finish(tasks, tx, writer, result).await
}

/// Waits for in-flight stanzas (their replies are still sent), closes the stream.
async fn finish(
    mut tasks: JoinSet<()>,
    tx: mpsc::Sender<String>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    result: Result<SessionEnd, ComponentError>,
) -> Result<SessionEnd, ComponentError> {
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        warn!("in-flight stanzas did not finish within 30 s");
    }
    let _ = tx.send("</stream:stream>".to_owned()).await;
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceOptions;
    use crate::storage::memory::MemoryStorage;
    use otr4::hazmat::crypto::ed448::KeyPair;
    use otr4::hazmat::wire::codec::Codec;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn svc() -> Service {
        Service::new(
            KeyPair::generate(&mut rand::rng()),
            Arc::new(MemoryStorage::new()),
            ServiceOptions::new("prekey.localhost"),
        )
    }

    fn parse_stanza(xml: &str) -> Elem {
        let mut p = StreamParser::new(1 << 20);
        let evs = p
            .feed(
                format!("<stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{NS_STREAMS}'>{xml}")
                    .as_bytes(),
            )
            .unwrap();
        match &evs[1] {
            StreamEvent::Stanza(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn roundtrip(e: &minidom::Element) -> Elem {
        parse_stanza(&super::super::xml::to_string(e).unwrap())
    }

    #[test]
    fn handshake_known_answer() {
        // Independent known answer (sha1 of "3BF96D32secret").
        assert_eq!(
            handshake_digest("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
        let mut h = Sha1::new();
        h.update(b"3BF96D32secret");
        assert_eq!(
            handshake_digest("3BF96D32", "secret"),
            hex::encode(h.finalize())
        );
        assert_eq!(
            handshake_digest("", ""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert!(
            handshake_digest("a", "b")
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }

    /// A rotation announcement is listed after the fingerprint while valid, then dropped
    /// without a restart.
    #[test]
    fn disco_items_list_valid_rotation_announcements() {
        use crate::rotation::{Announcement, NODE, fingerprint};
        let (old, new) = (
            KeyPair::generate(&mut rand::rng()),
            KeyPair::generate(&mut rand::rng()),
        );
        let now = crate::service::unix_now() as u64;
        let fresh = Announcement::sign(&old, &fingerprint(&new), "prekey.localhost", now + 600);
        let stale = Announcement::sign(&old, &fingerprint(&new), "prekey.localhost", now - 1);
        let mut options = ServiceOptions::new("prekey.localhost");
        options.announcements = vec![fresh.clone(), stale];
        let s = Service::new(new, Arc::new(MemoryStorage::new()), options);
        let req = parse_stanza(&format!(
            "<iq from='alice@localhost/x' to='prekey.localhost' id='items1' type='get'><query xmlns='{NS_DISCO_ITEMS}'/></iq>"
        ));
        let out = handle_stanza(&s, "prekey.localhost", "OTR Prekey Server", &req).unwrap();
        let r = roundtrip(&out[0]);
        let items: Vec<(Option<&str>, Option<&str>)> = r
            .child("query", NS_DISCO_ITEMS)
            .unwrap()
            .children
            .iter()
            .map(|i| (i.attr("node"), i.attr("name")))
            .collect();
        let fp = s.fingerprint_hex();
        let name = fresh.disco_name();
        assert_eq!(
            items,
            vec![
                (Some("fingerprint"), Some(fp.as_str())),
                (Some(NODE), Some(name.as_str()))
            ]
        );
    }

    #[test]
    fn disco_info_and_items_answers() {
        let s = svc();
        let req = parse_stanza(&format!(
            "<iq from='alice@localhost/x' to='prekey.localhost' id='info1' type='get'><query xmlns='{NS_DISCO_INFO}'/></iq>"
        ));
        let out = handle_stanza(&s, "prekey.localhost", "OTR Prekey Server", &req).unwrap();
        let r = roundtrip(&out[0]);
        assert!(r.is("iq", NS_COMPONENT));
        assert_eq!(r.attr("type"), Some("result"));
        assert_eq!(r.attr("id"), Some("info1"));
        assert_eq!(r.attr("to"), Some("alice@localhost/x"));
        assert_eq!(r.attr("from"), Some("prekey.localhost"));
        let q = r.child("query", NS_DISCO_INFO).unwrap();
        let id = q.child("identity", NS_DISCO_INFO).unwrap();
        assert_eq!(
            (id.attr("category"), id.attr("type"), id.attr("name")),
            (Some("auth"), Some("otr-prekey"), Some("OTR Prekey Server"))
        );
        let feats: Vec<&str> = q.children.iter().filter_map(|c| c.attr("var")).collect();
        assert_eq!(
            feats,
            vec![NS_DISCO_INFO, NS_DISCO_ITEMS, FEATURE_PREKEY_SERVER]
        );

        let req = parse_stanza(&format!(
            "<iq from='alice@localhost/x' to='prekey.localhost' id='items1' type='get'><query xmlns='{NS_DISCO_ITEMS}'/></iq>"
        ));
        let out = handle_stanza(&s, "prekey.localhost", "OTR Prekey Server", &req).unwrap();
        let r = roundtrip(&out[0]);
        let item = r
            .child("query", NS_DISCO_ITEMS)
            .unwrap()
            .child("item", NS_DISCO_ITEMS)
            .unwrap();
        assert_eq!(item.attr("jid"), Some("prekey.localhost"));
        assert_eq!(item.attr("node"), Some("fingerprint"));
        let fp = item.attr("name").unwrap();
        assert_eq!(fp.len(), 112);
        assert!(
            fp.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
        assert_eq!(
            hex::decode(fp).unwrap(),
            s.fingerprint().as_bytes().to_vec()
        );
    }

    #[test]
    fn other_iqs_get_errors_results_ignored() {
        let s = svc();
        let req = parse_stanza(
            "<iq from='a@b/c' id='v' type='get'><query xmlns='jabber:iq:version'/></iq>",
        );
        let r = roundtrip(&handle_stanza(&s, "p", "n", &req).unwrap()[0]);
        assert_eq!(r.attr("type"), Some("error"));
        assert!(
            r.child("error", NS_COMPONENT)
                .unwrap()
                .child("service-unavailable", NS_STANZAS)
                .is_some()
        );
        let req = parse_stanza(&format!(
            "<iq from='a@b/c' id='v' type='get'><query xmlns='{NS_DISCO_INFO}' node='x'/></iq>"
        ));
        let r = roundtrip(&handle_stanza(&s, "p", "n", &req).unwrap()[0]);
        assert!(
            r.child("error", NS_COMPONENT)
                .unwrap()
                .child("item-not-found", NS_STANZAS)
                .is_some()
        );
        let req = parse_stanza("<iq from='a@b/c' id='v' type='result'/>");
        assert!(handle_stanza(&s, "p", "n", &req).unwrap().is_empty());
        let req = parse_stanza("<presence from='a@b/c'/>");
        assert!(handle_stanza(&s, "p", "n", &req).unwrap().is_empty());
    }

    #[test]
    fn message_body_is_served_and_answered_to_the_full_jid() {
        let s = svc();
        let mut alice = crate::testkit::Device::new(
            "alice@localhost",
            "prekey.localhost",
            s.fingerprint(),
            crate::service::unix_now() as i64,
        )
        .unwrap();
        let dake1 = alice
            .client
            .request_storage_status(&mut rand::rng())
            .unwrap();
        let body = otr4::hazmat::wire::encoded::encode_prekey(&dake1.encode());
        let req = parse_stanza(&format!(
            "<message from='alice@localhost/phone' to='prekey.localhost' id='m1' type='chat'><body>{body}</body></message>"
        ));
        let out = handle_stanza(&s, "prekey.localhost", "n", &req).unwrap();
        assert_eq!(out.len(), 1);
        let r = roundtrip(&out[0]);
        assert!(r.is("message", NS_COMPONENT));
        assert_eq!(r.attr("to"), Some("alice@localhost/phone"));
        assert_eq!(r.attr("from"), Some("prekey.localhost"));
        assert_eq!(r.attr("type"), Some("chat"));
        let text = &r.child("body", NS_COMPONENT).unwrap().text;
        let msgs = crate::testkit::decode_replies(std::slice::from_ref(text)).unwrap();
        assert!(matches!(msgs[0], otr4::PrekeyServerMessage::Dake2(_)));
        assert_eq!(s.dakes_in_flight(), 1, "keyed by the bare JID");
        // Error messages and bodiless messages are ignored.
        let req = parse_stanza(&format!(
            "<message from='alice@localhost/phone' type='error'><body>{body}</body></message>"
        ));
        assert!(
            handle_stanza(&s, "prekey.localhost", "n", &req)
                .unwrap()
                .is_empty()
        );
        let req = parse_stanza(
            "<message from='alice@localhost/phone'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        assert!(
            handle_stanza(&s, "prekey.localhost", "n", &req)
                .unwrap()
                .is_empty()
        );
    }

    /// A fake XMPP server side of one component connection.
    struct FakeServer {
        sock: tokio::net::TcpStream,
        parser: StreamParser,
        pending: std::collections::VecDeque<StreamEvent>,
    }

    impl FakeServer {
        async fn accept(l: &tokio::net::TcpListener) -> FakeServer {
            let (sock, _) = tokio::time::timeout(Duration::from_secs(10), l.accept())
                .await
                .unwrap()
                .unwrap();
            FakeServer {
                sock,
                parser: StreamParser::new(1 << 20),
                pending: Default::default(),
            }
        }

        async fn next(&mut self) -> StreamEvent {
            loop {
                if let Some(e) = self.pending.pop_front() {
                    return e;
                }
                let mut buf = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(10), self.sock.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                if n == 0 {
                    return StreamEvent::End;
                }
                self.pending.extend(self.parser.feed(&buf[..n]).unwrap());
            }
        }

        async fn send(&mut self, s: &str) {
            self.sock.write_all(s.as_bytes()).await.unwrap();
        }

        /// Reads the component's header, answers with stream id `id`, returns the
        /// handshake digest the component sent.
        async fn open(&mut self, id: &str) -> String {
            let StreamEvent::Header(h) = self.next().await else {
                panic!("no header")
            };
            assert!(h.is("stream", NS_STREAMS));
            assert_eq!(h.attr("to"), Some("prekey.localhost"));
            self.send(&format!(
                "<?xml version='1.0'?><stream:stream xmlns:stream='{NS_STREAMS}' xmlns='{NS_COMPONENT}' from='prekey.localhost' id='{id}'>"
            ))
            .await;
            let StreamEvent::Stanza(hs) = self.next().await else {
                panic!("no handshake")
            };
            assert!(hs.is("handshake", NS_COMPONENT));
            hs.text
        }
    }

    fn test_config(port: u16, secret: &str) -> ComponentConfig {
        ComponentConfig {
            host: "127.0.0.1".into(),
            port,
            jid: "prekey.localhost".into(),
            secret: Zeroizing::new(secret.into()),
            name: "OTR Prekey Server".into(),
            reconnect_max_secs: 1,
            max_stanza_bytes: 1 << 20,
            max_in_flight: 4,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handshake_disco_reconnect_and_graceful_shutdown() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(Arc::new(svc()), test_config(port, "s3cret"), rx));

        let mut a = FakeServer::accept(&l).await;
        assert_eq!(a.open("abc123").await, handshake_digest("abc123", "s3cret"));
        a.send("<handshake/>").await;
        a.send(&format!(
            "<iq from='bob@localhost/x' to='prekey.localhost' id='q1' type='get'><query xmlns='{NS_DISCO_INFO}'/></iq>"
        ))
        .await;
        let StreamEvent::Stanza(r) = a.next().await else {
            panic!()
        };
        assert!(
            r.is("iq", NS_COMPONENT),
            "answered in the component namespace"
        );
        assert_eq!((r.attr("type"), r.attr("id")), (Some("result"), Some("q1")));
        // The XMPP server goes away: the component reconnects.
        drop(a);
        let mut b = FakeServer::accept(&l).await;
        assert_eq!(b.open("second").await, handshake_digest("second", "s3cret"));
        b.send("<handshake/>").await;
        // A message stanza still gets served on the new stream.
        let mut alice = crate::testkit::Device::new(
            "alice@localhost",
            "prekey.localhost",
            otr4::Fingerprint([0; 56]),
            crate::service::unix_now() as i64,
        )
        .unwrap();
        let q = alice.client.ensemble_query(b"bob@localhost", b"4");
        b.send(&format!(
            "<message from='alice@localhost/l' to='prekey.localhost' id='m'><body>{}</body></message>",
            otr4::hazmat::wire::encoded::encode_prekey(&q.encode())
        ))
        .await;
        let StreamEvent::Stanza(m) = b.next().await else {
            panic!()
        };
        assert_eq!(m.attr("to"), Some("alice@localhost/l"));
        // SIGTERM equivalent: the component closes its stream and run() returns Ok.
        stop.send(true).unwrap();
        assert_eq!(b.next().await, StreamEvent::End);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn refused_handshake_is_fatal() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (_stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(Arc::new(svc()), test_config(port, "wrong"), rx));
        let mut a = FakeServer::accept(&l).await;
        a.open("id1").await;
        a.send("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Given token does not match calculated token</text></stream:error></stream:stream>").await;
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        let err = r.unwrap_err();
        assert!(
            matches!(&err, ComponentError::NotAuthorized(c) if c == "not-authorized: Given token does not match calculated token"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_stanza_counted_and_stream_continues() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (stop, rx) = watch::channel(false);
        let service = Arc::new(svc());
        let mut cfg = test_config(port, "s");
        cfg.max_stanza_bytes = 4096;
        let task = tokio::spawn(run(service.clone(), cfg, rx));
        let mut a = FakeServer::accept(&l).await;
        a.open("id").await;
        a.send("<handshake/>").await;
        a.send(&format!(
            "<message from='eve@localhost/x' id='big'><body>{}</body></message>",
            "A".repeat(100_000)
        ))
        .await;
        a.send(&format!(
            "<iq from='bob@localhost/x' to='prekey.localhost' id='q1' type='get'><query xmlns='{NS_DISCO_INFO}'/></iq>"
        ))
        .await;
        let StreamEvent::Stanza(r) = a.next().await else {
            panic!()
        };
        assert_eq!(r.attr("id"), Some("q1"));
        assert_eq!(
            service
                .limit_hits()
                .count(crate::limits::LimitKind::StanzaTooLarge),
            1
        );
        stop.send(true).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }

    #[test]
    fn bare_jid() {
        assert_eq!(bare("a@b/c/d"), "a@b");
        assert_eq!(bare("a@b"), "a@b");
    }
}
