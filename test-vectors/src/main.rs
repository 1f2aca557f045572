//! `test-vectors`: writes and checks otr4's known-answer vectors for auditors.
//!
//! `generate` writes JSON under `test-vectors/vectors/` from seeded RNGs; `verify` recomputes
//! every vector with `otr4` and prints one line per file and a final `N passed, M failed`;
//! `corpus <out>` writes the vectors' values as fuzz seeds to `<out>/<target>/<n>`.

mod corpus;
mod format;
mod rng;
mod suites;

use std::path::PathBuf;
use std::process::ExitCode;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn usage() -> ExitCode {
    eprintln!("usage: test-vectors <generate|verify|corpus OUT> [--dir DIR]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = vectors_dir();
    let mut cmd = None;
    let mut corpus_out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => match it.next() {
                Some(d) => dir = PathBuf::from(d),
                None => return usage(),
            },
            "generate" | "verify" => cmd = Some(a.clone()),
            "corpus" => match it.next() {
                Some(d) => {
                    cmd = Some(a.clone());
                    corpus_out = Some(PathBuf::from(d));
                }
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    match cmd.as_deref() {
        Some("generate") => match suites::generate_all(&dir) {
            Ok(n) => {
                println!("wrote {n} files to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("generate failed: {e}");
                ExitCode::FAILURE
            }
        },
        Some("verify") => {
            let (passed, failed) = suites::verify_all(&dir);
            println!("{passed} passed, {failed} failed");
            if failed == 0 && passed > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("corpus") => {
            let Some(out) = corpus_out else {
                return usage();
            };
            match corpus::write(&dir, &out) {
                Ok(counts) => {
                    for (t, n) in &counts {
                        println!("{t}: {n} seeds");
                    }
                    println!(
                        "wrote {} seeds for {} targets to {}",
                        counts.values().sum::<usize>(),
                        counts.len(),
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("corpus failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use otr4::hazmat::wire::codec::Codec;

    #[test]
    fn committed_vectors_verify() {
        let (passed, failed) = suites::verify_all(&vectors_dir());
        assert_eq!(failed, 0);
        assert!(passed > 0);
    }

    /// Regenerating from the seeds gives byte-identical files: the generators are
    /// deterministic and the committed vectors are current.
    #[test]
    fn generation_is_deterministic_and_committed_files_are_current() {
        let tmp = std::env::temp_dir().join(format!("otr4-vectors-{}", std::process::id()));
        suites::generate_all(&tmp).unwrap();
        for s in suites::SUITES {
            let fresh = std::fs::read_to_string(tmp.join(format!("{}.json", s.name))).unwrap();
            let committed =
                std::fs::read_to_string(vectors_dir().join(format!("{}.json", s.name))).unwrap();
            assert!(
                fresh == committed,
                "{}.json is stale: run `cargo run -p test-vectors -- generate`",
                s.name
            );
        }
        std::fs::remove_dir_all(&tmp).ok();
    }

    /// Every fuzz target gets seeds, and the seeds the decoders should accept are accepted.
    #[test]
    fn corpus_seeds_every_target_with_decodable_inputs() {
        use otr4::hazmat::wire::messages::Message;
        let c = corpus::build(&vectors_dir()).unwrap();
        for t in corpus::TARGETS {
            assert!(!c[t].is_empty(), "{t}");
        }
        let targets = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"),
        )
        .unwrap();
        for t in corpus::TARGETS {
            assert!(
                targets.contains(&format!("name = \"{t}\"")),
                "{t} is not a fuzz target"
            );
        }
        let decodable = c["message"]
            .iter()
            .filter(|m| Message::decode(m).is_ok())
            .count();
        assert!(decodable >= 30, "{decodable}");
        assert!(
            c["ratchet_import"]
                .iter()
                .all(|e| otr4::hazmat::ratchet::DoubleRatchet::import(e).is_ok())
        );
        assert_eq!(
            c["smp_message"]
                .iter()
                .filter(|m| otr4::hazmat::smp::SmpMessage2::decode(m).is_ok())
                .count(),
            2
        );
        // The persistence seeds import (as exported, and sealed again from their contents).
        let key = [0x5a; 32];
        for seed in &c["persist_import"] {
            let (mode, rest) = seed.split_first().unwrap();
            if mode & 2 == 0 {
                let ok = if mode & 1 == 1 {
                    otr4::Client::import(&key, rest).is_ok()
                } else {
                    otr4::Account::import(&key, rest).is_ok()
                };
                assert!(ok, "persist seed with mode {mode}");
            }
        }
        assert!(c["conversation_receive"].len() >= 10);
        let tmp = std::env::temp_dir().join(format!("otr4-corpus-{}", std::process::id()));
        let counts = corpus::write(&vectors_dir(), &tmp).unwrap();
        let n = counts["message"];
        assert!(tmp.join("message").join((n - 1).to_string()).is_file());
        std::fs::remove_dir_all(&tmp).ok();
    }
}
