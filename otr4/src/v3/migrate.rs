//! Key migration from libotr: reads the private-key file `otr.private_key` and the fingerprint
//! store `otr.fingerprints` that libotr 3.x/4.x (Pidgin, Adium, Profanity…) writes.
//!
//! Sans-IO like the rest of the crate: the caller reads the files and passes their bytes. A
//! file is taken whole or not at all: any malformed part is an [`ImportError`] naming it, and
//! nothing of that file is returned (libotr itself skips lines it cannot read; see
//! docs/spec-notes.md §"Importing libotr's files").
//!
//! Account names are the client's own: Pidgin writes XMPP accounts as `user@domain/Resource`
//! with protocol `prpl-jabber`, Profanity as the bare JID with protocol `xmpp`; the caller
//! chooses which entries belong to the account it sets up.

use alloc::string::String;
use alloc::vec::Vec;

use super::pubkey::{DsaKeyError, DsaPrivateKey, FINGERPRINT_LEN, V3Fingerprint};
use super::sexp::{self, Sexp, SexpError};

/// The largest private-key file read (libotr writes about 1 KiB per account).
pub const MAX_KEY_FILE: usize = 1 << 20;
/// The largest fingerprint store read (about 100 bytes per known key).
pub const MAX_FINGERPRINT_FILE: usize = 16 << 20;

/// One account's long-term DSA key from `otr.private_key`.
#[derive(Debug)]
pub struct AccountKey {
    /// The account name as the client wrote it (`(name …)`).
    pub account: String,
    /// The client's protocol identifier (`(protocol …)`, e.g. `prpl-jabber`).
    pub protocol: String,
    /// The key; its fingerprint is what the account's contacts verified.
    pub key: DsaPrivateKey,
}

/// Whether the user verified a known fingerprint. libotr stores any non-empty word as
/// trusted: Pidgin writes `verified` for a manual check and `smp` for a successful SMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Seen, not verified (an empty trust field, or none).
    Unverified,
    /// Verified; `how` is the word the client stored.
    Verified {
        /// The stored word (`verified`, `smp`, …).
        how: String,
    },
}

/// One line of `otr.fingerprints`: a contact's key as seen from one of our accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFingerprint {
    /// The contact (e.g. `bob@example.org`).
    pub username: String,
    /// Our account that talked to them.
    pub account: String,
    /// The client's protocol identifier.
    pub protocol: String,
    /// The contact's OTRv3 fingerprint (SHA-1 of their DSA public key).
    pub fingerprint: V3Fingerprint,
    /// Whether the user verified it.
    pub trust: Trust,
}

/// What is wrong with one `(account …)` entry of a private-key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountProblem {
    /// The entry is not an `(account …)` list.
    #[error("not an (account …) list")]
    NotAnAccount,
    /// `(name …)` is missing or not a string.
    #[error("no (name …)")]
    NoName,
    /// `(protocol …)` is missing or not a string.
    #[error("no (protocol …)")]
    NoProtocol,
    /// The name or protocol is not UTF-8.
    #[error("name or protocol is not UTF-8")]
    NotUtf8,
    /// `(private-key (dsa …))` is missing (another key type, or none).
    #[error("no (private-key (dsa …))")]
    NoDsaKey,
    /// One of the DSA values `p q g y x` is missing.
    #[error("DSA value {0} is missing")]
    MissingValue(&'static str),
    /// The values do not form a DSA-1024 key pair (`y ≠ g^x`, wrong sizes…).
    #[error("the DSA values do not form a DSA-1024 key pair")]
    InvalidKey,
}

/// What is wrong with one line of a fingerprint store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// Fewer than the four tab-separated fields `username account protocol fingerprint`.
    #[error("fewer than 4 tab-separated fields")]
    MissingFields,
    /// The fingerprint is not 40 hexadecimal digits.
    #[error("the fingerprint is not 40 hexadecimal digits")]
    BadFingerprint,
    /// A field is not UTF-8.
    #[error("a field is not UTF-8")]
    NotUtf8,
    /// The same contact, account, protocol and fingerprint appear on an earlier line.
    #[error("repeats line {0}")]
    Duplicate(usize),
}

/// Why a libotr file was not imported. Nothing of the file is imported in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is larger than this importer reads.
    #[error("the file is larger than {limit} bytes; is it the right file?")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The private-key file is not an S-expression.
    #[error("the private-key file is not readable: {0}")]
    Syntax(#[from] SexpError),
    /// The private-key file's S-expression is not `(privkeys …)`.
    #[error("not a libotr private-key file: it does not start with (privkeys")]
    NotPrivkeys,
    /// One account entry is unusable.
    #[error("account entry {index} of the private-key file: {problem}")]
    Account {
        /// The entry's position, from 1.
        index: usize,
        /// What is wrong.
        problem: AccountProblem,
    },
    /// Two entries hold a key for the same account and protocol.
    #[error("the private-key file holds two keys for {account} ({protocol})")]
    DuplicateAccount {
        /// The account.
        account: String,
        /// The protocol.
        protocol: String,
    },
    /// One line of the fingerprint store is unusable.
    #[error("line {line} of the fingerprint file: {problem}")]
    Line {
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        problem: LineProblem,
    },
}

fn utf8(b: &[u8]) -> Option<String> {
    core::str::from_utf8(b).ok().map(String::from)
}

/// Reads libotr's `otr.private_key`: every account's DSA key, each checked (`y = g^x`).
pub fn read_private_keys(file: &[u8]) -> Result<Vec<AccountKey>, ImportError> {
    if file.len() > MAX_KEY_FILE {
        return Err(ImportError::TooLarge {
            limit: MAX_KEY_FILE,
        });
    }
    let all = sexp::parse(file)?;
    let entries = match all.list() {
        Some([first, rest @ ..]) if first.atom() == Some(b"privkeys") => rest,
        _ => return Err(ImportError::NotPrivkeys),
    };
    let mut keys: Vec<AccountKey> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let problem = |problem| ImportError::Account {
            index: i + 1,
            problem,
        };
        let key = account_key(entry).map_err(problem)?;
        if keys
            .iter()
            .any(|k| k.account == key.account && k.protocol == key.protocol)
        {
            return Err(ImportError::DuplicateAccount {
                account: key.account,
                protocol: key.protocol,
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

/// One `(account (name …) (protocol …) (private-key (dsa (p …) (q …) (g …) (y …) (x …))))`.
fn account_key(entry: &Sexp) -> Result<AccountKey, AccountProblem> {
    if entry.head() != Some(b"account") {
        return Err(AccountProblem::NotAnAccount);
    }
    let name = entry.value_of(b"name").ok_or(AccountProblem::NoName)?;
    let protocol = entry
        .value_of(b"protocol")
        .ok_or(AccountProblem::NoProtocol)?;
    let (account, protocol) = utf8(name)
        .zip(utf8(protocol))
        .ok_or(AccountProblem::NotUtf8)?;
    let dsa = entry
        .child(b"private-key")
        .and_then(|k| k.child(b"dsa"))
        .ok_or(AccountProblem::NoDsaKey)?;
    let value = |n: &'static str| {
        dsa.value_of(n.as_bytes())
            .ok_or(AccountProblem::MissingValue(n))
    };
    // libgcrypt writes positive MPIs with a leading zero byte when the top bit is set.
    let x = value("x")?;
    let x = x.get(x.iter().take_while(|&&b| b == 0).count()..);
    let key = DsaPrivateKey::from_parts(
        value("p")?,
        value("q")?,
        value("g")?,
        value("y")?,
        x.unwrap_or_default(),
    )
    .map_err(|e| match e {
        DsaKeyError::InvalidKey | DsaKeyError::SigningFailed => AccountProblem::InvalidKey,
    })?;
    Ok(AccountKey {
        account,
        protocol,
        key,
    })
}

/// Reads libotr's `otr.fingerprints`: lines `username TAB account TAB protocol TAB
/// 40-hex-fingerprint [TAB trust]`. Empty lines are skipped; anything else malformed is an
/// error naming the line.
pub fn read_fingerprints(file: &[u8]) -> Result<Vec<KnownFingerprint>, ImportError> {
    if file.len() > MAX_FINGERPRINT_FILE {
        return Err(ImportError::TooLarge {
            limit: MAX_FINGERPRINT_FILE,
        });
    }
    let mut out: Vec<(usize, KnownFingerprint)> = Vec::new();
    for (i, line) in file.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let problem = |problem| ImportError::Line {
            line: line_no,
            problem,
        };
        let known = fingerprint_line(line).map_err(problem)?;
        if let Some((first, _)) = out.iter().find(|(_, k)| {
            k.username == known.username
                && k.account == known.account
                && k.protocol == known.protocol
                && k.fingerprint == known.fingerprint
        }) {
            return Err(problem(LineProblem::Duplicate(*first)));
        }
        out.push((line_no, known));
    }
    Ok(out.into_iter().map(|(_, k)| k).collect())
}

fn fingerprint_line(line: &[u8]) -> Result<KnownFingerprint, LineProblem> {
    // As libotr reads it: the trust word is everything after the fourth tab.
    let mut fields = line.splitn(5, |&b| b == b'\t');
    let mut field = || fields.next().ok_or(LineProblem::MissingFields);
    let (username, account, protocol, hex) = (field()?, field()?, field()?, field()?);
    let trust = fields.next().unwrap_or_default();
    let text = |b| utf8(b).ok_or(LineProblem::NotUtf8);
    let fingerprint = sexp::decode_hex(hex)
        .and_then(|b| <[u8; FINGERPRINT_LEN]>::try_from(b).ok())
        .map(V3Fingerprint)
        .ok_or(LineProblem::BadFingerprint)?;
    let trust = match text(trust)? {
        t if t.is_empty() => Trust::Unverified,
        how => Trust::Verified { how },
    };
    Ok(KnownFingerprint {
        username: text(username)?,
        account: text(account)?,
        protocol: text(protocol)?,
        fingerprint,
        trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    // Written by libotr 4.1.1 (Debian libotr5-dev) through `otrl_privkey_generate`, for two
    // accounts, the second with a quote, a tab and a non-ASCII letter in its name.
    const TWO_KEYS: &[u8] = include_bytes!("testdata/two.private_key");
    // `otrl_privkey_fingerprint` of the two keys, as libotr printed them.
    const TWO_FPS: [&str; 2] = [
        "3B514C27 F6802802 5EC80BF2 1F5B0A9C 1DCC410B",
        "60F53AA7 2D72DC8D CD0E76DB 7C48E95F 887B051A",
    ];
    // Written by libotr 4.1.1's `otrl_privkey_write_fingerprints`: one peer seen with two
    // keys (two AKEs), one of them marked with `otrl_context_set_trust(…, "verified")`.
    const FINGERPRINTS: &[u8] = include_bytes!("testdata/otr.fingerprints");

    fn human(fp: &[u8; 20]) -> String {
        fp.chunks(4)
            .map(hex::encode_upper)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn libotr_key_file_imports_with_libotrs_fingerprints() {
        let keys = read_private_keys(TWO_KEYS).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].account, "alice@example.org/Laptop");
        assert_eq!(keys[0].protocol, "prpl-jabber");
        assert_eq!(keys[1].account, "Zoë \"z\"\t@example.net");
        for (k, want) in keys.iter().zip(TWO_FPS) {
            assert_eq!(human(&k.key.public().fingerprint()), want);
            // The imported key signs, and its public key verifies.
            let sig = k.key.sign(&[3; 32]).unwrap();
            assert!(k.key.public().verify(&[3; 32], &sig));
        }
        // The secret value is not printed.
        assert!(!format!("{keys:?}").contains("ED36EB"));
    }

    #[test]
    fn libotr_fingerprint_store_imports() {
        let fps = read_fingerprints(FINGERPRINTS).unwrap();
        assert_eq!(fps.len(), 2);
        assert_eq!(fps[0].username, "otr4@example.org");
        assert_eq!(fps[0].account, "libotr@example.org");
        assert_eq!(fps[0].protocol, "xmpp");
        assert_eq!(
            hex::encode(fps[0].fingerprint.0),
            "a420ad7ceaadd460663583cdd5402702c641accd"
        );
        assert_eq!(fps[0].trust, Trust::Unverified);
        assert_eq!(
            hex::encode(fps[1].fingerprint.0),
            "f482f452a06ff712554192bb030f0074ddb9d8ca"
        );
        assert_eq!(
            fps[1].trust,
            Trust::Verified {
                how: "verified".into()
            }
        );
        // Four fields only (libotr before 3.2) and CRLF line ends read too.
        let old = b"bob@x\tme@x\tprpl-jabber\t0340c46029cfaa3db1791602529de4fa834b8eb3\r\n";
        assert_eq!(read_fingerprints(old).unwrap()[0].trust, Trust::Unverified);
    }

    /// `TWO_KEYS` with `from` replaced by `to` (once).
    fn edited(from: &str, to: &str) -> Vec<u8> {
        let text = core::str::from_utf8(TWO_KEYS).unwrap();
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn broken_key_files_are_refused_whole() {
        let account = |index, problem| Err(ImportError::Account { index, problem });
        // The second account's x changed: y ≠ g^x, so neither key is imported.
        let text = core::str::from_utf8(TWO_KEYS).unwrap();
        let at = text.rfind("(x #").unwrap();
        let mut bad = TWO_KEYS.to_vec();
        bad[at + 6] = if bad[at + 6] == b'5' { b'6' } else { b'5' };
        assert_eq!(
            read_private_keys(&bad).map(|k| k.len()),
            account(2, AccountProblem::InvalidKey)
        );
        for (from, to, want) in [
            ("(privkeys", "(keys", Err(ImportError::NotPrivkeys)),
            ("(name ", "(nom ", account(1, AccountProblem::NoName)),
            (
                "(protocol ",
                "(proto ",
                account(1, AccountProblem::NoProtocol),
            ),
            ("(dsa", "(rsa", account(1, AccountProblem::NoDsaKey)),
            ("(q ", "(Q ", account(1, AccountProblem::MissingValue("q"))),
            (
                " (account",
                " (acct",
                account(1, AccountProblem::NotAnAccount),
            ),
            (
                "\"alice@example.org/Laptop\"",
                "#FF#",
                account(1, AccountProblem::NotUtf8),
            ),
        ] {
            assert_eq!(
                read_private_keys(&edited(from, to)).map(|k| k.len()),
                want,
                "{from} -> {to}"
            );
        }
        // Cut anywhere: an error, never a partial import.
        for cut in [1, 100, TWO_KEYS.len() / 2, TWO_KEYS.len() - 3] {
            assert!(read_private_keys(&TWO_KEYS[..cut]).is_err(), "cut at {cut}");
        }
        // The same account twice.
        let dup = edited("Zoë \\\"z\\\"\\t@example.net", "alice@example.org/Laptop");
        assert_eq!(
            read_private_keys(&dup).map(|k| k.len()),
            Err(ImportError::DuplicateAccount {
                account: "alice@example.org/Laptop".into(),
                protocol: "prpl-jabber".into()
            })
        );
        assert_eq!(
            read_private_keys(&vec![b' '; MAX_KEY_FILE + 1]).map(|k| k.len()),
            Err(ImportError::TooLarge {
                limit: MAX_KEY_FILE
            })
        );
        // An empty store is a file without accounts, not an error.
        assert_eq!(read_private_keys(b"(privkeys)\n").unwrap().len(), 0);
    }

    #[test]
    fn broken_fingerprint_lines_name_the_line() {
        let good = "a\tb\tc\tf482f452a06ff712554192bb030f0074ddb9d8ca\tverified\n";
        let line = |line, problem| Err(ImportError::Line { line, problem });
        for (text, want) in [
            (
                format!("{good}a\tb\tc\n"),
                line(2, LineProblem::MissingFields),
            ),
            (
                format!("{good}\na\tb\tc\tf482\n"),
                line(3, LineProblem::BadFingerprint),
            ),
            (
                format!("{good}a\tb\tc\t{}\n", "zz".repeat(20)),
                line(2, LineProblem::BadFingerprint),
            ),
            (format!("{good}{good}"), line(2, LineProblem::Duplicate(1))),
        ] {
            assert_eq!(
                read_fingerprints(text.as_bytes()).map(|f| f.len()),
                want,
                "{text}"
            );
        }
        let mut not_utf8 = good.as_bytes().to_vec();
        not_utf8[0] = 0xff;
        assert_eq!(
            read_fingerprints(&not_utf8).map(|f| f.len()),
            line(1, LineProblem::NotUtf8)
        );
        // The trust word may hold tabs, as libotr reads it.
        let odd = good.replace("verified", "by\tphone");
        assert_eq!(
            read_fingerprints(odd.as_bytes()).unwrap()[0].trust,
            Trust::Verified {
                how: "by\tphone".to_string()
            }
        );
    }
}
