//! The async client: one task owns a tokio-xmpp connection and the device's [`Engine`],
//! persists its state before every send, and hands [`GlueEvent`]s to an [`EventStream`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), xmpp_glue::client::ClientError> {
//! use xmpp_glue::client::{ConnectOptions, XmppClient};
//! let opts = ConnectOptions::new("alice@example.org/laptop", "secret", "/var/lib/me/laptop");
//! let (client, mut events) = XmppClient::connect(opts).await?;
//! client.send("bob@example.org", "hi").await?;
//! while let Some(ev) = events.recv().await {
//!     println!("{ev:?}");
//! }
//! client.disconnect().await
//! # }
//! ```

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use minidom::Element;
use otr4::InstanceTag;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_xmpp::Stanza;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::message::{Id as MessageId, Message};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::stanzastream::{
    Connection, Event, StanzaStage, StanzaState, StanzaStream, StreamEvent,
};
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts, XmppStream};

use crate::guard::{GuardedStartTls, TlsFailed};
use crate::stanza::{self, bare};
use crate::store::{KeySource, Store, StoreError};
use crate::{
    Download, Engine, EngineConfig, EngineStats, GlueError, GlueEvent, Output, ServerPin,
    TransferId, Upload,
};

/// Default interval of [`Engine::tick`].
pub const DEFAULT_TICK: Duration = Duration::from_secs(5);
/// Default time [`XmppClient::connect`] waits for the stream to come up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time one HTTP upload or download of a file may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(600);
/// Stanzas queued each way between the client task and tokio-xmpp's stream task.
const QUEUE_DEPTH: usize = 16;
/// Longest wait between two connection attempts (they start 1 s apart and double).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How long a graceful disconnect waits for its unavailable presence to go out.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect one device.
#[derive(Debug)]
pub struct ConnectOptions {
    /// The account's JID; a resource (`user@host/resource`) names this connection.
    pub jid: String,
    /// The account's password.
    pub password: String,
    /// The XMPP server's host (default: the JID's domain).
    pub host: String,
    /// Its client port (default 5222; STARTTLS is required).
    pub port: u16,
    /// This device's store directory ([`Store`]).
    pub store_dir: PathBuf,
    /// Where the store's key comes from (default: a key file in the store).
    pub key: KeySource,
    /// The device's label in the device list.
    pub label: String,
    /// The domain's prekey server, if known (else discovered and pinned on first use).
    pub prekey_server: Option<ServerPin>,
    /// Enable message carbons (XEP-0280) on the stream. The glue never needs them (every
    /// device gets its own copy); other clients of the account may.
    pub enable_carbons: bool,
    /// How often the engine's timers run.
    pub tick: Duration,
    /// How long [`XmppClient::connect`] waits for the stream to come up.
    pub connect_timeout: Duration,
    /// The largest file sent or accepted ([`EngineConfig::max_file_size`]).
    pub max_file_size: u64,
    /// An `http://` origin whose file URLs are accepted besides `https://` ones (loopback
    /// tests only; [`EngineConfig::allow_http_origin`]).
    pub allow_http_origin: Option<String>,
    /// An OTRv3 key: turns on OTRv3 for contacts whose client offers only OTRv3
    /// ([`crate::Engine::enable_otrv3`]); default none.
    pub otrv3_key: Option<otr4::otrv3::DsaPrivateKey>,
}

impl ConnectOptions {
    /// Options with the defaults: host = the JID's domain, port 5222, key file, label =
    /// the resource (or "otr4"), discovery of the prekey server, no carbons.
    pub fn new(jid: &str, password: &str, store_dir: impl Into<PathBuf>) -> ConnectOptions {
        let resource = jid.split_once('/').map(|(_, r)| r).unwrap_or("otr4");
        ConnectOptions {
            jid: jid.to_owned(),
            password: password.to_owned(),
            host: stanza::domain(jid).to_owned(),
            port: 5222,
            store_dir: store_dir.into(),
            key: KeySource::KeyFile,
            label: resource.to_owned(),
            prekey_server: None,
            enable_carbons: false,
            tick: DEFAULT_TICK,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_file_size: crate::DEFAULT_MAX_FILE_SIZE,
            allow_http_origin: None,
            otrv3_key: None,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The store could not be opened, read or written.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The engine refused a setting (e.g. [`ConnectOptions::otrv3_key`]).
    #[error(transparent)]
    Engine(#[from] crate::GlueError),
    /// The JID does not parse.
    #[error("invalid JID {0}")]
    Jid(String),
    /// The stream did not come up in time (wrong password, server unreachable …).
    #[error("could not connect within {0:?}")]
    ConnectTimeout(Duration),
    /// TLS with the server failed (e.g. its certificate is not trusted: a private CA is
    /// trusted through `SSL_CERT_FILE`).
    #[error("TLS with the XMPP server failed: {0} (a private CA is trusted through SSL_CERT_FILE)")]
    Tls(#[source] BoxError),
    /// The stream ended.
    #[error("the XMPP stream ended")]
    StreamEnded,
    /// The client task is gone (disconnected, or it failed).
    #[error("the client is disconnected")]
    Closed,
    /// A stanza could not be sent.
    #[error("sending a stanza failed: {0}")]
    Send(#[source] BoxError),
    /// The engine produced a stanza tokio-xmpp cannot carry (a bug).
    #[error("unsendable stanza: {0}")]
    Stanza(#[source] BoxError),
    /// The client task failed.
    #[error("the client task failed: {0}")]
    Task(#[source] BoxError),
    /// The HTTP client for file transfers could not be set up.
    #[error("the HTTP client could not be set up: {0}")]
    Http(#[source] BoxError),
}

/// The error of the XMPP library underneath (tokio-xmpp, rustls): only shown, never
/// matched, so its types stay out of this crate's API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The [`GlueEvent`]s of one device, in order. Also a [`futures::Stream`].
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<GlueEvent>,
}

impl EventStream {
    /// The next event; `None` once the client is disconnected and every event was read.
    pub async fn recv(&mut self) -> Option<GlueEvent> {
        self.rx.recv().await
    }

    /// An event already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<GlueEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for EventStream {
    type Item = GlueEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GlueEvent>> {
        self.rx.poll_recv(cx)
    }
}

type Reply = oneshot::Sender<Result<(), ClientError>>;

enum Command {
    Send {
        to: String,
        text: String,
    },
    SmpStart {
        peer: String,
        device: InstanceTag,
        secret: zeroize::Zeroizing<Vec<u8>>,
        question: Option<String>,
    },
    SmpRespond {
        peer: String,
        device: InstanceTag,
        secret: zeroize::Zeroizing<Vec<u8>>,
    },
    Accept {
        jid: String,
        device: InstanceTag,
    },
    Remove {
        device: InstanceTag,
    },
    Devices {
        jid: String,
        reply: oneshot::Sender<Vec<InstanceTag>>,
    },
    IsOnline {
        jid: String,
        device: InstanceTag,
        reply: oneshot::Sender<bool>,
    },
    Stats {
        reply: oneshot::Sender<EngineStats>,
    },
    SendFile {
        to: String,
        name: String,
        media_type: String,
        data: zeroize::Zeroizing<Vec<u8>>,
        reply: oneshot::Sender<TransferId>,
    },
    Uploaded {
        transfer: TransferId,
        result: Result<(), String>,
    },
    Downloaded {
        transfer: TransferId,
        result: Result<Vec<u8>, String>,
    },
    Disconnect,
}

/// A connected device. Cloneless handle to the task that owns the connection; dropping it
/// disconnects gracefully in the background.
#[derive(Debug)]
pub struct XmppClient {
    cmds: mpsc::UnboundedSender<(Command, Option<Reply>)>,
    task: Option<JoinHandle<Result<(), ClientError>>>,
    bound: String,
    tag: InstanceTag,
    fingerprint: String,
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn to_element(s: Stanza) -> Element {
    match s {
        Stanza::Iq(i) => i.into(),
        Stanza::Message(m) => m.into(),
        Stanza::Presence(p) => p.into(),
    }
}

/// The engine built a stanza that is not a message, presence or iq (a bug).
#[derive(Debug, thiserror::Error)]
#[error("<{0}/> is not a stanza")]
pub struct NotAStanza(pub String);

fn to_stanza(e: Element) -> Result<Stanza, ClientError> {
    let err = |x| ClientError::Stanza(Box::new(x));
    match e.name() {
        "message" => Message::try_from(e).map(Stanza::from).map_err(err),
        "presence" => Presence::try_from(e).map(Stanza::from).map_err(err),
        "iq" => Iq::try_from(e).map(Stanza::from).map_err(err),
        other => Err(ClientError::Stanza(Box::new(NotAStanza(other.to_owned())))),
    }
}

impl XmppClient {
    /// Opens the store (creating the device on first start), connects (STARTTLS, the
    /// system's trust roots or `SSL_CERT_FILE`), and starts the device: MAM catch-up,
    /// presence, prekey publication, device list. Returns once the stream is up.
    pub async fn connect(opts: ConnectOptions) -> Result<(XmppClient, EventStream), ClientError> {
        let jid: Jid = opts
            .jid
            .parse()
            .map_err(|_| ClientError::Jid(opts.jid.clone()))?;
        let bare_jid = bare(&opts.jid).to_owned();
        let mut config = EngineConfig::new(&bare_jid, &opts.label);
        config.prekey_server = opts.prekey_server.clone();
        config.max_file_size = opts.max_file_size;
        config.allow_http_origin = opts.allow_http_origin.clone();
        let http = http_client(opts.allow_http_origin.is_some())?;
        let store = Store::open(&opts.store_dir, opts.key)?;
        let mut engine = {
            let mut rng = rand::rng();
            store.load_or_create(config, unix_now(), &mut rng)?
        };
        if let Some(key) = opts.otrv3_key {
            engine.enable_otrv3(key)?;
        }
        // STARTTLS with every stanza bounded before tokio-xmpp parses it (crate::guard).
        let dropped = Arc::new(AtomicU64::new(0));
        let connector =
            GuardedStartTls::new(DnsConfig::no_srv(&opts.host, opts.port), dropped.clone());
        let (failed, mut failures) = mpsc::unbounded_channel();
        let mut xmpp = stanza_stream(connector, jid, opts.password, failed);
        let account = tokio::time::timeout(opts.connect_timeout, async {
            loop {
                tokio::select! {
                    ev = xmpp.next() => match ev {
                        Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                            return Ok(bound_jid);
                        }
                        Some(_) => {}
                        None => return Err(ClientError::StreamEnded),
                    },
                    // A certificate the system does not trust will not become trusted by
                    // trying again: said at once, not as a timeout.
                    Some(e) = failures.recv() => {
                        if TlsFailed::caused(&e) {
                            return Err(ClientError::Tls(Box::new(e)));
                        }
                    }
                }
            }
        })
        .await
        .map_err(|_| ClientError::ConnectTimeout(opts.connect_timeout))??;
        let bound = account.to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let tag = engine.tag();
        let fingerprint = engine.fingerprint();
        let mut worker = Worker {
            dropped,
            xmpp: Some(xmpp),
            account: account.to_bare().into(),
            bound: bound.clone(),
            engine,
            store,
            events: tx,
            carbons: opts.enable_carbons,
            http,
            cmds: cmds.downgrade(),
        };
        let tick = opts.tick;
        let task = tokio::spawn(async move {
            let r = worker.run(cmd_rx, tick).await;
            worker.ended(&r);
            r
        });
        Ok((
            XmppClient {
                cmds,
                task: Some(task),
                bound,
                tag,
                fingerprint,
            },
            EventStream { rx },
        ))
    }

    /// The full JID the server bound.
    pub fn bound_jid(&self) -> &str {
        &self.bound
    }

    /// This device's instance tag.
    pub fn tag(&self) -> InstanceTag {
        self.tag
    }

    /// This device's fingerprint (hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    async fn call(&self, c: Command) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send((c, Some(tx)))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Sends `text` to every device of `to` (a bare JID) and to our other devices. Returns
    /// once the state is persisted and the stanzas are written; per-device failures arrive
    /// as [`GlueEvent::NotSent`].
    pub async fn send(&self, to: &str, text: &str) -> Result<(), ClientError> {
        self.call(Command::Send {
            to: to.to_owned(),
            text: text.to_owned(),
        })
        .await
    }

    /// Starts SMP (otrv4.md §"Socialist Millionaires' Protocol") with one device of `peer`.
    pub async fn smp_start(
        &self,
        peer: &str,
        device: InstanceTag,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<(), ClientError> {
        self.call(Command::SmpStart {
            peer: peer.to_owned(),
            device,
            secret: zeroize::Zeroizing::new(secret.to_vec()),
            question: question.map(str::to_owned),
        })
        .await
    }

    /// Answers an SMP request from one device of `peer`.
    pub async fn smp_respond(
        &self,
        peer: &str,
        device: InstanceTag,
        secret: &[u8],
    ) -> Result<(), ClientError> {
        self.call(Command::SmpRespond {
            peer: peer.to_owned(),
            device,
            secret: zeroize::Zeroizing::new(secret.to_vec()),
        })
        .await
    }

    /// Accepts the changed key of a device of `jid`.
    pub async fn accept_fingerprint(
        &self,
        jid: &str,
        device: InstanceTag,
    ) -> Result<(), ClientError> {
        self.call(Command::Accept {
            jid: jid.to_owned(),
            device,
        })
        .await
    }

    /// Removes another device of our account from the device list.
    pub async fn remove_device(&self, device: InstanceTag) -> Result<(), ClientError> {
        self.call(Command::Remove { device }).await
    }

    /// The devices of `jid` the engine knows (for our own JID: our other devices).
    pub async fn devices_of(&self, jid: &str) -> Result<Vec<InstanceTag>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send((
                Command::Devices {
                    jid: jid.to_owned(),
                    reply: tx,
                },
                None,
            ))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// What the engine refused because of who sent it (spoofed replies, forged archive
    /// results and carbons, oversized stanzas …), and the carbons it ignored.
    pub async fn stats(&self) -> Result<EngineStats, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send((Command::Stats { reply: tx }, None))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Whether a device of `jid` is available now (its presence with its tag is known).
    pub async fn is_device_online(
        &self,
        jid: &str,
        device: InstanceTag,
    ) -> Result<bool, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send((
                Command::IsOnline {
                    jid: jid.to_owned(),
                    device,
                    reply: tx,
                },
                None,
            ))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Sends a file to every device of `to` (a bare JID) and to our other devices
    /// (docs/xmpp-glue.md §9): encrypted under a fresh key, uploaded to our domain's HTTP
    /// upload service, its key and URL sent inside OTRv4. Returns the transfer's id at
    /// once; [`GlueEvent::FileSent`] or [`GlueEvent::FileFailed`] follows.
    pub async fn send_file(
        &self,
        to: &str,
        name: &str,
        media_type: &str,
        data: Vec<u8>,
    ) -> Result<TransferId, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send((
                Command::SendFile {
                    to: to.to_owned(),
                    name: name.to_owned(),
                    media_type: media_type.to_owned(),
                    data: zeroize::Zeroizing::new(data),
                    reply: tx,
                },
                None,
            ))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Disconnects gracefully: unavailable presence, a final save, the stream closed.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        let r = self.call(Command::Disconnect).await;
        if let Some(t) = self.task.take() {
            t.await.map_err(|e| ClientError::Task(Box::new(e)))??;
        }
        r
    }
}

/// One login on a fresh connection: STARTTLS through the guard, SASL, the restarted
/// stream's features (tokio-xmpp's own `client_auth`, which it does not export).
async fn login(
    connector: &GuardedStartTls,
    jid: &Jid,
    password: &str,
) -> Result<Connection, tokio_xmpp::Error> {
    let (stream, binding) = connector
        .connect(jid, crate::ns::CLIENT, Timeouts::default())
        .await?;
    let (features, stream) = stream.recv_features().await?;
    let creds = sasl::common::Credentials::default()
        .with_username(jid.node().map_or("", |n| n.as_str()))
        .with_password(password)
        .with_channel_binding(binding);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await?;
    let header = StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    };
    let (features, stream): (_, XmppStream<_>) =
        stream.send_header(header).await?.recv_features().await?;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: jid.clone(),
    })
}

/// tokio-xmpp's stanza stream over `connector`: it connects, binds a resource and, when the
/// stream breaks, connects again by itself (1 s, 2 s … 30 s apart). Every failed attempt is
/// also reported on `failed`.
///
/// The client task owns the whole [`StanzaStream`] and never splits it: tokio-xmpp 6's
/// `Client` splits it into a sender and a receiver behind one mutex, and its receiver
/// answers `Poll::Pending` without registering a waker when a send holds that mutex, so
/// its reading task could sleep for good with received stanzas waiting (replies lost
/// under load; docs/xmpp-glue.md §10).
fn stanza_stream(
    connector: GuardedStartTls,
    jid: Jid,
    password: String,
    failed: mpsc::UnboundedSender<tokio_xmpp::Error>,
) -> StanzaStream {
    let reconnect = move |_: Option<String>, slot: oneshot::Sender<Connection>| {
        let (connector, jid, password) = (connector.clone(), jid.clone(), password.clone());
        let failed = failed.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match login(&connector, &jid, &password).await {
                    Ok(conn) => {
                        if let Err(mut conn) = slot.send(conn) {
                            // Nobody waits for it any more: close it politely.
                            let close = futures::SinkExt::<&Stanza>::close(&mut conn.stream);
                            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, close).await;
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "connection attempt failed");
                        let _ = failed.send(e);
                        if slot.is_closed() {
                            return;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                }
            }
        });
    };
    StanzaStream::new(Box::new(reconnect), QUEUE_DEPTH)
}

/// Gives a stanza without an id a random one (as tokio-xmpp's `Client` did).
fn ensure_id(s: &mut Stanza) {
    let fresh = || rand::random::<u64>().to_string();
    match s {
        Stanza::Iq(iq) => {
            let id = iq.id_mut();
            if id.is_empty() {
                *id = fresh();
            }
        }
        Stanza::Message(m) => {
            m.id.get_or_insert_with(|| MessageId(fresh()));
        }
        Stanza::Presence(p) => {
            p.id.get_or_insert_with(fresh);
        }
    }
}

/// An IQ result or error without `from` comes from our own account (RFC 6120 §8.1.2.1):
/// it gets our bare JID, as tokio-xmpp's `Client` did, so replies match their requests.
fn fill_iq_from(s: &mut Stanza, account: &Jid) {
    if let Stanza::Iq(Iq::Result { from, .. } | Iq::Error { from, .. }) = s
        && from.is_none()
    {
        *from = Some(account.clone());
    }
}

/// Queues `s` and waits until it is written to the stream.
async fn send_on(xmpp: &StanzaStream, mut s: Stanza) -> Result<(), ClientError> {
    ensure_id(&mut s);
    let mut token = xmpp.send(Box::new(s)).await;
    match token.wait_for(StanzaStage::Sent).await {
        Some(StanzaState::Sent { .. } | StanzaState::Acked { .. }) => Ok(()),
        Some(StanzaState::Failed { error }) => {
            Err(ClientError::Send(Box::new(error.into_io_error())))
        }
        Some(StanzaState::Queued | StanzaState::Dropped) | None => {
            Err(ClientError::Send(Box::new(io::Error::new(
                io::ErrorKind::NotConnected,
                "the stream ended for good before the stanza was sent",
            ))))
        }
    }
}

struct Worker {
    /// Stanzas the connection's guard dropped before parsing (crate::guard).
    dropped: Arc<AtomicU64>,
    xmpp: Option<StanzaStream>,
    /// Our account's bare JID.
    account: Jid,
    /// The full JID the server bound last.
    bound: String,
    engine: Engine,
    store: Store,
    events: mpsc::UnboundedSender<GlueEvent>,
    carbons: bool,
    /// HTTP uploads and downloads of files, each in its own task that reports back
    /// through `cmds`.
    http: reqwest::Client,
    cmds: mpsc::WeakUnboundedSender<(Command, Option<Reply>)>,
}

/// The HTTP client of file transfers: rustls with ring (as the XMPP connection), the
/// system's trust roots or `SSL_CERT_FILE`, no redirects (a server cannot send us to
/// another scheme or host), `https://` only unless an `http://` origin is allowed.
fn http_client(allow_http: bool) -> Result<reqwest::Client, ClientError> {
    let err = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string().into());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A certificate of the system store that rustls cannot use is skipped, as
        // tokio-xmpp does.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!allow_http)
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| err(&e))
}

/// PUTs an upload (status 2xx expected).
async fn put(http: reqwest::Client, u: Upload) -> Result<(), String> {
    let mut req = http
        .put(&u.url)
        .header(reqwest::header::CONTENT_TYPE, u.content_type);
    for (name, value) in &u.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let resp = req.body(u.body).send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

/// GETs a download, streaming, reading at most one byte more than `max_len` (more than
/// that is refused by the engine anyway).
async fn get(http: reqwest::Client, d: &Download) -> Result<Vec<u8>, String> {
    let mut resp = http.get(&d.url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let cap = usize::try_from(d.max_len.saturating_add(1)).unwrap_or(usize::MAX);
    let mut body = Vec::with_capacity(cap.min(1 << 24));
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

impl Worker {
    async fn run(
        &mut self,
        mut cmds: mpsc::UnboundedReceiver<(Command, Option<Reply>)>,
        tick: Duration,
    ) -> Result<(), ClientError> {
        let first = self.bound.clone();
        self.on_online(&first).await?;
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(xmpp) = self.xmpp.as_mut() else {
                return Err(ClientError::Closed);
            };
            tokio::select! {
                ev = xmpp.next() => match ev {
                    Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                        // A new stream (after a break): everything is announced again.
                        self.account = bound_jid.to_bare().into();
                        self.bound = bound_jid.to_string();
                        let bound = self.bound.clone();
                        self.on_online(&bound).await?;
                    }
                    Some(Event::Stream(StreamEvent::Resumed)) => {
                        let bound = self.bound.clone();
                        self.on_online(&bound).await?;
                    }
                    Some(Event::Stream(StreamEvent::Suspended)) => {
                        // The stream broke (closed by the server, network, TLS); tokio-xmpp
                        // connects again by itself.
                        tracing::warn!("the XMPP stream broke; reconnecting");
                        self.engine.offline();
                        let lost = GlueError::ConnectionLost { reconnecting: true };
                        let _ = self.events.send(GlueEvent::Error(lost));
                    }
                    Some(Event::Stanza(mut s)) => {
                        fill_iq_from(&mut s, &self.account);
                        let e = to_element(s);
                        let persist = e.name() != "presence";
                        let outs = {
                            let mut rng = rand::rng();
                            self.engine.handle(&e, unix_now(), &mut rng)
                        };
                        self.execute(outs, persist).await?;
                    }
                    None => {
                        self.engine.offline();
                        self.save()?;
                        return Err(ClientError::StreamEnded);
                    }
                },
                cmd = cmds.recv() => match cmd {
                    None | Some((Command::Disconnect, None)) => return self.shutdown().await,
                    Some((Command::Disconnect, Some(reply))) => {
                        let r = self.shutdown().await;
                        let (r, answer) = match r {
                            Ok(()) => (Ok(()), Ok(())),
                            Err(e) => {
                                let shown = ClientError::Send(e.to_string().into());
                                (Err(e), Err(shown))
                            }
                        };
                        let _ = reply.send(answer);
                        return r;
                    }
                    Some((c, reply)) => {
                        let r = self.command(c).await;
                        if let Some(reply) = reply {
                            let _ = reply.send(r);
                        }
                    }
                },
                _ = timer.tick() => {
                    let outs = {
                        let mut rng = rand::rng();
                        self.engine.tick(unix_now(), &mut rng)
                    };
                    self.execute(outs, false).await?;
                }
            }
        }
    }

    /// The task ends: unless it was asked to, the application hears that the connection
    /// is gone for good (the calls then fail with [`ClientError::Closed`]).
    fn ended(&self, r: &Result<(), ClientError>) {
        if let Err(e) = r {
            tracing::error!(error = %e, "the client stopped");
            if !matches!(e, ClientError::Store(_)) {
                let lost = GlueError::ConnectionLost {
                    reconnecting: false,
                };
                let _ = self.events.send(GlueEvent::Error(lost));
            }
        }
    }

    async fn on_online(&mut self, bound: &str) -> Result<(), ClientError> {
        if self.carbons {
            self.send_element(stanza::enable_carbons("otr4-carbons"))
                .await?;
        }
        let outs = {
            let mut rng = rand::rng();
            self.engine.online(bound, unix_now(), &mut rng)
        };
        self.execute(outs, true).await
    }

    async fn command(&mut self, c: Command) -> Result<(), ClientError> {
        let now = unix_now();
        let outs = {
            let mut rng = rand::rng();
            let e = &mut self.engine;
            match c {
                Command::Send { to, text } => e.send(&to, &text, now, &mut rng),
                Command::SmpStart {
                    peer,
                    device,
                    secret,
                    question,
                } => e.smp_start(&peer, device, &secret, question.as_deref(), now, &mut rng),
                Command::SmpRespond {
                    peer,
                    device,
                    secret,
                } => e.smp_respond(&peer, device, &secret, now, &mut rng),
                Command::Accept { jid, device } => {
                    e.accept_fingerprint(&jid, device, now, &mut rng)
                }
                Command::Remove { device } => e.remove_device(device, now, &mut rng),
                Command::Devices { jid, reply } => {
                    let _ = reply.send(e.devices_of(&jid));
                    Vec::new()
                }
                Command::IsOnline { jid, device, reply } => {
                    let _ = reply.send(e.is_device_online(&jid, device));
                    Vec::new()
                }
                Command::Stats { reply } => {
                    let mut st = e.stats();
                    st.oversized_stanzas += self.dropped.load(Ordering::Relaxed);
                    let _ = reply.send(st);
                    Vec::new()
                }
                Command::SendFile {
                    to,
                    name,
                    media_type,
                    data,
                    reply,
                } => {
                    let (id, outs) = e.send_file(&to, &name, &media_type, &data, now, &mut rng);
                    let _ = reply.send(id);
                    outs
                }
                Command::Uploaded { transfer, result } => {
                    e.upload_done(transfer, result, now, &mut rng)
                }
                Command::Downloaded { transfer, result } => {
                    e.download_done(transfer, result, now, &mut rng)
                }
                Command::Disconnect => Vec::new(),
            }
        };
        self.execute(outs, true).await
    }

    fn save(&self) -> Result<(), ClientError> {
        let mut rng = rand::rng();
        self.store.save(&self.engine, &mut rng)?;
        Ok(())
    }

    /// Persists (when anything changed), then sends the stanzas, then hands out the events.
    async fn execute(&mut self, outs: Vec<Output>, persist: bool) -> Result<(), ClientError> {
        if (persist || !outs.is_empty())
            && let Err(e) = self.save()
        {
            // Never send what was not saved (a prekey or message key could be reused).
            let _ = self.events.send(GlueEvent::Error(GlueError::NotSaved));
            return Err(e);
        }
        let mut events = Vec::new();
        for o in outs {
            match o {
                Output::Stanza(s) => self.send_element(s).await?,
                Output::Event(e) => events.push(e),
                Output::Upload(u) => self.spawn_upload(u),
                Output::Download(d) => self.spawn_download(d),
            }
        }
        for e in events {
            // A dropped EventStream only means nobody listens.
            let _ = self.events.send(e);
        }
        Ok(())
    }

    /// Uploads in a task of its own; the outcome comes back as a command.
    fn spawn_upload(&self, u: Upload) {
        let (http, cmds) = (self.http.clone(), self.cmds.clone());
        tokio::spawn(async move {
            let transfer = u.transfer;
            tracing::debug!(transfer = transfer.0, bytes = u.body.len(), url = %u.url, "upload");
            let result = put(http, u).await;
            tracing::debug!(transfer = transfer.0, ?result, "upload done");
            if let Some(c) = cmds.upgrade() {
                let _ = c.send((Command::Uploaded { transfer, result }, None));
            }
        });
    }

    /// Downloads in a task of its own; the bytes come back as a command.
    fn spawn_download(&self, d: Download) {
        let (http, cmds) = (self.http.clone(), self.cmds.clone());
        tokio::spawn(async move {
            tracing::debug!(transfer = d.transfer.0, url = %d.url, "download");
            let result = get(http, &d).await;
            tracing::debug!(
                transfer = d.transfer.0,
                result = ?result.as_ref().map(Vec::len),
                "download done"
            );
            if let Some(c) = cmds.upgrade() {
                let transfer = d.transfer;
                let _ = c.send((Command::Downloaded { transfer, result }, None));
            }
        });
    }

    async fn send_element(&mut self, e: Element) -> Result<(), ClientError> {
        let s = match to_stanza(e) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "engine produced an unsendable stanza");
                return Ok(());
            }
        };
        let Some(xmpp) = self.xmpp.as_ref() else {
            return Err(ClientError::Closed);
        };
        send_on(xmpp, s).await
    }

    async fn shutdown(&mut self) -> Result<(), ClientError> {
        let unavailable = Presence::new(PresenceType::Unavailable);
        if let Some(xmpp) = self.xmpp.as_ref() {
            // Not forever: the stream may be broken and reconnecting.
            match tokio::time::timeout(GOODBYE_TIMEOUT, send_on(xmpp, unavailable.into())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "unavailable presence not sent"),
                Err(_) => tracing::warn!("unavailable presence not sent in time"),
            }
        }
        self.engine.offline();
        self.save()?;
        if let Some(xmpp) = self.xmpp.take() {
            // Closes the stream (the stream footer, then the connection) and waits for
            // tokio-xmpp's task to end.
            xmpp.close().await;
        }
        Ok(())
    }
}

impl Drop for XmppClient {
    fn drop(&mut self) {
        // The task sees the closed channel and shuts down gracefully on its own.
        let _ = self.cmds.send((Command::Disconnect, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_stanzas_convert_both_ways() {
        let tag = InstanceTag(0x1234_5678);
        let p = stanza::presence_available(tag);
        let s = to_stanza(p.clone()).unwrap();
        assert!(matches!(s, Stanza::Presence(_)));
        let back = to_element(s);
        assert_eq!(stanza::parse_presence(&back), stanza::parse_presence(&p));
        let payloads = [
            stanza::Payload {
                to_tag: Some(InstanceTag(0x1111_1111)),
                text: "?OTR:AAQD1".into(),
            },
            stanza::Payload {
                to_tag: Some(InstanceTag(0x2222_2222)),
                text: "?OTR:AAQD2".into(),
            },
        ];
        let m = stanza::multicast_message("bob@example.org", "id1", tag, &payloads);
        let back = to_element(to_stanza(m).unwrap());
        let c = stanza::parse_carried(&back).unwrap().unwrap();
        assert_eq!(c.from_tag, tag);
        assert_eq!(c.payloads, payloads.to_vec());
        let q = stanza::get_devices("q1", "bob@example.org");
        let back = to_element(to_stanza(q).unwrap());
        assert_eq!(back.attr("id"), Some("q1"));
        assert!(to_stanza(stanza::el("foo", crate::ns::CLIENT, &[])).is_err());
    }

    // The transport under load: tokio-xmpp's stream task delivers a stanza while the
    // client is sending. An in-memory server (stream header, features, resource binding)
    // stands in for Prosody; the send queue (depth 1) is full before the connection is
    // up, so a send waits, as it does whenever the server reads more slowly than we write.

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream, DuplexStream};
    use tokio_xmpp::xmlstream::initiate_stream;

    const ME: &str = "a@localhost/r";
    const SERVER_HEAD: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>\
        <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

    fn chat(i: usize) -> Stanza {
        let mut m = Message::new(Some("b@localhost".parse().unwrap()));
        m.id = Some(MessageId(format!("out{i}")));
        m.into()
    }

    /// Reads from the client until `needle` was seen; returns everything read.
    async fn read_until(io: &mut DuplexStream, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed the connection");
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    /// Opens a stream to the in-memory server: the client's side as tokio-xmpp's
    /// `Connection` (features received), and the server's side, which answers the resource
    /// binding, sends `replies` message stanzas, then reads everything the client writes.
    async fn connect_in_memory(replies: usize) -> Connection {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            read_until(&mut server, "<stream:stream").await;
            server.write_all(SERVER_HEAD.as_bytes()).await.unwrap();
            read_until(&mut server, "resource-binding").await;
            let bound = format!(
                "<iq type='result' id='resource-binding'>\
                 <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{ME}</jid></bind></iq>"
            );
            server.write_all(bound.as_bytes()).await.unwrap();
            for i in 0..replies {
                let m = format!(
                    "<message from='b@localhost/x' to='{ME}' id='in{i}' type='chat'>\
                     <body>{i}</body></message>"
                );
                server.write_all(m.as_bytes()).await.unwrap();
            }
            let mut sink = [0u8; 4096];
            while server.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let header = StreamHeader {
            to: Some(Cow::Borrowed("localhost")),
            from: None,
            id: None,
        };
        let pending = initiate_stream(
            BufStream::new(client),
            crate::ns::CLIENT,
            header,
            Timeouts::default(),
        )
        .await
        .unwrap();
        let (features, stream): (_, XmppStream<_>) = pending.recv_features().await.unwrap();
        Connection {
            stream: stream.box_stream(),
            features,
            identity: ME.parse().unwrap(),
        }
    }

    type Slot = Arc<std::sync::Mutex<Option<oneshot::Sender<Connection>>>>;

    /// A stanza stream (send queue of depth 1) whose connection the test hands over.
    fn unconnected() -> (StanzaStream, Slot) {
        let slot: Slot = Arc::default();
        let keep = slot.clone();
        let stream = StanzaStream::new(
            Box::new(move |_, s| {
                *keep.lock().unwrap() = Some(s);
            }),
            1,
        );
        (stream, slot)
    }

    fn hand_over(slot: &Slot, c: Connection) {
        let s = slot.lock().unwrap().take().unwrap();
        assert!(s.send(c).is_ok());
    }

    /// How many of the `n` messages the server sent arrive within `within`.
    async fn messages(
        events: &mut (impl futures::Stream<Item = Event> + Unpin),
        n: usize,
        within: Duration,
    ) -> usize {
        let mut got = 0;
        let _ = tokio::time::timeout(within, async {
            while got < n {
                match events.next().await {
                    Some(Event::Stanza(Stanza::Message(_))) => got += 1,
                    Some(_) => {}
                    None => return,
                }
            }
        })
        .await;
        got
    }

    /// The client task's way: the one task owns the stream, sends (waiting while the queue
    /// is full) and reads; every stanza the server sent arrives.
    #[tokio::test]
    async fn stanzas_arrive_while_a_send_waits_for_room() {
        const N: usize = 50;
        let (stream, slot) = unconnected();
        let _queued = stream.send(Box::new(chat(0))).await;
        let connect = async {
            tokio::task::yield_now().await;
            hand_over(&slot, connect_in_memory(N).await);
        };
        // The send waits until the connection is up and the queue drains.
        let (sent, ()) = tokio::join!(send_on(&stream, chat(1)), connect);
        sent.unwrap();
        let mut stream = stream;
        assert_eq!(messages(&mut stream, N, Duration::from_secs(10)).await, N);
    }

    /// Why the client does not use tokio-xmpp 6's `Client`: its reading task polls the
    /// receiving half of the split stream while a send holds the halves' shared lock, gets
    /// `Pending` with no waker registered, and sleeps through every stanza that arrives
    /// after. This asserts that defect of tokio-xmpp 6.0.0 (if an upgrade fixes it, this
    /// test fails and says so).
    #[tokio::test]
    async fn tokio_xmpp_split_stream_sleeps_through_stanzas_while_a_send_holds_its_lock() {
        const N: usize = 5;
        let (stream, slot) = unconnected();
        let (tx, mut rx) = stream.split();
        let tx = Arc::new(tx);
        // The queue is full; a second send waits for room, holding the lock.
        let _queued = tx.send(Box::new(chat(0))).await;
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(Box::new(chat(1))).await })
        };
        tokio::task::yield_now().await;
        // The reader (tokio-xmpp's ClientWorker) polls now, as it does when woken.
        let reader =
            tokio::spawn(async move { messages(&mut rx, N, Duration::from_secs(3)).await });
        tokio::task::yield_now().await;
        hand_over(&slot, connect_in_memory(N).await);
        // The waiting send completes (the lock is free again) ...
        let mut token = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            token.wait_for(StanzaStage::Sent).await,
            Some(StanzaState::Sent { .. })
        ));
        // ... yet the reader never sees the stream come up or any message.
        assert_eq!(reader.await.unwrap(), 0);
    }

    #[test]
    fn options_defaults() {
        let o = ConnectOptions::new("alice@example.org/phone", "pw", "/tmp/x");
        assert_eq!(o.host, "example.org");
        assert_eq!(o.label, "phone");
        assert_eq!(o.port, 5222);
        assert!(!o.enable_carbons);
    }
}
