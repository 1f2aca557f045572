//! The binary as an operator meets it: `--check-config`, exit code 2 for configuration
//! errors with nothing created, one error line, SIGHUP that does not kill, SIGTERM that
//! stops cleanly, and a second process on the same database refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::hazmat::wire::codec::Codec;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prekey-server"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_config_checks_from_a_fresh_clone_and_creates_nothing() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("prekey-server.toml.example");
    // A copy, so that "nothing created" is checked in a directory of our own.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("prekey-server.toml");
    std::fs::copy(&example, &conf).unwrap();
    let o = bin()
        .arg("--check-config")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        out.contains(&dir.path().join("state/server.key").display().to_string()),
        "paths resolved against the file's directory: {out}"
    );
    assert_eq!(files_in(dir.path()), vec!["prekey-server.toml"]);
    // And the file in the repository itself.
    let o = bin()
        .arg("--check-config")
        .arg("--config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn configuration_errors_exit_2_print_once_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        // The default transport needs a secret: nothing configured at all.
        ("", &[]),
        ("[server]\nbogus = 1\n", &[]),
        ("[component]\nsecret_file = \"missing.secret\"\n", &[]),
        (
            "[server]\ntransport = \"stdio\"\n[limits]\nretrieval_burst = 0\n",
            &[],
        ),
        (
            "[server]\ntransport = \"stdio\"\nrotation_announce_days = 0\n",
            &["--rotate-key"],
        ),
    ];
    for (i, (text, extra)) in cases.iter().enumerate() {
        let work = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&work).unwrap();
        let mut cmd = bin();
        cmd.current_dir(&work).args(*extra);
        if !text.is_empty() {
            std::fs::write(work.join("c.toml"), text).unwrap();
            cmd.args(["--config", "c.toml"]);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", stderr(&o));
        let err = stderr(&o);
        let first = err.lines().next().unwrap();
        assert_eq!(
            err.matches(first).count(),
            1,
            "case {i}: the error is printed once: {err}"
        );
        let expected: Vec<String> = if text.is_empty() {
            vec![]
        } else {
            vec!["c.toml".into()]
        };
        assert_eq!(files_in(&work), expected, "case {i}: nothing created");
    }
    // Unknown flags are usage errors: also 2.
    let o = bin().arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn start_stdio(dir: &Path) -> std::process::Child {
    bin()
        .args([
            "--transport",
            "stdio",
            "--jid",
            "prekey.test",
            "--log-level",
            "info",
        ])
        .arg("--key-file")
        .arg(dir.join("server.key"))
        .arg("--database")
        .arg(dir.join("db/prekeys.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(pid: u32, sig: &str) {
    let s = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

fn query_line() -> String {
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: otr4::InstanceTag(0x1000),
        identity: b"bob@example.org".to_vec(),
        versions: b"4".to_vec(),
    };
    format!(
        "alice@example.org {}\n",
        otr4::hazmat::wire::encoded::encode_prekey(&q.encode())
    )
}

#[test]
fn sighup_does_not_kill_sigterm_stops_cleanly_second_process_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_stdio(dir.path());
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdin.write_all(query_line().as_bytes()).unwrap();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("alice@example.org "));

    // A second server on the same database: refused with a clear error, exit 1.
    let o = bin()
        .args(["--transport", "stdio", "--jid", "prekey.test"])
        .arg("--key-file")
        .arg(dir.path().join("server.key"))
        .arg("--database")
        .arg(dir.path().join("db/prekeys.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in use by another prekey-server process"),
        "{}",
        stderr(&o)
    );

    signal(child.id(), "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    line.clear();
    stdin.write_all(query_line().as_bytes()).unwrap();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("alice@example.org "),
        "still serving after SIGHUP"
    );

    signal(child.id(), "-TERM");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("SIGHUP"), "{err}");
    assert!(!err.contains("alice@example.org"), "no JID at info: {err}");
    drop(stdin);
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    out
}

#[test]
fn metrics_and_health_endpoint_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "--transport",
            "stdio",
            "--jid",
            "prekey.test",
            "--log-level",
            "warn",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .args(["--retrieval-burst", "1"])
        .arg("--key-file")
        .arg(dir.path().join("server.key"))
        .arg("--database")
        .arg(dir.path().join("prekeys.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..3 {
        stdin.write_all(query_line().as_bytes()).unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    let t = Instant::now();
    let health = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => break http_get(port, "/health"),
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let m = http_get(port, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("prekey_requests_total{kind=\"query\",result=\"no_ensembles\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("prekey_requests_total{kind=\"query\",result=\"rate_limited\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("prekey_limit_hits_total{limit=\"retrieval_requester\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("prekey_request_duration_seconds_bucket{kind=\"query\""),
        "{m}"
    );
    assert!(m.contains("prekey_transport_up 1"), "{m}");
    assert!(http_get(port, "/nope").starts_with("HTTP/1.1 404"));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn metrics_endpoint_must_be_loopback() {
    let o = bin()
        .args(["--transport", "stdio", "--metrics-listen", "0.0.0.0:9464"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[test]
fn sighup_applies_new_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    let write_conf = |burst: u32| {
        std::fs::write(
            &conf,
            format!(
                "[server]\ntransport = \"stdio\"\njid = \"prekey.test\"\nkey_file = \"k\"\ndatabase = \"db\"\n[limits]\nretrieval_burst = {burst}\nretrieval_rate_per_sec = 0.0\n"
            ),
        )
        .unwrap();
    };
    write_conf(1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .arg("--config")
        .arg(&conf)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |who: &str| {
        let line = query_line().replacen("alice@example.org", who, 1);
        stdin.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        out.read_line(&mut reply).unwrap();
    };
    let limited = || {
        let t = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
        let m = http_get(port, "/metrics");
        m.lines()
            .find(|l| l.starts_with("prekey_limit_hits_total{limit=\"retrieval_requester\"}"))
            .map_or(0, |l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
    };
    ask("a@x");
    ask("a@x");
    assert_eq!(limited(), 1, "burst 1: the second request is limited");
    write_conf(5);
    signal(child.id(), "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        ask("b@x");
    }
    assert_eq!(
        limited(),
        1,
        "after SIGHUP a new requester has a burst of 5"
    );
    ask("b@x");
    assert_eq!(limited(), 2);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// `--rotate-key`: a new key (the fingerprint printed afterwards changes), the old one kept,
/// the announcement written; without a key there is nothing to rotate (exit 1, no key made).
#[test]
fn rotate_key_replaces_the_key_and_writes_the_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        bin()
            .current_dir(dir.path())
            .args([
                "--transport",
                "stdio",
                "--key-file",
                "k",
                "--database",
                "p.db",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--rotate-key"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("key rotation failed"), "{}", stderr(&o));
    assert!(!dir.path().join("k").exists());
    let o = run(&["--print-fingerprint"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let old = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = run(&["--rotate-key", "--rotation-announce-days", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(&format!("old fingerprint: {old}")), "{out}");
    let o = run(&["--print-fingerprint"]);
    let new = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_ne!(new, old);
    assert!(out.contains(&format!("new fingerprint: {new}")), "{out}");
    let files = files_in(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("k.old-")), "{files:?}");
    assert!(files.contains(&"k.rotation".to_owned()), "{files:?}");
}
