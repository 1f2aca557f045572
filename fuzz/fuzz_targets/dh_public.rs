//! Fuzzes the DH group-membership check (`DhPublic::from_be_bytes`, otr4's own binary
//! Jacobi symbol) against an independent oracle (range check and crypto-bigint's Jacobi
//! symbol): never panics, always agrees, and an accepted value re-encodes to its minimal
//! big-endian form and round-trips as an MPI.
#![no_main]

use crypto_bigint::{JacobiSymbol, Odd, U3072};
use libfuzzer_sys::fuzz_target;
use otr4::hazmat::crypto::dh::DhPublic;
use otr4::hazmat::wire::codec::{Reader, Writer};

/// dh_p (RFC 3526 §4).
const DH_P: Odd<U3072> = Odd::<U3072>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// 2 <= x <= p - 2 and (x | p) = 1, for at most 384 big-endian bytes.
fn oracle(data: &[u8]) -> bool {
    if data.len() > 384 {
        return false;
    }
    let mut buf = [0u8; 384];
    buf[384 - data.len()..].copy_from_slice(data);
    let x = U3072::from_be_slice(&buf);
    let p_minus_2 = DH_P.as_ref().wrapping_sub(&U3072::from_u8(2));
    x >= U3072::from_u8(2) && x <= p_minus_2 && x.jacobi_symbol_vartime(&DH_P) == JacobiSymbol::One
}

fuzz_target!(|data: &[u8]| {
    let fast = DhPublic::from_be_bytes(data);
    assert_eq!(
        fast.is_ok(),
        oracle(data),
        "group check disagrees with the oracle"
    );
    if let Ok(x) = fast {
        let start = data.iter().position(|b| *b != 0).unwrap_or(data.len());
        assert_eq!(x.to_be_bytes(), data[start..]);
        let mut bytes = Vec::new();
        bytes.dh_public(&x);
        assert_eq!(Reader::new(&bytes).dh_public("x"), Ok(x));
    }
    let _ = Reader::new(data).dh_public("x");
});
