//! `otr4-peer`: one OTRv4 client driven by a line protocol on stdin/stdout, for interop and
//! end-to-end tests (documented in test-vectors/README.md, section "otr4-peer").
//!
//! Each input line is a command (`start`, `recv <message>`, `send <text>`, `smp <secret>`,
//! `end`, `tick [seconds]`, `ensemble`, `offline <ensemble>`, `quit`); each output line is
//! `out <message>`, `out-ensemble <ensemble>`, `msg <text>`, `event <name> [key=value …]`
//! or `error <kind> <detail>`, flushed as it is written, and every command's output ends
//! with `event done command=<name>`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20::ChaCha20Rng;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::hazmat::conversation::PREKEY_PROFILE_LIFETIME_SECS;
use otr4::hazmat::crypto::ed448::{KeyPair, SymmetricKey};
use otr4::hazmat::crypto::kdf::shake256;
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::messages::{PrekeyEnsemble, PrekeyMessage};
use otr4::hazmat::wire::query::Versions;
use otr4::otrv3::{DsaPrivateKey, read_private_keys};
use otr4::{
    Account, Client, ConversationError, DisconnectReason, Event, NotSentReason, OfflineEnsembles,
    Policy, SmpUpdate, ValidatedEnsemble, Warning,
};
use rand_core::SeedableRng;

const USAGE: &str = "usage: otr4-peer [--seed U64] [--now UNIX_SECONDS] [--key-seed HEX] \
[--instance-tag HEX] [--mode standalone|interactive|compatible] [--v3-key OTR_PRIVATE_KEY_FILE] \
--us BARE_JID --them BARE_JID";

/// The command-line options.
struct Options {
    seed: Option<u64>,
    now: Option<i64>,
    key_seed: Option<Vec<u8>>,
    instance_tag: Option<InstanceTag>,
    policy: Policy,
    /// libotr's `otr.private_key` whose first account's DSA key is our OTRv3 key.
    v3_key: Option<std::path::PathBuf>,
    us: String,
    them: String,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        seed: None,
        now: None,
        key_seed: None,
        instance_tag: None,
        policy: Policy::standalone(),
        v3_key: None,
        us: String::new(),
        them: String::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => o.seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--now" => o.now = Some(value()?.parse().map_err(|e| format!("--now: {e}"))?),
            "--key-seed" => {
                o.key_seed = Some(hex::decode(value()?).map_err(|e| format!("--key-seed: {e}"))?)
            }
            "--instance-tag" => {
                let v = value()?;
                let tag = u32::from_str_radix(v.trim_start_matches("0x"), 16)
                    .map_err(|e| format!("--instance-tag: {e}"))?;
                if !InstanceTag(tag).is_valid_sender() {
                    return Err("--instance-tag must be at least 0x100".into());
                }
                o.instance_tag = Some(InstanceTag(tag));
            }
            "--v3-key" => o.v3_key = Some(value()?.into()),
            "--mode" => {
                o.policy = match value()?.as_str() {
                    "standalone" => Policy::standalone(),
                    "interactive" => Policy::interactive_only(),
                    "compatible" => Policy {
                        versions: Versions::V3_AND_V4,
                        ..Policy::default()
                    },
                    m => return Err(format!("--mode: unknown mode {m:?}")),
                }
            }
            "--us" => o.us = value()?.clone(),
            "--them" => o.them = value()?.clone(),
            f => return Err(format!("unknown option {f:?}")),
        }
    }
    if o.us.is_empty() || o.them.is_empty() {
        return Err("--us and --them are required".into());
    }
    if o.v3_key.is_some() && o.policy.mode != otr4::Mode::Otrv3Compatible {
        return Err("--v3-key needs --mode compatible".into());
    }
    Ok(o)
}

/// `SHAKE-256(label || seed, 57)`: a symmetric key derived from `--key-seed`.
fn derived_key(label: &[u8], seed: &[u8]) -> KeyPair {
    let mut sym = [0u8; 57];
    shake256(&[label, seed], &mut sym);
    KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym))
}

/// 32 bytes from the operating system, for runs without `--seed`.
fn os_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    std::io::Read::read_exact(&mut f, &mut seed).map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(seed)
}

/// Escapes a value for one output line: `\` → `\\`, newline → `\n`, CR → `\r`, and with
/// `space`, space → `\s` (for `key=value` fields).
fn escape(s: &str, space: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' ' if space => out.push_str("\\s"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`] (`\s` is a space; an unknown escape is kept as is).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('s') => out.push(' '),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `CamelCase` → `camel_case` of the leading identifier of a `Debug` rendering.
fn kind_name(debug: &str) -> String {
    let ident: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn tag_hex(t: InstanceTag) -> String {
    format!("{:08x}", t.0)
}

/// The peer: the client, its RNG and clock, and SMP bookkeeping.
struct Peer {
    client: Client,
    /// Our long-term key pair, to sign the Prekey Profile of `ensemble`.
    long_term: KeyPair,
    /// The secrets of the Prekey Profile and Prekey messages `ensemble` gave out.
    prekeys: PrekeyStore,
    rng: ChaCha20Rng,
    fixed_now: Option<i64>,
    them: String,
    /// An instance that asked us for the SMP secret.
    smp_asked: Option<InstanceTag>,
}

impl Peer {
    fn now(&self) -> i64 {
        self.fixed_now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        })
    }

    /// The encrypted conversation with the peer to run SMP in (an OTRv4 one first, else the
    /// OTRv3 session of the compatible mode).
    fn encrypted_instance(&self) -> Option<InstanceTag> {
        let v4 = self.client.instances(&self.them).into_iter().find(|t| {
            self.client
                .conversation(&self.them, *t)
                .is_some_and(|c| c.is_encrypted())
        });
        v4.or_else(|| match self.client.peer(&self.them)?.v3_session() {
            (otr4::ConversationState::Encrypted, tag) => tag,
            _ => None,
        })
    }

    /// Runs one command; returns its output lines and whether to quit.
    fn command(&mut self, line: &str) -> (Vec<String>, bool) {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        let now = self.now();
        let them = self.them.clone();
        let events = match cmd {
            "start" => self.client.start(&them, now, &mut self.rng),
            "recv" => {
                self.client
                    .receive(&them, &unescape(arg), &mut self.prekeys, now, &mut self.rng)
            }
            "send" => self
                .client
                .send(&them, &unescape(arg), &[], now, &mut self.rng),
            "smp" => {
                let secret = unescape(arg);
                match (self.smp_asked.take(), self.encrypted_instance()) {
                    (Some(t), _) => {
                        self.client
                            .smp_respond(&them, t, secret.as_bytes(), now, &mut self.rng)
                    }
                    (None, Some(t)) => {
                        self.client
                            .smp_start(&them, t, secret.as_bytes(), None, now, &mut self.rng)
                    }
                    (None, None) => {
                        return (
                            vec!["error not_encrypted no encrypted conversation for SMP".into()],
                            false,
                        );
                    }
                }
            }
            "end" => self.client.end(&them, None, now, &mut self.rng),
            "ensemble" => {
                let line = self.ensemble(now).unwrap_or_else(|e| e);
                return (vec![line], false);
            }
            "offline" => match parse_ensemble(arg, now) {
                Ok(e) => self.client.send_offline(
                    &them,
                    OfflineEnsembles::Validated(&[e]),
                    "",
                    now,
                    &mut self.rng,
                ),
                Err(line) => return (vec![line], false),
            },
            "tick" => {
                let later = match arg {
                    "" => Ok(0),
                    s => s.parse::<i64>(),
                };
                match later {
                    Ok(s) => {
                        let later = now.saturating_add(s);
                        self.client.tick(&mut self.prekeys, later, &mut self.rng)
                    }
                    Err(e) => return (vec![format!("error usage tick: {e}")], false),
                }
            }
            "quit" => return (Vec::new(), true),
            "" => return (vec!["error usage empty command".into()], false),
            other => {
                return (
                    vec![format!(
                        "error usage unknown command {}",
                        escape(other, false)
                    )],
                    false,
                );
            }
        };
        let lines = events.into_iter().filter_map(|e| self.render(e)).collect();
        (lines, false)
    }

    /// `ensemble`: a Prekey Ensemble of ours (otrv4.md §"Prekey Ensemble"): our Client
    /// Profile, a Prekey Profile (made on first use, valid for
    /// [`PREKEY_PROFILE_LIFETIME_SECS`]; then reused until it is within a day of expiring)
    /// and a new Prekey message, whose secrets stay in `prekeys` for the Non-Interactive-Auth
    /// message made from it. The `out-ensemble` line, or an `error` line.
    fn ensemble(&mut self, now: i64) -> Result<String, String> {
        if self.client.account().policy().mode == otr4::Mode::InteractiveOnly {
            return Err(error_line(&ConversationError::OfflineNotAllowed));
        }
        let fresh = self
            .prekeys
            .current_shared_prekey()
            .is_some_and(|s| s.profile().expiration > now.saturating_add(86_400));
        let prekey_profile = if fresh {
            self.prekeys
                .current_shared_prekey()
                .map(|s| s.profile().clone())
        } else {
            None
        };
        let prekey_profile = match prekey_profile {
            Some(p) => p,
            None => self.prekeys.new_prekey_profile(
                &mut self.rng,
                &self.long_term,
                now.saturating_add(PREKEY_PROFILE_LIFETIME_SECS),
            ),
        };
        let message = self
            .prekeys
            .generate_prekey_messages(&mut self.rng, 1, now)
            .map_err(|e| format!("error prekey {}", escape(&e.to_string(), false)))?;
        let message = message
            .first()
            .ok_or_else(|| "error prekey no prekey message was made".to_owned())?;
        Ok(format!(
            "out-ensemble {} {} {}",
            BASE64.encode(self.client.account().profile().encode()),
            BASE64.encode(prekey_profile.encode()),
            BASE64.encode(message.encode()),
        ))
    }

    /// One output line for an event (`None` for events the protocol does not report).
    fn render(&mut self, e: Event) -> Option<String> {
        Some(match e {
            Event::Send { text, .. } => format!("out {}", escape(&text, false)),
            Event::Received { text, .. } => format!("msg {}", escape(&text, false)),
            Event::Secure {
                ssid,
                instance,
                bold_half,
                their_fingerprint,
                ..
            } => format!(
                "event secure ssid={} instance={} bold_half={bold_half} fingerprint={}",
                hex::encode(ssid.0),
                tag_hex(instance),
                hex::encode(their_fingerprint.as_bytes()),
            ),
            Event::SecureV3 {
                ssid,
                instance,
                bold_half,
                their_fingerprint,
                ..
            } => format!(
                "event secure_v3 ssid={} instance={} bold_half={bold_half} fingerprint={}",
                hex::encode(ssid),
                tag_hex(instance),
                hex::encode(their_fingerprint.0),
            ),
            Event::Finished { instance, .. } => {
                format!("event finished instance={}", tag_hex(instance))
            }
            Event::Disconnected {
                instance, reason, ..
            } => format!(
                "event disconnected instance={} reason={}",
                tag_hex(instance),
                match reason {
                    DisconnectReason::UserEnded => "user_ended",
                    DisconnectReason::Expired => "expired",
                    DisconnectReason::SwitchingDake => "switching_dake",
                }
            ),
            Event::Smp {
                instance, update, ..
            } => {
                let i = tag_hex(instance);
                match update {
                    SmpUpdate::AskForSecret { question } => {
                        self.smp_asked = Some(instance);
                        match question {
                            Some(q) => format!(
                                "event smp_request instance={i} question={}",
                                escape(&q, true)
                            ),
                            None => format!("event smp_request instance={i}"),
                        }
                    }
                    SmpUpdate::InProgress => format!("event smp_in_progress instance={i}"),
                    SmpUpdate::Succeeded => format!("event smp result=success instance={i}"),
                    SmpUpdate::Failed => format!("event smp result=failure instance={i}"),
                    SmpUpdate::Aborted { reason } => match reason {
                        Some(r) => format!(
                            "event smp result=aborted instance={i} reason={}",
                            escape(&r.to_string(), true)
                        ),
                        None => format!("event smp result=aborted instance={i} by=peer"),
                    },
                }
            }
            Event::ExtraSymmetricKey {
                instance,
                key,
                context,
                data,
                ..
            } => format!(
                "event extra_symmetric_key instance={} context={} data={} key={}",
                tag_hex(instance),
                hex::encode(context),
                hex::encode(data),
                hex::encode(key.as_bytes()),
            ),
            Event::PeerError { code, text, .. } => format!(
                "event peer_error code={} text={}",
                code.number(),
                escape(&text, true)
            ),
            // A Non-Interactive-Auth message that fails validation is an error for the
            // driver, not a warning (the offline flow cannot go on).
            Event::Warning {
                warning: Warning::NonInteractiveAuthIgnored(e),
                ..
            } => format!(
                "error non_interactive_auth_ignored {}",
                escape(&e.to_string(), false)
            ),
            Event::Warning { warning, .. } => format!(
                "event warning kind={} detail={}",
                kind_name(&format!("{warning:?}")),
                escape(&format!("{warning:?}"), true)
            ),
            Event::Error { error, .. } => error_line(&error),
            Event::NotSent { reason, .. } => format!(
                "event not_sent reason={}",
                match reason {
                    NotSentReason::Queued => "queued",
                    NotSentReason::Finished => "finished",
                    NotSentReason::QueueFull => "queue_full",
                    NotSentReason::Discarded => "discarded",
                    NotSentReason::EncryptionUnavailable => "encryption_unavailable",
                    NotSentReason::KeyNotAccepted => "key_not_accepted",
                }
            ),
            _ => return None,
        })
    }
}

/// `offline`'s argument: three standard-base64 values (Client Profile, Prekey Profile,
/// Prekey message), decoded and validated at `now` (otrv4.md §"Validating Prekey
/// Ensembles"); else the `error` line (`usage`, `malformed` or `invalid_ensemble`).
fn parse_ensemble(arg: &str, now: i64) -> Result<ValidatedEnsemble, String> {
    let parts: Vec<&str> = arg.split(' ').collect();
    let [cp, pp, pm] = parts.as_slice() else {
        return Err(
            "error usage offline <client-profile> <prekey-profile> <prekey-message>".into(),
        );
    };
    fn value<T: Codec>(what: &str, b64: &str) -> Result<T, String> {
        let bytes = BASE64
            .decode(b64)
            .map_err(|e| format!("error malformed {what}: base64: {e}"))?;
        T::decode(&bytes).map_err(|e| format!("error malformed {what}: {e}"))
    }
    let ensemble = PrekeyEnsemble {
        client_profile: value::<ClientProfile>("client profile", cp)?,
        prekey_profile: value::<PrekeyProfile>("prekey profile", pp)?,
        prekey_message: value::<PrekeyMessage>("prekey message", pm)?,
    };
    ValidatedEnsemble::validate(&ensemble, now)
        .map_err(|e| format!("error invalid_ensemble {}", escape(&e.to_string(), false)))
}

fn error_line(e: &ConversationError) -> String {
    format!(
        "error {} {}",
        kind_name(&format!("{e:?}")),
        escape(&e.to_string(), false)
    )
}

/// Our OTRv3 key in the compatible mode: the first account's key of `--v3-key` (libotr's
/// `otr.private_key`), else one generated from `--key-seed` (the same seed, the same key) or
/// from the run's RNG.
fn v3_key(o: &Options, rng: &mut ChaCha20Rng) -> Result<DsaPrivateKey, String> {
    if let Some(path) = &o.v3_key {
        let file = std::fs::read(path).map_err(|e| format!("--v3-key {}: {e}", path.display()))?;
        let mut keys = read_private_keys(&file).map_err(|e| format!("--v3-key: {e}"))?;
        if keys.is_empty() {
            return Err("--v3-key: the file holds no account".into());
        }
        return Ok(keys.remove(0).key);
    }
    let mut seeded = match &o.key_seed {
        Some(seed) => {
            let mut s = [0u8; 32];
            shake256(&[b"otr4-peer OTRv3 key", seed], &mut s);
            ChaCha20Rng::from_seed(s)
        }
        None => ChaCha20Rng::from_rng(rng),
    };
    DsaPrivateKey::generate(&mut seeded).map_err(|e| format!("OTRv3 key: {e}"))
}

fn build(o: &Options) -> Result<Peer, String> {
    let mut rng = match o.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_seed(os_seed()?),
    };
    let now = o.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let (long_term, forging) = match &o.key_seed {
        Some(seed) => (
            derived_key(b"otr4-peer long-term key", seed),
            derived_key(b"otr4-peer forging key", seed),
        ),
        None => (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng)),
    };
    let tag = o
        .instance_tag
        .unwrap_or_else(|| InstanceTag::random(&mut rng));
    let mut account = Account::from_keys(
        long_term.clone(),
        ForgingPublicKey(*forging.public()),
        None,
        tag,
        o.policy,
        now,
    )
    .map_err(|e| e.to_string())?;
    if o.policy.mode == otr4::Mode::Otrv3Compatible {
        account.set_v3_key(v3_key(o, &mut rng)?);
    }
    Ok(Peer {
        prekeys: PrekeyStore::new(account.instance_tag()),
        client: Client::new(account, &o.us),
        long_term,
        rng,
        fixed_now: o.now,
        them: o.them.clone(),
        smp_asked: None,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut peer = match parse_options(&args).and_then(|o| build(&o)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("otr4-peer: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            break;
        };
        let line = line.trim_end_matches('\r');
        let (mut lines, quit) = peer.command(line);
        if !quit {
            let cmd = line.split(' ').next().unwrap_or_default();
            lines.push(format!("event done command={}", escape(cmd, true)));
        }
        for l in &lines {
            if writeln!(stdout, "{l}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
        }
        if quit {
            break;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_lines_whole() {
        for s in [
            "plain",
            "a\\b",
            "two\nlines\r",
            " spaced out ",
            "\\s literal",
        ] {
            assert_eq!(unescape(&escape(s, false)), s);
            assert_eq!(unescape(&escape(s, true)), s);
            assert!(!escape(s, true).contains([' ', '\n', '\r']));
        }
        assert_eq!(escape("a b\n", true), "a\\sb\\n");
    }

    #[test]
    fn kind_names_are_snake_case() {
        assert_eq!(kind_name("NotInPrivateState"), "not_in_private_state");
        assert_eq!(
            kind_name("Malformed(Truncated { what: \"x\" })"),
            "malformed"
        );
        assert_eq!(kind_name("DakeTimedOut"), "dake_timed_out");
    }
}
