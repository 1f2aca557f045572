//! Builds and parses the stanzas of docs/xmpp-glue.md (xep-draft/xep-otr4.xml): the
//! `<otr4/>` multicast carriage, presence, PEP, disco, MAM and caps; pure minidom, no I/O.

use base64::Engine as _;
use minidom::Element;
use minidom::rxml::NcName;
use otr4::InstanceTag;
use sha1::{Digest, Sha1};

use crate::ns;

/// Most payloads one `<otr4/>` element may carry (8 devices, a few messages each).
pub const MAX_PAYLOADS: usize = 64;
/// Largest payload text accepted (an OTRv4 message with a 64 KiB body fits).
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024;
/// The fallback body of every OTRv4 message (XEP-0380 §"Business Rules").
pub const FALLBACK_BODY: &str = "[This message is encrypted with OTRv4 for specific devices \
(urn:xmpp:otr4:0); your client cannot read it.]";

/// Why one of our elements did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StanzaError {
    /// An instance tag attribute was missing or not 8 hex digits of a valid tag.
    #[error("bad instance tag attribute {0:?}")]
    BadTag(String),
    /// Too many payloads in one `<otr4/>` element.
    #[error("more than {MAX_PAYLOADS} payloads in one message")]
    TooManyPayloads,
    /// A payload was larger than `MAX_PAYLOAD_LEN`.
    #[error("payload larger than {MAX_PAYLOAD_LEN} bytes")]
    PayloadTooLarge,
}

/// Builds `<name xmlns=ns attrs…/>`. Attribute names are literals of this crate; an
/// invalid one (a bug) is skipped rather than panicking.
pub fn el(name: &str, ns: &str, attrs: &[(&str, &str)]) -> Element {
    let mut b = Element::builder(name, ns);
    for (k, v) in attrs {
        if let Ok(n) = NcName::try_from(*k) {
            b = b.attr(n, *v);
        }
    }
    b.build()
}

/// `el` with text content.
pub fn text_el(name: &str, ns: &str, text: &str) -> Element {
    let mut e = el(name, ns, &[]);
    e.append_text(text);
    e
}

/// Sets (or replaces) an attribute.
pub fn set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = NcName::try_from(name) {
        e.attrs_mut()
            .insert(minidom::rxml::Namespace::NONE, n, String::from(value));
    }
}

/// An instance tag as the 8 lowercase hex digits of the wire.
pub fn tag_hex(tag: InstanceTag) -> String {
    format!("{:08x}", tag.0)
}

/// Parses an instance tag attribute: exactly 8 hex digits, a valid sender tag.
pub fn parse_tag(s: &str) -> Result<InstanceTag, StanzaError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StanzaError::BadTag(s.chars().take(16).collect()));
    }
    let v = u32::from_str_radix(s, 16).map_err(|_| StanzaError::BadTag(s.to_owned()))?;
    let tag = InstanceTag(v);
    if !tag.is_valid_sender() {
        return Err(StanzaError::BadTag(s.to_owned()));
    }
    Ok(tag)
}

/// The bare part of a JID (`user@domain/resource` → `user@domain`).
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// The domain of a JID.
pub fn domain(jid: &str) -> &str {
    let b = bare(jid);
    b.split_once('@').map_or(b, |(_, d)| d)
}

/// One per-device payload: an OTRv4 message for the device `to_tag` (`None`: every device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The receiving device, if the message is addressed to one.
    pub to_tag: Option<InstanceTag>,
    /// The OTRv4 message text (`?OTR:…`, a query, an error message).
    pub text: String,
}

/// The OTRv4 part of a message stanza (docs/xmpp-glue.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The sending device.
    pub from_tag: InstanceTag,
    /// The payloads in document order.
    pub payloads: Vec<Payload>,
    /// The origin id of our message that the sending device could not read (it answers
    /// it with an OTR error message), if it names one.
    pub unreadable: Option<String>,
    /// For a user message: every device of the recipient the sender knows (its copy of
    /// the device list, the `devices` attribute), whether or not this stanza has a payload
    /// for it; `None` if absent or unreadable.
    pub devices: Option<Vec<InstanceTag>>,
}

/// Names the devices of the recipient the sender knows (the `devices` attribute of
/// `<otr4/>`, on a user message: a device not named is not on the sender's copy of the
/// list).
pub fn mark_devices(msg: &mut Element, devices: &[InstanceTag]) {
    if let Some(o) = msg.get_child_mut("otr4", ns::OTR4) {
        let v: Vec<String> = devices.iter().map(|t| tag_hex(*t)).collect();
        set_attr(o, "devices", &v.join(" "));
    }
}

/// The longest origin id an `unreadable` attribute may name (longer ones are ignored).
pub const MAX_ORIGIN_ID_LEN: usize = 128;

/// Names `origin_id` as the message the OTR error in `msg` answers (the `unreadable`
/// attribute of `<otr4/>`).
pub fn mark_unreadable(msg: &mut Element, origin_id: &str) {
    if let Some(o) = msg.get_child_mut("otr4", ns::OTR4) {
        set_attr(o, "unreadable", origin_id);
    }
}

/// The multicast message (docs/xmpp-glue.md §4): one `<otr4/>` with a payload per device,
/// the XEP-0380 marker, the fallback body, no carbons (XEP-0280 `<private/>`, XEP-0334
/// `<no-copy/>`) and kept for offline storage and MAM (XEP-0334 `<store/>`).
pub fn multicast_message(
    to: &str,
    id: &str,
    from_tag: InstanceTag,
    payloads: &[Payload],
) -> Element {
    let mut m = el(
        "message",
        ns::CLIENT,
        &[("type", "chat"), ("to", to), ("id", id)],
    );
    let mut o = el("otr4", ns::OTR4, &[("from-tag", &tag_hex(from_tag))]);
    for p in payloads {
        let mut e = match p.to_tag {
            Some(t) => el("payload", ns::OTR4, &[("to-tag", &tag_hex(t))]),
            None => el("payload", ns::OTR4, &[]),
        };
        e.append_text(p.text.as_str());
        o.append_child(e);
    }
    m.append_child(o);
    m.append_child(el(
        "encryption",
        ns::EME,
        &[("namespace", ns::OTR4), ("name", "OTRv4")],
    ));
    m.append_child(text_el("body", ns::CLIENT, FALLBACK_BODY));
    m.append_child(el("origin-id", ns::SID, &[("id", id)]));
    m.append_child(el("private", ns::CARBONS, &[]));
    m.append_child(el("no-copy", ns::HINTS, &[]));
    m.append_child(el("store", ns::HINTS, &[]));
    m
}

/// The `<otr4/>` content of a message, if it has one.
pub fn parse_carried(msg: &Element) -> Option<Result<Carried, StanzaError>> {
    let o = msg.get_child("otr4", ns::OTR4)?;
    Some(parse_otr4(o))
}

fn parse_otr4(o: &Element) -> Result<Carried, StanzaError> {
    let from_tag = parse_tag(o.attr("from-tag").unwrap_or_default())?;
    let mut payloads = Vec::new();
    for p in o.children().filter(|c| c.is("payload", ns::OTR4)) {
        if payloads.len() >= MAX_PAYLOADS {
            return Err(StanzaError::TooManyPayloads);
        }
        let to_tag = match p.attr("to-tag") {
            Some(t) => Some(parse_tag(t)?),
            None => None,
        };
        let text = p.text();
        if text.len() > MAX_PAYLOAD_LEN {
            return Err(StanzaError::PayloadTooLarge);
        }
        payloads.push(Payload { to_tag, text });
    }
    let unreadable = o
        .attr("unreadable")
        .filter(|u| !u.is_empty() && u.len() <= MAX_ORIGIN_ID_LEN)
        .map(str::to_owned);
    let devices = o.attr("devices").and_then(|d| {
        let tags: Vec<InstanceTag> = d
            .split_ascii_whitespace()
            .take(MAX_PAYLOADS + 1)
            .map(parse_tag)
            .collect::<Result<_, _>>()
            .ok()?;
        (tags.len() <= MAX_PAYLOADS).then_some(tags)
    });
    Ok(Carried {
        from_tag,
        payloads,
        unreadable,
        devices,
    })
}

/// A message whose body is a prekey-server message (otrv4-prekey-server.md §"XMPP").
pub fn body_message(to: &str, id: &str, text: &str) -> Element {
    let mut m = el(
        "message",
        ns::CLIENT,
        &[("type", "chat"), ("to", to), ("id", id)],
    );
    m.append_child(text_el("body", ns::CLIENT, text));
    m.append_child(el("no-store", ns::HINTS, &[]));
    m
}

/// A message whose body is OTRv3 text for a contact whose client speaks only OTRv3, as
/// Pidgin and other libotr clients send it (XEP-0364): the OTR encoding in `<body>`; the
/// XEP-0380 marker naming OTR; carbons off for it (XEP-0280 `<private/>`: each of our
/// devices has its own session) and no archiving (XEP-0334 `<no-permanent-store/>`: an
/// OTRv3 message cannot be read later).
pub fn v3_message(to: &str, id: &str, text: &str) -> Element {
    let mut m = el(
        "message",
        ns::CLIENT,
        &[("type", "chat"), ("to", to), ("id", id)],
    );
    m.append_child(text_el("body", ns::CLIENT, text));
    m.append_child(el(
        "encryption",
        ns::EME,
        &[("namespace", ns::OTR_V3), ("name", "OTR")],
    ));
    m.append_child(el("private", ns::CARBONS, &[]));
    m.append_child(el("no-permanent-store", ns::HINTS, &[]));
    m
}

/// The body text of a message.
pub fn body(msg: &Element) -> Option<String> {
    msg.get_child("body", ns::CLIENT).map(Element::text)
}

/// Our identity and features for disco#info and the entity-caps hash.
pub const FEATURES: [&str; 4] = [ns::DISCO_INFO, ns::OTR4, ns::DEVICES_NOTIFY, ns::CARBONS];

/// The XEP-0115 `ver` string of our disco#info: SHA-1, base64.
pub fn caps_ver() -> String {
    let mut s = String::from("client/pc//otr4<");
    let mut f = FEATURES.to_vec();
    f.sort_unstable();
    for x in f {
        s.push_str(x);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// Available presence with our device tag and entity caps (docs/xmpp-glue.md §2).
pub fn presence_available(tag: InstanceTag) -> Element {
    let mut p = el("presence", ns::CLIENT, &[]);
    p.append_child(text_el("priority", ns::CLIENT, "0"));
    p.append_child(el("device", ns::OTR4, &[("tag", &tag_hex(tag))]));
    p.append_child(el(
        "c",
        ns::CAPS,
        &[
            ("hash", "sha-1"),
            ("node", ns::CAPS_NODE),
            ("ver", &caps_ver()),
        ],
    ));
    p
}

/// What a presence says about an OTRv4 device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceInfo {
    /// An available OTRv4 device.
    Available(InstanceTag),
    /// Some resource went unavailable.
    Unavailable,
    /// Anything else (non-OTR resource, subscription requests, errors).
    Other,
}

/// Classifies a presence stanza.
pub fn parse_presence(p: &Element) -> PresenceInfo {
    match p.attr("type") {
        Some("unavailable") => PresenceInfo::Unavailable,
        None => p
            .get_child("device", ns::OTR4)
            .and_then(|d| d.attr("tag"))
            .and_then(|t| parse_tag(t).ok())
            .map_or(PresenceInfo::Other, PresenceInfo::Available),
        Some(_) => PresenceInfo::Other,
    }
}

/// An `<iq/>` with one child.
pub fn iq(typ: &str, id: &str, to: Option<&str>, child: Element) -> Element {
    let mut q = match to {
        Some(t) => el("iq", ns::CLIENT, &[("type", typ), ("id", id), ("to", t)]),
        None => el("iq", ns::CLIENT, &[("type", typ), ("id", id)]),
    };
    q.append_child(child);
    q
}

fn form(form_type: &str, fields: &[(&str, &str)]) -> Element {
    let mut x = el("x", ns::DATA_FORMS, &[("type", "submit")]);
    let mut ft = el(
        "field",
        ns::DATA_FORMS,
        &[("var", "FORM_TYPE"), ("type", "hidden")],
    );
    ft.append_child(text_el("value", ns::DATA_FORMS, form_type));
    x.append_child(ft);
    for (var, value) in fields {
        let mut f = el("field", ns::DATA_FORMS, &[("var", var)]);
        f.append_child(text_el("value", ns::DATA_FORMS, value));
        x.append_child(f);
    }
    x
}

/// The node options of the device list (docs/xmpp-glue.md §1).
const DEVICE_NODE_OPTIONS: [(&str, &str); 3] = [
    ("pubsub#access_model", "open"),
    ("pubsub#persist_items", "true"),
    ("pubsub#max_items", "1"),
];

/// Publishes the device list payload with publish-options (XEP-0060 §7.1.5).
pub fn publish_devices(id: &str, devices: Element) -> Element {
    let mut ps = el("pubsub", ns::PUBSUB, &[]);
    let mut publish = el("publish", ns::PUBSUB, &[("node", ns::DEVICES_NODE)]);
    let mut item = el("item", ns::PUBSUB, &[("id", ns::DEVICES_ITEM)]);
    item.append_child(devices);
    publish.append_child(item);
    ps.append_child(publish);
    let mut po = el("publish-options", ns::PUBSUB, &[]);
    po.append_child(form(ns::PUBLISH_OPTIONS, &DEVICE_NODE_OPTIONS));
    ps.append_child(po);
    iq("set", id, None, ps)
}

/// Reconfigures our device-list node (XEP-0060 §8.2), after `precondition-not-met`.
pub fn configure_devices_node(id: &str) -> Element {
    let mut ps = el("pubsub", ns::PUBSUB_OWNER, &[]);
    let mut c = el("configure", ns::PUBSUB_OWNER, &[("node", ns::DEVICES_NODE)]);
    c.append_child(form(ns::NODE_CONFIG, &DEVICE_NODE_OPTIONS));
    ps.append_child(c);
    iq("set", id, None, ps)
}

/// Asks for a user's device list (XEP-0060 §6.5).
pub fn get_devices(id: &str, owner_bare: &str) -> Element {
    let mut ps = el("pubsub", ns::PUBSUB, &[]);
    ps.append_child(el("items", ns::PUBSUB, &[("node", ns::DEVICES_NODE)]));
    iq("get", id, Some(owner_bare), ps)
}

/// The `<devices/>` payload of an items result or of a PEP notification:
/// `Some(None)` when the node is empty, retracted, purged or deleted.
pub fn devices_payload(stanza: &Element) -> Option<Option<&Element>> {
    if let Some(ps) = stanza.get_child("pubsub", ns::PUBSUB) {
        let items = ps.get_child("items", ns::PUBSUB)?;
        if items.attr("node") != Some(ns::DEVICES_NODE) {
            return None;
        }
        let payload = items
            .children()
            .filter(|i| i.is("item", ns::PUBSUB))
            .last()
            .and_then(|i| i.get_child("devices", ns::OTR4));
        return Some(payload);
    }
    let ev = stanza.get_child("event", ns::PUBSUB_EVENT)?;
    if let Some(items) = ev.get_child("items", ns::PUBSUB_EVENT) {
        if items.attr("node") != Some(ns::DEVICES_NODE) {
            return None;
        }
        let payload = items
            .children()
            .filter(|i| i.is("item", ns::PUBSUB_EVENT))
            .last()
            .and_then(|i| i.get_child("devices", ns::OTR4));
        return Some(payload);
    }
    for what in ["purge", "delete"] {
        if let Some(x) = ev.get_child(what, ns::PUBSUB_EVENT)
            && x.attr("node") == Some(ns::DEVICES_NODE)
        {
            return Some(None);
        }
    }
    None
}

/// Whether an iq error is `precondition-not-met` (XEP-0060 §7.1.5).
pub fn is_precondition_not_met(iq: &Element) -> bool {
    iq.get_child("error", ns::CLIENT).is_some_and(|e| {
        e.get_child("precondition-not-met", ns::PUBSUB_ERRORS)
            .is_some()
    })
}

/// Whether an iq error says the node or item does not exist.
#[cfg(feature = "stanzas")]
pub fn is_item_not_found(iq: &Element) -> bool {
    iq.get_child("error", ns::CLIENT)
        .is_some_and(|e| e.get_child("item-not-found", ns::STANZAS).is_some())
}

/// disco#items request (XEP-0030), optionally on a node.
pub fn disco_items(id: &str, to: &str) -> Element {
    iq("get", id, Some(to), el("query", ns::DISCO_ITEMS, &[]))
}

/// disco#info request (XEP-0030).
pub fn disco_info(id: &str, to: &str) -> Element {
    iq("get", id, Some(to), el("query", ns::DISCO_INFO, &[]))
}

/// One disco#items item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoItem {
    /// Its JID.
    pub jid: String,
    /// Its node, if any.
    pub node: Option<String>,
    /// Its name, if any.
    pub name: Option<String>,
}

/// The items of a disco#items result.
pub fn parse_disco_items(iq: &Element) -> Vec<DiscoItem> {
    iq.get_child("query", ns::DISCO_ITEMS)
        .map(|q| {
            q.children()
                .filter(|i| i.is("item", ns::DISCO_ITEMS))
                .filter_map(|i| {
                    Some(DiscoItem {
                        jid: i.attr("jid")?.to_owned(),
                        node: i.attr("node").map(str::to_owned),
                        name: i.attr("name").map(str::to_owned),
                    })
                })
                .take(256)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a disco#info result is a prekey server (otrv4-prekey-server.md: feature
/// `http://jabber.org/protocol/otrv4-prekey-server`, identity `auth`/`otr-prekey`).
pub fn is_prekey_server(iq: &Element) -> bool {
    let Some(q) = iq.get_child("query", ns::DISCO_INFO) else {
        return false;
    };
    let feature = q.children().any(|c| {
        c.is("feature", ns::DISCO_INFO) && c.attr("var") == Some(ns::PREKEY_SERVER_FEATURE)
    });
    let identity = q.children().any(|c| {
        c.is("identity", ns::DISCO_INFO)
            && c.attr("category") == Some("auth")
            && c.attr("type") == Some("otr-prekey")
    });
    feature && identity
}

/// Whether a disco#info result is an HTTP upload service (XEP-0363 §3: feature
/// `urn:xmpp:http:upload:0`), with the `max-file-size` its form announces, if any.
pub fn upload_service(iq: &Element) -> Option<Option<u64>> {
    let q = iq.get_child("query", ns::DISCO_INFO)?;
    let feature = q
        .children()
        .any(|c| c.is("feature", ns::DISCO_INFO) && c.attr("var") == Some(ns::HTTP_UPLOAD));
    if !feature {
        return None;
    }
    let max = q
        .children()
        .filter(|x| x.is("x", ns::DATA_FORMS))
        .find(|x| {
            x.children().any(|f| {
                f.attr("var") == Some("FORM_TYPE")
                    && f.get_child("value", ns::DATA_FORMS)
                        .is_some_and(|v| v.text() == ns::HTTP_UPLOAD)
            })
        })
        .and_then(|x| {
            x.children()
                .find(|f| f.attr("var") == Some("max-file-size"))
        })
        .and_then(|f| f.get_child("value", ns::DATA_FORMS))
        .and_then(|v| v.text().trim().parse().ok());
    Some(max)
}

/// A slot request (XEP-0363 §4) to the upload service `to`.
pub fn upload_slot_request(
    id: &str,
    to: &str,
    filename: &str,
    size: u64,
    content_type: &str,
) -> Element {
    let size = size.to_string();
    iq(
        "get",
        id,
        Some(to),
        el(
            "request",
            ns::HTTP_UPLOAD,
            &[
                ("filename", filename),
                ("size", &size),
                ("content-type", content_type),
            ],
        ),
    )
}

/// A slot (XEP-0363 §4): where to PUT (with the headers to send) and where the file will
/// be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSlot {
    /// The PUT URL.
    pub put: String,
    /// The headers for the PUT: only `Authorization`, `Cookie` and `Expires` (XEP-0363
    /// §5), line breaks removed.
    pub headers: Vec<(String, String)>,
    /// The GET URL.
    pub get: String,
}

/// The slot of a slot answer, if it has one.
pub fn parse_upload_slot(iq: &Element) -> Option<UploadSlot> {
    let slot = iq.get_child("slot", ns::HTTP_UPLOAD)?;
    let put = slot.get_child("put", ns::HTTP_UPLOAD)?;
    let get = slot.get_child("get", ns::HTTP_UPLOAD)?;
    let headers = put
        .children()
        .filter(|h| h.is("header", ns::HTTP_UPLOAD))
        .filter_map(|h| {
            let name = h.attr("name")?;
            let allowed = ["Authorization", "Cookie", "Expires"]
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))?;
            let value: String = h
                .text()
                .chars()
                .filter(|c| *c != '\r' && *c != '\n')
                .collect();
            Some(((*allowed).to_owned(), value))
        })
        .take(3)
        .collect();
    Some(UploadSlot {
        put: put.attr("url")?.to_owned(),
        headers,
        get: get.attr("url")?.to_owned(),
    })
}

/// Our disco#info answer (entity caps, XEP-0115) to request `id` from `to`, on `node`.
pub fn disco_info_result(id: &str, to: Option<&str>, node: Option<&str>) -> Element {
    let mut q = el("query", ns::DISCO_INFO, &[]);
    if let Some(node) = node {
        set_attr(&mut q, "node", node);
    }
    q.append_child(el(
        "identity",
        ns::DISCO_INFO,
        &[("category", "client"), ("type", "pc"), ("name", "otr4")],
    ));
    for f in FEATURES {
        q.append_child(el("feature", ns::DISCO_INFO, &[("var", f)]));
    }
    answer(id, to, "result", Some(q))
}

/// An iq answer (result or error) to request `id` from `to`, with an optional payload.
pub fn answer(id: &str, to: Option<&str>, typ: &str, payload: Option<Element>) -> Element {
    let mut r = match to {
        Some(f) => el("iq", ns::CLIENT, &[("type", typ), ("id", id), ("to", f)]),
        None => el("iq", ns::CLIENT, &[("type", typ), ("id", id)]),
    };
    if let Some(p) = payload {
        r.append_child(p);
    }
    r
}

/// An iq reply to `req` (result or error) with an optional payload.
#[cfg(feature = "stanzas")]
pub fn reply(req: &Element, typ: &str, payload: Option<Element>) -> Element {
    answer(
        req.attr("id").unwrap_or_default(),
        req.attr("from"),
        typ,
        payload,
    )
}

/// `service-unavailable` (RFC 6120 §8.2.3) to request `id` from `to`.
pub fn unavailable_answer(id: &str, to: Option<&str>) -> Element {
    let mut e = el("error", ns::CLIENT, &[("type", "cancel")]);
    e.append_child(el("service-unavailable", ns::STANZAS, &[]));
    answer(id, to, "error", Some(e))
}

/// `service-unavailable` for an iq we do not serve (RFC 6120 §8.2.3).
#[cfg(feature = "stanzas")]
pub fn iq_unavailable(req: &Element) -> Element {
    unavailable_answer(req.attr("id").unwrap_or_default(), req.attr("from"))
}

/// Where a MAM query (XEP-0313) starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MamFrom<'a> {
    /// Only the newest archived message (to learn where the archive ends).
    Last,
    /// From the beginning of the archive.
    Start,
    /// After this archive id.
    After(&'a str),
}

/// A MAM query (XEP-0313) of at most `max` messages.
pub fn mam_query(id: &str, queryid: &str, from: MamFrom<'_>, max: usize) -> Element {
    let mut q = el("query", ns::MAM, &[("queryid", queryid)]);
    let mut set = el("set", ns::RSM, &[]);
    set.append_child(text_el("max", ns::RSM, &max.to_string()));
    match from {
        MamFrom::After(a) => {
            set.append_child(text_el("after", ns::RSM, a));
        }
        MamFrom::Last => {
            set.append_child(el("before", ns::RSM, &[]));
        }
        MamFrom::Start => {}
    }
    q.append_child(set);
    iq("set", id, None, q)
}

/// One MAM result message: (queryid, archive id, the archived message).
pub fn parse_mam_result(msg: &Element) -> Option<(String, String, &Element)> {
    let r = msg.get_child("result", ns::MAM)?;
    let inner = r
        .get_child("forwarded", ns::FORWARD)?
        .get_child("message", ns::CLIENT)?;
    Some((
        r.attr("queryid")?.to_owned(),
        r.attr("id")?.to_owned(),
        inner,
    ))
}

/// The `<fin/>` of a MAM iq result: (complete, last id of the page).
pub fn parse_mam_fin(iq: &Element) -> Option<(bool, Option<String>)> {
    let fin = iq.get_child("fin", ns::MAM)?;
    let complete = fin.attr("complete") == Some("true");
    let last = fin
        .get_child("set", ns::RSM)
        .and_then(|s| s.get_child("last", ns::RSM))
        .map(Element::text);
    Some((complete, last))
}

/// The XEP-0359 stanza id assigned by `by` (our bare JID's archive).
#[cfg(feature = "stanzas")]
pub fn stanza_id(msg: &Element, by: &str) -> Option<String> {
    msg.children()
        .find(|c| c.is("stanza-id", ns::SID) && c.attr("by") == Some(by))
        .and_then(|c| c.attr("id").map(str::to_owned))
}

/// The XEP-0359 origin id the sender gave a message (our messages carry one).
pub fn origin_id(msg: &Element) -> Option<String> {
    msg.get_child("origin-id", ns::SID)
        .and_then(|c| c.attr("id").map(str::to_owned))
}

/// Whether a message is a carbon copy wrapper (XEP-0280 `<sent/>` / `<received/>`).
pub fn is_carbon(msg: &Element) -> bool {
    msg.get_child("sent", ns::CARBONS).is_some() || msg.get_child("received", ns::CARBONS).is_some()
}

/// Enables carbons (XEP-0280) — used by tests that check we are immune to them.
#[cfg(any(feature = "tokio-client", feature = "stanzas"))]
pub fn enable_carbons(id: &str) -> Element {
    iq("set", id, None, el("enable", ns::CARBONS, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_round_trip() {
        let a = InstanceTag(0x1a2b3c4d);
        let payloads = vec![
            Payload {
                to_tag: Some(InstanceTag(0x100)),
                text: "?OTR:AAQD.".into(),
            },
            Payload {
                to_tag: None,
                text: "?OTRv4?".into(),
            },
        ];
        let m = multicast_message("bob@example.org", "m1", a, &payloads);
        let s = String::from(&m);
        let back: Element = s.parse().unwrap();
        let c = parse_carried(&back).unwrap().unwrap();
        assert_eq!(c.from_tag, a);
        assert_eq!(c.payloads, payloads);
        assert!(back.get_child("private", ns::CARBONS).is_some());
        assert!(back.get_child("no-copy", ns::HINTS).is_some());
        assert!(back.get_child("store", ns::HINTS).is_some());
        assert_eq!(
            back.get_child("encryption", ns::EME)
                .unwrap()
                .attr("namespace"),
            Some(ns::OTR4)
        );
        assert_eq!(body(&back).as_deref(), Some(FALLBACK_BODY));
        assert_eq!(origin_id(&back).as_deref(), Some("m1"));
    }

    #[test]
    fn bad_tags_rejected() {
        assert!(parse_tag("000000ff").is_err()); // below 0x100
        assert!(parse_tag("1234567").is_err());
        assert!(parse_tag("1234567g").is_err());
        assert!(parse_tag("+1234567").is_err());
        assert_eq!(parse_tag("0000ABCD").unwrap(), InstanceTag(0xabcd));
        let m: Element = "<message xmlns='jabber:client'><otr4 xmlns='urn:xmpp:otr4:0' from-tag='zz'/></message>"
            .parse()
            .unwrap();
        assert!(matches!(
            parse_carried(&m),
            Some(Err(StanzaError::BadTag(_)))
        ));
    }

    #[test]
    fn too_many_payloads_rejected() {
        let p: Vec<Payload> = (0..=MAX_PAYLOADS)
            .map(|_| Payload {
                to_tag: None,
                text: "x".into(),
            })
            .collect();
        let m = multicast_message("b@x", "1", InstanceTag(0x100), &p);
        assert_eq!(parse_carried(&m), Some(Err(StanzaError::TooManyPayloads)));
    }

    #[test]
    fn presence_round_trip() {
        let p = presence_available(InstanceTag(0x1234_5678));
        assert_eq!(
            parse_presence(&p),
            PresenceInfo::Available(InstanceTag(0x1234_5678))
        );
        let u = el("presence", ns::CLIENT, &[("type", "unavailable")]);
        assert_eq!(parse_presence(&u), PresenceInfo::Unavailable);
        assert_eq!(
            parse_presence(&el("presence", ns::CLIENT, &[])),
            PresenceInfo::Other
        );
    }

    #[test]
    fn caps_ver_is_sha1_base64_of_sorted_features() {
        // Recomputed by hand from XEP-0115 §5.1's algorithm.
        let s = "client/pc//otr4<http://jabber.org/protocol/disco#info<urn:xmpp:carbons:2<urn:xmpp:otr4:0<urn:xmpp:otr4:0:devices+notify<";
        let want = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()));
        assert_eq!(caps_ver(), want);
        assert_eq!(caps_ver().len(), 28);
    }

    #[test]
    fn jid_parts() {
        assert_eq!(bare("a@b/c"), "a@b");
        assert_eq!(bare("a@b"), "a@b");
        assert_eq!(domain("a@b/c"), "b");
        assert_eq!(domain("b"), "b");
    }

    #[test]
    fn precondition_detected() {
        let e: Element = "<iq xmlns='jabber:client' type='error' id='1'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>".parse().unwrap();
        assert!(is_precondition_not_met(&e));
        assert!(!is_item_not_found(&e));
    }

    #[test]
    fn mam_result_parsed() {
        let m: Element = "<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A7'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@x/r'><body>hi</body></message></forwarded></result></message>".parse().unwrap();
        let (q, id, inner) = parse_mam_result(&m).unwrap();
        assert_eq!((q.as_str(), id.as_str()), ("q1", "A7"));
        assert_eq!(body(inner).as_deref(), Some("hi"));
        let fin: Element = "<iq xmlns='jabber:client' type='result'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><last>A9</last></set></fin></iq>".parse().unwrap();
        assert_eq!(parse_mam_fin(&fin), Some((true, Some("A9".into()))));
    }

    #[test]
    fn devices_payload_from_items_and_events() {
        let r: Element = "<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:otr4:0:devices'><item id='current'><devices xmlns='urn:xmpp:otr4:0'/></item></items></pubsub></iq>".parse().unwrap();
        assert!(devices_payload(&r).unwrap().is_some());
        let ev: Element = "<message xmlns='jabber:client'><event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='urn:xmpp:otr4:0:devices'/></event></message>".parse().unwrap();
        assert_eq!(devices_payload(&ev), Some(None));
        let other: Element = "<message xmlns='jabber:client'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'/></event></message>".parse().unwrap();
        assert_eq!(devices_payload(&other), None);
    }
}
