//! Configuration: a TOML file (`--config`), every option also a command-line flag; flags
//! override the file, the file overrides the defaults.
//!
//! Relative paths in the file are resolved against the file's directory (relative paths
//! given as flags against the working directory). Setting both `component.secret` and
//! `component.secret_file` in one place is an error; a flag for either replaces both
//! settings of the file. [`Config::load`] and [`Config::check_files`] do no side effect:
//! a bad configuration creates no file.
//!
//! See `prekey-server/prekey-server.toml.example` and docs/prekey-server.md.

use crate::limits::Limits;
use crate::storage::sqlite::Durability;
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which transport the binary runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// XEP-0114 external component of an XMPP server.
    Component,
    /// Lines `<bare JID> <text>` on stdin, replies on stdout (tests, supervision).
    Stdio,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// The server's JID: the component domain and the prekey server identity.
    pub jid: String,
    /// The long-term key file (created on first start, mode 0600).
    pub key_file: PathBuf,
    /// The SQLite database file.
    pub database: PathBuf,
    /// A PostgreSQL URL (`postgres://user@host/db`): use PostgreSQL instead of the SQLite
    /// `database` (several instances may share it). Absent: SQLite.
    pub storage: Option<String>,
    /// Commit durability: "full" (default) or "normal".
    pub durability: Durability,
    /// Which transport to run.
    pub transport: TransportKind,
    /// Seconds between storage garbage collections (0: never).
    pub gc_interval_secs: u64,
    /// Days orphaned Prekey messages (no Client Profile for their device) are kept.
    pub orphan_retention_days: u32,
    /// Fragment outgoing messages longer than this (0: never).
    pub fragment_size: usize,
    /// Most messages processed at once.
    pub max_in_flight: usize,
    /// Days a key rotation (`--rotate-key`) is announced in service discovery, signed by
    /// the old key, so that clients re-pin; the old key is kept as long.
    pub rotation_announce_days: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            jid: "prekey.localhost".into(),
            key_file: PathBuf::from("prekey-server.key"),
            database: PathBuf::from("prekey-server.db"),
            storage: None,
            durability: Durability::Full,
            transport: TransportKind::Component,
            gc_interval_secs: 3600,
            orphan_retention_days: 30,
            fragment_size: 0,
            max_in_flight: 64,
            rotation_announce_days: crate::rotation::DEFAULT_ANNOUNCE_DAYS,
        }
    }
}

/// `[component]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentSection {
    /// The XMPP server's component listener host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The shared secret (prefer `secret_file`).
    pub secret: Option<String>,
    /// A file holding the shared secret (first line).
    pub secret_file: Option<PathBuf>,
    /// The service-discovery identity name.
    pub name: String,
    /// Longest backoff between reconnections, seconds.
    pub reconnect_max_secs: u64,
}

impl Default for ComponentSection {
    fn default() -> Self {
        ComponentSection {
            host: "127.0.0.1".into(),
            port: 5347,
            secret: None,
            secret_file: None,
            name: "OTR Prekey Server".into(),
            reconnect_max_secs: 60,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter, e.g. "info" or "prekey_server=debug".
    pub level: String,
    /// "text" or "json".
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Loopback address of the Prometheus (`/metrics`) and health (`/health`) endpoint,
    /// e.g. "127.0.0.1:9464"; absent: no endpoint.
    pub listen: Option<std::net::SocketAddr>,
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[component]`.
    pub component: ComponentSection,
    /// `[limits]`.
    pub limits: Limits,
    /// `[log]`.
    pub log: LogSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A file the configuration names is unusable (missing, empty, too permissive).
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// Command line: every configuration option is also a flag.
#[derive(Clone, Debug, Default, Parser)]
#[command(
    name = "prekey-server",
    version,
    about = "OTRv4 prekey server (XMPP component)"
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Print the server's fingerprint (creating the key if needed) and exit.
    #[arg(long)]
    pub print_fingerprint: bool,
    /// Validate the configuration (and the files it names) without creating anything,
    /// then exit: 0 if usable, 2 if not.
    #[arg(long)]
    pub check_config: bool,
    /// Replace the long-term key by a new one, announce the new fingerprint signed by the
    /// old key for `rotation_announce_days`, then exit; restart the server to serve it.
    #[arg(long)]
    pub rotate_key: bool,

    /// [server] jid: the component domain / prekey server identity.
    #[arg(long)]
    pub jid: Option<String>,
    /// [server] key_file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// [server] database.
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// [server] storage: a postgres:// URL (instead of the SQLite database).
    #[arg(long)]
    pub storage: Option<String>,
    /// [server] durability.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// [server] transport.
    #[arg(long, value_enum)]
    pub transport: Option<TransportKind>,
    /// [server] gc_interval_secs.
    #[arg(long)]
    pub gc_interval_secs: Option<u64>,
    /// [server] orphan_retention_days.
    #[arg(long)]
    pub orphan_retention_days: Option<u32>,
    /// [server] fragment_size.
    #[arg(long)]
    pub fragment_size: Option<usize>,
    /// [server] max_in_flight.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// [server] rotation_announce_days.
    #[arg(long)]
    pub rotation_announce_days: Option<u32>,

    /// [component] host.
    #[arg(long)]
    pub component_host: Option<String>,
    /// [component] port.
    #[arg(long)]
    pub component_port: Option<u16>,
    /// [component] secret (visible in the process list: prefer --component-secret-file).
    #[arg(long)]
    pub component_secret: Option<String>,
    /// [component] secret_file.
    #[arg(long)]
    pub component_secret_file: Option<PathBuf>,
    /// [component] name.
    #[arg(long)]
    pub component_name: Option<String>,
    /// [component] reconnect_max_secs.
    #[arg(long)]
    pub reconnect_max_secs: Option<u64>,

    /// [limits] max_message_bytes.
    #[arg(long)]
    pub max_message_bytes: Option<usize>,
    /// [limits] max_prekeys_per_device.
    #[arg(long)]
    pub max_prekeys_per_device: Option<u32>,
    /// [limits] retrieval_rate_per_sec.
    #[arg(long)]
    pub retrieval_rate_per_sec: Option<f64>,
    /// [limits] retrieval_burst.
    #[arg(long)]
    pub retrieval_burst: Option<u32>,
    /// [limits] pair_retrieval_rate_per_sec.
    #[arg(long)]
    pub pair_retrieval_rate_per_sec: Option<f64>,
    /// [limits] pair_retrieval_burst.
    #[arg(long)]
    pub pair_retrieval_burst: Option<u32>,
    /// [limits] target_retrieval_rate_per_sec.
    #[arg(long)]
    pub target_retrieval_rate_per_sec: Option<f64>,
    /// [limits] target_retrieval_burst.
    #[arg(long)]
    pub target_retrieval_burst: Option<u32>,
    /// [limits] max_concurrent_dakes.
    #[arg(long)]
    pub max_concurrent_dakes: Option<usize>,
    /// [limits] max_dakes_per_jid.
    #[arg(long)]
    pub max_dakes_per_jid: Option<usize>,
    /// [limits] max_dakes_per_domain.
    #[arg(long)]
    pub max_dakes_per_domain: Option<usize>,
    /// [limits] dake_start_rate_per_sec.
    #[arg(long)]
    pub dake_start_rate_per_sec: Option<f64>,
    /// [limits] dake_start_burst.
    #[arg(long)]
    pub dake_start_burst: Option<u32>,
    /// [limits] dake_ttl_secs.
    #[arg(long)]
    pub dake_ttl_secs: Option<i64>,
    /// [limits] max_reassembly_senders.
    #[arg(long)]
    pub max_reassembly_senders: Option<usize>,
    /// [limits] max_reassembly_bytes.
    #[arg(long)]
    pub max_reassembly_bytes: Option<usize>,
    /// [limits] fragment_timeout_secs.
    #[arg(long)]
    pub fragment_timeout_secs: Option<u64>,

    /// [log] level (a tracing filter; RUST_LOG overrides it).
    #[arg(long)]
    pub log_level: Option<String>,
    /// [log] format: text or json.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// [metrics] listen: loopback address of /metrics and /health (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// synchronous=FULL.
    Full,
    /// synchronous=NORMAL.
    Normal,
}

macro_rules! set {
    ($($flag:expr => $field:expr),* $(,)?) => {
        $(if let Some(v) = $flag.clone() { $field = v; })*
    };
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Config::from_toml(&text, &p)
    }

    /// Defaults, then `--config` (its relative paths resolved against its directory),
    /// then the flags; validated. Reads the file only.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut c = match &cli.config {
            Some(p) => {
                let mut c = Config::from_file(p)?;
                if c.component.secret.is_some() && c.component.secret_file.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "{} sets both component.secret and component.secret_file; keep one (secret_file is safer)",
                        p.display()
                    )));
                }
                c.resolve_relative_to(p.parent().unwrap_or(Path::new("")));
                c
            }
            None => Config::default(),
        };
        c.apply(cli);
        c.validate()?;
        Ok(c)
    }

    /// Makes the relative paths of the file absolute against `base` (the file's directory).
    pub fn resolve_relative_to(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.key_file);
        fix(&mut self.server.database);
        if let Some(p) = self.component.secret_file.as_mut() {
            fix(p);
        }
    }

    /// Checks the files the configuration names, without creating or changing anything:
    /// an existing key file must be private, the component secret file must exist, be
    /// private and not empty, the database's directory must exist or be creatable.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let file_err = |p: &Path, problem: String| ConfigError::File {
            path: p.display().to_string(),
            problem,
        };
        let private = |p: &Path, what: &str| -> Result<bool, ConfigError> {
            match std::fs::metadata(p) {
                Ok(m) => {
                    let mode = m.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        return Err(file_err(
                            p,
                            format!(
                                "{what} has mode {mode:o}; it must not be accessible by group or others (chmod 600 {})",
                                p.display()
                            ),
                        ));
                    }
                    if !m.is_file() {
                        return Err(file_err(p, format!("{what} is not a regular file")));
                    }
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(file_err(p, format!("{what}: {e}"))),
            }
        };
        private(&self.server.key_file, "the key file")?;
        if self.server.transport == TransportKind::Component {
            if let Some(p) = &self.component.secret_file {
                if !private(p, "the component secret file")? {
                    return Err(file_err(
                        p,
                        "the component secret file does not exist; create it with the secret of the XMPP server's Component entry (mode 0600)".into(),
                    ));
                }
                if self.component_secret()?.is_empty() {
                    return Err(file_err(
                        p,
                        "the component secret file is empty; put the Component entry's secret on its first line".into(),
                    ));
                }
            } else if self.component.secret.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::Invalid("component.secret is empty".into()));
            }
        }
        for p in [&self.server.key_file, &self.server.database] {
            // The nearest existing ancestor must be a directory (creatable below it).
            let mut dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            while let Some(d) = dir {
                if d.exists() {
                    if !d.is_dir() {
                        return Err(file_err(d, "is not a directory".into()));
                    }
                    break;
                }
                dir = d.parent().filter(|d| !d.as_os_str().is_empty());
            }
        }
        Ok(())
    }

    /// Applies the flags that were given.
    pub fn apply(&mut self, cli: &Cli) {
        let (s, k, l) = (&mut self.server, &mut self.component, &mut self.limits);
        set! {
            cli.jid => s.jid,
            cli.key_file => s.key_file,
            cli.database => s.database,
            cli.transport => s.transport,
            cli.gc_interval_secs => s.gc_interval_secs,
            cli.orphan_retention_days => s.orphan_retention_days,
            cli.fragment_size => s.fragment_size,
            cli.max_in_flight => s.max_in_flight,
            cli.rotation_announce_days => s.rotation_announce_days,
            cli.component_host => k.host,
            cli.component_port => k.port,
            cli.component_name => k.name,
            cli.reconnect_max_secs => k.reconnect_max_secs,
            cli.max_message_bytes => l.max_message_bytes,
            cli.max_prekeys_per_device => l.max_prekeys_per_device,
            cli.retrieval_rate_per_sec => l.retrieval_rate_per_sec,
            cli.retrieval_burst => l.retrieval_burst,
            cli.pair_retrieval_rate_per_sec => l.pair_retrieval_rate_per_sec,
            cli.pair_retrieval_burst => l.pair_retrieval_burst,
            cli.target_retrieval_rate_per_sec => l.target_retrieval_rate_per_sec,
            cli.target_retrieval_burst => l.target_retrieval_burst,
            cli.max_concurrent_dakes => l.max_concurrent_dakes,
            cli.max_dakes_per_jid => l.max_dakes_per_jid,
            cli.max_dakes_per_domain => l.max_dakes_per_domain,
            cli.dake_start_rate_per_sec => l.dake_start_rate_per_sec,
            cli.dake_start_burst => l.dake_start_burst,
            cli.dake_ttl_secs => l.dake_ttl_secs,
            cli.max_reassembly_senders => l.max_reassembly_senders,
            cli.max_reassembly_bytes => l.max_reassembly_bytes,
            cli.fragment_timeout_secs => l.fragment_timeout_secs,
            cli.log_level => self.log.level,
            cli.log_format => self.log.format,
        }
        if cli.storage.is_some() {
            s.storage = cli.storage.clone();
        }
        if cli.metrics_listen.is_some() {
            self.metrics.listen = cli.metrics_listen;
        }
        if let Some(d) = cli.durability {
            s.durability = match d {
                DurabilityArg::Full => Durability::Full,
                DurabilityArg::Normal => Durability::Normal,
            };
        }
        // A flag for the secret replaces both settings of the file (flags win).
        if cli.component_secret.is_some() || cli.component_secret_file.is_some() {
            k.secret = cli.component_secret.clone();
            k.secret_file = cli.component_secret_file.clone();
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let jid = &self.server.jid;
        if jid.is_empty() || jid.contains('/') || jid.contains('@') || jid.contains(' ') {
            return bad("server.jid must be a domain (e.g. prekey.example.org)");
        }
        if !(1..=365).contains(&self.server.rotation_announce_days) {
            return bad("server.rotation_announce_days must be between 1 and 365");
        }
        let l = &self.limits;
        if l.max_message_bytes < 1024 {
            return bad("limits.max_message_bytes must be at least 1024");
        }
        for (name, rate) in [
            ("retrieval_rate_per_sec", l.retrieval_rate_per_sec),
            ("pair_retrieval_rate_per_sec", l.pair_retrieval_rate_per_sec),
            (
                "target_retrieval_rate_per_sec",
                l.target_retrieval_rate_per_sec,
            ),
            ("dake_start_rate_per_sec", l.dake_start_rate_per_sec),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be a non-negative number (got {rate})"
                )));
            }
        }
        for (name, v) in [
            ("retrieval_burst", l.retrieval_burst as usize),
            ("pair_retrieval_burst", l.pair_retrieval_burst as usize),
            ("target_retrieval_burst", l.target_retrieval_burst as usize),
            ("dake_start_burst", l.dake_start_burst as usize),
            ("max_concurrent_dakes", l.max_concurrent_dakes),
            ("max_dakes_per_jid", l.max_dakes_per_jid),
            ("max_dakes_per_domain", l.max_dakes_per_domain),
            ("max_reassembly_senders", l.max_reassembly_senders),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be positive"
                )));
            }
        }
        if l.max_reassembly_bytes < l.max_message_bytes {
            return bad("limits.max_reassembly_bytes must be at least limits.max_message_bytes");
        }
        if l.dake_ttl_secs <= 0 {
            return bad("limits.dake_ttl_secs must be positive");
        }
        if self.server.fragment_size != 0 && self.server.fragment_size < 64 {
            return bad("server.fragment_size must be 0 or at least 64");
        }
        if self.server.transport == TransportKind::Component
            && self.component.secret.is_none()
            && self.component.secret_file.is_none()
        {
            return bad(
                "the component transport needs component.secret_file (or component.secret): the secret of the XMPP server's Component entry",
            );
        }
        if self.component.secret.is_some() && self.component.secret_file.is_some() {
            return bad(
                "both component.secret and component.secret_file are set (--component-secret and --component-secret-file); give one",
            );
        }
        if let Some(u) = &self.server.storage
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return bad("server.storage must be a postgres:// URL (or absent for SQLite)");
        }
        if let Some(a) = self.metrics.listen
            && !a.ip().is_loopback()
        {
            return Err(ConfigError::Invalid(format!(
                "metrics.listen {a} is not a loopback address; the endpoint is unauthenticated (use 127.0.0.1 or ::1 and a reverse proxy or SSH tunnel)"
            )));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "log.level {:?} is not a tracing filter (e.g. \"info\" or \"prekey_server=debug\")",
                self.log.level
            )));
        }
        Ok(())
    }

    /// The component secret from `secret` or the first line of `secret_file`.
    pub fn component_secret(&self) -> Result<zeroize::Zeroizing<String>, ConfigError> {
        if let Some(p) = &self.component.secret_file {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(p).map_err(|source| {
                ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                }
            })?);
            return Ok(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or_default().trim().to_owned(),
            ));
        }
        self.component
            .secret
            .clone()
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| ConfigError::Invalid("no component secret".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults_where_unchanged() {
        let text = include_str!("../prekey-server.toml.example");
        let c = Config::from_toml(text, "example").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.limits,
            Limits::default(),
            "the example documents the default limits"
        );
        assert_eq!(c.server.durability, Durability::Full);
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let mut c = Config::from_toml(
            "[server]\njid = \"prekey.example.org\"\ntransport = \"stdio\"\n[limits]\nretrieval_burst = 7\nmax_prekeys_per_device = 50\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.limits.retrieval_burst, 7);
        assert_eq!(
            c.limits.max_concurrent_dakes,
            Limits::default().max_concurrent_dakes
        );
        let cli = Cli::parse_from([
            "prekey-server",
            "--retrieval-burst",
            "9",
            "--durability",
            "normal",
            "--component-port",
            "6000",
        ]);
        c.apply(&cli);
        c.validate().unwrap();
        assert_eq!(c.limits.retrieval_burst, 9);
        assert_eq!(c.limits.max_prekeys_per_device, 50);
        assert_eq!(c.server.durability, Durability::Normal);
        assert_eq!(c.component.port, 6000);
        assert_eq!(c.server.jid, "prekey.example.org");
    }

    fn write(path: &Path, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etc/prekey.toml");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        write(
            &conf,
            "[server]\nkey_file = \"state/k\"\ndatabase = \"/abs/p.db\"\n[component]\nsecret_file = \"secret\"\n",
            0o600,
        );
        let cli = Cli::parse_from(["prekey-server", "--config", conf.to_str().unwrap()]);
        let c = Config::load(&cli).unwrap();
        assert_eq!(c.server.key_file, dir.path().join("etc/state/k"));
        assert_eq!(c.server.database, PathBuf::from("/abs/p.db"));
        assert_eq!(c.component.secret_file, Some(dir.path().join("etc/secret")));
        // A relative flag stays relative to the working directory.
        let cli = Cli::parse_from([
            "prekey-server",
            "--config",
            conf.to_str().unwrap(),
            "--key-file",
            "here.key",
        ]);
        assert_eq!(
            Config::load(&cli).unwrap().server.key_file,
            PathBuf::from("here.key")
        );
    }

    #[test]
    fn secret_flag_wins_over_the_file_and_both_in_one_place_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("c.toml");
        write(&conf, "[component]\nsecret_file = \"nope\"\n", 0o600);
        let cli = Cli::parse_from([
            "prekey-server",
            "--config",
            conf.to_str().unwrap(),
            "--component-secret",
            "from-flag",
        ]);
        let c = Config::load(&cli).unwrap();
        assert_eq!(c.component.secret_file, None);
        assert_eq!(c.component_secret().unwrap().as_str(), "from-flag");
        c.check_files().unwrap();

        write(
            &conf,
            "[component]\nsecret = \"a\"\nsecret_file = \"b\"\n",
            0o600,
        );
        let cli = Cli::parse_from(["prekey-server", "--config", conf.to_str().unwrap()]);
        assert!(matches!(Config::load(&cli), Err(ConfigError::Invalid(_))));
        let cli = Cli::parse_from([
            "prekey-server",
            "--component-secret",
            "a",
            "--component-secret-file",
            "b",
        ]);
        assert!(matches!(Config::load(&cli), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn secret_file_checked_like_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let mut c = Config::default();
        c.component.secret_file = Some(secret.clone());
        c.server.key_file = dir.path().join("k");
        c.server.database = dir.path().join("db");
        let problem = |c: &Config| match c.check_files() {
            Err(ConfigError::File { problem, .. }) => problem,
            other => panic!("{other:?}"),
        };
        assert!(problem(&c).contains("does not exist"));
        write(&secret, "s3cret\n", 0o644);
        assert!(problem(&c).contains("chmod 600"));
        write(&secret, "\n", 0o600);
        assert!(problem(&c).contains("empty"));
        write(&secret, "s3cret\n", 0o600);
        c.check_files().unwrap();
        write(&c.server.key_file, "x", 0o640);
        assert!(problem(&c).contains("key file"));
        assert!(!dir.path().join("db").exists(), "checking creates nothing");
    }

    #[test]
    fn invalid_configurations_rejected() {
        assert!(matches!(
            Config::from_toml("[server]\nbogus = 1\n", "t"),
            Err(ConfigError::Parse { .. })
        ));
        for (t, what) in [
            ("[server]\njid = \"a@b\"\ntransport = \"stdio\"\n", "jid"),
            (
                "[server]\ntransport = \"stdio\"\n[limits]\nmax_message_bytes = 10\n",
                "size",
            ),
            (
                "[server]\ntransport = \"stdio\"\n[limits]\nretrieval_burst = 0\n",
                "burst",
            ),
            ("[server]\ntransport = \"component\"\n", "secret"),
        ] {
            let c = Config::from_toml(t, "t").unwrap();
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(_))),
                "{what}"
            );
        }
    }
}
