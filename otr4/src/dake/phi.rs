//! The shared session state `phi` (otrv4.md §"Shared Session State"): the values the spec
//! mandates (instance tags, first ratchet keys) plus the caller's `phi'`, in one byte order.
//!
//! Both parties must compute identical bytes, so nothing is ordered by "our"/"their": each
//! party contributes the tuple `INT(instance tag) || POINT(ecdh_first) || MPI(dh_first)`,
//! the two tuples are concatenated in ascending byte order (that is, by instance tag
//! numerically, then by the keys), and `phi'` follows (see docs/spec-notes.md).

use crate::debug::redacted_debug;
use alloc::vec::Vec;

use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::Point;
use crate::instance_tag::InstanceTag;
use crate::wire::codec::Writer;

/// The implementer-defined part `phi'` of the shared session state, already encoded
/// (otrv4.md §"Shared Session State"). Both parties must build it from the same inputs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PhiPrime(Vec<u8>);

impl PhiPrime {
    /// No application context: `phi'` is empty.
    #[cfg(feature = "hazmat")]
    pub fn empty() -> PhiPrime {
        PhiPrime(Vec::new())
    }

    /// Strings such as both parties' bare JIDs: sorted lexicographically (by their UTF-8
    /// bytes, which is Unicode code-point order), each encoded as DATA, concatenated. The
    /// order the caller passes them in does not matter, so "ours, theirs" on one side and
    /// "theirs, ours" on the other give the same bytes.
    pub fn from_strings(strings: &[&str]) -> PhiPrime {
        let mut sorted: Vec<&str> = strings.to_vec();
        sorted.sort_unstable();
        let mut w = Vec::with_capacity(sorted.iter().map(|s| 4 + s.len()).sum());
        for s in sorted {
            w.data(s.as_bytes());
        }
        PhiPrime(w)
    }

    /// Opaque application bytes (e.g. fixed-length game roles, a static shared password),
    /// encoded as one DATA field. The caller is responsible for both sides passing the
    /// same bytes.
    #[cfg(feature = "hazmat")]
    pub fn from_opaque(bytes: &[u8]) -> PhiPrime {
        let mut w = Vec::with_capacity(4 + bytes.len());
        w.data(bytes);
        PhiPrime(w)
    }

    /// The encoded `phi'`.
    #[cfg(feature = "hazmat")]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

redacted_debug!(PhiPrime(|s| format_args!("{} bytes", s.0.len())));

/// One party's contribution to `phi`: its instance tag and the first ECDH and DH public
/// keys it sent for the double-ratchet initialisation.
#[derive(Clone, Copy, Debug)]
pub struct PhiParty<'a> {
    /// The party's (sender) instance tag.
    pub tag: InstanceTag,
    /// The party's `our_ecdh_first.public`.
    pub ecdh_first: &'a Point,
    /// The party's `our_dh_first.public`.
    pub dh_first: &'a DhPublic,
}

impl PhiParty<'_> {
    /// `INT(tag) || POINT(ecdh_first) || MPI(dh_first)`.
    fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(4 + 57 + 4 + 384);
        w.u32(self.tag.0);
        w.point(self.ecdh_first);
        w.dh_public(self.dh_first);
        w
    }
}

/// `phi` of otrv4.md §"Shared Session State": the two parties' tuples
/// `INT(tag) || POINT(ecdh_first) || MPI(dh_first)` in ascending byte order (by instance
/// tag, numerically, since the INT is big-endian; on equal tags by the keys), then `phi'`.
/// Symmetric: `phi(a, b, p) == phi(b, a, p)`.
pub fn phi(a: PhiParty<'_>, b: PhiParty<'_>, phi_prime: &PhiPrime) -> Vec<u8> {
    let (ea, eb) = (a.encode(), b.encode());
    let (lo, hi) = if ea <= eb { (ea, eb) } else { (eb, ea) };
    let mut out = Vec::with_capacity(lo.len() + hi.len() + phi_prime.0.len());
    out.extend_from_slice(&lo);
    out.extend_from_slice(&hi);
    out.extend_from_slice(&phi_prime.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::DhKeyPair;
    use crate::crypto::ed448::KeyPair;
    use alloc::format;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn phi_prime_strings_are_sorted_and_data_encoded() {
        let p = PhiPrime::from_strings(&["bob@jabber.net", "alice@jabber.net"]);
        let mut expect = Vec::new();
        expect.extend_from_slice(&16u32.to_be_bytes());
        expect.extend_from_slice(b"alice@jabber.net");
        expect.extend_from_slice(&14u32.to_be_bytes());
        expect.extend_from_slice(b"bob@jabber.net");
        assert_eq!(p.as_bytes(), &expect[..]);
        assert_eq!(
            p,
            PhiPrime::from_strings(&["alice@jabber.net", "bob@jabber.net"])
        );
        // Code-point order: "Z" < "a" < "é".
        let q = PhiPrime::from_strings(&["é", "a", "Z"]);
        assert_eq!(q.as_bytes(), b"\0\0\0\x01Z\0\0\0\x01a\0\0\0\x02\xc3\xa9");
        assert_eq!(PhiPrime::empty().as_bytes(), b"");
        assert_eq!(PhiPrime::from_opaque(b"pw").as_bytes(), b"\0\0\0\x02pw");
        assert_eq!(
            format!("{:?}", PhiPrime::from_opaque(b"pw")),
            "PhiPrime(6 bytes)"
        );
    }

    #[test]
    fn phi_orders_parties_by_instance_tag_and_is_symmetric() {
        let mut rng = StdRng::seed_from_u64(3);
        let (e1, e2) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let (d1, d2) = (DhKeyPair::generate(&mut rng), DhKeyPair::generate(&mut rng));
        let low = PhiParty {
            tag: InstanceTag(0x100),
            ecdh_first: e1.public(),
            dh_first: d1.public(),
        };
        let high = PhiParty {
            tag: InstanceTag(0x101),
            ecdh_first: e2.public(),
            dh_first: d2.public(),
        };
        let pp = PhiPrime::from_strings(&["alice@jabber.net", "bob@jabber.net"]);
        let got = phi(high, low, &pp);
        assert_eq!(got, phi(low, high, &pp));

        let mut expect = Vec::new();
        expect.extend_from_slice(&[0, 0, 1, 0]);
        expect.extend_from_slice(&e1.public().encode());
        let b1 = d1.public().to_be_bytes();
        expect.extend_from_slice(&(b1.len() as u32).to_be_bytes());
        expect.extend_from_slice(&b1);
        expect.extend_from_slice(&[0, 0, 1, 1]);
        expect.extend_from_slice(&e2.public().encode());
        let b2 = d2.public().to_be_bytes();
        expect.extend_from_slice(&(b2.len() as u32).to_be_bytes());
        expect.extend_from_slice(&b2);
        expect.extend_from_slice(pp.as_bytes());
        assert_eq!(got, expect);

        // Equal tags: still symmetric (ordered by the keys).
        let same = PhiParty {
            tag: InstanceTag(0x100),
            ..high
        };
        assert_eq!(phi(low, same, &pp), phi(same, low, &pp));
        // Different phi' or keys give a different phi.
        assert_ne!(got, phi(low, high, &PhiPrime::empty()));
        assert_ne!(got, phi(low, same, &pp));
    }
}
