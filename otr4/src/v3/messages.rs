//! The OTRv3 encoded messages (Protocol-v3.html §"D-H Commit Message", §"D-H Key Message",
//! §"Reveal Signature Message", §"Signature Message", §"Data Message"), the decrypted
//! signature structure `X` of the AKE, and their strict decoders.
//!
//! Every decoder takes untrusted bytes: lengths are checked before anything is allocated,
//! MPIs are capped at the group size, and every D-H value is range-checked on decoding.

use alloc::vec::Vec;

use crate::instance_tag::InstanceTag;
use crate::v3::group::{MODULUS_LEN, PublicValue};
use crate::v3::pubkey::{DsaPublicKey, SIG_LEN};
use crate::wire::codec::{DecodeError, Reader, Writer};

/// The protocol version field of every OTRv3 message.
pub const VERSION: u16 = 0x0003;
/// Message type of the D-H Commit message.
pub const TYPE_DH_COMMIT: u8 = 0x02;
/// Message type of the Data message.
pub const TYPE_DATA: u8 = 0x03;
/// Message type of the D-H Key message.
pub const TYPE_DH_KEY: u8 = 0x0a;
/// Message type of the Reveal Signature message.
pub const TYPE_REVEAL_SIGNATURE: u8 = 0x11;
/// Message type of the Signature message.
pub const TYPE_SIGNATURE: u8 = 0x12;
/// Bytes of a MAC field (SHA1-HMAC, or SHA256-HMAC-160 in the AKE).
pub const MAC_LEN: usize = 20;
/// Bytes of the AES key `r` revealed in the Reveal Signature message.
pub const R_LEN: usize = 16;
/// The IGNORE_UNREADABLE flag of a Data message.
pub const FLAG_IGNORE_UNREADABLE: u8 = 0x01;
/// The longest encrypted `g^x` MPI of a D-H Commit (4-byte length + 192 bytes).
const MAX_ENC_GX: usize = 4 + MODULUS_LEN;

/// The header every OTRv3 message starts with (Protocol-v3.html §"D-H Commit Message"):
/// version 3, a type, and the sender's and receiver's instance tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type byte.
    pub message_type: u8,
    /// The sender's instance tag (`>= 0x100`).
    pub sender: InstanceTag,
    /// The receiver's instance tag (0 or `>= 0x100`).
    pub receiver: InstanceTag,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.u16(VERSION)
            .u8(self.message_type)
            .u32(self.sender.0)
            .u32(self.receiver.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        let v = r.u16("protocol version")?;
        if v != VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        let message_type = r.u8("message type")?;
        let sender = r.sender_tag("sender instance tag")?;
        let receiver = r.receiver_tag("receiver instance tag")?;
        Ok(Header {
            message_type,
            sender,
            receiver,
        })
    }
}

/// D-H Commit (type 0x02): `AES_r(g^x mpi)` and `SHA256(g^x mpi)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhCommit {
    /// The encrypted MPI of `g^x` (at most 196 bytes).
    pub encrypted_gx: Vec<u8>,
    /// SHA-256 of the MPI of `g^x`.
    pub hashed_gx: [u8; 32],
}

/// D-H Key (type 0x0a): `g^y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhKey {
    /// `g^y`, range-checked.
    pub gy: PublicValue,
}

/// Reveal Signature (type 0x11): `r`, `AES_c(X_B)` and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealSignature {
    /// The key `r` that decrypts the D-H Commit's `g^x`.
    pub r: [u8; R_LEN],
    /// `AES_c(X_B)`.
    pub encrypted_signature: Vec<u8>,
    /// SHA256-HMAC-160 of the encrypted signature field (with its length), key `m2`.
    pub mac: [u8; MAC_LEN],
}

/// Signature (type 0x12): `AES_c'(X_A)` and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureMessage {
    /// `AES_c'(X_A)`.
    pub encrypted_signature: Vec<u8>,
    /// SHA256-HMAC-160 of the encrypted signature field (with its length), key `m2'`.
    pub mac: [u8; MAC_LEN],
}

/// Data message (type 0x03; Protocol-v3.html §"Data Message").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// The flags byte (`FLAG_IGNORE_UNREADABLE`).
    pub flags: u8,
    /// The sender's key id (`> 0`).
    pub sender_keyid: u32,
    /// The recipient's key id (`> 0`).
    pub recipient_keyid: u32,
    /// The sender's next D-H public key (`sender_keyid + 1`), range-checked.
    pub next_dh: PublicValue,
    /// The top half of the initial AES-CTR counter (not all zero).
    pub ctr: [u8; 8],
    /// The AES-128-CTR encrypted plaintext.
    pub encrypted: Vec<u8>,
    /// SHA1-HMAC of everything from the version to the end of the encrypted message.
    pub mac: [u8; MAC_LEN],
    /// Old MAC keys revealed (concatenated 20-byte keys).
    pub old_mac_keys: Vec<u8>,
}

/// One decoded OTRv3 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// D-H Commit.
    DhCommit(DhCommit),
    /// D-H Key.
    DhKey(DhKey),
    /// Reveal Signature.
    RevealSignature(RevealSignature),
    /// Signature.
    Signature(SignatureMessage),
    /// Data.
    Data(DataMessage),
}

fn read_public(r: &mut Reader<'_>, what: &'static str) -> Result<PublicValue, DecodeError> {
    let b = r.mpi_max(what, MODULUS_LEN)?;
    PublicValue::from_be_bytes(b).ok_or(DecodeError::BadDhValue(what))
}

fn read_fixed_data<const N: usize>(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<[u8; N], DecodeError> {
    let d = r.data(what)?;
    <[u8; N]>::try_from(d).map_err(|_| DecodeError::BadValue(what))
}

fn read_keyid(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    match r.u32(what)? {
        0 => Err(DecodeError::BadValue(what)),
        k => Ok(k),
    }
}

impl DataMessage {
    /// Appends the part the MAC covers: version through the encrypted message.
    pub fn write_authenticated(&self, header: &Header, out: &mut Vec<u8>) {
        header.write(out);
        out.u8(self.flags)
            .u32(self.sender_keyid)
            .u32(self.recipient_keyid)
            .mpi(&self.next_dh.to_be_bytes())
            .bytes(&self.ctr)
            .data(&self.encrypted);
    }
}

impl Message {
    /// The message type byte.
    pub fn message_type(&self) -> u8 {
        match self {
            Message::DhCommit(_) => TYPE_DH_COMMIT,
            Message::DhKey(_) => TYPE_DH_KEY,
            Message::RevealSignature(_) => TYPE_REVEAL_SIGNATURE,
            Message::Signature(_) => TYPE_SIGNATURE,
            Message::Data(_) => TYPE_DATA,
        }
    }

    /// The binary encoding with the header for `sender` → `receiver`.
    pub fn encode(&self, sender: InstanceTag, receiver: InstanceTag) -> Vec<u8> {
        let header = Header {
            message_type: self.message_type(),
            sender,
            receiver,
        };
        let mut out = Vec::new();
        match self {
            Message::Data(d) => {
                d.write_authenticated(&header, &mut out);
                out.bytes(&d.mac).data(&d.old_mac_keys);
            }
            other => {
                header.write(&mut out);
                match other {
                    Message::DhCommit(c) => {
                        out.data(&c.encrypted_gx).data(&c.hashed_gx);
                    }
                    Message::DhKey(k) => {
                        out.mpi(&k.gy.to_be_bytes());
                    }
                    Message::RevealSignature(rs) => {
                        out.data(&rs.r).data(&rs.encrypted_signature).bytes(&rs.mac);
                    }
                    Message::Signature(s) => {
                        out.data(&s.encrypted_signature).bytes(&s.mac);
                    }
                    Message::Data(_) => {}
                }
            }
        }
        out
    }

    /// Decodes a whole binary message (the body of `?OTR:…​.`); trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<(Header, Message), DecodeError> {
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r)?;
        let msg = match header.message_type {
            TYPE_DH_COMMIT => {
                let encrypted_gx = r.data("encrypted g^x")?;
                if encrypted_gx.len() > MAX_ENC_GX {
                    return Err(DecodeError::LengthTooLarge {
                        what: "encrypted g^x",
                        len: encrypted_gx.len() as u64,
                        limit: MAX_ENC_GX as u64,
                    });
                }
                Message::DhCommit(DhCommit {
                    encrypted_gx: encrypted_gx.to_vec(),
                    hashed_gx: read_fixed_data(&mut r, "hashed g^x")?,
                })
            }
            TYPE_DH_KEY => Message::DhKey(DhKey {
                gy: read_public(&mut r, "g^y")?,
            }),
            TYPE_REVEAL_SIGNATURE => Message::RevealSignature(RevealSignature {
                r: read_fixed_data(&mut r, "revealed key r")?,
                encrypted_signature: r.data("encrypted signature")?.to_vec(),
                mac: r.array("MAC'd signature")?,
            }),
            TYPE_SIGNATURE => Message::Signature(SignatureMessage {
                encrypted_signature: r.data("encrypted signature")?.to_vec(),
                mac: r.array("MAC'd signature")?,
            }),
            TYPE_DATA => {
                let flags = r.u8("flags")?;
                let sender_keyid = read_keyid(&mut r, "sender keyid")?;
                let recipient_keyid = read_keyid(&mut r, "recipient keyid")?;
                let next_dh = read_public(&mut r, "next D-H key")?;
                let ctr: [u8; 8] = r.array("counter")?;
                if ctr == [0; 8] {
                    return Err(DecodeError::BadValue("counter"));
                }
                Message::Data(DataMessage {
                    flags,
                    sender_keyid,
                    recipient_keyid,
                    next_dh,
                    ctr,
                    encrypted: r.data("encrypted message")?.to_vec(),
                    mac: r.array("authenticator")?,
                    old_mac_keys: r.data("old MAC keys")?.to_vec(),
                })
            }
            other => return Err(DecodeError::BadMessageType(other)),
        };
        r.finish()?;
        Ok((header, msg))
    }
}

/// The decrypted signature structure of the AKE, `X = pub, keyid, sig(M)`
/// (Protocol-v3.html §"Reveal Signature Message").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedKey {
    /// The signer's long-term public key.
    pub public: DsaPublicKey,
    /// The serial number of the signer's D-H key (`> 0`).
    pub keyid: u32,
    /// The DSA signature of `M`.
    pub sig: [u8; SIG_LEN],
}

impl SignedKey {
    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.public.write(&mut out);
        out.u32(self.keyid).bytes(&self.sig);
        out
    }

    /// Decodes `X` (trailing bytes are an error).
    pub fn decode(bytes: &[u8]) -> Result<SignedKey, DecodeError> {
        let mut r = Reader::new(bytes);
        let public = DsaPublicKey::read(&mut r)?;
        let keyid = read_keyid(&mut r, "AKE keyid")?;
        let sig = r.array("signature")?;
        r.finish()?;
        Ok(SignedKey { public, keyid, sig })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::pubkey::tests::test_key;

    fn tags() -> (InstanceTag, InstanceTag) {
        (InstanceTag(0x1234_5678), InstanceTag(0x100))
    }

    #[test]
    fn round_trips_and_known_layout() {
        let (s, rcv) = tags();
        let gy = PublicValue::from_be_bytes(&[5; 192]).unwrap();
        let msgs = [
            Message::DhCommit(DhCommit {
                encrypted_gx: alloc::vec![1; 196],
                hashed_gx: [2; 32],
            }),
            Message::DhKey(DhKey { gy: gy.clone() }),
            Message::RevealSignature(RevealSignature {
                r: [3; 16],
                encrypted_signature: alloc::vec![4; 10],
                mac: [5; 20],
            }),
            Message::Signature(SignatureMessage {
                encrypted_signature: alloc::vec![6; 3],
                mac: [7; 20],
            }),
            Message::Data(DataMessage {
                flags: 1,
                sender_keyid: 1,
                recipient_keyid: 2,
                next_dh: gy,
                ctr: [0, 0, 0, 0, 0, 0, 0, 1],
                encrypted: b"abc".to_vec(),
                mac: [8; 20],
                old_mac_keys: alloc::vec![9; 40],
            }),
        ];
        for m in msgs {
            let bytes = m.encode(s, rcv);
            assert_eq!(&bytes[..3], &[0, 3, m.message_type()]);
            assert_eq!(&bytes[3..11], &[0x12, 0x34, 0x56, 0x78, 0, 0, 1, 0]);
            let (h, back) = Message::decode(&bytes).unwrap();
            assert_eq!((h.sender, h.receiver), (s, rcv));
            assert_eq!(back, m);
            // Every strict prefix is rejected, and so is a trailing byte.
            for n in 0..bytes.len() {
                assert!(Message::decode(&bytes[..n]).is_err(), "prefix {n}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(Message::decode(&long), Err(DecodeError::TrailingBytes(1)));
        }
    }

    #[test]
    fn rejects_bad_fields() {
        let (s, rcv) = tags();
        let dh_key = Message::DhKey(DhKey {
            gy: PublicValue::from_be_bytes(&[2]).unwrap(),
        })
        .encode(s, rcv);
        // Version 2 and unknown types.
        let mut v2 = dh_key.clone();
        v2[1] = 2;
        assert_eq!(Message::decode(&v2), Err(DecodeError::BadVersion(2)));
        let mut t = dh_key.clone();
        t[2] = 0x42;
        assert_eq!(Message::decode(&t), Err(DecodeError::BadMessageType(0x42)));
        // Sender tag below 0x100, receiver tag in 1..0x100.
        let mut st = dh_key.clone();
        st[3..7].copy_from_slice(&[0, 0, 0, 0xff]);
        assert_eq!(Message::decode(&st), Err(DecodeError::BadInstanceTag(0xff)));
        let mut rt = dh_key.clone();
        rt[7..11].copy_from_slice(&[0, 0, 0, 1]);
        assert_eq!(Message::decode(&rt), Err(DecodeError::BadInstanceTag(1)));
        // g^y = 1 is out of range.
        let mut one = dh_key.clone();
        *one.last_mut().unwrap() = 1;
        assert_eq!(Message::decode(&one), Err(DecodeError::BadDhValue("g^y")));
        // A non-minimal MPI.
        let mut w = dh_key[..11].to_vec();
        w.extend_from_slice(&[0, 0, 0, 2, 0, 2]);
        assert_eq!(Message::decode(&w), Err(DecodeError::NonMinimalMpi));
        // Data message: key ids 0 and an all-zero counter are refused.
        let data = DataMessage {
            flags: 0,
            sender_keyid: 1,
            recipient_keyid: 1,
            next_dh: PublicValue::from_be_bytes(&[3]).unwrap(),
            ctr: [0, 0, 0, 0, 0, 0, 0, 1],
            encrypted: alloc::vec![1],
            mac: [0; 20],
            old_mac_keys: Vec::new(),
        };
        assert!(Message::decode(&Message::Data(data.clone()).encode(s, rcv)).is_ok());
        for what in ["sender keyid", "recipient keyid", "counter"] {
            let mut d = data.clone();
            match what {
                "sender keyid" => d.sender_keyid = 0,
                "recipient keyid" => d.recipient_keyid = 0,
                _ => d.ctr = [0; 8],
            }
            assert_eq!(
                Message::decode(&Message::Data(d).encode(s, rcv)),
                Err(DecodeError::BadValue(what))
            );
        }
        // An oversized MPI (193 bytes).
        let mut w = dh_key[..11].to_vec();
        w.data(&[1; 193]);
        assert!(matches!(
            Message::decode(&w),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn signed_key_round_trip() {
        let k = test_key();
        let x = SignedKey {
            public: k.public().clone(),
            keyid: 1,
            sig: k.sign(&[1; 32]).unwrap(),
        };
        let bytes = x.encode();
        assert_eq!(SignedKey::decode(&bytes).unwrap(), x);
        let mut zero = bytes.clone();
        let n = zero.len() - SIG_LEN - 4;
        zero[n..n + 4].copy_from_slice(&[0; 4]);
        assert!(SignedKey::decode(&zero).is_err());
    }
}
