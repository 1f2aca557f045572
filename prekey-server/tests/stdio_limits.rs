//! The real binary over `--transport stdio` fed a 100 MiB line without a newline: the line
//! is discarded while it is read, the peak RSS of the server process stays under 64 MiB and
//! the next line is still served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::hazmat::wire::codec::Codec;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Peak RSS of process `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hundred_mib_line_without_newline_keeps_rss_under_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prekey-server"))
        .args([
            "--transport",
            "stdio",
            "--jid",
            "prekey.test",
            "--log-level",
            "warn",
        ])
        .arg("--key-file")
        .arg(dir.path().join("server.key"))
        .arg("--database")
        .arg(dir.path().join("prekeys.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..100 {
        stdin.write_all(&chunk).unwrap();
    }
    // The flood ends; a real query follows and is answered.
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: otr4::InstanceTag(0x1000),
        identity: b"bob@example.org".to_vec(),
        versions: b"4".to_vec(),
    };
    writeln!(
        stdin,
        "\nalice@example.org {}",
        otr4::hazmat::wire::encoded::encode_prekey(&q.encode())
    )
    .unwrap();
    stdin.flush().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("alice@example.org "), "{line:?}");
    let peak = peak_rss_kib(pid);
    drop(stdin);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    eprintln!("stdio server peak RSS: {} KiB", peak);
    assert!(status.success(), "{status}: {err}");
    assert!(peak < 64 * 1024, "peak RSS {} MiB", peak / 1024);
    assert!(
        err.contains("line_too_long"),
        "the limit hit is logged: {err}"
    );
}
