//! Events as plain JS objects: `kind`, `trust`, `smp` and `deviceChange` as strings, the
//! shapes `types.d.ts` declares (`Otr4Event`, a union discriminated by `kind`).

use js_sys::{Object, Reflect};
use otr4_ffi::core::events::{Event, otr4_device_change, otr4_event_kind, otr4_smp, otr4_trust};
use wasm_bindgen::JsValue;

/// The `kind` string of an event kind.
pub fn kind_name(k: otr4_event_kind) -> &'static str {
    use otr4_event_kind::*;
    match k {
        OTR4_EVENT_MESSAGE => "message",
        OTR4_EVENT_SECURE => "secure",
        OTR4_EVENT_FINISHED => "finished",
        OTR4_EVENT_TRUST => "trust",
        OTR4_EVENT_SMP => "smp",
        OTR4_EVENT_DEVICES => "devices",
        OTR4_EVENT_NOT_SENT => "notSent",
        OTR4_EVENT_UNDECRYPTABLE => "undecryptable",
        OTR4_EVENT_ERROR => "error",
        OTR4_EVENT_INFO => "info",
        OTR4_EVENT_ONLINE => "online",
        OTR4_EVENT_SEND => "send",
        OTR4_EVENT_SAVE_STATE => "saveState",
        OTR4_EVENT_PREKEY_SERVER_KEY_ROTATED => "prekeyServerKeyRotated",
        OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED => "prekeyServerKeyChanged",
        OTR4_EVENT_SECURE_V3 => "secureV3",
    }
}

fn trust_name(t: otr4_trust) -> &'static str {
    match t {
        otr4_trust::OTR4_TRUST_NONE => "none",
        otr4_trust::OTR4_TRUST_TOFU => "tofu",
        otr4_trust::OTR4_TRUST_VERIFIED => "verified",
        otr4_trust::OTR4_TRUST_CHANGED => "changed",
    }
}

fn smp_name(d: u32) -> Option<&'static str> {
    use otr4_smp::*;
    [
        (OTR4_SMP_ASK_SECRET, "askSecret"),
        (OTR4_SMP_IN_PROGRESS, "inProgress"),
        (OTR4_SMP_SUCCEEDED, "succeeded"),
        (OTR4_SMP_FAILED, "failed"),
        (OTR4_SMP_ABORTED, "aborted"),
    ]
    .into_iter()
    .find(|(v, _)| *v as u32 == d)
    .map(|(_, n)| n)
}

fn device_change_name(d: u32) -> Option<&'static str> {
    use otr4_device_change::*;
    [
        (OTR4_DEVICE_ADDED, "added"),
        (OTR4_DEVICE_REMOVED, "removed"),
        (OTR4_DEVICE_FINGERPRINT_CHANGED, "fingerprintChanged"),
        (OTR4_DEVICE_LIST_EMPTIED, "listEmptied"),
    ]
    .into_iter()
    .find(|(v, _)| *v as u32 == d)
    .map(|(_, n)| n)
}

fn opt(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from)
}

/// The JS object of `e`: `{kind, peer, device, text, trust, listed, nonInteractive, smp,
/// deviceChange, sentTo}` (`smp`, `deviceChange`, `sentTo`: `null` where they do not apply).
pub fn to_js(e: &Event) -> JsValue {
    use otr4_event_kind::*;
    let o = Object::new();
    let smp = (e.kind == OTR4_EVENT_SMP)
        .then(|| smp_name(e.detail))
        .flatten();
    let change = (e.kind == OTR4_EVENT_DEVICES)
        .then(|| device_change_name(e.detail))
        .flatten();
    let sent_to = (!e.sent_to.is_empty()).then_some(e.sent_to.as_str());
    let fields: [(&str, JsValue); 10] = [
        ("kind", kind_name(e.kind).into()),
        ("peer", e.peer.as_str().into()),
        ("device", e.device.into()),
        ("text", e.text.as_str().into()),
        ("trust", trust_name(e.trust).into()),
        ("listed", e.listed.into()),
        (
            "nonInteractive",
            (e.kind == OTR4_EVENT_SECURE && e.detail == 1).into(),
        ),
        ("smp", opt(smp)),
        ("deviceChange", opt(change)),
        ("sentTo", opt(sent_to)),
    ];
    for (k, v) in fields {
        // Defining a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &k.into(), &v);
    }
    o.into()
}
