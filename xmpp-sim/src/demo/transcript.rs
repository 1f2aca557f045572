//! Prints what the devices report as a readable transcript and remembers what the final
//! checks need (who received what, SMP results, problems).

use otr4::InstanceTag;
use otr4::SmpUpdate;
use xmpp_glue::DeviceChange;
use xmpp_glue::GlueEvent;

use super::Net;

/// The transcript and its record.
pub struct Transcript {
    domain: String,
    /// (receiving device, sending device, text)
    got: Vec<(String, String, String)>,
    /// (device, peer device) pairs whose SMP succeeded.
    smp_ok: Vec<(String, String)>,
    problems: usize,
}

fn short(fp: &str) -> String {
    fp.chars().take(16).collect()
}

impl Transcript {
    /// A transcript for `domain`.
    pub fn new(domain: &str) -> Transcript {
        Transcript {
            domain: domain.to_owned(),
            got: Vec::new(),
            smp_ok: Vec::new(),
            problems: 0,
        }
    }

    /// A section heading.
    pub fn section(&mut self, title: &str) {
        println!("\n== {title}");
    }

    /// A user typed a message.
    pub fn said(&mut self, dev: &str, to: &str, text: &str) {
        println!("  {dev:<13} types to {to}: \"{text}\"");
    }

    fn name<N: Net>(&self, net: &N, jid: &str, tag: InstanceTag) -> String {
        let user = jid.split('@').next().unwrap_or(jid);
        for r in ["laptop", "phone", "desktop", "tablet"] {
            let dev = format!("{user}/{r}");
            if net.tag(&dev) == tag {
                return dev;
            }
        }
        format!("{user}/{:08x}", tag.0)
    }

    /// Prints the events of one step.
    pub fn show<N: Net>(&mut self, net: &N, events: &[(String, GlueEvent)]) {
        let _ = &self.domain;
        for (dev, e) in events {
            let line = match e {
                GlueEvent::Message {
                    from,
                    device,
                    text,
                    sent_to,
                    trust,
                    listed,
                } => {
                    let sender = self.name(net, from, *device);
                    self.got.push((dev.clone(), sender.clone(), text.clone()));
                    let mut warn = String::new();
                    if *trust == xmpp_glue::Trust::Changed {
                        warn.push_str(" [from a device whose key changed]");
                    }
                    if !listed {
                        warn.push_str(" [from a device not on the list]");
                    }
                    match sent_to {
                        Some(to) => format!("reads copy of {sender} → {to}: \"{text}\"{warn}"),
                        None => format!("reads {sender}: \"{text}\"{warn}"),
                    }
                }
                GlueEvent::Secure {
                    peer,
                    device,
                    fingerprint,
                    trust,
                    non_interactive,
                } => format!(
                    "encrypted session with {} ({} DAKE, fingerprint {}…, {trust:?})",
                    self.name(net, peer, *device),
                    if *non_interactive {
                        "non-interactive"
                    } else {
                        "interactive"
                    },
                    short(fingerprint)
                ),
                GlueEvent::DevicesChanged { jid, change } => match change {
                    DeviceChange::Added(d) => format!(
                        "device list of {jid}: + {} \"{}\"",
                        self.name(net, jid, d.instance_tag()),
                        d.label
                    ),
                    DeviceChange::Removed(d) => format!(
                        "device list of {jid}: - {}",
                        self.name(net, jid, d.instance_tag())
                    ),
                    DeviceChange::FingerprintChanged { new, .. } => format!(
                        "device list of {jid}: {} has a NEW KEY",
                        self.name(net, jid, new.instance_tag())
                    ),
                    DeviceChange::Emptied => {
                        format!("device list of {jid} is empty: keeping the known devices")
                    }
                    DeviceChange::Replaced { old, new } => format!(
                        "device list of {jid}: \"{}\" was REINSTALLED ({} retired, {} has a NEW KEY)",
                        new.label,
                        self.name(net, jid, old.instance_tag()),
                        self.name(net, jid, new.instance_tag())
                    ),
                },
                GlueEvent::TrustChanged {
                    jid, device, note, ..
                } => format!("trust: {} — {note}", self.name(net, jid, *device)),
                GlueEvent::Smp {
                    peer,
                    device,
                    update,
                    ..
                } => {
                    let who = self.name(net, peer, *device);
                    match update {
                        SmpUpdate::AskForSecret { question } => format!(
                            "SMP: {who} asks \"{}\"",
                            question.clone().unwrap_or_default()
                        ),
                        SmpUpdate::InProgress => format!("SMP with {who}: in progress"),
                        SmpUpdate::Succeeded => {
                            self.smp_ok.push((dev.clone(), who.clone()));
                            format!("SMP with {who}: SUCCEEDED, {who} is verified")
                        }
                        SmpUpdate::Failed => format!("SMP with {who}: the secrets differ"),
                        SmpUpdate::Aborted { .. } => format!("SMP with {who}: aborted"),
                    }
                }
                GlueEvent::Published { prekeys } => {
                    format!("published {prekeys} prekeys and its profiles to the prekey server")
                }
                GlueEvent::Listed => "is now on its account's device list".to_owned(),
                GlueEvent::PrekeyServer(p) => format!(
                    "found prekey server {} (fingerprint {}…), pinned",
                    p.jid,
                    short(&p.fingerprint)
                ),
                GlueEvent::Online => "online (archive caught up, presence sent)".to_owned(),
                GlueEvent::Undecryptable { from, error, .. } => {
                    self.problems += 1;
                    format!("UNDECRYPTABLE payload from {from}: {error}")
                }
                GlueEvent::SessionRepair {
                    peer,
                    device,
                    action,
                    ..
                } => format!(
                    "{} could not read our last message: repairing the session ({action:?})",
                    self.name(net, peer, *device)
                ),
                GlueEvent::NotForThisDevice { from, device, .. } => format!(
                    "a message from {} was not encrypted for this device: announcing it again",
                    self.name(net, from, *device)
                ),
                GlueEvent::NotSent { to, device, reason } => {
                    format!("not sent to {to} {device:?}: {reason}")
                }
                GlueEvent::Error(err) => {
                    self.problems += 1;
                    format!("ERROR: {err}")
                }
                GlueEvent::Otr(otr4::Event::Warning { warning, .. }) => {
                    format!("warning: {warning:?}")
                }
                GlueEvent::Otr(otr4::Event::Disconnected { peer, reason, .. }) => {
                    format!("session with {peer} ended: {reason:?}")
                }
                _ => continue,
            };
            println!("  {dev:<13} {line}");
        }
    }

    /// One line for a file `sender` sent (encrypted, one upload): which devices got
    /// exactly these bytes (the other events of the step are not printed). Returns whether
    /// every other device got it and nothing failed.
    pub fn file(
        &mut self,
        sender: &str,
        name: &str,
        data: &[u8],
        events: &[(String, GlueEvent)],
    ) -> bool {
        let mut got = Vec::new();
        let mut failed = Vec::new();
        for (dev, e) in events {
            match e {
                GlueEvent::File(f) if f.name == name && f.data.as_slice() == data => {
                    got.push(dev.as_str());
                }
                GlueEvent::File(_) | GlueEvent::FileFailed { .. } => failed.push(dev.as_str()),
                GlueEvent::Undecryptable { .. } | GlueEvent::Error(_) => self.problems += 1,
                _ => {}
            }
        }
        got.sort_unstable();
        let ok = got.len() == 3 && failed.is_empty();
        println!(
            "  {sender:<13} sends \"{name}\" ({} bytes, encrypted, one HTTP upload): {} {}",
            data.len(),
            if ok { "intact on" } else { "FAILED; intact on" },
            got.join(", ")
        );
        ok
    }

    /// How often `dev` read `text` from `from`.
    pub fn received(&self, dev: &str, from: &str, text: &str) -> usize {
        self.got
            .iter()
            .filter(|(d, f, t)| d == dev && f == from && t == text)
            .count()
    }

    /// Whether `dev` saw SMP succeed with `peer`.
    pub fn verified(&self, dev: &str, peer: &str) -> bool {
        self.smp_ok.iter().any(|(d, p)| d == dev && p == peer)
    }

    /// Undecryptable payloads and errors seen.
    pub fn problems(&self) -> usize {
        self.problems
    }
}
