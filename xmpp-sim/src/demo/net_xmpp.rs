//! The demo's network on a real XMPP server: one `XmppClient` (tokio-xmpp, STARTTLS) per
//! device, each with its own store directory; `settle` waits until the devices go quiet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use otr4::InstanceTag;
use xmpp_glue::GlueEvent;
use xmpp_glue::client::{ConnectOptions, EventStream, XmppClient};

use super::Net;

/// How long the devices must stay quiet for `settle` to return.
const QUIET: Duration = Duration::from_millis(2500);
/// The longest `settle` waits.
const MAX_SETTLE: Duration = Duration::from_secs(90);

/// Devices on a real server.
pub struct XmppNet {
    domain: String,
    host: String,
    port: u16,
    passwords: BTreeMap<String, String>,
    dir: PathBuf,
    clients: BTreeMap<String, (XmppClient, EventStream)>,
    tags: BTreeMap<String, InstanceTag>,
    /// (device, peer device) pairs whose session started with the non-interactive DAKE.
    offline: Vec<(String, InstanceTag)>,
    events: Vec<(String, GlueEvent)>,
}

impl XmppNet {
    /// A network on `host:port` for `domain`; device stores live under `dir`.
    pub fn new(
        domain: &str,
        host: &str,
        port: u16,
        passwords: BTreeMap<String, String>,
        dir: PathBuf,
    ) -> XmppNet {
        XmppNet {
            domain: domain.to_owned(),
            host: host.to_owned(),
            port,
            passwords,
            dir,
            clients: BTreeMap::new(),
            tags: BTreeMap::new(),
            offline: Vec::new(),
            events: Vec::new(),
        }
    }

    fn bare(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    fn record(&mut self, dev: &str, e: GlueEvent) {
        if let GlueEvent::Secure {
            device,
            non_interactive: true,
            ..
        } = &e
        {
            self.offline.push((dev.to_owned(), *device));
        }
        self.events.push((dev.to_owned(), e));
    }
}

impl Net for XmppNet {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn connect(&mut self, dev: &str) {
        let (user, res) = dev.split_once('/').unwrap_or((dev, "otr4"));
        let jid = format!("{}/{res}", self.bare(user));
        let pw = self.passwords.get(user).cloned().unwrap_or_default();
        let mut opts = ConnectOptions::new(&jid, &pw, self.dir.join(dev.replace('/', "-")));
        opts.host = self.host.clone();
        opts.port = self.port;
        match XmppClient::connect(opts).await {
            Ok((c, ev)) => {
                self.tags.insert(dev.to_owned(), c.tag());
                self.clients.insert(dev.to_owned(), (c, ev));
            }
            Err(e) => eprintln!("{dev}: cannot connect: {e}"),
        }
    }

    async fn disconnect(&mut self, dev: &str) {
        if let Some((c, mut ev)) = self.clients.remove(dev) {
            if let Err(e) = c.disconnect().await {
                eprintln!("{dev}: disconnect: {e}");
            }
            while let Some(e) = ev.try_recv() {
                self.record(dev, e);
            }
        }
    }

    async fn send(&mut self, dev: &str, to_user: &str, text: &str) {
        let to = self.bare(to_user);
        if let Some((c, _)) = self.clients.get(dev)
            && let Err(e) = c.send(&to, text).await
        {
            eprintln!("{dev}: send: {e}");
        }
    }

    async fn smp_start(&mut self, dev: &str, peer_dev: &str, question: &str, secret: &str) {
        let peer = self.bare(super::user(peer_dev));
        let tag = self.tag(peer_dev);
        if let Some((c, _)) = self.clients.get(dev)
            && let Err(e) = c
                .smp_start(&peer, tag, secret.as_bytes(), Some(question))
                .await
        {
            eprintln!("{dev}: smp: {e}");
        }
    }

    async fn smp_respond(&mut self, dev: &str, peer_dev: &str, secret: &str) {
        let peer = self.bare(super::user(peer_dev));
        let tag = self.tag(peer_dev);
        if let Some((c, _)) = self.clients.get(dev)
            && let Err(e) = c.smp_respond(&peer, tag, secret.as_bytes()).await
        {
            eprintln!("{dev}: smp: {e}");
        }
    }

    async fn settle(&mut self) -> Vec<(String, GlueEvent)> {
        let start = tokio::time::Instant::now();
        let mut last = tokio::time::Instant::now();
        while last.elapsed() < QUIET && start.elapsed() < MAX_SETTLE {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let devs: Vec<String> = self.clients.keys().cloned().collect();
            for dev in devs {
                let mut got = Vec::new();
                if let Some((_, ev)) = self.clients.get_mut(&dev) {
                    while let Some(e) = ev.try_recv() {
                        got.push(e);
                    }
                }
                for e in got {
                    last = tokio::time::Instant::now();
                    self.record(&dev, e);
                }
            }
        }
        core::mem::take(&mut self.events)
    }

    fn tag(&self, dev: &str) -> InstanceTag {
        self.tags.get(dev).copied().unwrap_or(InstanceTag::UNKNOWN)
    }

    fn non_interactive(&self, dev: &str, peer_dev: &str) -> bool {
        let t = self.tag(peer_dev);
        self.offline.iter().any(|(d, p)| d == dev && *p == t)
    }

    /// Every run creates four new devices (stores in a temporary directory), and the server
    /// keeps the device lists: the first device of each user removes the devices of
    /// earlier runs, so re-runs never approach the cap of 8 devices per account.
    async fn tidy(&mut self) -> bool {
        let mut removed = false;
        for user in ["alice", "bob"] {
            let mine: Vec<InstanceTag> = self
                .tags
                .iter()
                .filter(|(d, _)| super::user(d) == user)
                .map(|(_, t)| *t)
                .collect();
            let Some(dev) = self
                .clients
                .keys()
                .find(|d| super::user(d) == user)
                .cloned()
            else {
                continue;
            };
            let own = self.bare(user);
            let Some((c, _)) = self.clients.get(&dev) else {
                continue;
            };
            let stale: Vec<InstanceTag> = match c.devices_of(&own).await {
                Ok(tags) => tags.into_iter().filter(|t| !mine.contains(t)).collect(),
                Err(e) => {
                    eprintln!("{dev}: device list: {e}");
                    continue;
                }
            };
            if stale.is_empty() {
                continue;
            }
            println!(
                "  {dev:<13} removes {} device(s) of earlier demo runs from {own}'s device list",
                stale.len()
            );
            // One at a time: each removal publishes the list as last confirmed.
            for t in stale {
                if let Err(e) = c.remove_device(t).await {
                    eprintln!("{dev}: remove device: {e}");
                    continue;
                }
                removed = true;
                for _ in 0..100 {
                    if c.devices_of(&own).await.map_or(true, |l| !l.contains(&t)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        removed
    }
}
