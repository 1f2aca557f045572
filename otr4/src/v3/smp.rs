//! The Socialist Millionaires' Protocol of OTRv3 over the 1536-bit group (Protocol-v3.html
//! §"The Socialist Millionaires' Protocol (SMP)", §"The SMP state machine"): TLVs 2–7.
//!
//! Sans-IO: [`Smp`] takes received SMP TLVs and user actions and returns the TLVs to send
//! (inside the next data message) and what to tell the user. Every received group element is
//! range-checked, every zero-knowledge proof verified, before anything is computed with it.

use alloc::vec::Vec;

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U1536};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::group::{self, G, MODULUS_LEN};
use super::pubkey::FINGERPRINT_LEN;
use super::tlv::{V3Tlv, V3TlvType};
use crate::debug::redacted_debug;
use crate::wire::codec::{DecodeError, Reader, Writer};

/// The group order `q = (p - 1) / 2` (Protocol-v3.html §"Receiving a type 2 TLV": "the D
/// values are calculated modulo q").
const Q: Odd<U1536> = Odd::<U1536>::from_be_hex(concat!(
    "7FFFFFFFFFFFFFFFE487ED5110B4611A62633145C06E0E68948127044533E63A0105DF531D89CD9128A5043CC71A026E",
    "F7CA8CD9E69D218D98158536F92F8A1BA7F09AB6B6A8E122F242DABB312F3F637A262174D31BF6B585FFAE5B7A035BF6",
    "F71C35FDAD44CFD2D74F9208BE258FF324943328F6722D9EE1003E5C50B1DF82CC6D241B0E2AE9CD348B1FD47E9267AF",
    "C1B2AE91EE51D6CB0E3179AB1042A95DCF6A9483B84B4B36B3861AA7255E4C0278BA36046511B993FFFFFFFFFFFFFFFF",
));
/// Montgomery parameters of `q`, for the `D` values.
static Q_PARAMS: FixedMontyParams<{ U1536::LIMBS }> = FixedMontyParams::new_vartime(Q);
/// `p - 2`, the exponent that inverts modulo `p`.
const P_MINUS_2: U1536 = group::P.as_ref().wrapping_sub(&U1536::from_u8(2));

/// The SMP version byte of the secret's hash input (§"Secret information").
const SECRET_VERSION: u8 = 1;
/// MPIs in SMP messages 1, 2, 3 and 4.
const COUNTS: [u32; 4] = [6, 11, 8, 3];

/// A secret exponent or the hashed secret; zeroized on drop.
type Secret = Zeroizing<U1536>;

/// Why an SMP message was refused. The exchange is reset and an abort TLV is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmpError {
    /// The TLV's value does not decode (count, MPI sizes, trailing bytes).
    #[error("malformed SMP message: {0}")]
    Decode(DecodeError),
    /// A group element is outside `[2, p - 2]`.
    #[error("SMP group element out of range")]
    BadGroupElement,
    /// A `D` value is outside `[1, q - 1]`.
    #[error("SMP exponent out of range")]
    BadExponent,
    /// A zero-knowledge proof does not verify (the peer cheated, or the message was altered).
    #[error("SMP zero-knowledge proof does not verify")]
    BadProof,
    /// [`Smp::respond`] without a pending request.
    #[error("no SMP request is waiting for an answer")]
    NothingToAnswer,
}

/// What the user should be told after an SMP step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmpEvent {
    /// The peer asks to compare secrets; answer with [`Smp::respond`] (or [`Smp::abort`]).
    SecretRequested {
        /// The peer's question (SMP message 1Q), as sent.
        question: Option<Vec<u8>>,
    },
    /// The exchange finished: whether both sides entered the same secret.
    Finished {
        /// Whether the secrets matched (the peer is who the user thinks).
        verified: bool,
    },
    /// The peer aborted the exchange (TLV 6).
    AbortedByPeer,
    /// A message arrived that the current state does not expect; an abort was sent
    /// (§"The SMP state machine": "set smpstate to SMPSTATE_EXPECT1 and send … SMP abort").
    OutOfOrder,
    /// A received message was refused; an abort was sent.
    Failed(SmpError),
}

/// The result of handling one received TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpStep {
    /// The TLV to send back in the next data message, if any.
    pub reply: Option<V3Tlv>,
    /// What to tell the user, if anything.
    pub event: Option<SmpEvent>,
}

/// What both sides put into the secret besides the user's input (§"Secret information").
#[derive(Debug, Clone, Copy)]
pub struct SmpContext {
    /// Our long-term DSA key's fingerprint in this conversation.
    pub our_fingerprint: [u8; FINGERPRINT_LEN],
    /// The peer's fingerprint in this conversation.
    pub their_fingerprint: [u8; FINGERPRINT_LEN],
    /// The session's secure session id (from the AKE).
    pub ssid: [u8; 8],
}

impl SmpContext {
    /// `x` or `y`: SHA256(1, initiator fingerprint, responder fingerprint, ssid, input).
    fn secret(&self, we_started: bool, input: &[u8]) -> Secret {
        let (first, second) = if we_started {
            (&self.our_fingerprint, &self.their_fingerprint)
        } else {
            (&self.their_fingerprint, &self.our_fingerprint)
        };
        let digest = Sha256::new()
            .chain_update([SECRET_VERSION])
            .chain_update(first)
            .chain_update(second)
            .chain_update(self.ssid)
            .chain_update(input)
            .finalize();
        Zeroizing::new(from_be(&digest))
    }
}

/// §"The SMP state machine" (SMPSTATE_EXPECT1…4), plus the responder waiting for the user's
/// secret between message 1 and message 2.
#[allow(clippy::large_enum_variant)] // one per conversation, replaced in place
enum State {
    Expect1,
    /// Message 1 verified; waiting for the user's secret.
    AwaitingSecret {
        g2a: U1536,
        g3a: U1536,
    },
    Expect2 {
        x: Secret,
        a2: Secret,
        a3: Secret,
    },
    Expect3 {
        g3a: U1536,
        g2: U1536,
        g3: U1536,
        b3: Secret,
        pb: U1536,
        qb: U1536,
    },
    Expect4 {
        g3b: U1536,
        pa_pb: U1536,
        qa_qb: U1536,
        a3: Secret,
    },
}

/// One conversation's SMP state.
pub struct Smp {
    state: State,
}

redacted_debug!(Smp);

impl Default for Smp {
    fn default() -> Self {
        Smp {
            state: State::Expect1,
        }
    }
}

fn from_be(be: &[u8]) -> U1536 {
    group::decode_be(be).unwrap_or(U1536::ZERO)
}

/// `base ^ e mod p` for a secret `e` (constant time over all 1536 bits).
fn pow(base: &U1536, e: &U1536) -> U1536 {
    group::pow_secret(base, e)
}

/// `base ^ e mod p` for a public `e` (a received `D` or `c`, or `p - 2`): only `e`'s
/// significant bits are processed, which reveals nothing that is not on the wire.
fn pow_public(base: &U1536, e: &U1536) -> U1536 {
    FixedMontyForm::new(base, group::params())
        .pow_bounded_exp(e, e.bit_width_vartime())
        .retrieve()
}

fn mul(a: &U1536, b: &U1536) -> U1536 {
    let params = group::params();
    (FixedMontyForm::new(a, params) * FixedMontyForm::new(b, params)).retrieve()
}

/// `a / b mod p` (`b` is a checked group element, so invertible).
fn div(a: &U1536, b: &U1536) -> U1536 {
    mul(a, &pow_public(b, &P_MINUS_2))
}

/// `r - a·c mod q`, in constant time in `r` and `a`.
fn d_value(r: &U1536, a: &U1536, c: &U1536) -> U1536 {
    let m = |v: &U1536| FixedMontyForm::new(v, &Q_PARAMS);
    (m(r) - m(a) * m(c)).retrieve()
}

/// The SMP hash: SHA256(version, MPI(a) [, MPI(b)]) as a number (§"SMP Hash function").
fn hash(version: u8, a: &U1536, b: Option<&U1536>) -> U1536 {
    let mut w = Vec::with_capacity(1 + 2 * (4 + MODULUS_LEN));
    w.push(version);
    w.mpi(&a.to_be_bytes());
    if let Some(b) = b {
        w.mpi(&b.to_be_bytes());
    }
    from_be(&Sha256::digest(&w))
}

/// A fresh 1536-bit random exponent (the spec's size).
fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Secret {
    let mut b = Zeroizing::new([0u8; MODULUS_LEN]);
    rng.fill_bytes(&mut *b);
    Zeroizing::new(U1536::from_be_slice(&*b))
}

fn check_group(v: &U1536) -> Result<(), SmpError> {
    if group::in_range(v) {
        Ok(())
    } else {
        Err(SmpError::BadGroupElement)
    }
}

fn check_exponent(d: &U1536) -> Result<(), SmpError> {
    if d >= &U1536::ONE && d < Q.as_ref() {
        Ok(())
    } else {
        Err(SmpError::BadExponent)
    }
}

/// Proof check `c == SHA256(v, g1^D · g^c)` for the knowledge of `log g`.
fn check_log_proof(version: u8, g: &U1536, c: &U1536, d: &U1536) -> Result<(), SmpError> {
    check_exponent(d)?;
    let lhs = hash(version, &mul(&pow_public(&G, d), &pow_public(g, c)), None);
    eq(&lhs, c)
}

fn eq(a: &U1536, b: &U1536) -> Result<(), SmpError> {
    if bool::from(a.to_be_bytes().as_ref().ct_eq(b.to_be_bytes().as_ref())) {
        Ok(())
    } else {
        Err(SmpError::BadProof)
    }
}

/// The TLV value: a 4-byte count then that many MPIs (§"SMP message 1" … "4").
fn encode(values: &[&U1536]) -> Vec<u8> {
    let mut w = Vec::with_capacity(4 + values.len() * (4 + MODULUS_LEN));
    w.u32(u32::try_from(values.len()).unwrap_or(u32::MAX));
    for v in values {
        w.mpi(&v.to_be_bytes());
    }
    w
}

/// Decodes a TLV value holding exactly `count` MPIs of at most 192 bytes.
fn decode(value: &[u8], count: u32) -> Result<Vec<U1536>, SmpError> {
    let mut r = Reader::new(value);
    let n = r.u32("SMP count").map_err(SmpError::Decode)?;
    if n != count {
        return Err(SmpError::Decode(DecodeError::BadValue("SMP value count")));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let be = r
            .mpi_max("SMP value", MODULUS_LEN)
            .map_err(SmpError::Decode)?;
        out.push(from_be(be));
    }
    r.finish().map_err(SmpError::Decode)?;
    Ok(out)
}

fn tlv(typ: V3TlvType, value: Vec<u8>) -> V3Tlv {
    V3Tlv { typ, value }
}

/// The abort TLV (type 6, empty).
fn abort_tlv() -> V3Tlv {
    tlv(V3TlvType::SmpAbort, Vec::new())
}

impl Smp {
    /// A conversation's SMP state before any exchange (SMPSTATE_EXPECT1).
    pub fn new() -> Smp {
        Smp::default()
    }

    /// Whether an exchange is under way (or waiting for the user's answer).
    pub fn in_progress(&self) -> bool {
        !matches!(self.state, State::Expect1)
    }

    /// The user starts an exchange with `secret` (and a question for the peer): SMP message
    /// 1 (TLV 2), or 1Q (TLV 7) with a question (§"User requests to begin SMP"). An exchange
    /// under way is dropped; send the returned abort first when one is given.
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &SmpContext,
        secret: &[u8],
        question: Option<&[u8]>,
        rng: &mut R,
    ) -> (Option<V3Tlv>, V3Tlv) {
        let restart = self.in_progress().then(abort_tlv);
        let x = ctx.secret(true, secret);
        let (a2, a3, r2, r3) = (random(rng), random(rng), random(rng), random(rng));
        let g2a = pow(&G, &a2);
        let g3a = pow(&G, &a3);
        let c2 = hash(1, &pow(&G, &r2), None);
        let d2 = d_value(&r2, &a2, &c2);
        let c3 = hash(2, &pow(&G, &r3), None);
        let d3 = d_value(&r3, &a3, &c3);
        let body = encode(&[&g2a, &c2, &d2, &g3a, &c3, &d3]);
        self.state = State::Expect2 { x, a2, a3 };
        let msg = match question {
            Some(q) => {
                let mut v = Vec::with_capacity(q.len() + 1 + body.len());
                v.extend(q.iter().copied().take_while(|&b| b != 0));
                v.push(0);
                v.extend(body);
                tlv(V3TlvType::Smp1Q, v)
            }
            None => tlv(V3TlvType::Smp1, body),
        };
        (restart, msg)
    }

    /// The user aborts (§"User requests to abort SMP"): the abort TLV to send.
    pub fn abort(&mut self) -> V3Tlv {
        self.state = State::Expect1;
        abort_tlv()
    }

    /// The user answers a [`SmpEvent::SecretRequested`] with `secret`: SMP message 2.
    pub fn respond<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &SmpContext,
        secret: &[u8],
        rng: &mut R,
    ) -> Result<V3Tlv, SmpError> {
        let State::AwaitingSecret { g2a, g3a } = self.state else {
            return Err(SmpError::NothingToAnswer);
        };
        let y = ctx.secret(false, secret);
        let [b2, b3, r2, r3, r4, r5, r6] = core::array::from_fn(|_| random(rng));
        let g2b = pow(&G, &b2);
        let g3b = pow(&G, &b3);
        let c2 = hash(3, &pow(&G, &r2), None);
        let d2 = d_value(&r2, &b2, &c2);
        let c3 = hash(4, &pow(&G, &r3), None);
        let d3 = d_value(&r3, &b3, &c3);
        let g2 = pow(&g2a, &b2);
        let g3 = pow(&g3a, &b3);
        let pb = pow(&g3, &r4);
        let qb = mul(&pow(&G, &r4), &pow(&g2, &y));
        let cp = hash(5, &pow(&g3, &r5), Some(&mul(&pow(&G, &r5), &pow(&g2, &r6))));
        let d5 = d_value(&r5, &r4, &cp);
        let d6 = d_value(&r6, &y, &cp);
        self.state = State::Expect3 {
            g3a,
            g2,
            g3,
            b3,
            pb,
            qb,
        };
        Ok(tlv(
            V3TlvType::Smp2,
            encode(&[&g2b, &c2, &d2, &g3b, &c3, &d3, &pb, &qb, &cp, &d5, &d6]),
        ))
    }

    /// Handles one received TLV; TLVs other than SMP (types 2–7) are ignored.
    pub fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        tlv: &V3Tlv,
        rng: &mut R,
    ) -> SmpStep {
        let done = |event| SmpStep {
            reply: None,
            event: Some(event),
        };
        let refuse = |s: &mut Smp, event| {
            s.state = State::Expect1;
            SmpStep {
                reply: Some(abort_tlv()),
                event: Some(event),
            }
        };
        let state = core::mem::replace(&mut self.state, State::Expect1);
        let result = match (tlv.typ, state) {
            (V3TlvType::SmpAbort, _) => return done(SmpEvent::AbortedByPeer),
            (V3TlvType::Smp1 | V3TlvType::Smp1Q, State::Expect1) => self.receive_1(tlv).map(done),
            (V3TlvType::Smp2, State::Expect2 { x, a2, a3 }) => self
                .receive_2(&tlv.value, &x, &a2, &a3, rng)
                .map(|reply| SmpStep {
                    reply: Some(reply),
                    event: None,
                }),
            (
                V3TlvType::Smp3,
                State::Expect3 {
                    g3a,
                    g2,
                    g3,
                    b3,
                    pb,
                    qb,
                },
            ) => receive_3(&tlv.value, &g3a, &g2, &g3, &b3, &pb, &qb, rng).map(
                |(reply, verified)| SmpStep {
                    reply: Some(reply),
                    event: Some(SmpEvent::Finished { verified }),
                },
            ),
            (
                V3TlvType::Smp4,
                State::Expect4 {
                    g3b,
                    pa_pb,
                    qa_qb,
                    a3,
                },
            ) => receive_4(&tlv.value, &g3b, &pa_pb, &qa_qb, &a3)
                .map(|verified| done(SmpEvent::Finished { verified })),
            (
                V3TlvType::Smp1
                | V3TlvType::Smp1Q
                | V3TlvType::Smp2
                | V3TlvType::Smp3
                | V3TlvType::Smp4,
                _,
            ) => return refuse(self, SmpEvent::OutOfOrder),
            (_, state) => {
                // Not an SMP TLV: nothing changes.
                self.state = state;
                return SmpStep {
                    reply: None,
                    event: None,
                };
            }
        };
        result.unwrap_or_else(|e| refuse(self, SmpEvent::Failed(e)))
    }

    /// §"Receiving a type 2 TLV (SMP message 1)" (and 1Q): verify, then wait for the user.
    fn receive_1(&mut self, tlv: &V3Tlv) -> Result<SmpEvent, SmpError> {
        let (question, body) = match tlv.typ {
            V3TlvType::Smp1Q => {
                let nul = tlv
                    .value
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(SmpError::Decode(DecodeError::BadValue("SMP question")))?;
                let (q, rest) = tlv.value.split_at(nul);
                (Some(q.to_vec()), rest.get(1..).unwrap_or_default())
            }
            _ => (None, &tlv.value[..]),
        };
        let v = decode(body, COUNTS[0])?;
        let [g2a, c2, d2, g3a, c3, d3] = v.as_slice() else {
            return Err(SmpError::Decode(DecodeError::BadValue("SMP value count")));
        };
        check_group(g2a)?;
        check_group(g3a)?;
        check_log_proof(1, g2a, c2, d2)?;
        check_log_proof(2, g3a, c3, d3)?;
        self.state = State::AwaitingSecret {
            g2a: *g2a,
            g3a: *g3a,
        };
        Ok(SmpEvent::SecretRequested { question })
    }

    /// §"Receiving a type 3 TLV (SMP message 2)": verify, then SMP message 3.
    fn receive_2<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        value: &[u8],
        x: &U1536,
        a2: &U1536,
        a3: &Secret,
        rng: &mut R,
    ) -> Result<V3Tlv, SmpError> {
        let v = decode(value, COUNTS[1])?;
        let [g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6] = v.as_slice() else {
            return Err(SmpError::Decode(DecodeError::BadValue("SMP value count")));
        };
        for e in [g2b, g3b, pb, qb] {
            check_group(e)?;
        }
        check_log_proof(3, g2b, c2, d2)?;
        check_log_proof(4, g3b, c3, d3)?;
        let g2 = pow(g2b, a2);
        let g3 = pow(g3b, a3);
        check_exponent(d5)?;
        check_exponent(d6)?;
        let lhs = hash(
            5,
            &mul(&pow_public(&g3, d5), &pow_public(pb, cp)),
            Some(&mul(
                &mul(&pow_public(&G, d5), &pow_public(&g2, d6)),
                &pow_public(qb, cp),
            )),
        );
        eq(&lhs, cp)?;

        let [r4, r5, r6, r7] = core::array::from_fn(|_| random(rng));
        let pa = pow(&g3, &r4);
        let qa = mul(&pow(&G, &r4), &pow(&g2, x));
        let cp = hash(6, &pow(&g3, &r5), Some(&mul(&pow(&G, &r5), &pow(&g2, &r6))));
        let d5 = d_value(&r5, &r4, &cp);
        let d6 = d_value(&r6, x, &cp);
        let qa_qb = div(&qa, qb);
        let ra = pow(&qa_qb, a3);
        let cr = hash(7, &pow(&G, &r7), Some(&pow(&qa_qb, &r7)));
        let d7 = d_value(&r7, a3, &cr);
        self.state = State::Expect4 {
            g3b: *g3b,
            pa_pb: div(&pa, pb),
            qa_qb,
            a3: a3.clone(),
        };
        Ok(tlv(
            V3TlvType::Smp3,
            encode(&[&pa, &qa, &cp, &d5, &d6, &ra, &cr, &d7]),
        ))
    }
}

/// §"Receiving a type 4 TLV (SMP message 3)": verify, answer with SMP message 4, and
/// compare.
#[allow(clippy::too_many_arguments)] // the stored values the spec lists
fn receive_3<R: rand_core::CryptoRng + ?Sized>(
    value: &[u8],
    g3a: &U1536,
    g2: &U1536,
    g3: &U1536,
    b3: &U1536,
    pb: &U1536,
    qb: &U1536,
    rng: &mut R,
) -> Result<(V3Tlv, bool), SmpError> {
    let v = decode(value, COUNTS[2])?;
    let [pa, qa, cp, d5, d6, ra, cr, d7] = v.as_slice() else {
        return Err(SmpError::Decode(DecodeError::BadValue("SMP value count")));
    };
    for e in [pa, qa, ra] {
        check_group(e)?;
    }
    for d in [d5, d6, d7] {
        check_exponent(d)?;
    }
    let lhs = hash(
        6,
        &mul(&pow_public(g3, d5), &pow_public(pa, cp)),
        Some(&mul(
            &mul(&pow_public(&G, d5), &pow_public(g2, d6)),
            &pow_public(qa, cp),
        )),
    );
    eq(&lhs, cp)?;
    let qa_qb = div(qa, qb);
    let lhs = hash(
        7,
        &mul(&pow_public(&G, d7), &pow_public(g3a, cr)),
        Some(&mul(&pow_public(&qa_qb, d7), &pow_public(ra, cr))),
    );
    eq(&lhs, cr)?;

    let r7 = random(rng);
    let rb = pow(&qa_qb, b3);
    let cr = hash(8, &pow(&G, &r7), Some(&pow(&qa_qb, &r7)));
    let d7 = d_value(&r7, b3, &cr);
    let rab = pow(ra, b3);
    let verified = eq(&div(pa, pb), &rab).is_ok();
    Ok((tlv(V3TlvType::Smp4, encode(&[&rb, &cr, &d7])), verified))
}

/// §"Receiving a type 5 TLV (SMP message 4)": verify and compare.
fn receive_4(
    value: &[u8],
    g3b: &U1536,
    pa_pb: &U1536,
    qa_qb: &U1536,
    a3: &U1536,
) -> Result<bool, SmpError> {
    let v = decode(value, COUNTS[3])?;
    let [rb, cr, d7] = v.as_slice() else {
        return Err(SmpError::Decode(DecodeError::BadValue("SMP value count")));
    };
    check_group(rb)?;
    check_exponent(d7)?;
    let lhs = hash(
        8,
        &mul(&pow_public(&G, d7), &pow_public(g3b, cr)),
        Some(&mul(&pow_public(qa_qb, d7), &pow_public(rb, cr))),
    );
    eq(&lhs, cr)?;
    let rab = pow(rb, a3);
    Ok(eq(pa_pb, &rab).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn contexts() -> (SmpContext, SmpContext) {
        let a = SmpContext {
            our_fingerprint: [1; 20],
            their_fingerprint: [2; 20],
            ssid: [9; 8],
        };
        let b = SmpContext {
            our_fingerprint: [2; 20],
            their_fingerprint: [1; 20],
            ssid: [9; 8],
        };
        (a, b)
    }

    /// Runs a whole exchange; returns both sides' results.
    fn run(alice_secret: &[u8], bob_secret: &[u8], question: Option<&[u8]>) -> (bool, bool) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (ca, cb) = contexts();
        let (mut alice, mut bob) = (Smp::new(), Smp::new());
        let (restart, m1) = alice.start(&ca, alice_secret, question, &mut rng);
        assert!(restart.is_none());
        let step = bob.receive(&m1, &mut rng);
        assert_eq!(
            step.event,
            Some(SmpEvent::SecretRequested {
                question: question.map(<[u8]>::to_vec)
            })
        );
        let m2 = bob.respond(&cb, bob_secret, &mut rng).unwrap();
        let m3 = alice.receive(&m2, &mut rng).reply.unwrap();
        let step = bob.receive(&m3, &mut rng);
        let Some(SmpEvent::Finished { verified: bob_ok }) = step.event else {
            panic!("{step:?}")
        };
        let step4 = alice.receive(&step.reply.unwrap(), &mut rng);
        let Some(SmpEvent::Finished { verified: alice_ok }) = step4.event else {
            panic!("{step4:?}")
        };
        assert!(!alice.in_progress() && !bob.in_progress());
        (alice_ok, bob_ok)
    }

    #[test]
    fn same_secret_verifies_and_different_secret_does_not() {
        assert_eq!(run(b"shared", b"shared", None), (true, true));
        assert_eq!(
            run(b"shared", b"other", Some(b"Where did we meet?")),
            (false, false)
        );
    }

    #[test]
    fn tampered_or_out_of_order_messages_abort() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (ca, cb) = contexts();
        let mut alice = Smp::new();
        let (_, m1) = alice.start(&ca, b"s", None, &mut rng);
        // Any byte of message 1 changed: refused with an abort, the state reset.
        for i in [4usize, 100, 300, m1.value.len() - 1] {
            let mut bad = m1.clone();
            bad.value[i] ^= 1;
            let mut bob = Smp::new();
            let step = bob.receive(&bad, &mut rng);
            assert_eq!(step.reply, Some(abort_tlv()), "byte {i}");
            assert!(matches!(step.event, Some(SmpEvent::Failed(_))), "byte {i}");
            assert!(!bob.in_progress());
        }
        // A group element 1 is refused before any proof is checked.
        let mut v = decode(&m1.value, 6).unwrap();
        v[0] = U1536::ONE;
        let bad = tlv(V3TlvType::Smp1, encode(&v.iter().collect::<Vec<_>>()));
        assert_eq!(
            Smp::new().receive(&bad, &mut rng).event,
            Some(SmpEvent::Failed(SmpError::BadGroupElement))
        );
        // Message 3 with no exchange: out of order, aborted.
        let mut bob = Smp::new();
        let m3 = tlv(V3TlvType::Smp3, encode(&[&U1536::ONE; 8]));
        let step = bob.receive(&m3, &mut rng);
        assert_eq!(
            (step.reply, step.event),
            (Some(abort_tlv()), Some(SmpEvent::OutOfOrder))
        );
        // The peer's abort resets; respond without a request is an error.
        assert!(bob.receive(&m1, &mut rng).event.is_some());
        assert_eq!(
            bob.receive(&abort_tlv(), &mut rng).event,
            Some(SmpEvent::AbortedByPeer)
        );
        assert_eq!(
            bob.respond(&cb, b"s", &mut rng).err(),
            Some(SmpError::NothingToAnswer)
        );
        // Wrong count, trailing bytes.
        let mut extra = m1.clone();
        extra.value.push(0);
        assert_eq!(
            Smp::new().receive(&extra, &mut rng).event,
            Some(SmpEvent::Failed(SmpError::Decode(
                DecodeError::TrailingBytes(1)
            )))
        );
        // Other TLVs pass through untouched.
        let pad = tlv(V3TlvType::Padding, vec![0; 3]);
        assert_eq!(
            alice.receive(&pad, &mut rng),
            SmpStep {
                reply: None,
                event: None
            }
        );
        assert!(alice.in_progress());
    }

    #[test]
    fn q_is_half_of_p_minus_one() {
        let two_q_plus_1 = Q
            .as_ref()
            .wrapping_add(Q.as_ref())
            .wrapping_add(&U1536::ONE);
        assert_eq!(&two_q_plus_1, group::P.as_ref());
    }
}
