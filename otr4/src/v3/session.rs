//! OTRv3 data messages (Protocol-v3.html §"Data Message", §"Key Management", §"Revealing MAC
//! keys"): AES-128-CTR with SHA1-HMAC, key rotation by key ids, counters, old MAC keys.
//!
//! A [`Session`] holds our two most recent D-H key pairs and the peer's two most recent
//! public keys, and the keys, counters and MAC use of each of the four pairings.

use alloc::vec::Vec;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::ct_eq;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::v3::ake::{AKE_KEYID, AkeComplete};
use crate::v3::group::{KeyPair, PublicValue};
use crate::v3::kdf::{SSID_LEN, SessionKeys};
use crate::v3::messages::{DataMessage, Header, MAC_LEN, Message, TYPE_DATA};
use crate::v3::pubkey::DsaPublicKey;
use crate::v3::{V3Error, aes_ctr};

/// The state of one (our key, their key) pairing.
struct Pair {
    keys: SessionKeys,
    /// The top half of the last counter we sent (0: none yet).
    send_ctr: u64,
    /// The top half of the last counter we accepted (0: none yet).
    recv_ctr: [u8; 8],
    /// Whether the receiving MAC key verified a message (only those are revealed).
    recv_mac_used: bool,
}

fn hmac_sha1(key: &[u8; 20], data: &[u8]) -> [u8; MAC_LEN] {
    let mut m = match <Hmac<Sha1> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; MAC_LEN],
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// A decrypted data message.
pub struct Decrypted {
    /// The plaintext (human-readable part, NUL, TLVs); parse with
    /// [`crate::v3::tlv::V3Plaintext::parse`].
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The extra symmetric key of the pairing that protected it (Protocol-v3.html §"Extra
    /// symmetric key"), for a type 8 TLV.
    pub extra_symmetric_key: Zeroizing<[u8; 32]>,
    /// The message's flags.
    pub flags: u8,
}

redacted_debug!(Decrypted { flags, .. });

/// An OTRv3 session in MSGSTATE_ENCRYPTED.
pub struct Session {
    our_tag: InstanceTag,
    their_tag: InstanceTag,
    ssid: [u8; SSID_LEN],
    sent_reveal_signature: bool,
    their_public: DsaPublicKey,
    /// `our_dh[our_keyid - 1]`, `our_dh[our_keyid]`.
    ours: [KeyPair; 2],
    our_keyid: u32,
    /// `their_y[their_keyid - 1]` (None until the first rotation), `their_y[their_keyid]`.
    their_prev: Option<PublicValue>,
    their_cur: PublicValue,
    their_keyid: u32,
    /// `pairs[our index][their index]`, index 0 = previous key, 1 = most recent.
    pairs: [[Option<Pair>; 2]; 2],
    /// Receiving MAC keys to reveal in the next data message we send.
    old_mac_keys: Zeroizing<Vec<u8>>,
}

redacted_debug!(Session {
    our_tag,
    their_tag,
    our_keyid,
    their_keyid,
    ..
});

impl Session {
    /// Starts the data phase after the AKE (Protocol-v3.html §"Key Management": two key
    /// pairs of ours, `our_keyid = 2`, the AKE key being `our_dh[1]`).
    pub fn new<R: rand_core::CryptoRng + ?Sized>(
        ake: AkeComplete,
        our_tag: InstanceTag,
        their_tag: InstanceTag,
        rng: &mut R,
    ) -> Session {
        let AkeComplete {
            ssid,
            sent_reveal_signature,
            their_public,
            their_keyid,
            their_dh,
            our_dh,
        } = ake;
        Session {
            our_tag,
            their_tag,
            ssid,
            sent_reveal_signature,
            their_public,
            ours: [our_dh, KeyPair::generate(rng)],
            our_keyid: AKE_KEYID + 1,
            their_prev: None,
            their_cur: their_dh,
            their_keyid,
            pairs: [[None, None], [None, None]],
            old_mac_keys: Zeroizing::new(Vec::new()),
        }
    }

    /// The secure session id and whether we sent the Reveal Signature (we read out the
    /// first half).
    pub fn ssid(&self) -> ([u8; SSID_LEN], bool) {
        (self.ssid, self.sent_reveal_signature)
    }

    /// The peer's long-term key (its fingerprint is what the user verifies).
    pub fn their_public(&self) -> &DsaPublicKey {
        &self.their_public
    }

    /// Our current key id (`our_keyid`) and the peer's (`their_keyid`).
    pub fn keyids(&self) -> (u32, u32) {
        (self.our_keyid, self.their_keyid)
    }

    fn pair(&mut self, oi: usize, ti: usize) -> Option<&mut Pair> {
        let their = match ti {
            0 => self.their_prev.as_ref()?,
            _ => &self.their_cur,
        };
        let ours = self.ours.get(oi)?;
        let slot = self.pairs.get_mut(oi)?.get_mut(ti)?;
        if slot.is_none() {
            let s = ours.secbytes(their);
            let high = ours.public().0 > their.0;
            *slot = Some(Pair {
                keys: SessionKeys::derive(&s, high),
                send_ctr: 0,
                recv_ctr: [0; 8],
                recv_mac_used: false,
            });
        }
        slot.as_mut()
    }

    /// Encrypts `plaintext` (already encoded with [`crate::v3::tlv::V3Plaintext::encode`])
    /// as a Data message (Protocol-v3.html §"When you send a Data Message") and returns its
    /// binary encoding.
    pub fn encrypt(&mut self, plaintext: &[u8], flags: u8) -> Result<Vec<u8>, V3Error> {
        let (sender_keyid, recipient_keyid) = (self.our_keyid - 1, self.their_keyid);
        let (our_tag, their_tag) = (self.our_tag, self.their_tag);
        let next_dh = self
            .ours
            .get(1)
            .map(|k| k.public().clone())
            .ok_or(V3Error::CounterExhausted)?;
        let pair = self.pair(0, 1).ok_or(V3Error::CounterExhausted)?;
        pair.send_ctr = pair
            .send_ctr
            .checked_add(1)
            .ok_or(V3Error::CounterExhausted)?;
        let ctr = pair.send_ctr.to_be_bytes();
        let mut encrypted = plaintext.to_vec();
        aes_ctr(&pair.keys.send.aes, ctr, &mut encrypted);
        let mut msg = DataMessage {
            flags,
            sender_keyid,
            recipient_keyid,
            next_dh,
            ctr,
            encrypted,
            mac: [0; MAC_LEN],
            old_mac_keys: Vec::new(),
        };
        let header = Header {
            message_type: TYPE_DATA,
            sender: our_tag,
            receiver: their_tag,
        };
        let mut authenticated = Vec::new();
        msg.write_authenticated(&header, &mut authenticated);
        msg.mac = hmac_sha1(&pair.keys.send.mac, &authenticated);
        msg.old_mac_keys = core::mem::take(&mut *self.old_mac_keys);
        Ok(Message::Data(msg).encode(our_tag, their_tag))
    }

    /// Verifies and decrypts a Data message, then rotates keys (Protocol-v3.html §"When
    /// you receive a Data Message"). On error nothing changes.
    pub fn decrypt<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        header: &Header,
        msg: &DataMessage,
        rng: &mut R,
    ) -> Result<Decrypted, V3Error> {
        if header.receiver != self.our_tag {
            return Err(V3Error::WrongReceiverTag {
                expected: self.our_tag,
                found: header.receiver,
            });
        }
        if header.sender != self.their_tag {
            return Err(V3Error::WrongSenderTag {
                expected: self.their_tag,
                found: header.sender,
            });
        }
        let unknown = V3Error::UnknownKeyId {
            sender: msg.sender_keyid,
            recipient: msg.recipient_keyid,
        };
        let oi = if msg.recipient_keyid == self.our_keyid {
            1
        } else if msg.recipient_keyid == self.our_keyid.wrapping_sub(1) {
            0
        } else {
            return Err(unknown);
        };
        let ti = if msg.sender_keyid == self.their_keyid {
            1
        } else if msg.sender_keyid == self.their_keyid.wrapping_sub(1) && self.their_prev.is_some()
        {
            0
        } else {
            return Err(unknown);
        };
        let mut authenticated = Vec::new();
        msg.write_authenticated(header, &mut authenticated);
        let pair = self.pair(oi, ti).ok_or(unknown)?;
        if !ct_eq(&hmac_sha1(&pair.keys.recv.mac, &authenticated), &msg.mac) {
            return Err(V3Error::BadMac);
        }
        if msg.ctr <= pair.recv_ctr {
            return Err(V3Error::CounterNotIncreasing);
        }
        pair.recv_ctr = msg.ctr;
        pair.recv_mac_used = true;
        let mut plaintext = Zeroizing::new(msg.encrypted.clone());
        aes_ctr(&pair.keys.recv.aes, msg.ctr, &mut plaintext);
        let extra_symmetric_key = Zeroizing::new(pair.keys.extra);

        // Rotation: the peer has seen our newest key → forget our previous one.
        if msg.recipient_keyid == self.our_keyid {
            for p in self.pairs[0].iter_mut() {
                Self::retire(p, &mut self.old_mac_keys);
            }
            let [_, cur] = core::mem::replace(
                &mut self.ours,
                [KeyPair::generate(rng), KeyPair::generate(rng)],
            );
            self.ours[0] = cur;
            self.pairs.swap(0, 1);
            self.pairs[1] = [None, None];
            self.our_keyid = self.our_keyid.wrapping_add(1);
        }
        // The peer moved to its next key → forget its previous one.
        if msg.sender_keyid == self.their_keyid {
            for row in self.pairs.iter_mut() {
                Self::retire(&mut row[0], &mut self.old_mac_keys);
                row.swap(0, 1);
            }
            self.their_prev = Some(core::mem::replace(&mut self.their_cur, msg.next_dh.clone()));
            self.their_keyid = self.their_keyid.wrapping_add(1);
        }
        Ok(Decrypted {
            plaintext,
            extra_symmetric_key,
            flags: msg.flags,
        })
    }

    /// Drops a pairing, queueing its receiving MAC key for revelation if it was used.
    fn retire(p: &mut Option<Pair>, old: &mut Vec<u8>) {
        if let Some(mut pair) = p.take() {
            if pair.recv_mac_used {
                old.extend_from_slice(&pair.keys.recv.mac);
            }
            pair.keys.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::ake::{receive_dh_commit, start};
    use crate::v3::pubkey::tests::test_key;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn pair(seed: u64) -> (Session, Session, StdRng) {
        let mut rng = StdRng::seed_from_u64(seed);
        let key = test_key();
        let (bob, commit) = start(&mut rng);
        let (alice, dh_key) = receive_dh_commit(&commit, &mut rng);
        let (bob, reveal) = bob.receive_dh_key(&dh_key, &key).unwrap();
        let (a, sig) = alice.receive_reveal_signature(&reveal, &key).unwrap();
        let b = bob.receive_signature(&sig).unwrap();
        let (ta, tb) = (InstanceTag(0x100), InstanceTag(0x200));
        let a = Session::new(a, ta, tb, &mut rng);
        let b = Session::new(b, tb, ta, &mut rng);
        (a, b, rng)
    }

    fn deliver(to: &mut Session, bytes: &[u8], rng: &mut StdRng) -> Result<Decrypted, V3Error> {
        let (h, m) = Message::decode(bytes).unwrap();
        let Message::Data(d) = m else {
            panic!("not data")
        };
        to.decrypt(&h, &d, rng)
    }

    #[test]
    fn conversation_rotates_and_reveals() {
        let (mut a, mut b, mut rng) = pair(5);
        let mut revealed = 0;
        for i in 0..20u32 {
            // Alternate directions, with bursts, so both sides rotate.
            let (from, to) = if i % 3 == 0 {
                (&mut b, &mut a)
            } else {
                (&mut a, &mut b)
            };
            let text = alloc::format!("message {i}");
            let wire = from.encrypt(text.as_bytes(), 0).unwrap();
            let (_, Message::Data(d)) = Message::decode(&wire).unwrap() else {
                panic!()
            };
            assert_eq!(d.old_mac_keys.len() % 20, 0);
            revealed += d.old_mac_keys.len() / 20;
            let got = deliver(to, &wire, &mut rng).unwrap();
            assert_eq!(&got.plaintext[..], text.as_bytes());
            // Replays are rejected (counter, or a retired key).
            assert!(deliver(to, &wire, &mut rng).is_err());
        }
        assert!(
            a.keyids().0 > 3 && b.keyids().0 > 3,
            "{:?} {:?}",
            a.keyids(),
            b.keyids()
        );
        assert!(revealed > 0);
    }

    #[test]
    fn tampering_and_wrong_tags() {
        let (mut a, mut b, mut rng) = pair(6);
        let wire = a.encrypt(b"hi", 0).unwrap();
        let (h, Message::Data(d)) = Message::decode(&wire).unwrap() else {
            panic!()
        };
        let mut bad = d.clone();
        bad.encrypted[0] ^= 1;
        assert_eq!(b.decrypt(&h, &bad, &mut rng).err(), Some(V3Error::BadMac));
        let mut bad = d.clone();
        bad.ctr[7] ^= 2;
        assert_eq!(b.decrypt(&h, &bad, &mut rng).err(), Some(V3Error::BadMac));
        let mut bad = d.clone();
        bad.sender_keyid = 7;
        assert!(matches!(
            b.decrypt(&h, &bad, &mut rng),
            Err(V3Error::UnknownKeyId { .. })
        ));
        let mut hh = h;
        hh.receiver = InstanceTag(0x300);
        assert!(matches!(
            b.decrypt(&hh, &d, &mut rng),
            Err(V3Error::WrongReceiverTag { .. })
        ));
        // Nothing changed: the genuine message still decrypts.
        assert_eq!(&b.decrypt(&h, &d, &mut rng).unwrap().plaintext[..], b"hi");
    }

    #[test]
    fn out_of_order_within_a_key_pair() {
        let (mut a, mut b, mut rng) = pair(7);
        let m1 = a.encrypt(b"one", 0).unwrap();
        let m2 = a.encrypt(b"two", 0).unwrap();
        assert_eq!(
            &deliver(&mut b, &m2, &mut rng).unwrap().plaintext[..],
            b"two"
        );
        // The older counter is refused.
        assert_eq!(
            deliver(&mut b, &m1, &mut rng).err(),
            Some(V3Error::CounterNotIncreasing)
        );
    }
}
