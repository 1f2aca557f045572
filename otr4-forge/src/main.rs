//! `otr4-forge`: the forging toolkit of otrv4.md §"Forging Transcripts" on the command line,
//! one subcommand per tool of the spec, over `otr4::forge` (docs/deniability.md).
//!
//! Inputs: OTRv4 messages as `?OTR:…`, keys as hex, Client Profiles and ensemble parts as
//! standard base64 (as `otr4-peer` prints them). Output: one `name value` line per result;
//! forged messages as `out <sender> ?OTR:…`. A bad input is `error: …` on stderr, status 2.

use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20::ChaCha20Rng;
use clap::{Parser, Subcommand, ValueEnum};
use otr4::forge::{self, Party, Side};
use otr4::hazmat::crypto::ed448::{KeyPair, SymmetricKey};
use otr4::hazmat::dake::PhiPrime;
use otr4::hazmat::prekey::ensemble::PrekeyStore;
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::{Message, PrekeyEnsemble, PrekeyMessage};
use otr4::{InstanceTag, Padding, ValidatedEnsemble};
use rand_core::SeedableRng;

/// OTRv4's forging tools (otrv4.md §"Forging Transcripts"): show that a transcript could
/// have been made by someone else.
#[derive(Parser)]
#[command(name = "otr4-forge", version)]
struct Cli {
    /// Seed the random generator (ChaCha20): the same seed and inputs give the same output.
    /// Without it, the operating system's randomness.
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// The time of validity checks (Unix seconds); without it the system clock.
    #[arg(long, global = true)]
    now: Option<i64>,
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Who {
    Alice,
    Bob,
}

impl From<Who> for Side {
    fn from(w: Who) -> Side {
        match w {
            Who::Alice => Side::Alice,
            Who::Bob => Side::Bob,
        }
    }
}

#[derive(Subcommand)]
enum Tool {
    /// Parse: the fields of an OTRv4 message.
    Parse {
        /// The message, `?OTR:…`.
        message: String,
    },
    /// Modify Data Message: replace `old` at `offset` of the encrypted message by `new`
    /// (same length) and re-MAC with the message's revealed MAC key.
    ModifyDataMessage {
        #[arg(long)]
        message: String,
        /// Byte offset in the plaintext (0: the start of the text).
        #[arg(long)]
        offset: usize,
        #[arg(long)]
        old: String,
        #[arg(long)]
        new: String,
        /// The message's MAC key (64 bytes hex), e.g. as revealed in a later message.
        #[arg(long)]
        mac_key: String,
    },
    /// Read and Forge Data Message: decrypt with the message's chain key and, with `--new`,
    /// replace the text and re-MAC.
    ReadAndForge {
        #[arg(long)]
        message: String,
        /// The chain key the message was encrypted from (64 bytes hex).
        #[arg(long)]
        chain_key: String,
        /// The new text (padded as the honest client pads).
        #[arg(long)]
        new: Option<String>,
    },
    /// Show MAC Key: the MAC key of a message key.
    ShowMacKey {
        /// The message key MKenc (64 bytes hex).
        #[arg(long)]
        message_key: String,
    },
    /// ReMAC Message: a Data message with a new authenticator under a MAC key.
    RemacMessage {
        #[arg(long)]
        message: String,
        /// The MAC key (64 bytes hex).
        #[arg(long)]
        mac_key: String,
    },
    /// Forge DAKE and Session Keys: a DAKE between Bob and Alice from one party's
    /// long-term secret key; prints the messages, the SSID and both sending chain keys.
    ForgeDake {
        #[command(flatten)]
        parties: Parties,
        /// The non-interactive DAKE (holder Bob only): a false Prekey Ensemble and the
        /// Non-Interactive-Auth message.
        #[arg(long)]
        non_interactive: bool,
    },
    /// Impersonate Initiator: with Alice's forging key, play Bob against Alice's client.
    /// Without `--auth-r`, prints the Identity message; run again with the same `--seed`
    /// and her Auth-R to get the Auth-I message.
    ImpersonateInitiator {
        /// Bob's Client Profile (base64).
        #[arg(long)]
        bob_profile: String,
        /// Alice's forging secret key (57-byte symmetric key, hex).
        #[arg(long)]
        forging_secret: String,
        /// Alice's instance tag (hex).
        #[arg(long)]
        alice_tag: String,
        #[arg(long)]
        alice_jid: String,
        #[arg(long)]
        bob_jid: String,
        /// Alice's Auth-R message, `?OTR:…`.
        #[arg(long)]
        auth_r: Option<String>,
    },
    /// Impersonate Responder: with Bob's forging key, answer Bob as Alice: an Auth-R for his
    /// Identity message, or a Non-Interactive-Auth message for his Prekey Ensemble.
    ImpersonateResponder {
        /// Alice's Client Profile (base64).
        #[arg(long)]
        alice_profile: String,
        /// Bob's forging secret key (57-byte symmetric key, hex).
        #[arg(long)]
        forging_secret: String,
        #[arg(long)]
        alice_jid: String,
        #[arg(long)]
        bob_jid: String,
        /// Bob's Identity message, `?OTR:…`.
        #[arg(long, conflicts_with = "ensemble")]
        identity: Option<String>,
        /// Bob's Prekey Ensemble: Client Profile, Prekey Profile, Prekey message (base64).
        #[arg(long, num_args = 3, required_unless_present = "identity")]
        ensemble: Option<Vec<String>>,
    },
    /// False Prekey Ensemble: a valid Prekey Ensemble of the key's owner made outside their
    /// client (rerun with the same `--seed` to recreate its secrets).
    FalsePrekeyEnsemble {
        /// The owner's long-term secret key (57-byte symmetric key, hex).
        #[arg(long)]
        secret: String,
        /// The owner's Client Profile (base64).
        #[arg(long)]
        profile: String,
        /// How long the Prekey Profile is valid (seconds).
        #[arg(long, default_value_t = 7 * 86_400)]
        lifetime: i64,
    },
    /// Forge Entire Transcript: a DAKE and the given messages between Bob and Alice, from
    /// one party's long-term secret key.
    ForgeEntireTranscript {
        #[command(flatten)]
        parties: Parties,
        /// One message: `alice:<text>` or `bob:<text>`, in order (repeat the option).
        #[arg(long = "line")]
        lines: Vec<String>,
    },
}

/// The two parties of a forged DAKE.
#[derive(clap::Args)]
struct Parties {
    /// Whose long-term secret key `--secret` is.
    #[arg(long, value_enum)]
    holder: Who,
    /// The holder's long-term secret key (57-byte symmetric key, hex).
    #[arg(long)]
    secret: String,
    /// Bob's Client Profile (base64).
    #[arg(long)]
    bob_profile: String,
    /// Alice's Client Profile (base64).
    #[arg(long)]
    alice_profile: String,
    #[arg(long)]
    alice_jid: String,
    #[arg(long)]
    bob_jid: String,
}

type Result<T> = std::result::Result<T, String>;

fn key64(what: &str, h: &str) -> Result<[u8; 64]> {
    let v = hex::decode(h).map_err(|e| format!("{what}: {e}"))?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("{what}: {} bytes, not 64", v.len()))
}

fn secret_key(what: &str, h: &str) -> Result<KeyPair> {
    let v = hex::decode(h).map_err(|e| format!("{what}: {e}"))?;
    let bytes: [u8; 57] = v
        .try_into()
        .map_err(|v: Vec<u8>| format!("{what}: {} bytes, not 57", v.len()))?;
    Ok(KeyPair::from_symmetric_key(SymmetricKey::from_bytes(bytes)))
}

fn b64<T: Codec>(what: &str, s: &str) -> Result<T> {
    let bytes = BASE64
        .decode(s)
        .map_err(|e| format!("{what}: base64: {e}"))?;
    T::decode(&bytes).map_err(|e| format!("{what}: {e}"))
}

fn otr(what: &str, s: &str) -> Result<Vec<u8>> {
    decode_otr(s).map_err(|e| format!("{what}: {e}"))
}

fn data(s: &str) -> Result<otr4::hazmat::wire::messages::DataMessage> {
    forge::data_message(&otr("message", s)?).map_err(|e| format!("message: {e}"))
}

fn phi(alice: &str, bob: &str) -> PhiPrime {
    PhiPrime::from_strings(&[alice, bob])
}

fn who(s: Side) -> &'static str {
    match s {
        Side::Alice => "alice",
        Side::Bob => "bob",
    }
}

fn now(cli: &Cli) -> i64 {
    cli.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    })
}

fn rng(cli: &Cli) -> Result<ChaCha20Rng> {
    Ok(match cli.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| format!("randomness: {e}"))?;
            ChaCha20Rng::from_seed(seed)
        }
    })
}

fn run(cli: &Cli) -> Result<Vec<String>> {
    let now = now(cli);
    let mut rng = rng(cli)?;
    let mut out = Vec::new();
    match &cli.tool {
        Tool::Parse { message } => {
            let bytes = otr("message", message)?;
            for (name, value) in forge::parse(&bytes).map_err(|e| e.to_string())? {
                if name == "client profile" {
                    let raw = hex::decode(&value).map_err(|e| e.to_string())?;
                    out.push(format!("client-profile-base64 {}", BASE64.encode(raw)));
                }
                out.push(format!("{} {value}", name.replace(' ', "-")));
            }
        }
        Tool::ModifyDataMessage {
            message,
            offset,
            old,
            new,
            mac_key,
        } => {
            let m = data(message)?;
            let k = key64("--mac-key", mac_key)?;
            let forged =
                forge::modify_data_message(&m, *offset, old.as_bytes(), new.as_bytes(), &k)
                    .map_err(|e| e.to_string())?;
            out.push(format!("out - {}", encode_otr(&forged.encode())));
        }
        Tool::ReadAndForge {
            message,
            chain_key,
            new,
        } => {
            let m = data(message)?;
            let ck = key64("--chain-key", chain_key)?;
            let new_pt = match new {
                Some(t) => {
                    Some(forge::plaintext(t, &[], Padding::Buckets).map_err(|e| e.to_string())?)
                }
                None => None,
            };
            let (old, forged) =
                forge::read_and_forge(&m, &ck, new_pt.as_ref().map(|p| p.as_slice()))
                    .map_err(|e| e.to_string())?;
            let pt = otr4::hazmat::wire::tlv::parse_plaintext(old.as_slice());
            let text = pt.text().map_err(|e| format!("plaintext: {e}"))?;
            out.push(format!("plaintext {}", text.escape_default()));
            let k = forge::message_keys(&ck);
            out.push(format!(
                "message-key {}",
                hex::encode(k.message_key.as_slice())
            ));
            out.push(format!("mac-key {}", hex::encode(k.mac_key.as_slice())));
            if let Some(f) = forged {
                out.push(format!("out - {}", encode_otr(&f.encode())));
            }
        }
        Tool::ShowMacKey { message_key } => {
            let k = key64("--message-key", message_key)?;
            out.push(format!("mac-key {}", hex::encode(forge::show_mac_key(&k))));
        }
        Tool::RemacMessage { message, mac_key } => {
            let m = data(message)?;
            let k = key64("--mac-key", mac_key)?;
            out.push(format!(
                "out - {}",
                encode_otr(&forge::remac_message(&m, &k).encode())
            ));
        }
        Tool::ForgeDake {
            parties,
            non_interactive,
        } => {
            let key = secret_key("--secret", &parties.secret)?;
            let bob: ClientProfile = b64("--bob-profile", &parties.bob_profile)?;
            let alice: ClientProfile = b64("--alice-profile", &parties.alice_profile)?;
            let phi = phi(&parties.alice_jid, &parties.bob_jid);
            let holder = Side::from(parties.holder);
            if *non_interactive {
                if holder != Side::Bob {
                    return Err(
                        "--non-interactive forges with Bob's key; with Alice's, her client \
                         answers any ensemble of Bob's honestly"
                            .into(),
                    );
                }
                let f = forge::forge_non_interactive_dake(
                    &mut rng,
                    &key,
                    &bob,
                    &alice,
                    &phi,
                    now.saturating_add(7 * 86_400),
                    now,
                )
                .map_err(|e| e.to_string())?;
                out.push(ensemble_line(&f.ensemble));
                out.push(format!("out alice {}", encode_otr(&f.auth.encode())));
                out.push(format!("ssid {}", hex::encode(f.ssid.0)));
                push_chain_keys(&mut out, &f.bob, &f.alice);
            } else {
                let (b, a) = parties_of(holder, &key, &bob, &alice);
                let d = forge::forge_dake(&mut rng, &b, &a, holder, &phi, now)
                    .map_err(|e| e.to_string())?;
                out.push(format!("out bob {}", encode_otr(&d.identity.encode())));
                out.push(format!("out alice {}", encode_otr(&d.auth_r.encode())));
                out.push(format!("out bob {}", encode_otr(&d.auth_i.encode())));
                out.push(format!("ssid {}", hex::encode(d.ssid.0)));
                push_chain_keys(&mut out, &d.bob, &d.alice);
            }
        }
        Tool::ImpersonateInitiator {
            bob_profile,
            forging_secret,
            alice_tag,
            alice_jid,
            bob_jid,
            auth_r,
        } => {
            if cli.seed.is_none() {
                return Err("impersonate-initiator needs --seed (to run the second step)".into());
            }
            let bob: ClientProfile = b64("--bob-profile", bob_profile)?;
            let forging = secret_key("--forging-secret", forging_secret)?;
            let tag = u32::from_str_radix(alice_tag.trim_start_matches("0x"), 16)
                .map_err(|e| format!("--alice-tag: {e}"))?;
            let phi = phi(alice_jid, bob_jid);
            let imp = forge::ImpersonatedInitiator::start(
                &mut rng,
                &bob,
                &forging,
                InstanceTag(tag),
                &phi,
            );
            match auth_r {
                None => out.push(format!("out bob {}", encode_otr(&imp.identity.encode()))),
                Some(a) => {
                    let Message::AuthR(auth_r) =
                        Message::decode(&otr("--auth-r", a)?).map_err(|e| e.to_string())?
                    else {
                        return Err("--auth-r: not an Auth-R message".into());
                    };
                    let (auth_i, done) = imp
                        .receive_auth_r(&mut rng, &auth_r, now)
                        .map_err(|e| e.to_string())?;
                    out.push(format!("out bob {}", encode_otr(&auth_i.encode())));
                    out.push(format!("ssid {}", hex::encode(done.ssid().0)));
                }
            }
        }
        Tool::ImpersonateResponder {
            alice_profile,
            forging_secret,
            alice_jid,
            bob_jid,
            identity,
            ensemble,
        } => {
            let alice: ClientProfile = b64("--alice-profile", alice_profile)?;
            let forging = secret_key("--forging-secret", forging_secret)?;
            let phi = phi(alice_jid, bob_jid);
            match (identity, ensemble) {
                (Some(i), _) => {
                    let Message::Identity(identity) =
                        Message::decode(&otr("--identity", i)?).map_err(|e| e.to_string())?
                    else {
                        return Err("--identity: not an Identity message".into());
                    };
                    // Bob's Auth-I would finish Alice's side; only the Auth-R is printed.
                    let (_alice_side, auth_r) = forge::impersonate_responder(
                        &mut rng, &identity, &alice, &forging, &phi, now,
                    )
                    .map_err(|e| e.to_string())?;
                    out.push(format!("out alice {}", encode_otr(&auth_r.encode())));
                }
                (None, Some(parts)) => {
                    let [cp, pp, pm] = parts.as_slice() else {
                        return Err("--ensemble takes three values".into());
                    };
                    let e = PrekeyEnsemble {
                        client_profile: b64::<ClientProfile>("client profile", cp)?,
                        prekey_profile: b64::<PrekeyProfile>("prekey profile", pp)?,
                        prekey_message: b64::<PrekeyMessage>("prekey message", pm)?,
                    };
                    let v = ValidatedEnsemble::validate(&e, now)
                        .map_err(|e| format!("--ensemble: {e}"))?;
                    let (nia, done) = forge::impersonate_responder_non_interactive(
                        &mut rng, &v, &alice, &forging, &phi,
                    )
                    .map_err(|e| e.to_string())?;
                    out.push(format!("out alice {}", encode_otr(&nia.encode())));
                    out.push(format!("ssid {}", hex::encode(done.ssid().0)));
                }
                (None, None) => return Err("give --identity or --ensemble".into()),
            }
        }
        Tool::FalsePrekeyEnsemble {
            secret,
            profile,
            lifetime,
        } => {
            let key = secret_key("--secret", secret)?;
            let profile: ClientProfile = b64("--profile", profile)?;
            let mut store = PrekeyStore::new(profile.owner_tag());
            let e = forge::false_prekey_ensemble(
                &mut rng,
                &key,
                &profile,
                &mut store,
                now.saturating_add(*lifetime),
                now,
            )
            .map_err(|e| e.to_string())?;
            out.push(ensemble_line(&e));
        }
        Tool::ForgeEntireTranscript { parties, lines } => {
            let key = secret_key("--secret", &parties.secret)?;
            let bob: ClientProfile = b64("--bob-profile", &parties.bob_profile)?;
            let alice: ClientProfile = b64("--alice-profile", &parties.alice_profile)?;
            let phi = phi(&parties.alice_jid, &parties.bob_jid);
            let holder = Side::from(parties.holder);
            let mut parsed = Vec::with_capacity(lines.len());
            for l in lines {
                parsed.push(match l.split_once(':') {
                    Some(("alice", t)) => (Side::Alice, t),
                    Some(("bob", t)) => (Side::Bob, t),
                    _ => return Err(format!("--line {l:?}: not alice:<text> or bob:<text>")),
                });
            }
            let (b, a) = parties_of(holder, &key, &bob, &alice);
            let (ssid, messages) = forge::forge_entire_transcript(
                &mut rng,
                &b,
                &a,
                holder,
                &phi,
                &parsed,
                Padding::Buckets,
                now,
            )
            .map_err(|e| e.to_string())?;
            for m in messages {
                out.push(format!("out {} {}", who(m.from), encode_otr(&m.bytes)));
            }
            out.push(format!("ssid {}", hex::encode(ssid.0)));
        }
    }
    Ok(out)
}

/// The two parties, the holder with its key.
fn parties_of<'a>(
    holder: Side,
    key: &'a KeyPair,
    bob: &'a ClientProfile,
    alice: &'a ClientProfile,
) -> (Party<'a>, Party<'a>) {
    (
        Party {
            profile: bob,
            long_term: (holder == Side::Bob).then_some(key),
        },
        Party {
            profile: alice,
            long_term: (holder == Side::Alice).then_some(key),
        },
    )
}

fn ensemble_line(e: &PrekeyEnsemble) -> String {
    format!(
        "out-ensemble {} {} {}",
        BASE64.encode(e.client_profile.encode()),
        BASE64.encode(e.prekey_profile.encode()),
        BASE64.encode(e.prekey_message.encode()),
    )
}

fn push_chain_keys(
    out: &mut Vec<String>,
    bob: &otr4::hazmat::ratchet::DoubleRatchet,
    alice: &otr4::hazmat::ratchet::DoubleRatchet,
) {
    for (name, r) in [("bob", bob), ("alice", alice)] {
        if let Some(ck) = forge::sending_chain_key(r) {
            out.push(format!("{name}-sending-chain-key {}", hex::encode(ck)));
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
