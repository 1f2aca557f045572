//! The README's demo as a test: Alice (2 devices) and Bob (2 devices) over the in-memory
//! XMPP server with the real prekey server — online, offline (non-interactive DAKE + MAM),
//! SMP, a device back from offline. Every message must reach every other device exactly
//! once, decrypted; SMP must verify; the tablet's session must be non-interactive.

#[path = "../examples/demo/main.rs"]
#[allow(dead_code)]
mod demo;

#[test]
fn demo_scenario_passes_every_check() {
    assert!(
        demo::run_in_memory(),
        "the demo's checks failed (see the transcript above)"
    );
}
