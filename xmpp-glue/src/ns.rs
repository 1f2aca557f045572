//! XML namespaces and node names used on the wire (docs/xmpp-glue.md, xep-draft/).
//! Ours first, then the XEPs we build on.

/// Our namespace: the `<otr4/>` carriage element, `<devices/>`, `<device/>` in presence.
pub const OTR4: &str = "urn:xmpp:otr4:0";
/// The PEP node holding a user's device list.
pub const DEVICES_NODE: &str = "urn:xmpp:otr4:0:devices";
/// The entity-caps feature asking for device-list notifications (XEP-0163 `+notify`).
pub const DEVICES_NOTIFY: &str = "urn:xmpp:otr4:0:devices+notify";
/// The device list's single item id.
pub const DEVICES_ITEM: &str = "current";

/// Client stanzas.
pub const CLIENT: &str = "jabber:client";
/// XEP-0030 disco#info.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0060 pubsub.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0060 pubsub#owner.
pub const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// XEP-0060 pubsub#event.
pub const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// XEP-0060 pubsub#errors.
pub const PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// XEP-0060 publish-options form type.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// XEP-0060 node_config form type.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// XEP-0004 data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0115 entity capabilities.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0280 message carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0334 message processing hints.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0380 explicit message encryption.
pub const EME: &str = "urn:xmpp:eme:0";
/// XEP-0380's namespace for OTR (up to version 3) in an `<encryption/>` element.
pub const OTR_V3: &str = "urn:xmpp:otr:0";
/// XEP-0313 message archive management.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059 result set management.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0297 forwarding.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0359 unique and stable stanza ids.
pub const SID: &str = "urn:xmpp:sid:0";
/// XMPP stanza errors.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0363 HTTP File Upload (disco feature and slot namespace).
pub const HTTP_UPLOAD: &str = "urn:xmpp:http:upload:0";
/// The prekey server's disco feature (otrv4-prekey-server.md §"Discovering a Prekey Server").
pub const PREKEY_SERVER_FEATURE: &str = "http://jabber.org/protocol/otrv4-prekey-server";
/// Our entity-caps node.
pub const CAPS_NODE: &str = "https://example.invalid/otr4";
