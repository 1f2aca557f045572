//! ctgrind check that otr4's secret-scalar paths (RFC 8032 §5.2.5–5.2.6 key generation and
//! signing, otrv4.md §"Generating Shared Secrets" ECDH) neither branch nor index on secrets.
//!
//! Secrets are marked undefined with memcheck client requests, so any branch or memory index
//! that depends on them is reported. Run under `valgrind --tool=memcheck` (see README.md);
//! outside valgrind the client requests are no-ops. Each case prints how many memcheck errors
//! it added.

use otr4::hazmat::crypto::ecdh::ecdh;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar, SymmetricKey};
use otr4::hazmat::crypto::eddsa::sign;

/// `VG_USERREQ_TOOL_BASE('M', 'C')` (memcheck.h).
const MC_BASE: usize = ((b'M' as usize) << 24) | ((b'C' as usize) << 16);
const MAKE_MEM_UNDEFINED: usize = MC_BASE + 1;
const MAKE_MEM_DEFINED: usize = MC_BASE + 2;
/// `VG_USERREQ__COUNT_ERRORS` (valgrind.h).
const COUNT_ERRORS: usize = 0x1201;

/// Valgrind's client request (valgrind.h, amd64-linux): a magic rotate sequence that is a
/// no-op on the real CPU, then `xchg rbx, rbx`; `rax` points at the request and its
/// arguments, the result comes back in `rdx` (`default` outside valgrind).
#[cfg(target_arch = "x86_64")]
fn client_request(default: usize, request: usize, a1: usize, a2: usize) -> usize {
    let args: [usize; 6] = [request, a1, a2, 0, 0, 0];
    let mut result = default;
    // SAFETY: the sequence only rotates rdi by 128 bits in total (restoring it) and
    // exchanges rbx with itself; valgrind reads `args`, which lives across the asm block.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") result,
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(default: usize, _: usize, _: usize, _: usize) -> usize {
    default
}

fn mark<T: ?Sized>(v: &T, request: usize) {
    let p = core::ptr::from_ref(v).cast::<u8>() as usize;
    client_request(0, request, p, core::mem::size_of_val(v));
}

fn undefined<T: ?Sized>(v: &T) {
    mark(v, MAKE_MEM_UNDEFINED);
}

fn defined<T: ?Sized>(v: &T) {
    mark(v, MAKE_MEM_DEFINED);
}

fn errors() -> usize {
    client_request(0, COUNT_ERRORS, 0, 0)
}

fn case(name: &str, f: impl FnOnce()) -> usize {
    let before = errors();
    f();
    let added = errors() - before;
    println!("{name}: {added} memcheck error(s) on secret data");
    added
}

fn main() {
    let mut total = 0;
    let sym_bytes = [0x42u8; 57];
    let peer = KeyPair::from_symmetric_key(SymmetricKey::from_bytes([7u8; 57]));

    // Key generation = SHAKE, pruning, reduction mod q and the fixed-base G·s.
    total += case(
        "keygen / fixed-base G·s (KeyPair::from_symmetric_key)",
        || {
            let sym = SymmetricKey::from_bytes(sym_bytes);
            undefined(&sym);
            let kp = KeyPair::from_symmetric_key(sym);
            defined(&kp);
            std::hint::black_box(&kp);
        },
    );

    // EdDSA signing: every byte of the key pair is secret except the public point.
    total += case("EdDSA sign", || {
        let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym_bytes));
        undefined(&kp);
        defined(kp.public());
        let sig = sign(&kp, b"message");
        defined(&sig);
        std::hint::black_box(&sig);
    });

    // Variable-base P·s: the scalar is secret, the point public.
    let s = Scalar::from_bytes_mod_order(&[0x5a; 57]);
    let mut base_report = 0;
    total += case(
        "fixed-base G·s (Point::mul_base, incl. its final identity check)",
        || {
            let s = s.clone();
            undefined(&s);
            let r = Point::mul_base(&s);
            defined(&r);
            base_report = usize::from(r.is_err());
            std::hint::black_box(&r);
        },
    );
    total += case(
        "variable-base P·s (Point::checked_mul, incl. its final identity check)",
        || {
            let s = s.clone();
            undefined(&s);
            let r = peer.public().checked_mul(&s);
            defined(&r);
            std::hint::black_box(&r);
        },
    );
    total += case("ECDH (P·s, encoding, final identity check)", || {
        let s = s.clone();
        undefined(&s);
        let r = ecdh(&s, peer.public());
        defined(&r);
        std::hint::black_box(&r);
    });
    println!("total: {total} (base result was identity: {base_report})");

    // Negative control: the variable-time double multiplication (for public scalars only)
    // must be reported when given a secret, or the harness would prove nothing.
    case(
        "control: vartime G·s + P·s with a secret s (must be > 0)",
        || {
            let s = s.clone();
            undefined(&s);
            let r = Point::vartime_base_mul_add(&s, peer.public(), &s);
            defined(&r);
            std::hint::black_box(&r);
        },
    );
}
