//! The demo's network: every device an `Engine` over the in-memory XMPP server, each saved
//! (exported) when it goes offline and restored when it comes back, as a real client would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::server::{ComponentHandler, SimServer};
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::{Account, Client, Policy, Selection};
use prekey_server::service::Service;
use rand::rngs::ThreadRng;
use xmpp_glue::minidom::Element;
use xmpp_glue::{Engine, EngineConfig, GlueEvent, GlueState, Output};

use super::upload::{self, Files};
use super::{Net, prekey};

/// The largest file the in-memory upload service takes (bytes of ciphertext).
pub const UPLOAD_MAX: u64 = 16 * 1024 * 1024;

const KEY: [u8; 32] = [7; 32];

/// The policy of every demo device: OTRv4-standalone, MULTICASTING, no fragmentation.
pub fn policy() -> Policy {
    Policy {
        selection: Selection::Multicasting,
        max_message_size: 0,
        ..Policy::standalone()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Devices over a [`SimServer`].
pub struct SimNet {
    domain: String,
    sim: SimServer,
    online: BTreeMap<String, Engine>,
    saved: BTreeMap<String, (Vec<u8>, Vec<u8>, InstanceTag)>,
    tags: BTreeMap<String, InstanceTag>,
    events: Vec<(String, GlueEvent)>,
    rng: ThreadRng,
    /// Accounts to use for devices created later (tests: a chosen instance tag).
    accounts: BTreeMap<String, Account>,
    /// Outgoing stanzas of a device that the network drops (tests: a rogue device that
    /// does not touch its account's device list).
    filters: BTreeMap<String, fn(&Element) -> bool>,
    /// Incoming stanzas of a device that the network drops (tests: a missed notification).
    inbound: BTreeMap<String, fn(&Element) -> bool>,
    /// The upload service's web server: URL → bytes.
    files: Files,
    /// Changes every upload as it is stored (tests: a server that tampers).
    spoil: Option<fn(&mut Vec<u8>)>,
    /// Backups the demo restores ([`Net::take_backup`]).
    backups: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
}

impl SimNet {
    /// A network for `domain` whose prekey server keeps its store in `dir`.
    pub fn new(domain: &str, dir: &Path) -> SimNet {
        SimNet::with_prekey_component(domain, dir, |service, jid| {
            Box::new(move |s| prekey::handle(&service, &jid, s))
        })
    }

    /// A network whose prekey component is what `component` makes of the real prekey
    /// service (tests: a server that answers for someone else).
    pub fn with_prekey_component(
        domain: &str,
        dir: &Path,
        component: impl FnOnce(Arc<Service>, String) -> ComponentHandler,
    ) -> SimNet {
        let mut sim = SimServer::new(domain);
        let server_jid = format!("prekey.{domain}");
        let service = prekey::service(&server_jid, dir);
        let _ = sim.add_component(&server_jid, component(service, server_jid.clone()));
        let upload_jid = format!("upload.{domain}");
        let mut next = 0u64;
        let jid = upload_jid.clone();
        let _ = sim.add_component(
            &upload_jid,
            Box::new(move |s| upload::handle(&jid, UPLOAD_MAX, &mut next, s)),
        );
        for u in ["alice", "bob"] {
            let _ = sim.add_user(&format!("{u}@{domain}"));
        }
        SimNet {
            domain: domain.to_owned(),
            sim,
            online: BTreeMap::new(),
            saved: BTreeMap::new(),
            tags: BTreeMap::new(),
            events: Vec::new(),
            rng: rand::rng(),
            accounts: BTreeMap::new(),
            filters: BTreeMap::new(),
            inbound: BTreeMap::new(),
            files: Files::default(),
            spoil: None,
            backups: BTreeMap::new(),
        }
    }

    /// Every later upload is changed by `f` as the web server stores it (tests: tampering,
    /// truncation).
    pub fn spoil_uploads(&mut self, f: fn(&mut Vec<u8>)) {
        self.spoil = Some(f);
    }

    /// The upload service's web server (URL → bytes), e.g. to tamper with a file.
    pub fn http_files(&self) -> Files {
        self.files.clone()
    }

    /// The next connection of the new device `dev` uses `account` (e.g. one with the
    /// instance tag of another device).
    pub fn set_account(&mut self, dev: &str, account: Account) {
        self.accounts.insert(dev.to_owned(), account);
    }

    /// Drops every outgoing stanza of `dev` for which `keep` is false.
    pub fn set_filter(&mut self, dev: &str, keep: fn(&Element) -> bool) {
        self.filters.insert(dev.to_owned(), keep);
    }

    /// Drops every incoming stanza of `dev` for which `keep` is false (`None`: drops
    /// nothing again).
    pub fn set_inbound_filter(&mut self, dev: &str, keep: Option<fn(&Element) -> bool>) {
        match keep {
            Some(k) => self.inbound.insert(dev.to_owned(), k),
            None => self.inbound.remove(dev),
        };
    }

    /// A backup of an online device: its saved client and glue state as of now.
    pub fn backup(&mut self, dev: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let e = self.online.get(dev)?;
        Some(e.export(&KEY, &mut self.rng))
    }

    /// The device (offline) comes back from `backup` at its next connection: restored
    /// from an old backup.
    pub fn restore(&mut self, dev: &str, backup: (Vec<u8>, Vec<u8>)) {
        let tag = self.tag(dev);
        self.saved.insert(dev.to_owned(), (backup.0, backup.1, tag));
    }

    /// The device (offline) lost all its state: its next connection is a fresh install
    /// (new instance tag, new key).
    pub fn wipe(&mut self, dev: &str) {
        self.saved.remove(dev);
    }

    /// Runs `f` on the engine of an online device and routes what it returns.
    pub fn act(
        &mut self,
        dev: &str,
        f: impl FnOnce(&mut Engine, i64, &mut ThreadRng) -> Vec<Output>,
    ) {
        self.with_engine(dev, f);
    }

    /// Adds a user (`name` without the domain).
    pub fn add_user(&mut self, name: &str) {
        let _ = self.sim.add_user(&format!("{name}@{}", self.domain));
    }

    /// The in-memory server.
    pub fn server(&mut self) -> &mut SimServer {
        &mut self.sim
    }

    /// A device sends a raw stanza (tests: carbons, hostile lists).
    pub fn submit_raw(&mut self, dev: &str, stanza: Element) {
        let full = self.full(dev);
        let _ = self.sim.submit(&full, stanza);
    }

    /// A device removes another device of its account from the device list.
    pub fn remove_device(&mut self, dev: &str, other: &str) {
        let tag = self.tag(other);
        self.with_engine(dev, |e, t, rng| e.remove_device(tag, t, rng));
    }

    /// The engine of an online device.
    pub fn engine(&self, dev: &str) -> Option<&Engine> {
        self.online.get(dev)
    }

    fn full(&self, dev: &str) -> String {
        let (u, r) = dev.split_once('/').unwrap_or((dev, "default"));
        format!("{u}@{}/{r}", self.domain)
    }

    fn bare(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    fn run(&mut self, dev: &str, outs: Vec<Output>) {
        let full = self.full(dev);
        let keep = self.filters.get(dev).copied();
        for o in outs {
            match o {
                Output::Stanza(s) if keep.is_some_and(|k| !k(&s)) => {}
                Output::Stanza(s) => {
                    if let Err(e) = self.sim.submit(&full, s) {
                        eprintln!("{dev}: the server refused a stanza: {e}");
                    }
                }
                Output::Event(e) => self.events.push((dev.to_owned(), e)),
                // The web server is this map: a PUT stores, a GET reads (as much as asked).
                Output::Upload(mut u) => {
                    if let Some(spoil) = self.spoil {
                        spoil(&mut u.body);
                    }
                    if let Ok(mut f) = self.files.lock() {
                        f.insert(u.url.clone(), u.body);
                    }
                    let id = u.transfer;
                    self.with_engine(dev, |e, t, rng| e.upload_done(id, Ok(()), t, rng));
                }
                Output::Download(d) => {
                    let got = self.files.lock().ok().and_then(|f| f.get(&d.url).cloned());
                    let result = got
                        .map(|mut b| {
                            b.truncate(usize::try_from(d.max_len + 1).unwrap_or(usize::MAX));
                            b
                        })
                        .ok_or_else(|| "HTTP 404".to_owned());
                    let id = d.transfer;
                    self.with_engine(dev, |e, t, rng| e.download_done(id, result, t, rng));
                }
            }
        }
    }

    fn with_engine(
        &mut self,
        dev: &str,
        f: impl FnOnce(&mut Engine, i64, &mut ThreadRng) -> Vec<Output>,
    ) {
        let t = now();
        self.sim.set_now(t);
        let Some(mut e) = self.online.remove(dev) else {
            return;
        };
        let outs = f(&mut e, t, &mut self.rng);
        self.online.insert(dev.to_owned(), e);
        self.run(dev, outs);
    }
}

impl Net for SimNet {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn connect(&mut self, dev: &str) {
        let t = now();
        self.sim.set_now(t);
        let (user, label) = dev.split_once('/').unwrap_or((dev, "default"));
        let bare = self.bare(user);
        let cfg = EngineConfig::new(&bare, label);
        let engine = match self.saved.remove(dev) {
            Some((client, state, _)) => {
                match Engine::import(cfg, &KEY, &client, &state, &mut self.rng) {
                    Ok(e) => e,
                    Err(e) => {
                        eprintln!("{dev}: cannot restore: {e}");
                        return;
                    }
                }
            }
            None => {
                let account = match self.accounts.remove(dev) {
                    Some(a) => a,
                    None => match Account::generate(&mut self.rng, policy(), t) {
                        Ok(a) => a,
                        Err(e) => {
                            eprintln!("{dev}: {e}");
                            return;
                        }
                    },
                };
                let prekeys = PrekeyStore::new(account.instance_tag());
                Engine::new(
                    cfg,
                    Client::new(account, &bare),
                    prekeys,
                    GlueState::default(),
                    &mut self.rng,
                )
            }
        };
        self.tags.insert(dev.to_owned(), engine.tag());
        let full = self.full(dev);
        if let Err(e) = self.sim.connect(&full) {
            eprintln!("{dev}: {e}");
            return;
        }
        self.online.insert(dev.to_owned(), engine);
        self.with_engine(dev, |e, t, rng| e.online(&full, t, rng));
    }

    async fn take_backup(&mut self, dev: &str) -> bool {
        match self.backup(dev) {
            Some(b) => {
                self.backups.insert(dev.to_owned(), b);
                true
            }
            None => false,
        }
    }

    async fn restore_backup(&mut self, dev: &str) {
        if let Some(b) = self.backups.remove(dev) {
            self.restore(dev, b);
        }
    }

    async fn disconnect(&mut self, dev: &str) {
        let full = self.full(dev);
        let _ = self.sim.disconnect(&full);
        if let Some(mut e) = self.online.remove(dev) {
            e.offline();
            let (client, state) = e.export(&KEY, &mut self.rng);
            self.saved.insert(dev.to_owned(), (client, state, e.tag()));
        }
    }

    async fn send(&mut self, dev: &str, to_user: &str, text: &str) {
        let to = self.bare(to_user);
        self.with_engine(dev, |e, t, rng| e.send(&to, text, t, rng));
    }

    async fn send_file(&mut self, dev: &str, to_user: &str, name: &str, data: Vec<u8>) -> bool {
        let to = self.bare(to_user);
        self.with_engine(dev, |e, t, rng| {
            e.send_file(&to, name, "application/pdf", &data, t, rng).1
        });
        true
    }

    async fn smp_start(&mut self, dev: &str, peer_dev: &str, question: &str, secret: &str) {
        let peer = self.bare(super::user(peer_dev));
        let tag = self.tag(peer_dev);
        self.with_engine(dev, |e, t, rng| {
            e.smp_start(&peer, tag, secret.as_bytes(), Some(question), t, rng)
        });
    }

    async fn smp_respond(&mut self, dev: &str, peer_dev: &str, secret: &str) {
        let peer = self.bare(super::user(peer_dev));
        let tag = self.tag(peer_dev);
        self.with_engine(dev, |e, t, rng| {
            e.smp_respond(&peer, tag, secret.as_bytes(), t, rng)
        });
    }

    async fn settle(&mut self) -> Vec<(String, GlueEvent)> {
        for _round in 0..1000 {
            let mut moved = false;
            let devs: Vec<String> = self.online.keys().cloned().collect();
            for dev in devs {
                let full = self.full(&dev);
                let keep = self.inbound.get(&dev).copied();
                for s in self.sim.inbox(&full) {
                    moved = true;
                    if keep.is_some_and(|k| !k(&s)) {
                        continue;
                    }
                    self.with_engine(&dev, |e, t, rng| e.handle(&s, t, rng));
                }
            }
            if !moved {
                break;
            }
        }
        core::mem::take(&mut self.events)
    }

    fn tag(&self, dev: &str) -> InstanceTag {
        self.tags.get(dev).copied().unwrap_or(InstanceTag::UNKNOWN)
    }

    fn non_interactive(&self, dev: &str, peer_dev: &str) -> bool {
        let peer = self.bare(super::user(peer_dev));
        self.online
            .get(dev)
            .and_then(|e| e.client().conversation(&peer, self.tag(peer_dev)))
            .is_some_and(|c| c.non_interactive_role().is_some())
    }
}
