//! Interoperability with the Go prekey server (github.com/otrv4/otrng-prekey-server), driven
//! through interop/go-driver (see interop/README.md). `#[ignore = "needs the Go prekey
//! server …"]`: `interop/run-go-server.sh` runs them with `--ignored`, with
//! `OTR4_GO_SERVER_DIR` pointing to a Go server tree in which it built `otr4driver`.
//!
//! The test asserts the *documented* outcome of each step (interop/README.md): where our
//! spec-text encodings differ from the Go server's, it asserts the exact failure, and it
//! proves with Go-style re-encodings (done here, in the test only) that those differences
//! are the only ones on the path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::DecodeError;
use otr4::Fingerprint;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar};
use otr4::hazmat::crypto::eddsa;
use otr4::hazmat::crypto::kdf::{PrekeyUsage, prekey_kdf, shake256};
use otr4::hazmat::crypto::keys::Ed448PublicKey;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::codec::Writer;
use otr4::hazmat::wire::encoded::{IncomingPrekey, classify_prekey, encode_prekey};
use prekey_server::testkit::{Device, DriveError, retrieve};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SERVER_ID: &str = "prekey.example.org";
const TIMEOUT: Duration = Duration::from_secs(20);
/// The Ed448 group order q, 56 bytes big-endian (as in the ring-signature challenge).
const Q_BE: &str = "3fffffffffffffffffffffffffffffffffffffffffffffffffffffff7cca23e9c44edb49aed63690216cc2728dc58f552378c292ab5844f3";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Go driver (the tests are `#[ignore = "needs the Go prekey server …"]`; run with
/// `--ignored`, they fail without it).
fn driver() -> PathBuf {
    let Some(dir) = std::env::var_os("OTR4_GO_SERVER_DIR") else {
        panic!("needs the Go prekey server: OTR4_GO_SERVER_DIR is not set (see interop/README.md)");
    };
    let bin = PathBuf::from(dir).join("otr4driver");
    assert!(
        bin.is_file(),
        "{} not found; run interop/run-go-server.sh <go tree>",
        bin.display()
    );
    bin
}

/// The running Go server (interop/go-driver/main.go).
struct Go {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pubkey: [u8; 57],
    fingerprint: Vec<u8>,
    /// Errors the Go server's `Handle` returned, in order.
    errors: Vec<String>,
    /// "# …" step lines printed by the Go client side.
    notes: Vec<String>,
}

impl Go {
    fn start(bin: &PathBuf) -> Go {
        let mut child = Command::new(bin)
            .args(["-identity", SERVER_ID])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (mut pubkey, mut fingerprint) = (None, None);
        loop {
            let l = lines.recv_timeout(TIMEOUT).unwrap();
            if let Some(h) = l.strip_prefix("# pubkey ") {
                pubkey = Some(hex::decode(h).unwrap().try_into().unwrap());
            } else if let Some(h) = l.strip_prefix("# fingerprint ") {
                fingerprint = Some(hex::decode(h).unwrap());
            } else if l == "# ready" {
                break;
            }
        }
        Go {
            stdin: child.stdin.take().unwrap(),
            child,
            lines,
            pubkey: pubkey.unwrap(),
            fingerprint: fingerprint.unwrap(),
            errors: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Sends one line, returns the replies; `!error` lines go to `errors`.
    fn send(&mut self, from: &str, text: &str) -> Vec<String> {
        writeln!(self.stdin, "{from} {text}").unwrap();
        // "!go-publish <jid> <n>" is answered for <jid>.
        let from = if from == "!go-publish" {
            text.split(' ').next().unwrap()
        } else {
            from
        };
        let mut replies = Vec::new();
        loop {
            let l = self.lines.recv_timeout(TIMEOUT).unwrap();
            if let Some(n) = l.strip_prefix("# ") {
                self.notes.push(n.to_owned());
                continue;
            }
            let (to, rest) = l.split_once(' ').unwrap();
            assert_eq!(to, from);
            if rest == "!end" {
                return replies;
            }
            match rest.strip_prefix("!error ") {
                Some(e) => self.errors.push(e.to_owned()),
                None => replies.push(rest.to_owned()),
            }
        }
    }

    fn last_error(&self) -> String {
        self.errors.last().cloned().unwrap_or_default()
    }
}

impl Drop for Go {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(reply: &str) -> Vec<u8> {
    match classify_prekey(reply).unwrap() {
        IncomingPrekey::Encoded(b) => b,
        IncomingPrekey::Fragment(_) => panic!("unexpected fragment"),
    }
}

// ---- Go-style encodings (gotrx), used only to locate the differences ----

/// A typed key as gotrx writes it: big-endian type, then the POINT.
fn go_typed(ty: u16, p: &Point) -> Vec<u8> {
    [&ty.to_be_bytes()[..], &p.encode()].concat()
}

/// HashToScalar as gotrx does it: 64-byte KDF, reduced mod q.
fn go_hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let h = prekey_kdf::<64>(PrekeyUsage::Auth, parts);
    let mut wide = [0u8; 114];
    wide[..64].copy_from_slice(&h);
    Scalar::from_wide_bytes(&wide)
}

/// HashToScalar as otr4 does it (spec text): 57-byte KDF, reduced mod q.
fn spec_hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let h = prekey_kdf::<57>(PrekeyUsage::Auth, parts);
    let mut wide = [0u8; 114];
    wide[..57].copy_from_slice(&h);
    Scalar::from_wide_bytes(&wide)
}

/// The scalar 4. The Go server's ed448 library multiplies by its precomputed base point,
/// whose EdDSA encoding is `4·G`: every Go `G·x` (ring-signature `T_i`, proof `A`, ephemeral
/// keys) is `(4x)·G` in RFC 8032 terms.
fn four() -> Scalar {
    let mut f = [0u8; 57];
    f[0] = 4;
    Scalar::decode(&f).unwrap()
}

fn go_scalar(b: &[u8]) -> Scalar {
    let mut s = [0u8; 57];
    s[..56].copy_from_slice(b);
    Scalar::decode(&s).unwrap()
}

fn rsig_challenge(
    hash: fn(&[&[u8]]) -> Scalar,
    ring: [&Point; 3],
    t: [&Point; 3],
    msg: &[u8],
) -> Scalar {
    let q = hex::decode(Q_BE).unwrap();
    let g = Point::generator().encode();
    let [a1, a2, a3] = ring.map(Point::encode);
    let [t1, t2, t3] = t.map(Point::encode);
    hash(&[&g, &q, &a1, &a2, &a3, &t1, &t2, &t3, msg])
}

/// Verifies a gotrx ring signature (six 56-byte scalars) with the given HashToScalar.
fn go_rsig_verify(hash: fn(&[&[u8]]) -> Scalar, sig: &[u8], ring: [&Point; 3], msg: &[u8]) -> bool {
    let s: Vec<Scalar> = sig.chunks(56).map(go_scalar).collect();
    let t: Vec<Point> = (0..3)
        .map(|k| Point::base_mul_add(&(&four() * &s[2 * k + 1]), ring[k], &s[2 * k]).unwrap())
        .collect();
    let c = rsig_challenge(hash, ring, [&t[0], &t[1], &t[2]], msg);
    c == &(&s[0] + &s[2]) + &s[4]
}

/// The same verification with the RFC 8032 generator (`T_i = G·r_i + A_i·c_i`): fails.
fn go_rsig_verify_plain_g(sig: &[u8], ring: [&Point; 3], msg: &[u8]) -> bool {
    let s: Vec<Scalar> = sig.chunks(56).map(go_scalar).collect();
    let t: Vec<Point> = (0..3)
        .map(|k| Point::base_mul_add(&s[2 * k + 1], ring[k], &s[2 * k]).unwrap())
        .collect();
    let c = rsig_challenge(go_hash_to_scalar, ring, [&t[0], &t[1], &t[2]], msg);
    c == &(&s[0] + &s[2]) + &s[4]
}

/// A gotrx-encoded ring signature by `key` at ring position 0.
fn go_rsig_sign(key: &KeyPair, ring: [&Point; 3], msg: &[u8]) -> Vec<u8> {
    let rng = &mut rand::rng();
    let t0 = Scalar::random(rng);
    let (c1, r1, c2, r2) = (
        Scalar::random(rng),
        Scalar::random(rng),
        Scalar::random(rng),
        Scalar::random(rng),
    );
    let tp0 = Point::mul_base(&t0).unwrap();
    let tp1 = Point::base_mul_add(&(&four() * &r1), ring[1], &c1).unwrap();
    let tp2 = Point::base_mul_add(&(&four() * &r2), ring[2], &c2).unwrap();
    let c = rsig_challenge(go_hash_to_scalar, ring, [&tp0, &tp1, &tp2], msg);
    let c0 = &(&c - &c1) - &c2;
    let r0 = &(&t0 - &(&c0 * key.secret())) * &four().invert();
    [c0, r0, c1, r1, c2, r2]
        .iter()
        .flat_map(|s| s.encode()[..56].to_vec())
        .collect()
}

/// Our Client Profile with its keys re-typed big-endian (`00 10`, `00 12`) and re-signed.
fn go_client_profile(dev: &Device) -> Vec<u8> {
    let cp = dev.client.client_profile().encode();
    let h = dev.long_term.public();
    let mut out = cp.clone();
    let mut swapped = 0;
    for ty in [0x0010u16, 0x0012] {
        let at = (0..out.len() - 59)
            .find(|&k| {
                out[k..k + 2] == ty.to_le_bytes()
                    && Point::decode(out[k + 2..k + 59].try_into().unwrap()).is_ok()
                    && (ty != 0x0010 || out[k + 2..k + 59] == h.encode())
            })
            .unwrap();
        out[at..at + 2].copy_from_slice(&ty.to_be_bytes());
        swapped += 1;
    }
    assert_eq!(swapped, 2);
    let body = out.len() - 114;
    let sig = eddsa::sign(&dev.long_term, &out[..body]);
    out[body..].copy_from_slice(&sig.0);
    out
}

fn phi(from: &str) -> Vec<u8> {
    let mut w = Vec::new();
    w.data(from.as_bytes()).data(SERVER_ID.as_bytes());
    w
}

#[allow(clippy::too_many_arguments)]
fn transcript(first: u8, cp: &[u8], composite: &[u8], i: &Point, s: &Point, phi: &[u8]) -> Vec<u8> {
    let (u_cp, u_id, u_phi) = if first == 0 {
        (
            PrekeyUsage::InitiatorClientProfile,
            PrekeyUsage::InitiatorPrekeyCompositeIdentity,
            PrekeyUsage::InitiatorPrekeyCompositePhi,
        )
    } else {
        (
            PrekeyUsage::ReceiverClientProfile,
            PrekeyUsage::ReceiverPrekeyCompositeIdentity,
            PrekeyUsage::ReceiverPrekeyCompositePhi,
        )
    };
    [
        &[first][..],
        &prekey_kdf::<64>(u_cp, &[cp]),
        &prekey_kdf::<64>(u_id, &[composite]),
        &i.encode(),
        &s.encode(),
        &prekey_kdf::<64>(u_phi, &[phi]),
    ]
    .concat()
}

#[test]
#[ignore = "needs the Go prekey server: interop/run-go-server.sh <go tree>"]
fn otr4_client_against_go_server() {
    let bin = driver();
    let mut go = Go::start(&bin);
    let t = now();
    let mut report: Vec<String> = Vec::new();

    // 1. Server fingerprint: gotrx hashes the key with a big-endian type (00 10).
    let hs = Point::decode(&go.pubkey).unwrap();
    let ours = Fingerprint::prekey_server(&Ed448PublicKey(hs));
    let mut go_style = [0u8; 56];
    shake256(&[b"OTRv4", &[0x00], &go_typed(0x0010, &hs)], &mut go_style);
    assert_ne!(&ours.as_bytes()[..], &go.fingerprint[..]);
    assert_eq!(&go_style[..], &go.fingerprint[..]);
    report.push("1 fingerprint: FAIL (differs only by the 00 10 vs 10 00 key type)".into());

    // 2. Ensemble query for an unknown identity: passes.
    let mut dev = Device::new("alice@example.org", SERVER_ID, ours, t).unwrap();
    let r = {
        let go = &mut go;
        retrieve(&mut dev.client, "nobody@example.org", t, &mut |x| {
            go.send("bob@example.org", x)
        })
    };
    assert!(matches!(
        r.unwrap(),
        otr4::hazmat::prekey::client::Retrieved::NoEnsembles { .. }
    ));
    report.push("2 query/No Prekey Ensembles: PASS".into());

    // 3. Publication as is: the Go server rejects DAKE-1 (its Client Profile has 10 00 keys).
    let r = {
        let go = &mut go;
        dev.publish(2, true, t, &mut |x| go.send("alice@example.org", x))
    };
    assert!(matches!(r, Err(DriveError::NoReply)), "{r:?}");
    assert_eq!(go.last_error(), "invalid client profile");
    let r = {
        let go = &mut go;
        dev.storage_status(t, &mut |x| go.send("alice@example.org", x))
    };
    assert!(matches!(r, Err(DriveError::NoReply)), "{r:?}");
    assert_eq!(go.last_error(), "invalid client profile");
    report.push(format!(
        "3 publish/status DAKE-1: FAIL (Go: {:?})",
        go.last_error()
    ));

    // 4. DAKE-1 with a Go-typed (00 10 / 00 12) and re-signed Client Profile: accepted.
    let rng = &mut rand::rng();
    let from = "carol@example.org";
    let cp_go = go_client_profile(&dev);
    let tag = dev.instance_tag().0;
    let i = KeyPair::generate(rng);
    let mut d1 = vec![0x00, 0x04, 0x35];
    d1.extend_from_slice(&tag.to_be_bytes());
    d1.extend_from_slice(&cp_go);
    d1.extend_from_slice(&i.public().encode());
    let replies = go.send(from, &encode_prekey(&d1));
    assert_eq!(replies.len(), 1, "Go: {}", go.last_error());
    let d2 = binary(&replies[0]);
    // Our decoder stops at the server key's type.
    let err = PrekeyServerMessage::decode(&d2).unwrap_err();
    assert!(
        matches!(err, DecodeError::BadKeyType { found: 0x1000, .. }),
        "{err:?}"
    );
    // Go layout: 00 04 36 tag DATA(id) 00 10 Hs S sigma(6 x 56).
    let id_len = u32::from_be_bytes(d2[7..11].try_into().unwrap()) as usize;
    let mut at = 11 + id_len;
    assert_eq!(&d2[at..at + 2], &[0x00, 0x10]);
    let hs2 = Point::decode(d2[at + 2..at + 59].try_into().unwrap()).unwrap();
    assert_eq!(hs2, hs);
    at += 59;
    let s = Point::decode(d2[at..at + 57].try_into().unwrap()).unwrap();
    at += 57;
    let sigma = &d2[at..];
    assert_eq!(sigma.len(), 6 * 56, "ring signature uses 56-byte scalars");
    let composite = [
        &(id_len as u32).to_be_bytes()[..],
        SERVER_ID.as_bytes(),
        &go_typed(0x0010, &hs),
    ]
    .concat();
    let t2 = transcript(0, &cp_go, &composite, i.public(), &s, &phi(from));
    let ring = [dev.long_term.public(), &hs, i.public()];
    assert!(go_rsig_verify(go_hash_to_scalar, sigma, ring, &t2));
    assert!(!go_rsig_verify_plain_g(sigma, ring, &t2));
    assert!(!go_rsig_verify(spec_hash_to_scalar, sigma, ring, &t2));
    report.push(
        "4 DAKE-2: FAIL in our decoder (BadKeyType 0x1000); verifies only with 00 10 keys, \
         56-byte scalars, 64-byte HashToScalar and T_i = (4 r_i)·G + c_i·A_i; t/phi identical"
            .into(),
    );

    // 5. Go-style DAKE-3 carrying a Storage Information Request. Go's SK_ecdh is
    // s_go·I with S = (4·s_go)·G, i.e. (i/4)·S, where the spec says i·(4·S).
    let sk_go = prekey_kdf::<64>(
        PrekeyUsage::Sk,
        &[&s.checked_mul(&(i.secret() * &four().invert()))
            .unwrap()
            .encode()],
    );
    let mac_go = prekey_kdf::<64>(PrekeyUsage::PreMacKey, &[&sk_go]);
    let four_s = s.checked_add(&s).unwrap();
    let four_s = four_s.checked_add(&four_s).unwrap();
    let sk_spec = prekey_kdf::<64>(
        PrekeyUsage::Sk,
        &[&four_s.checked_mul(i.secret()).unwrap().encode()],
    );
    let mac_spec = prekey_kdf::<64>(PrekeyUsage::PreMacKey, &[&sk_spec]);
    let inner = [
        &[0x00, 0x04, 0x09][..],
        &prekey_kdf::<64>(PrekeyUsage::StorageInfoMac, &[&mac_go, &[0x09]]),
    ]
    .concat();
    let t3 = transcript(1, &cp_go, &composite, i.public(), &s, &phi(from));
    let sig3 = go_rsig_sign(&dev.long_term, [dev.long_term.public(), &hs, &s], &t3);
    let mut d3 = vec![0x00, 0x04, 0x37];
    d3.extend_from_slice(&tag.to_be_bytes());
    d3.extend_from_slice(&sig3);
    let mut w = Vec::new();
    w.data(&inner);
    d3.extend_from_slice(&w);
    let replies = go.send(from, &encode_prekey(&d3));
    assert_eq!(replies.len(), 1, "Go: {}", go.last_error());
    let status = binary(&replies[0]);
    let PrekeyServerMessage::StorageStatus(st) = PrekeyServerMessage::decode(&status).unwrap()
    else {
        panic!("not a Storage Status");
    };
    let status_mac = |k: &[u8; 64]| {
        prekey_kdf::<64>(
            PrekeyUsage::StatusMac,
            &[
                k,
                &[0x0B],
                &tag.to_be_bytes(),
                &st.stored_prekey_messages.to_be_bytes(),
            ],
        )
    };
    assert_eq!(st.mac, status_mac(&mac_go));
    assert_ne!(st.mac, status_mac(&mac_spec));
    report.push(
        "5 Go-style DAKE-3 (r_i / 4) accepted; Storage Status decodes; its MAC verifies only \
         with SK_ecdh = (i/4)·S (spec: i·(4·S))"
            .into(),
    );

    // 6. Go-made ensembles (published by the Go client side), retrieved by our client.
    let replies = go.send("!go-publish", "dave@example.org 3");
    assert!(replies.is_empty());
    assert!(
        go.notes
            .iter()
            .any(|n| n.starts_with("Success received, MAC verified")),
        "{:?} {:?}",
        go.notes,
        go.errors
    );
    let q = dev.client.ensemble_query(b"dave@example.org", b"4");
    let replies = go.send("bob@example.org", &encode_prekey(&q.encode()));
    assert_eq!(replies.len(), 1);
    let bin = binary(&replies[0]);
    assert_eq!(bin[2], 0x13, "an Ensemble Retrieval");
    let err = PrekeyServerMessage::decode(&bin).unwrap_err();
    report.push(format!(
        "6 Ensemble Retrieval of Go-made ensembles: FAIL in our decoder ({err:?}); \
         L is a BYTE ({:#04x}) where we read an INT",
        bin[11 + 16]
    ));

    for l in &report {
        println!("{l}");
    }
}

#[test]
#[ignore = "needs the Go prekey server: interop/run-go-server.sh <go tree>"]
fn go_client_against_otr4_server() {
    let bin = driver();
    let dir = tempfile::tempdir().unwrap();
    let server = format!(
        "{} --transport stdio --jid {SERVER_ID} --key-file {} --database {} --log-level warn",
        env!("CARGO_BIN_EXE_prekey-server"),
        dir.path().join("server.key").display(),
        dir.path().join("prekeys.db").display()
    );
    let out = Command::new(bin)
        .args(["-identity", SERVER_ID, "-against", &server])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    // Our server drops the Go DAKE-1 (Client Profile keys typed 00 10), so no DAKE-2 comes.
    assert!(
        stdout.contains("# publish: DAKE-1 sent: no usable DAKE-2"),
        "{stdout}"
    );
    // Our server's log names the reason: the Client Profile's key type is `00 10`.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"BadKeyType { what: "ED448-PUBKEY", found: 4096 }"#),
        "{stderr}"
    );
    // A Go query gets our No Prekey Ensembles, which the Go code deserializes.
    assert!(
        stdout.contains("# retrieve: No Prekey Ensembles:"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}
