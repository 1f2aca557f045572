//! The README's demo as a test: Alice (2 devices) and Bob (2 devices) over the in-memory
//! XMPP server with the real prekey server — online, offline (non-interactive DAKE + MAM),
//! SMP, a device back from offline. Every message must reach every other device exactly
//! once, decrypted; SMP must verify; the tablet's session must be non-interactive.
#![allow(clippy::unwrap_used)]

use xmpp_sim::demo::{self, Mode, ServerArgs, UsageError};

#[test]
fn demo_scenario_passes_every_check() {
    assert!(
        demo::run_in_memory(),
        "the demo's checks failed (see the transcript above)"
    );
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn command_line() {
    assert_eq!(demo::parse_args(&[]), Ok(Mode::InMemory));
    assert_eq!(demo::parse_args(&args(&["--help"])), Ok(Mode::Help));
    assert_eq!(
        demo::parse_args(&args(&["--xmpp", "h", "--help"])),
        Ok(Mode::Help)
    );
    assert_eq!(
        demo::parse_args(&args(&[
            "--xmpp=xmpp.example:5222",
            "--alice-password",
            "a=1",
            "--bob-password",
            "b"
        ])),
        Ok(Mode::Server(ServerArgs {
            host: "xmpp.example".into(),
            port: 5222,
            domain: "xmpp.example".into(),
            alice_password: "a=1".into(),
            bob_password: "b".into(),
        }))
    );
    assert_eq!(
        demo::parse_args(&args(&["--xmpp", "host"])),
        Err(UsageError::BadAddress("host".into()))
    );
    assert_eq!(
        demo::parse_args(&args(&["--xmpp", "h:1", "--bob-password", "b"])),
        Err(UsageError::MissingPassword("--alice-password"))
    );
    assert_eq!(
        demo::parse_args(&args(&["--domain", "d"])),
        Err(UsageError::WithoutXmpp("--domain"))
    );
    assert_eq!(
        demo::parse_args(&args(&["--verbose"])),
        Err(UsageError::Unknown("--verbose".into()))
    );
    assert_eq!(
        demo::parse_args(&args(&["--xmpp"])),
        Err(UsageError::MissingValue("--xmpp"))
    );
    assert!(demo::USAGE.contains("--xmpp HOST:PORT"));
}
