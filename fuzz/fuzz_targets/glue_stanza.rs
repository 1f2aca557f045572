//! Fuzzes the decoders of xmpp-glue's stanza carriage on untrusted XML: the bounded parse
//! (`xml::parse`), the `<otr4/>` element (payloads, `unreadable`, `devices`) and a device list.
//! Everything decoded stays within the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_glue::stanza::{self, MAX_ORIGIN_ID_LEN, MAX_PAYLOAD_LEN, MAX_PAYLOADS};
use xmpp_glue::{DeviceList, MAX_DEVICES_PER_USER, parse_stanza};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(el) = parse_stanza(text) else { return };
    if let Some(Ok(c)) = stanza::parse_carried(&el) {
        assert!(c.payloads.len() <= MAX_PAYLOADS);
        assert!(c.payloads.iter().all(|p| p.text.len() <= MAX_PAYLOAD_LEN));
        assert!(c.unreadable.is_none_or(|u| !u.is_empty() && u.len() <= MAX_ORIGIN_ID_LEN));
        assert!(c.devices.is_none_or(|d| d.len() <= MAX_PAYLOADS));
    }
    for e in core::iter::once(&el).chain(el.children()) {
        let (list, _issues) = DeviceList::parse(e);
        assert!(list.devices.len() <= MAX_DEVICES_PER_USER);
    }
});
