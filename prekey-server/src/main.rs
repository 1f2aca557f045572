//! The `prekey-server` binary: validates the configuration (before any side effect), loads
//! the long-term key (creating it on first start) and the SQLite store, then runs the
//! configured transport until SIGINT/SIGTERM. SIGHUP reloads the log level and the rate limits
//! (a rotated key needs a restart). `--rotate-key` rotates the long-term key and exits.
//!
//! Exit codes: 0 clean stop, 1 runtime error (key, storage, handshake refused), 2 bad
//! configuration (nothing was created). Every error is printed once, on stderr.

use clap::Parser;
use prekey_server::config::{Cli, Config, LogFormat, TransportKind};
use prekey_server::keys::{self, KeyOrigin};
use prekey_server::rotation;
use prekey_server::service::{Service, ServiceOptions, unix_now};
use prekey_server::storage::pg::PgStorage;
use prekey_server::storage::sqlite::SqliteStorage;
use prekey_server::transport::{component, stdio};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Exit code of a configuration error.
const EXIT_CONFIG: u8 = 2;

type FilterHandle = reload::Handle<EnvFilter, Registry>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli).and_then(|c| c.check_files().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("prekey-server: {e}");
            eprintln!("prekey-server: configuration error, nothing was started (exit 2)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!(
            "configuration OK: jid {}, transport {:?}, key {}, database {}",
            config.server.jid,
            config.server.transport,
            config.server.key_file.display(),
            config.server.database.display()
        );
        return ExitCode::SUCCESS;
    }
    if cli.rotate_key {
        return rotate_key(&config);
    }
    let handle = init_logging(&config);
    match run(cli, config, handle) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logged once (the log is on stderr).
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--rotate-key`: a new key, announced (signed by the old one) for the configured period.
fn rotate_key(config: &Config) -> ExitCode {
    let period = u64::from(config.server.rotation_announce_days) * 24 * 3600;
    match rotation::rotate(
        &config.server.key_file,
        &config.server.jid,
        period,
        unix_now() as u64,
    ) {
        Ok(r) => {
            println!(
                "rotated the key of {}\nold fingerprint: {}\nnew fingerprint: {}\nannounced (signed by the old key) until {} (Unix time); old key kept in {}\nrestart the server to serve the new key",
                config.server.jid,
                hex::encode_upper(r.old.as_bytes()),
                hex::encode_upper(r.new.as_bytes()),
                r.not_after,
                r.old_key_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prekey-server: key rotation failed, the key is unchanged: {e}");
            ExitCode::FAILURE
        }
    }
}

fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn init_logging(config: &Config) -> FilterHandle {
    let (filter, handle) = reload::Layer::new(filter_for(&config.log.level));
    let registry = tracing_subscriber::registry().with(filter);
    match config.log.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    handle
}

fn run(cli: Cli, config: Config, log: FilterHandle) -> Result<(), Box<dyn std::error::Error>> {
    let (key, origin) = keys::load_or_create(&config.server.key_file)?;
    let announcements = rotation::load_announcements(
        &config.server.key_file,
        &config.server.jid,
        unix_now() as u64,
    )?;
    let options = ServiceOptions {
        identity: config.server.jid.clone(),
        limits: config.limits.clone(),
        fragment_size: (config.server.fragment_size > 0).then_some(config.server.fragment_size),
        orphan_retention_secs: i64::from(config.server.orphan_retention_days) * 24 * 3600,
        announcements,
    };
    let fp = hex::encode_upper(
        otr4::Fingerprint::prekey_server(&otr4::hazmat::crypto::keys::Ed448PublicKey(
            *key.public(),
        ))
        .as_bytes(),
    );
    if cli.print_fingerprint {
        println!("{fp}");
        return Ok(());
    }
    match origin {
        KeyOrigin::Created => {
            info!(path = %config.server.key_file.display(), "created a new long-term key")
        }
        KeyOrigin::Loaded => {
            info!(path = %config.server.key_file.display(), "loaded the long-term key")
        }
    }
    // Operators compare this with what clients see in service discovery.
    eprintln!("prekey-server {} fingerprint: {fp}", config.server.jid);
    info!(jid = %config.server.jid, fingerprint = %fp, "prekey server identity");
    for a in &options.announcements {
        info!(
            old_public = %hex::encode_upper(a.old_public),
            new_fingerprint = %hex::encode_upper(a.new_fingerprint),
            not_after = a.not_after,
            "announcing a key rotation in service discovery"
        );
    }

    let storage: Arc<dyn prekey_server::storage::Storage> = match &config.server.storage {
        Some(url) => {
            let s = PgStorage::open(url)?;
            info!(database = %prekey_server::storage::pg::redact(url), "storage open (PostgreSQL)");
            Arc::new(s)
        }
        None => {
            let s =
                SqliteStorage::open_exclusive(&config.server.database, config.server.durability)?;
            info!(path = %config.server.database.display(), durability = ?config.server.durability, "storage open (SQLite, WAL)");
            Arc::new(s)
        }
    };
    let service = Arc::new(Service::new(key, storage, options));
    if config.component.secret.is_some() && config.server.transport == TransportKind::Component {
        warn!(
            "component.secret is written in the configuration; prefer component.secret_file (mode 0600)"
        );
    }
    let secret = match config.server.transport {
        TransportKind::Component => Some(config.component_secret()?),
        TransportKind::Stdio => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(signals(tx, cli, log, service.clone()));
        if let Some(addr) = config.metrics.listen {
            let handle = prekey_server::ops::install_recorder()?;
            let listener = prekey_server::ops::bind(addr).await?;
            info!(%addr, "metrics on /metrics, health on /health");
            let svc = service.clone();
            let healthy = move || {
                let svc = svc.clone();
                async move {
                    tokio::task::spawn_blocking(move || svc.healthy())
                        .await
                        .unwrap_or(false)
                }
            };
            tokio::spawn(prekey_server::ops::serve(listener, handle, healthy, rx.clone()));
            let (svc, mut stop) = (service.clone(), rx.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(15));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let s = svc.clone();
                            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.export_store_stats()).await {
                                warn!(error = %e, "store statistics failed");
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
            });
        }
        if config.server.gc_interval_secs > 0 {
            let (svc, every, mut stop) = (service.clone(), config.server.gc_interval_secs, rx.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let s = svc.clone();
                            match tokio::task::spawn_blocking(move || s.gc(unix_now() as i64)).await {
                                Ok(Err(e)) => warn!(error = %e, "storage gc failed"),
                                Err(e) => warn!(error = %e, "storage gc task failed"),
                                Ok(Ok(_)) => {}
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
            });
        }
        match (config.server.transport, secret) {
            (TransportKind::Component, Some(secret)) => {
                let cfg = component::ComponentConfig {
                    host: config.component.host.clone(),
                    port: config.component.port,
                    jid: config.server.jid.clone(),
                    secret,
                    name: config.component.name.clone(),
                    reconnect_max_secs: config.component.reconnect_max_secs,
                    max_stanza_bytes: config.limits.max_message_bytes + 64 * 1024,
                    max_in_flight: config.server.max_in_flight,
                };
                component::run(service, cfg, rx).await?;
            }
            _ => {
                info!("serving lines on stdin/stdout");
                stdio::run(
                    service,
                    tokio::io::BufReader::new(tokio::io::stdin()),
                    tokio::io::stdout(),
                    rx,
                    config.server.max_in_flight,
                )
                .await?;
            }
        }
        info!("stopped");
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    // Blocking reads of stdin never return on their own: do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// SIGINT/SIGTERM: graceful shutdown. SIGHUP: re-read the configuration and apply its log
/// level and rate limits (other settings need a restart); a bad file is logged and changes
/// nothing.
async fn signals(
    shutdown: watch::Sender<bool>,
    cli: Cli,
    log: FilterHandle,
    service: Arc<Service>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        warn!("cannot install signal handlers; Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        let _ = shutdown.send(true);
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match Config::load(&cli) {
                Ok(c) => {
                    service.reload_rates(&c.limits);
                    if let Ok(k) = keys::load(&c.server.key_file)
                        && rotation::fingerprint(&k) != service.fingerprint()
                    {
                        warn!("SIGHUP: the key file holds another key (rotated?): restart the server to serve it and announce the rotation");
                    }
                    match log.reload(filter_for(&c.log.level)) {
                        Ok(()) => info!(level = %c.log.level, "SIGHUP: configuration re-read, log level and rate limits applied (other changes need a restart)"),
                        Err(e) => warn!(error = %e, "SIGHUP: could not apply the log level"),
                    }
                }
                Err(e) => warn!(error = %e, "SIGHUP: configuration not reloaded"),
            },
        }
    }
    info!("signal received, shutting down");
    let _ = shutdown.send(true);
}
