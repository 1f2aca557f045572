//! The layer order of `otr4` (crate docs of `lib.rs`, docs/ARCHITECTURE.md) holds: every
//! `crate::` path in a module's non-test code names a module of its own layer or below, and
//! the modules below `conversation` import each other without cycles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Module path prefixes and their layers, bottom up.
const LAYERS: &[(&str, u8)] = &[
    ("debug", 0),
    ("instance_tag", 0),
    ("crypto", 1),
    ("wire::codec", 2),
    ("profile", 3),
    ("wire", 4),
    ("dake", 5),
    ("ratchet", 5),
    ("smp", 5),
    ("v3", 5),
    ("prekey", 6),
    ("conversation", 7),
    ("lib", 8),
    ("hazmat", 8),
    // The forging toolkit (feature `forge`) sits on top, beside the crate root.
    ("forge", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, l)| *l)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `wire/codec.rs` → `wire::codec`, `prekey/messages/mod.rs` → `prekey::messages`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "mod")
        .collect();
    parts.join("::")
}

/// The longest prefix of `path` that is a module with a file.
fn resolve(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().find_map(|k| {
        let dir = parts[..k].iter().collect::<PathBuf>();
        let (f1, f2) = (
            src().join(&dir).with_extension("rs"),
            src().join(&dir).join("mod.rs"),
        );
        (f1.exists() || f2.exists()).then(|| parts[..k].join("::"))
    })
}

/// The modules named by `crate::` paths in the code before the test module, comments
/// excluded.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            if let Some(m) = resolve(path) {
                out.insert(m);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rs_files(&src(), &mut files);
    let mut g = BTreeMap::new();
    for f in files {
        let m = module_of(&f);
        if m.ends_with("tests") || m == "testutil" {
            continue;
        }
        let mut deps = imports(&fs::read_to_string(&f).unwrap());
        deps.remove(&m);
        g.insert(m, deps);
    }
    g
}

#[test]
fn modules_import_only_downward() {
    let mut upward = Vec::new();
    for (m, deps) in graph() {
        let lm = layer(&m).unwrap_or_else(|| panic!("module {m} has no layer"));
        for d in deps {
            let ld = layer(&d).unwrap_or_else(|| panic!("module {d} has no layer"));
            if ld > lm {
                upward.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports: {upward:#?}");
}

#[test]
fn modules_below_conversation_have_no_import_cycles() {
    let g = graph();
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for d in g.get(&m).into_iter().flatten() {
                if d == to {
                    return true;
                }
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        false
    };
    let mut cycles = Vec::new();
    for (m, deps) in &g {
        if layer(m).is_some_and(|l| l >= 7) {
            continue;
        }
        for d in deps {
            if reaches(d, m) {
                cycles.push(format!("{m} <-> {d}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}
