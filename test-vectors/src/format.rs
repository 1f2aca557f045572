//! The JSON schema of a vector file (documented in test-vectors/README.md).
//!
//! A file is one suite; each vector names its spec section and maps input and output
//! names to lowercase hex (or plain strings where the spec's value is text).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One vector file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Suite {
    /// The suite's name, equal to the file stem.
    pub suite: String,
    /// What the suite covers and how to recompute it.
    pub description: String,
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// One known answer: inputs, the spec section, outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vector {
    /// A short name unique in the suite.
    pub name: String,
    /// The spec section, e.g. `otrv4.md §"Key Derivation Function, Hash Function and MAC Function"`.
    pub section: String,
    /// Named inputs (hex unless the name ends in `_text`).
    pub inputs: BTreeMap<String, String>,
    /// Named outputs (hex unless the name ends in `_text`).
    pub outputs: BTreeMap<String, String>,
}

impl Vector {
    /// A vector with no fields yet.
    pub fn new(name: impl Into<String>, section: impl Into<String>) -> Self {
        Vector {
            name: name.into(),
            section: section.into(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Adds a hex input.
    pub fn input(mut self, k: &str, v: &[u8]) -> Self {
        self.inputs.insert(k.into(), hex::encode(v));
        self
    }

    /// Adds a text input.
    pub fn input_text(mut self, k: &str, v: &str) -> Self {
        self.inputs.insert(k.into(), v.into());
        self
    }

    /// Adds a hex output.
    pub fn output(mut self, k: &str, v: &[u8]) -> Self {
        self.outputs.insert(k.into(), hex::encode(v));
        self
    }

    /// Adds a text output.
    pub fn output_text(mut self, k: &str, v: &str) -> Self {
        self.outputs.insert(k.into(), v.into());
        self
    }

    /// A hex input, decoded.
    pub fn hex_in(&self, k: &str) -> Result<Vec<u8>, String> {
        let s = self
            .inputs
            .get(k)
            .ok_or_else(|| format!("missing input {k}"))?;
        hex::decode(s).map_err(|e| format!("input {k}: {e}"))
    }

    /// A text input.
    pub fn text_in(&self, k: &str) -> Result<&str, String> {
        self.inputs
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing input {k}"))
    }

    /// A fixed-size hex input.
    pub fn arr_in<const N: usize>(&self, k: &str) -> Result<[u8; N], String> {
        let v = self.hex_in(k)?;
        v.try_into()
            .map_err(|v: Vec<u8>| format!("input {k}: {} bytes, want {N}", v.len()))
    }
}
