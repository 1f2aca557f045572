//! The `prekey-server` binary: loads the configuration, the long-term key (creating it on
//! first start) and the SQLite store, then runs the configured transport until SIGINT/SIGTERM.

use clap::Parser;
use prekey_server::config::{Cli, Config, TransportKind};
use prekey_server::keys::{self, KeyOrigin};
use prekey_server::service::{Service, ServiceOptions, unix_now};
use prekey_server::storage::sqlite::SqliteStorage;
use prekey_server::transport::{component, stdio};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("prekey-server: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("prekey-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let (key, origin) = keys::load_or_create(&config.server.key_file)?;
    let options = ServiceOptions {
        identity: config.server.jid.clone(),
        limits: config.limits.clone(),
        fragment_size: (config.server.fragment_size > 0).then_some(config.server.fragment_size),
        orphan_retention_secs: i64::from(config.server.orphan_retention_days) * 24 * 3600,
    };
    let fp = hex::encode_upper(
        otr4::crypto::fingerprint::Fingerprint::prekey_server(&otr4::crypto::keys::Ed448PublicKey(
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

    let storage = SqliteStorage::open(&config.server.database, config.server.durability)?;
    info!(path = %config.server.database.display(), durability = ?config.server.durability, "storage open (SQLite, WAL)");
    let service = Arc::new(Service::new(key, Arc::new(storage), options));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received, shutting down");
            let _ = tx.send(true);
        });
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
        match config.server.transport {
            TransportKind::Stdio => {
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
            TransportKind::Component => {
                let cfg = component::ComponentConfig {
                    host: config.component.host.clone(),
                    port: config.component.port,
                    jid: config.server.jid.clone(),
                    secret: config.component_secret()?,
                    name: config.component.name.clone(),
                    reconnect_max_secs: config.component.reconnect_max_secs,
                    max_stanza_bytes: config.limits.max_message_bytes + 64 * 1024,
                    max_in_flight: config.server.max_in_flight,
                };
                component::run(service, cfg, rx).await?;
            }
        }
        info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            warn!("cannot install signal handlers; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
