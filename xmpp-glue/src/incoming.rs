//! Classifies an incoming stanza once into a typed [`Incoming`] value (docs/xmpp-glue.md
//! §2–§5): the engine dispatches on it and never reads the XML tree again.

use minidom::Element;

use crate::error::IqFailure;
use crate::ns;
use crate::stanza::{self, Carried, DiscoItem, PresenceInfo, StanzaError};

/// One stanza, classified.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A `<message/>`.
    Message(Message),
    /// A `<presence/>` with a `from`.
    Presence {
        /// Its full JID.
        from: String,
        /// What it says about an OTRv4 device.
        info: PresenceInfo,
    },
    /// An IQ request (`get` or `set`): always answered.
    Request(IqRequest),
    /// An IQ answer (`result`, `error`, anything but `get`/`set`).
    Response(IqResponse),
    /// Not a `jabber:client` stanza we read (or a presence without `from`).
    Ignored,
}

/// A message stanza.
#[derive(Debug)]
pub(crate) struct Message {
    /// Its `from` attribute, as sent (absent: our own server on our behalf).
    pub from: Option<String>,
    /// What it is.
    pub kind: MessageKind,
}

/// What a message is, checked in this order (docs/xmpp-glue.md §5, §8).
#[derive(Debug)]
pub(crate) enum MessageKind {
    /// A MAM result (XEP-0313) wrapping an archived message (only at the top level).
    ArchiveResult {
        /// The query it answers.
        queryid: String,
        /// The archive id of the wrapped message.
        archive_id: String,
        /// The wrapped message, classified as an archived one.
        inner: Box<Message>,
    },
    /// A carbon copy wrapper (XEP-0280).
    Carbon,
    /// A message of type `error`.
    Error,
    /// A device-list event or items result (`None`: emptied, purged or deleted).
    DeviceList(Option<Element>),
    /// Anything else: an OTRv4 message, a prekey-server body, or neither.
    Chat(Chat),
}

/// The parts of a chat message the engine reads.
#[derive(Debug, Default)]
pub(crate) struct Chat {
    /// XEP-0359 stanza ids: (`by`, id) in document order.
    pub stanza_ids: Vec<(String, String)>,
    /// The sender's XEP-0359 origin id.
    pub origin_id: Option<String>,
    /// The body text.
    pub body: Option<String>,
    /// The `<otr4/>` element, parsed (absent: not an OTRv4 message).
    pub carried: Option<Result<Carried, StanzaError>>,
    /// The bare JID it was addressed to (absent: no `to`). A message our account sent to a
    /// contact comes back from our archive addressed to that contact.
    pub to_bare: Option<String>,
}

impl Chat {
    /// The stanza id our archive (`by` our bare JID) gave the message.
    pub fn stanza_id(&self, by: &str) -> Option<&str> {
        self.stanza_ids
            .iter()
            .find(|(b, _)| b == by)
            .map(|(_, id)| id.as_str())
    }
}

/// An IQ request to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IqRequest {
    /// Its id (empty if absent).
    pub id: String,
    /// Who asked.
    pub from: Option<String>,
    /// `Some(node)` for a disco#info `get` (entity caps), `None` for anything else.
    pub disco_info: Option<Option<String>>,
}

/// An IQ answer, with every payload the engine's requests can get.
#[derive(Debug, Default)]
pub(crate) struct IqResponse {
    /// Its id.
    pub id: Option<String>,
    /// Who answered (absent: our own server or account).
    pub from: Option<String>,
    /// `type='result'`.
    pub ok: bool,
    /// A MAM `<fin/>`: (complete, last id of the page).
    pub mam_fin: Option<(bool, Option<String>)>,
    /// disco#items items.
    pub disco_items: Vec<DiscoItem>,
    /// A disco#info answer of an OTRv4 prekey server.
    pub prekey_server: bool,
    /// A device-list items result (`Some(None)`: the node is empty).
    pub devices: Option<Option<Element>>,
    /// A disco#info answer of an HTTP upload service, with its size limit (XEP-0363 §3).
    pub upload_service: Option<Option<u64>>,
    /// An HTTP upload slot (XEP-0363 §4).
    pub upload_slot: Option<Box<stanza::UploadSlot>>,
    /// `precondition-not-met` (XEP-0060 §7.1.5).
    pub precondition_not_met: bool,
    /// The error, for any answer but a result.
    pub failure: Option<IqFailure>,
}

impl IqResponse {
    /// The failure a request gets when nobody answered it ([`crate::requests::TRIES`] sends):
    /// `wait`/`remote-server-timeout` (RFC 6120 §8.3.3.18).
    pub fn timed_out() -> IqResponse {
        IqResponse {
            id: None,
            from: None,
            ok: false,
            mam_fin: None,
            disco_items: Vec::new(),
            prekey_server: false,
            devices: None,
            precondition_not_met: false,
            upload_service: None,
            upload_slot: None,
            failure: Some(IqFailure {
                typ: "wait".into(),
                condition: "remote-server-timeout".into(),
            }),
        }
    }
}

impl Incoming {
    /// Classifies `stanza` (already checked against the limits of [`crate::xml`]).
    pub fn parse(stanza: &Element) -> Incoming {
        if stanza.ns() != ns::CLIENT {
            return Incoming::Ignored;
        }
        match stanza.name() {
            "message" => Incoming::Message(Message::parse(stanza, false)),
            "presence" => match stanza.attr("from") {
                Some(from) => Incoming::Presence {
                    from: from.to_owned(),
                    info: stanza::parse_presence(stanza),
                },
                None => Incoming::Ignored,
            },
            "iq" => parse_iq(stanza),
            _ => Incoming::Ignored,
        }
    }
}

impl Message {
    /// Classifies a message; `archived`: it came out of a MAM result (no nested results).
    fn parse(m: &Element, archived: bool) -> Message {
        let from = m.attr("from").map(str::to_owned);
        if !archived && let Some((queryid, archive_id, inner)) = stanza::parse_mam_result(m) {
            return Message {
                from,
                kind: MessageKind::ArchiveResult {
                    queryid,
                    archive_id,
                    inner: Box::new(Message::parse(inner, true)),
                },
            };
        }
        let kind = if stanza::is_carbon(m) {
            MessageKind::Carbon
        } else if m.attr("type") == Some("error") {
            MessageKind::Error
        } else if let Some(payload) = stanza::devices_payload(m) {
            MessageKind::DeviceList(payload.cloned())
        } else {
            MessageKind::Chat(Chat {
                stanza_ids: m
                    .children()
                    .filter(|c| c.is("stanza-id", ns::SID))
                    .filter_map(|c| Some((c.attr("by")?.to_owned(), c.attr("id")?.to_owned())))
                    .collect(),
                origin_id: stanza::origin_id(m),
                body: stanza::body(m),
                carried: stanza::parse_carried(m),
                to_bare: m.attr("to").map(|t| stanza::bare(t).to_owned()),
            })
        };
        Message { from, kind }
    }
}

fn parse_iq(iq: &Element) -> Incoming {
    let typ = iq.attr("type").unwrap_or_default();
    let from = iq.attr("from").map(str::to_owned);
    if typ == "get" || typ == "set" {
        let disco_info = if typ == "get" {
            iq.get_child("query", ns::DISCO_INFO)
                .map(|q| q.attr("node").map(str::to_owned))
        } else {
            None
        };
        return Incoming::Request(IqRequest {
            id: iq.attr("id").unwrap_or_default().to_owned(),
            from,
            disco_info,
        });
    }
    Incoming::Response(IqResponse {
        id: iq.attr("id").map(str::to_owned),
        from,
        ok: typ == "result",
        mam_fin: stanza::parse_mam_fin(iq),
        disco_items: stanza::parse_disco_items(iq),
        prekey_server: stanza::is_prekey_server(iq),
        devices: stanza::devices_payload(iq).map(|p| p.cloned()),
        upload_service: stanza::upload_service(iq),
        upload_slot: stanza::parse_upload_slot(iq).map(Box::new),
        precondition_not_met: stanza::is_precondition_not_met(iq),
        failure: (typ != "result").then(|| iq_failure(iq)),
    })
}

/// The type and defined condition of an IQ error (RFC 6120 §8.3).
fn iq_failure(iq: &Element) -> IqFailure {
    let error = iq.get_child("error", ns::CLIENT);
    IqFailure {
        typ: error
            .and_then(|e| e.attr("type"))
            .unwrap_or_default()
            .to_owned(),
        condition: error
            .and_then(|e| {
                e.children()
                    .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
            })
            .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Incoming {
        Incoming::parse(&xml.parse::<Element>().unwrap())
    }

    #[test]
    fn a_mam_result_wraps_a_classified_message_without_nesting() {
        let m = parse(
            "<message xmlns='jabber:client' from='a@x'><result xmlns='urn:xmpp:mam:2' queryid='q' id='A1'>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='b@x/r'>\
             <result xmlns='urn:xmpp:mam:2' queryid='q' id='A2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client'/></forwarded></result><body>hi</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='S1'/></message></forwarded></result></message>",
        );
        let Incoming::Message(Message {
            from,
            kind:
                MessageKind::ArchiveResult {
                    queryid,
                    archive_id,
                    inner,
                },
        }) = m
        else {
            panic!("not an archive result: {m:?}")
        };
        assert_eq!(from.as_deref(), Some("a@x"));
        assert_eq!((queryid.as_str(), archive_id.as_str()), ("q", "A1"));
        assert_eq!(inner.from.as_deref(), Some("b@x/r"));
        let MessageKind::Chat(chat) = inner.kind else {
            panic!("the archived message is read as a chat message, not a nested result")
        };
        assert_eq!(chat.body.as_deref(), Some("hi"));
        assert_eq!(chat.stanza_id("a@x"), Some("S1"));
        assert_eq!(chat.stanza_id("c@x"), None);
        assert!(chat.carried.is_none());
    }

    #[test]
    fn carbons_errors_and_device_lists_are_told_apart() {
        let kind = |xml: &str| match parse(xml) {
            Incoming::Message(m) => m.kind,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            kind("<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'/></message>"),
            MessageKind::Carbon
        ));
        assert!(matches!(
            kind("<message xmlns='jabber:client' type='error'/>"),
            MessageKind::Error
        ));
        assert!(matches!(
            kind(
                "<message xmlns='jabber:client'><event xmlns='http://jabber.org/protocol/pubsub#event'>\
                  <purge node='urn:xmpp:otr4:0:devices'/></event></message>"
            ),
            MessageKind::DeviceList(None)
        ));
        let MessageKind::Chat(c) = kind(
            "<message xmlns='jabber:client'><otr4 xmlns='urn:xmpp:otr4:0' from-tag='zz'/></message>",
        ) else {
            panic!("not a chat message")
        };
        assert!(matches!(c.carried, Some(Err(StanzaError::BadTag(_)))));
    }

    #[test]
    fn iqs_are_requests_or_responses() {
        assert_eq!(
            match parse(
                "<iq xmlns='jabber:client' type='get' id='7' from='b@x/r'><query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>"
            ) {
                Incoming::Request(r) => r,
                other => panic!("{other:?}"),
            },
            IqRequest {
                id: "7".into(),
                from: Some("b@x/r".into()),
                disco_info: Some(Some("n".into())),
            }
        );
        assert!(matches!(
            parse(
                "<iq xmlns='jabber:client' type='set' id='8'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            ),
            Incoming::Request(IqRequest {
                disco_info: None,
                ..
            })
        ));
        let Incoming::Response(r) = parse(
            "<iq xmlns='jabber:client' type='error' id='9'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>",
        ) else {
            panic!("not a response")
        };
        assert!(!r.ok && r.precondition_not_met);
        assert_eq!(
            r.failure,
            Some(IqFailure {
                typ: "cancel".into(),
                condition: "conflict".into()
            })
        );
        // The condition is the stanza-error element, not its text nor an application one.
        let Incoming::Response(r) = parse(
            "<iq xmlns='jabber:client' type='error' id='9'><error type='auth'>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>go away</text>\
             <precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>\
             <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        ) else {
            panic!("not a response")
        };
        assert_eq!(
            r.failure,
            Some(IqFailure {
                typ: "auth".into(),
                condition: "forbidden".into()
            })
        );
        let Incoming::Response(r) = parse(
            "<iq xmlns='jabber:client' type='result' id='10'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>",
        ) else {
            panic!("not a response")
        };
        assert!(r.ok && r.failure.is_none());
        assert_eq!(r.mam_fin, Some((true, None)));
    }

    #[test]
    fn other_namespaces_and_anonymous_presence_are_ignored() {
        assert!(matches!(
            parse("<message xmlns='jabber:server'/>"),
            Incoming::Ignored
        ));
        assert!(matches!(
            parse("<presence xmlns='jabber:client'/>"),
            Incoming::Ignored
        ));
        assert!(matches!(
            parse("<presence xmlns='jabber:client' from='a@x/r' type='unavailable'/>"),
            Incoming::Presence {
                info: PresenceInfo::Unavailable,
                ..
            }
        ));
    }
}
