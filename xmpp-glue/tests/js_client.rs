//! The JavaScript binding (`otr4-wasm`, the engine compiled to wasm) on a real Prosody with
//! the real prekey-server component, its stanzas carried by the npm `@xmpp/client` library
//! (issue 12 item 6): `node --test otr4-wasm/tests/prosody.mjs` runs two JS devices through
//! an offline start, messages both ways and SMP.
//!
//! Needs `otr4-wasm/pkg` built (`otr4-wasm/build.sh`) and `npm ci` in `otr4-wasm/`;
//! `#[ignore]`d like the other Prosody tests, and with `--ignored` it FAILS when Node, the
//! package or Prosody is missing, never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;
use support::*;

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "starts Prosody; needs Node 20, otr4-wasm/pkg and its npm packages"]
fn js_client_converses_through_prosody() {
    with_prosody("js_client_converses_through_prosody", &[], |env| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../otr4-wasm");
        for need in ["pkg/node/otr4_wasm.js", "node_modules/@xmpp/client"] {
            assert!(
                dir.join(need).exists(),
                "otr4-wasm/{need} is missing: run otr4-wasm/build.sh and `npm ci` in otr4-wasm/"
            );
        }
        let mut node = Command::new("node");
        node.args(["--test", "tests/prosody.mjs"])
            .current_dir(&dir)
            .env("GLUE_TEST_C2S_PORT", env.port.to_string());
        // Node trusts the test CA through NODE_EXTRA_CA_CERTS (it ignores SSL_CERT_FILE).
        if let Some(ca) = std::env::var_os("SSL_CERT_FILE") {
            node.env("NODE_EXTRA_CA_CERTS", ca);
        }
        let status = node.status().expect("run node (Node 20 must be installed)");
        assert!(status.success(), "node --test tests/prosody.mjs failed");
    });
}
