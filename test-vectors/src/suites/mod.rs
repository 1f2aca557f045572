//! The vector suites: each has a generator (seeded) and a checker (recomputes outputs).
//!
//! Add a suite by writing `generate() -> Suite` and `check(&Vector) -> Result<(), String>`
//! and listing it in [`SUITES`].

use crate::format::{Suite, Vector};
use crate::rng::{RecordingRng, ReplayRng};
use rand_core::Rng;
use std::path::Path;

mod chacha20;
pub mod dake_transcript;
mod dh3072;
mod ecdh;
mod eddsa;
mod fingerprint;
mod framing;
mod kdf;
mod keygen;
mod messages;
mod offline;
mod profiles;
mod rsig;

/// A suite's generator and checker.
pub struct SuiteDef {
    /// File stem.
    pub name: &'static str,
    /// Builds the suite from seeded RNGs.
    pub generate: fn() -> Suite,
    /// Recomputes one vector's outputs and compares them.
    pub check: fn(&Vector) -> Result<(), String>,
}

/// Every suite, in file order.
pub const SUITES: &[SuiteDef] = &[
    SuiteDef {
        name: "kdf",
        generate: kdf::generate,
        check: kdf::check,
    },
    SuiteDef {
        name: "keygen",
        generate: keygen::generate,
        check: keygen::check,
    },
    SuiteDef {
        name: "eddsa",
        generate: eddsa::generate,
        check: eddsa::check,
    },
    SuiteDef {
        name: "ecdh",
        generate: ecdh::generate,
        check: ecdh::check,
    },
    SuiteDef {
        name: "dh3072",
        generate: dh3072::generate,
        check: dh3072::check,
    },
    SuiteDef {
        name: "rsig",
        generate: rsig::generate,
        check: rsig::check,
    },
    SuiteDef {
        name: "fingerprint",
        generate: fingerprint::generate,
        check: fingerprint::check,
    },
    SuiteDef {
        name: "chacha20",
        generate: chacha20::generate,
        check: chacha20::check,
    },
    SuiteDef {
        name: "profiles",
        generate: profiles::generate,
        check: profiles::check,
    },
    SuiteDef {
        name: "messages",
        generate: messages::generate,
        check: messages::check,
    },
    SuiteDef {
        name: "framing",
        generate: framing::generate,
        check: framing::check,
    },
    SuiteDef {
        name: "dake_transcript",
        generate: dake_transcript::generate,
        check: dake_transcript::check,
    },
    SuiteDef {
        name: "offline",
        generate: offline::generate,
        check: offline::check,
    },
];

/// Writes every suite as `<dir>/<name>.json`.
pub fn generate_all(dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for s in SUITES {
        let suite = (s.generate)();
        for v in &suite.vectors {
            (s.check)(v).map_err(|e| {
                format!(
                    "{}: {}: generated vector does not verify: {e}",
                    s.name, v.name
                )
            })?;
        }
        let json = serde_json::to_string_pretty(&suite).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{}.json", s.name)), json + "\n")
            .map_err(|e| e.to_string())?;
    }
    Ok(SUITES.len())
}

/// Checks every file; prints one line per file. Returns (vectors passed, vectors failed).
pub fn verify_all(dir: &Path) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for s in SUITES {
        let path = dir.join(format!("{}.json", s.name));
        let suite: Suite = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(x) => x,
            Err(e) => {
                println!("FAIL {}: cannot read: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let mut errors = Vec::new();
        for v in &suite.vectors {
            match (s.check)(v) {
                Ok(()) => passed += 1,
                Err(e) => {
                    failed += 1;
                    errors.push(format!("{}: {e}", v.name));
                }
            }
        }
        if errors.is_empty() && !suite.vectors.is_empty() {
            println!("ok   {}.json: {} vectors", s.name, suite.vectors.len());
        } else {
            if suite.vectors.is_empty() {
                failed += 1;
                errors.push("no vectors".into());
            }
            println!(
                "FAIL {}.json: {} of {} vectors failed",
                s.name,
                errors.len(),
                suite.vectors.len()
            );
            for e in errors {
                println!("     {e}");
            }
        }
    }
    (passed, failed)
}

/// Compares a recomputed hex output with the stored one.
pub fn expect(v: &Vector, k: &str, got: &[u8]) -> Result<(), String> {
    let want = v
        .outputs
        .get(k)
        .ok_or_else(|| format!("missing output {k}"))?;
    let got = hex::encode(got);
    if *want == got {
        Ok(())
    } else {
        Err(format!("output {k}: want {want}, got {got}"))
    }
}

/// Compares a recomputed text output with the stored one.
pub fn expect_text(v: &Vector, k: &str, got: &str) -> Result<(), String> {
    let want = v
        .outputs
        .get(k)
        .ok_or_else(|| format!("missing output {k}"))?;
    if want == got {
        Ok(())
    } else {
        Err(format!("output {k}: want {want:?}, got {got:?}"))
    }
}

/// Draws `n` input bytes from `rng` and forgets that they were drawn, so that the next
/// [`RecordingRng::take`] returns only what a computation consumed.
pub fn draw(rng: &mut RecordingRng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rng.fill_bytes(&mut out);
    rng.take();
    out
}

/// [`draw`] into a fixed-size array.
pub fn draw_arr<const N: usize>(rng: &mut RecordingRng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    rng.take();
    out
}

/// Runs `f` over a [`ReplayRng`] of the vector's `random` input and fails unless `f`
/// consumed exactly those bytes.
pub fn replay<T>(
    v: &Vector,
    f: impl FnOnce(&mut ReplayRng) -> Result<T, String>,
) -> Result<T, String> {
    let mut rng = ReplayRng::new(v.hex_in("random")?);
    let out = f(&mut rng)?;
    if rng.exhausted_exactly() {
        Ok(out)
    } else {
        Err("the computation did not consume exactly the recorded random bytes".into())
    }
}

/// Compares a recomputed boolean (`01`/`00`) with the stored one.
pub fn expect_bool(v: &Vector, k: &str, got: bool) -> Result<(), String> {
    expect(v, k, &[u8::from(got)])
}

/// A stored text output.
pub fn text_out<'a>(v: &'a Vector, k: &str) -> Result<&'a str, String> {
    v.outputs
        .get(k)
        .map(String::as_str)
        .ok_or_else(|| format!("missing output {k}"))
}

/// A stored hex output, decoded.
pub fn hex_out(v: &Vector, k: &str) -> Result<Vec<u8>, String> {
    hex::decode(text_out(v, k)?).map_err(|e| format!("output {k}: {e}"))
}
