//! The in-memory network's HTTP upload service (XEP-0363) and its web server: a component
//! that grants slots and a map of URLs to bytes that the network PUTs to and GETs from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use xmpp_glue::minidom::Element;
use xmpp_glue::ns;
use xmpp_glue::stanza::{self, el};

/// The files "on the web server": URL → bytes.
pub type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// The upload component at `jid`: disco#info with the XEP-0363 feature and `max` as its
/// `max-file-size`, and a slot (`https://{jid}/{n}/{filename}` for PUT and GET) for every
/// request that fits.
pub fn handle(jid: &str, max: u64, next: &mut u64, stanza: &Element) -> Vec<Element> {
    if stanza.name() != "iq" || stanza.attr("type") != Some("get") {
        return Vec::new();
    }
    let payload = if stanza.get_child("query", ns::DISCO_INFO).is_some() {
        let mut q = el("query", ns::DISCO_INFO, &[]);
        q.append_child(el(
            "identity",
            ns::DISCO_INFO,
            &[
                ("category", "store"),
                ("type", "file"),
                ("name", "HTTP File Upload"),
            ],
        ));
        q.append_child(el("feature", ns::DISCO_INFO, &[("var", ns::HTTP_UPLOAD)]));
        let mut x = el("x", ns::DATA_FORMS, &[("type", "result")]);
        let mut ft = el(
            "field",
            ns::DATA_FORMS,
            &[("var", "FORM_TYPE"), ("type", "hidden")],
        );
        ft.append_child(stanza::text_el("value", ns::DATA_FORMS, ns::HTTP_UPLOAD));
        x.append_child(ft);
        let mut mf = el("field", ns::DATA_FORMS, &[("var", "max-file-size")]);
        mf.append_child(stanza::text_el("value", ns::DATA_FORMS, &max.to_string()));
        x.append_child(mf);
        q.append_child(x);
        Some(q)
    } else if let Some(req) = stanza.get_child("request", ns::HTTP_UPLOAD) {
        let size: u64 = req
            .attr("size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        let name = req.attr("filename").unwrap_or("f");
        if size > max || name.contains('/') {
            None
        } else {
            *next += 1;
            let url = format!("https://{jid}/{next}/{name}");
            let mut slot = el("slot", ns::HTTP_UPLOAD, &[]);
            let mut put = el("put", ns::HTTP_UPLOAD, &[("url", &url)]);
            let mut h = el("header", ns::HTTP_UPLOAD, &[("name", "Authorization")]);
            h.append_text("Basic c2xvdA==");
            put.append_child(h);
            slot.append_child(put);
            slot.append_child(el("get", ns::HTTP_UPLOAD, &[("url", &url)]));
            Some(slot)
        }
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
