//! The prekey server as a component of the in-memory XMPP server: disco answers exactly as
//! otrv4-prekey-server.md's XMPP section says, message bodies go to the real `Service`.

use std::sync::Arc;

use prekey_server::service::{Service, ServiceOptions};
use prekey_server::storage::sqlite::{Durability, SqliteStorage};
use prekey_server::transport::component::{disco_info, disco_items};
use xmpp_glue::minidom::Element;
use xmpp_glue::ns;
use xmpp_glue::stanza::{self, bare, el, text_el};

/// A prekey server for `jid` on an embedded SQLite store in `dir`.
pub fn service(jid: &str, dir: &std::path::Path) -> Arc<Service> {
    let storage = SqliteStorage::open(dir.join("prekeys.db"), Durability::Full)
        .unwrap_or_else(|e| fail(&format!("prekey store: {e}")));
    let (key, _) = prekey_server::keys::load_or_create(&dir.join("server.key"))
        .unwrap_or_else(|e| fail(&format!("prekey server key: {e}")));
    Arc::new(Service::new(
        key,
        Arc::new(storage),
        ServiceOptions::new(jid),
    ))
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}

/// Handles one stanza addressed to the component; returns the stanzas it answers with.
pub fn handle(service: &Service, jid: &str, stanza: &Element) -> Vec<Element> {
    let from = stanza.attr("from").unwrap_or_default().to_owned();
    match stanza.name() {
        "iq" if matches!(stanza.attr("type"), Some("get")) => {
            let payload = if stanza.get_child("query", ns::DISCO_INFO).is_some() {
                disco_info("OTR Prekey Server").ok()
            } else if stanza.get_child("query", ns::DISCO_ITEMS).is_some() {
                disco_items(jid, &service.fingerprint_hex(), &[]).ok()
            } else {
                None
            };
            let mut r = match payload {
                Some(p) => stanza::reply(stanza, "result", Some(p)),
                None => stanza::iq_unavailable(stanza),
            };
            stanza::set_attr(&mut r, "from", jid);
            vec![r]
        }
        "message" => {
            let Some(body) = stanza::body(stanza) else {
                return Vec::new();
            };
            let handled = service.handle(bare(&from), &body);
            handled
                .replies
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let id = format!("pk-{i}");
                    let mut m = el(
                        "message",
                        ns::CLIENT,
                        &[("type", "chat"), ("from", jid), ("to", &from), ("id", &id)],
                    );
                    m.append_child(text_el("body", ns::CLIENT, &text));
                    m
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
