//! Verifying a prekey server's key-rotation announcements (docs/spec-notes.md §"Prekey
//! server key rotation"): the pinned key vouches for the next, up to the advertised one.
//!
//! An announcement is the disco#items item `node="fingerprint-rotation"` whose `name` is
//! `OLDPUB.NEWFP.NOTAFTER.SIG` (hex, hex, decimal Unix seconds, hex): the old Ed448 public
//! key's EdDSA signature (RFC 8032, empty context) over `PrekeyServerKey::ROTATION_LABEL || u32(len(jid)) || jid ||
//! old fingerprint || new fingerprint || u64(not_after)`. The server side is
//! `prekey_server::rotation`.

use std::collections::BTreeSet;

use otr4::PrekeyServerKey;

use crate::stanza::DiscoItem;

/// The disco#items node of an announcement.
pub(crate) const NODE: &str = "fingerprint-rotation";

/// Most announcements looked at in one answer (a server lists those of its announcement
/// period; more is refused as a whole).
pub(crate) const MAX_ANNOUNCEMENTS: usize = 16;

/// A verified announcement: `old` vouches for `new` until `not_after` (fingerprints in
/// lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announcement {
    pub old: String,
    pub new: String,
    pub not_after: i64,
}

/// Decodes the announcement `name` of the server `jid` and checks its signature; `None`
/// if malformed or forged.
pub(crate) fn verify(name: &str, jid: &str) -> Option<Announcement> {
    let mut parts = name.split('.');
    let (old, new, not_after, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || not_after.len() > 20 {
        return None;
    }
    let mut old_pub = [0u8; 57];
    let mut new_fp = [0u8; 56];
    let mut sig_bytes = [0u8; 114];
    hex::decode_to_slice(old, &mut old_pub).ok()?;
    hex::decode_to_slice(new, &mut new_fp).ok()?;
    hex::decode_to_slice(sig, &mut sig_bytes).ok()?;
    let not_after: u64 = not_after.parse().ok()?;
    let old_key = PrekeyServerKey::decode(&old_pub).ok()?;
    let old_fp = old_key.fingerprint();
    let msg = otr4::PrekeyServerKey::rotation_message(jid, old_fp.as_bytes(), &new_fp, not_after);
    if !old_key.verify(&msg, &sig_bytes) {
        return None;
    }
    Some(Announcement {
        old: hex::encode(old_fp.as_bytes()),
        new: hex::encode(new_fp),
        not_after: i64::try_from(not_after).unwrap_or(i64::MAX),
    })
}

/// The verified announcements among a server's disco items (forged or malformed ones are
/// skipped and logged).
pub(crate) fn announcements(items: &[DiscoItem], jid: &str) -> Vec<Announcement> {
    items
        .iter()
        .filter(|i| i.node.as_deref() == Some(NODE))
        .take(MAX_ANNOUNCEMENTS)
        .filter_map(|i| {
            let a = i.name.as_deref().and_then(|n| verify(n, jid));
            if a.is_none() {
                tracing::warn!(server = jid, "a key-rotation announcement did not verify");
            }
            a
        })
        .collect()
}

/// The chain of keys from `pinned` to `advertised`, each vouched for by the one before in
/// an announcement still valid at `now`, never through a `retired` key nor twice through
/// one (a replayed or circular announcement leads nowhere): the keys retired by following
/// it (`pinned` and those between), or `None`.
pub(crate) fn follow(
    pinned: &str,
    advertised: &str,
    anns: &[Announcement],
    retired: &BTreeSet<String>,
    now: i64,
) -> Option<Vec<String>> {
    fn step(
        path: &mut Vec<String>,
        target: &str,
        anns: &[Announcement],
        retired: &BTreeSet<String>,
        now: i64,
    ) -> bool {
        let Some(cur) = path.last().cloned() else {
            return false;
        };
        for a in anns.iter().filter(|a| a.old == cur && now <= a.not_after) {
            if retired.contains(&a.new) || path.contains(&a.new) {
                continue;
            }
            if a.new == target {
                return true;
            }
            path.push(a.new.clone());
            if step(path, target, anns, retired, now) {
                return true;
            }
            path.pop();
        }
        false
    }
    if pinned == advertised || retired.contains(advertised) {
        return None;
    }
    let mut path = vec![pinned.to_owned()];
    step(&mut path, advertised, anns, retired, now).then_some(path)
}
