//! `otr4-wasm-sim` (feature `sim`, tests only): otr4-ffi's in-memory XMPP server with the
//! real prekey server, driven by the Node tests over stdin/stdout, one JSON object a line.
//!
//! Requests: `{"op":"addUser","jid":J}`, `{"op":"connect","jid":FULL}`,
//! `{"op":"disconnect","jid":FULL}`, `{"op":"submit","from":FULL,"xml":X}`,
//! `{"op":"inbox","jid":FULL}`. Each gets one line: `{"ok":true}` (with `"stanzas":[…]` for
//! `inbox`) or `{"ok":false,"error":M}`. Usage: `otr4-wasm-sim DOMAIN`.
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};

use otr4_ffi::core::sim::SimCore;
use serde_json::{Value, json};

fn field<'a>(req: &'a Value, name: &str) -> Result<&'a str, String> {
    req.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field {name:?}"))
}

fn answer(sim: &mut SimCore, req: &Value) -> Result<Value, String> {
    let op = field(req, "op")?;
    let e = |x: otr4_ffi::core::status::Error| x.to_string();
    match op {
        "addUser" => sim.add_user(field(req, "jid")?).map_err(e)?,
        "connect" => sim.connect(field(req, "jid")?).map_err(e)?,
        "disconnect" => sim.disconnect(field(req, "jid")?).map_err(e)?,
        "submit" => sim
            .submit(field(req, "from")?, field(req, "xml")?)
            .map_err(e)?,
        "inbox" => {
            let jid = field(req, "jid")?;
            let stanzas: Vec<String> = std::iter::from_fn(|| sim.next_stanza(jid)).collect();
            return Ok(json!({ "ok": true, "stanzas": stanzas }));
        }
        other => return Err(format!("unknown op {other:?}")),
    }
    Ok(json!({ "ok": true }))
}

fn main() -> std::process::ExitCode {
    let domain = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example.org".to_owned());
    let mut sim = match SimCore::new(&domain) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("otr4-wasm-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => answer(&mut sim, &req).unwrap_or_else(|m| json!({"ok": false, "error": m})),
            Err(err) => json!({"ok": false, "error": format!("not JSON: {err}")}),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}
