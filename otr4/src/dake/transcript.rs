//! The messages `t` the interactive DAKE's ring signatures sign (otrv4.md §"Auth-R Message",
//! §"Auth-I Message"), built once from named inputs so both roles hash the same bytes.
//!
//! Naming follows the spec's Interactive DAKE Overview: **Bob** sent the Identity message
//! (`Y`, `B`), **Alice** sent the Auth-R message (`X`, `A`), whoever started the exchange.

use crate::wire::codec::Codec;
use alloc::vec::Vec;

use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::Point;
use crate::crypto::kdf::{Usage, hwc};
use crate::profile::client::ClientProfile;
use crate::wire::codec::Writer;

/// Bytes of each `HWC(…, 64)` digest in `t`.
const DIGEST_LEN: usize = 64;

/// Everything `t` covers (otrv4.md §"Auth-R Message", §"Auth-I Message").
#[derive(Clone, Copy, Debug)]
pub struct Transcript<'a> {
    /// Bob's (the Identity sender's) Client Profile, hashed in its wire encoding.
    pub bob_profile: &'a ClientProfile,
    /// Alice's (the Auth-R sender's) Client Profile, hashed in its wire encoding.
    pub alice_profile: &'a ClientProfile,
    /// `Y`, Bob's ephemeral ECDH key from the Identity message.
    pub y: &'a Point,
    /// `X`, Alice's ephemeral ECDH key from the Auth-R message.
    pub x: &'a Point,
    /// `B`, Bob's ephemeral DH key from the Identity message.
    pub b: &'a DhPublic,
    /// `A`, Alice's ephemeral DH key from the Auth-R message.
    pub a: &'a DhPublic,
    /// The shared session state ([`crate::dake::phi::phi`]).
    pub phi: &'a [u8],
}

impl Transcript<'_> {
    /// `prefix || HWC(u_bob || Bob_Client_Profile, 64) || HWC(u_alice ||
    /// Alice_Client_Profile, 64) || Y || X || B || A || HWC(u_phi || phi, 64)` with `Y`, `X`
    /// as POINT and `B`, `A` as MPI.
    fn build(&self, prefix: u8, u_bob: Usage, u_alice: Usage, u_phi: Usage) -> Vec<u8> {
        let bob: [u8; DIGEST_LEN] = hwc(u_bob, &[&self.bob_profile.encode()]);
        let alice: [u8; DIGEST_LEN] = hwc(u_alice, &[&self.alice_profile.encode()]);
        let phi: [u8; DIGEST_LEN] = hwc(u_phi, &[self.phi]);
        let mut w = Vec::with_capacity(1 + 3 * DIGEST_LEN + 2 * 57 + 2 * (4 + 384));
        w.u8(prefix).bytes(&bob).bytes(&alice);
        w.point(self.y);
        w.point(self.x);
        w.dh_public(self.b);
        w.dh_public(self.a);
        w.bytes(&phi);
        w
    }

    /// `t` of the Auth-R message: prefix `0x00`, usages `usage_auth_r_bob_client_profile`
    /// (0x05), `usage_auth_r_alice_client_profile` (0x06), `usage_auth_r_phi` (0x07)
    /// (otrv4.md §"Auth-R Message").
    pub fn auth_r(&self) -> Vec<u8> {
        self.build(
            0x00,
            Usage::AuthRBobClientProfile,
            Usage::AuthRAliceClientProfile,
            Usage::AuthRPhi,
        )
    }

    /// `t` of the Auth-I message: prefix `0x01`, usages `usage_auth_i_bob_client_profile`
    /// (0x08), `usage_auth_i_alice_client_profile` (0x09), `usage_auth_i_phi` (0x0A)
    /// (otrv4.md §"Auth-I Message").
    pub fn auth_i(&self) -> Vec<u8> {
        self.build(
            0x01,
            Usage::AuthIBobClientProfile,
            Usage::AuthIAliceClientProfile,
            Usage::AuthIPhi,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::DhKeyPair;
    use crate::crypto::ed448::KeyPair;
    use crate::crypto::kdf::shake_into;
    use crate::crypto::keys::ForgingPublicKey;
    use crate::instance_tag::InstanceTag;
    use alloc::vec;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn h64(usage: u8, data: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        shake_into(b"OTRv4", usage, &[data], &mut out);
        out
    }

    fn mpi(d: &DhPublic) -> Vec<u8> {
        let b = d.to_be_bytes();
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&b);
        v
    }

    #[test]
    fn t_is_laid_out_byte_for_byte_as_specified() {
        let mut rng = StdRng::seed_from_u64(5);
        let (hb, ha) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let (fb, fa) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let bob = ClientProfile::build_and_sign(
            InstanceTag(0x100),
            &hb,
            &ForgingPublicKey(*fb.public()),
            b"4",
            9,
        );
        let alice = ClientProfile::build_and_sign(
            InstanceTag(0x200),
            &ha,
            &ForgingPublicKey(*fa.public()),
            b"4",
            9,
        );
        let (y, x) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let (b, a) = (DhKeyPair::generate(&mut rng), DhKeyPair::generate(&mut rng));
        let phi = b"some phi bytes";
        let tr = Transcript {
            bob_profile: &bob,
            alice_profile: &alice,
            y: y.public(),
            x: x.public(),
            b: b.public(),
            a: a.public(),
            phi,
        };
        for (t, prefix, first_usage) in [(tr.auth_r(), 0u8, 0x05u8), (tr.auth_i(), 1, 0x08)] {
            let mut expect = vec![prefix];
            expect.extend_from_slice(&h64(first_usage, &bob.encode()));
            expect.extend_from_slice(&h64(first_usage + 1, &alice.encode()));
            expect.extend_from_slice(&y.public().encode());
            expect.extend_from_slice(&x.public().encode());
            expect.extend_from_slice(&mpi(b.public()));
            expect.extend_from_slice(&mpi(a.public()));
            expect.extend_from_slice(&h64(first_usage + 2, phi));
            assert_eq!(t, expect);
        }
        // Swapping the roles changes t: Bob/Alice are not interchangeable.
        let swapped = Transcript {
            bob_profile: &alice,
            alice_profile: &bob,
            ..tr
        };
        assert_ne!(swapped.auth_r(), tr.auth_r());
    }
}
