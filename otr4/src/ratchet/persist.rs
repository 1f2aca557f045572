//! Export and import of the complete double-ratchet state as versioned bytes, so that a
//! higher layer can persist a conversation mid-stream.
//!
//! The bytes hold every secret of the conversation: store them encrypted. Import checks
//! every length, flag, point and DH value, and never panics.

use alloc::boxed::Box;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::keys::{BRACE_KEY_LEN, EXTRA_SYMMETRIC_KEY_LEN, KEY_LEN};
use super::skipped::{SkippedKey, SkippedKeys, SkippedSecrets};
use super::{DoubleRatchet, RatchetLimits, Receiving, SecretBytes, Sending, State};
use crate::crypto::dh::{DH_SECRET_LEN, DhKeyPair};
use crate::crypto::ed448::{KeyPair, POINT_LEN, SYMMETRIC_KEY_LEN, SymmetricKey};
use crate::wire::codec::{DecodeError, Reader, Writer};
use crate::wire::messages::MAC_LEN;

/// The first bytes of an exported ratchet.
pub const EXPORT_MAGIC: [u8; 8] = *b"OTR4DRAT";
/// The version of the export format written by [`DoubleRatchet::export`].
pub const EXPORT_VERSION: u16 = 1;

/// Bytes of one skipped-key entry: ECDH key, message id, ratchet id, `MKenc`, extra key.
const SKIPPED_ENTRY_LEN: usize = POINT_LEN + 4 + 4 + KEY_LEN + EXTRA_SYMMETRIC_KEY_LEN;

/// Roughly the bytes of an export without skipped keys or MAC keys (header, limits,
/// counters, root and brace keys, their ECDH and DH public keys, our DH secret, both
/// chains): a first capacity only, nothing depends on it being exact.
const EXPORT_FIXED_ESTIMATE: usize = 1024;

/// Writes an optional-field flag.
fn flag(w: &mut SecretBytes, present: bool) {
    w.u8(u8::from(present));
}

/// Reads an optional-field flag: exactly 0 or 1.
fn read_flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadValue(what)),
    }
}

/// Reads a fixed-size secret into a zeroizing buffer.
fn secret<const N: usize>(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Zeroizing<[u8; N]>, DecodeError> {
    let mut out = Zeroizing::new([0u8; N]);
    out.copy_from_slice(r.take(N, what)?);
    Ok(out)
}

impl DoubleRatchet {
    /// The complete state as bytes (format version [`EXPORT_VERSION`]): limits, counters,
    /// root and brace keys, their ECDH and DH public keys, our DH secret, the sending chain
    /// (ECDH symmetric key, chain key, ratchet id), the receiving chain, the skipped keys and
    /// the MAC keys to reveal. Contains every secret of the conversation; the buffer is
    /// zeroized on drop.
    pub fn export(&self) -> SecretBytes {
        // A first capacity that fits the fixed part and the skipped keys; a [`SecretBytes`]
        // that grows beyond it wipes the buffer it leaves, so no copy of a secret remains.
        let mut w = SecretBytes::new(Vec::with_capacity(
            EXPORT_FIXED_ESTIMATE
                + self.skipped.len() * SKIPPED_ENTRY_LEN
                + self.mac_keys_to_reveal.len(),
        ));
        let s = &self.state;
        let l = &self.limits;
        w.bytes(&EXPORT_MAGIC).u16(EXPORT_VERSION);
        w.u32(l.max_skip)
            .u32(l.max_stored_keys)
            .u32(l.max_skipped_key_age)
            .u32(l.max_mac_keys_to_reveal);
        w.u32(s.i).u32(s.j).u32(s.k).u32(s.pn);
        flag(&mut w, s.max_remote_i_seen.is_some());
        w.u32(s.max_remote_i_seen.unwrap_or(0));
        w.bytes(s.root_key.as_ref()).bytes(s.brace_key.as_ref());
        w.point(&s.their_ecdh);
        w.dh_public(&s.their_dh);
        flag(&mut w, s.our_dh.is_some());
        if let Some(dh) = &s.our_dh {
            w.bytes(dh.secret_bytes());
        }
        flag(&mut w, s.sending.is_some());
        if let Some(snd) = &s.sending {
            w.bytes(snd.our_ecdh.symmetric_key().as_bytes())
                .bytes(snd.chain_key.as_ref())
                .u32(snd.ratchet_id);
        }
        flag(&mut w, s.receiving.is_some());
        if let Some(rcv) = &s.receiving {
            w.bytes(rcv.chain_key.as_ref()).u32(rcv.ratchet_id);
        }
        w.u32(u32::try_from(self.skipped.len()).unwrap_or(u32::MAX));
        for e in self.skipped.iter() {
            w.bytes(&e.their_ecdh)
                .u32(e.j)
                .u32(e.ratchet_id)
                .bytes(&e.secrets.mk_enc)
                .bytes(&e.secrets.extra);
        }
        w.data(&self.mac_keys_to_reveal);
        w
    }

    /// Rebuilds a ratchet from [`DoubleRatchet::export`]'s bytes. Fails with a
    /// [`DecodeError`] on a wrong magic or version ([`DecodeError::BadValue`] /
    /// [`DecodeError::BadVersion`]), truncation, trailing bytes, a flag other than 0 or 1, an
    /// invalid point or DH value, an all-zero DH secret, more skipped entries than bytes
    /// remain, or MAC keys that are not a whole number of 64-byte keys. Never panics.
    pub fn import(bytes: &[u8]) -> Result<DoubleRatchet, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<8>("ratchet export magic")? != EXPORT_MAGIC {
            return Err(DecodeError::BadValue("ratchet export magic"));
        }
        let version = r.u16("ratchet export version")?;
        if version != EXPORT_VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let limits = RatchetLimits {
            max_skip: r.u32("max_skip")?,
            max_stored_keys: r.u32("max_stored_keys")?,
            max_skipped_key_age: r.u32("max_skipped_key_age")?,
            max_mac_keys_to_reveal: r.u32("max_mac_keys_to_reveal")?,
        };
        let i = r.u32("ratchet id i")?;
        let j = r.u32("sending message id j")?;
        let k = r.u32("receiving message id k")?;
        let pn = r.u32("previous chain length pn")?;
        let has_max = read_flag(&mut r, "max_remote_i_seen flag")?;
        let max_value = r.u32("max_remote_i_seen")?;
        if !has_max && max_value != 0 {
            return Err(DecodeError::BadValue("max_remote_i_seen"));
        }
        let root_key = secret::<KEY_LEN>(&mut r, "root key")?;
        let brace_key = secret::<BRACE_KEY_LEN>(&mut r, "brace key")?;
        let their_ecdh = r.point("their ECDH key")?;
        let their_dh = r.dh_public("their DH key")?;
        let our_dh = if read_flag(&mut r, "our DH flag")? {
            let sk = secret::<DH_SECRET_LEN>(&mut r, "our DH secret")?;
            let kp = DhKeyPair::from_secret_bytes(*sk)
                .map_err(|_| DecodeError::BadValue("our DH secret"))?;
            Some(kp)
        } else {
            None
        };
        let sending = if read_flag(&mut r, "sending chain flag")? {
            let sym = secret::<SYMMETRIC_KEY_LEN>(&mut r, "our ECDH key")?;
            let chain_key = secret::<KEY_LEN>(&mut r, "sending chain key")?;
            let ratchet_id = r.u32("sending ratchet id")?;
            Some(Sending {
                our_ecdh: KeyPair::from_symmetric_key(SymmetricKey::from_bytes(*sym)),
                chain_key,
                ratchet_id,
            })
        } else {
            None
        };
        let receiving = if read_flag(&mut r, "receiving chain flag")? {
            let chain_key = secret::<KEY_LEN>(&mut r, "receiving chain key")?;
            let ratchet_id = r.u32("receiving ratchet id")?;
            Some(Receiving {
                chain_key,
                ratchet_id,
            })
        } else {
            None
        };
        let count = r.u32("skipped key count")? as usize;
        if count.saturating_mul(SKIPPED_ENTRY_LEN) > r.remaining() {
            return Err(DecodeError::LengthTooLarge {
                what: "skipped keys",
                len: count as u64,
                limit: (r.remaining() / SKIPPED_ENTRY_LEN) as u64,
            });
        }
        let mut skipped = SkippedKeys::default();
        for _ in 0..count {
            let their_ecdh = r.array::<POINT_LEN>("skipped key ECDH")?;
            let j = r.u32("skipped key message id")?;
            let ratchet_id = r.u32("skipped key ratchet id")?;
            let mut secrets = Box::new(SkippedSecrets {
                mk_enc: [0u8; KEY_LEN],
                extra: [0u8; EXTRA_SYMMETRIC_KEY_LEN],
            });
            secrets
                .mk_enc
                .copy_from_slice(r.take(KEY_LEN, "skipped MKenc")?);
            secrets
                .extra
                .copy_from_slice(r.take(EXTRA_SYMMETRIC_KEY_LEN, "skipped extra key")?);
            skipped.push(SkippedKey {
                their_ecdh,
                j,
                ratchet_id,
                secrets,
            });
        }
        let macs = r.data("MAC keys to reveal")?;
        if macs.len() % MAC_LEN != 0 {
            return Err(DecodeError::BadValue("MAC keys to reveal"));
        }
        r.finish()?;
        Ok(DoubleRatchet {
            state: State {
                root_key,
                sending,
                receiving,
                their_ecdh,
                our_dh,
                their_dh,
                brace_key,
                i,
                j,
                k,
                pn,
                max_remote_i_seen: has_max.then_some(max_value),
            },
            skipped,
            mac_keys_to_reveal: SecretBytes::new(macs.to_vec()),
            limits,
        })
    }
}
