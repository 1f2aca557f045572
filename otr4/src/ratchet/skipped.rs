//! The store of skipped message keys, `skipped_MKenc` (otrv4.md §"Key Management",
//! §"When you receive a Data Message", §"Deletion of Stored Message Keys").
//!
//! Entries are kept in arrival order, so the front is always the oldest; secrets are boxed
//! so that moving entries around never leaves stray copies of key bytes in the buffer.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::ed448::POINT_LEN;
use crate::ratchet::keys::{EXTRA_SYMMETRIC_KEY_LEN, KEY_LEN};

/// The secrets of one skipped message: `MKenc` and the extra symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SkippedSecrets {
    /// `MKenc = KDF(usage_message_key || chain_key_r[k], 64)`.
    pub(crate) mk_enc: [u8; KEY_LEN],
    /// `KDF(usage_extra_symm_key || 0xFF || chain_key_r[k], 64)`.
    pub(crate) extra: [u8; EXTRA_SYMMETRIC_KEY_LEN],
}

/// One entry of `skipped_MKenc`, indexed by `(their_ecdh, message id)`.
#[derive(Clone)]
pub(crate) struct SkippedKey {
    /// The encoding of the sender's ECDH public key of that chain.
    pub(crate) their_ecdh: [u8; POINT_LEN],
    /// The message id `j` of the skipped message.
    pub(crate) j: u32,
    /// The ratchet id of the chain (for checks and age-based expiry).
    pub(crate) ratchet_id: u32,
    /// The keys.
    pub(crate) secrets: Box<SkippedSecrets>,
}

/// The skipped-key store, oldest first.
#[derive(Clone, Default)]
pub(crate) struct SkippedKeys {
    entries: VecDeque<SkippedKey>,
}

impl SkippedKeys {
    /// Number of stored keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The position of the key for `(their_ecdh, j)`.
    pub(crate) fn position(&self, their_ecdh: &[u8; POINT_LEN], j: u32) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.j == j && e.their_ecdh == *their_ecdh)
    }

    /// The entry at `pos`.
    pub(crate) fn get(&self, pos: usize) -> Option<&SkippedKey> {
        self.entries.get(pos)
    }

    /// Removes and returns the entry at `pos`.
    pub(crate) fn remove(&mut self, pos: usize) -> Option<SkippedKey> {
        self.entries.remove(pos)
    }

    /// Appends a newer entry.
    pub(crate) fn push(&mut self, key: SkippedKey) {
        self.entries.push_back(key);
    }

    /// Removes the oldest entry.
    pub(crate) fn pop_oldest(&mut self) -> Option<SkippedKey> {
        self.entries.pop_front()
    }

    /// The oldest entry.
    pub(crate) fn oldest(&self) -> Option<&SkippedKey> {
        self.entries.front()
    }

    /// All entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &SkippedKey> {
        self.entries.iter()
    }

    /// Drops every entry (each zeroizes its secrets).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
