//! The Socialist Millionaires Protocol over Ed448 (otrv4.md §"Socialist Millionaires
//! Protocol (SMP)"): secret derivation, zero-knowledge proofs and the sans-IO SMP state machine.
//!
//! [`Smp`] consumes and produces [`Tlv`] records (types 2–6); the session layer carries them
//! inside encrypted Data Messages and must call [`Smp::reset`] when it leaves
//! `ENCRYPTED_MESSAGES`.

pub mod messages;

use crate::debug::redacted_debug;
use crate::wire::codec::Codec;

use crate::crypto::edwards::{EdwardsPoint, vartime_multiscalar_mul};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::ed448::{Point, Scalar, encode_point, prune, random_pruned_scalar};
use crate::crypto::fingerprint::{FINGERPRINT_LEN, Fingerprint};
use crate::crypto::kdf::{DOMAIN_OTRV4, Usage, shake_into};
use crate::wire::codec::DecodeError;
use crate::wire::tlv::{Tlv, TlvType};

pub use messages::{MAX_QUESTION_LEN, SmpMessage1, SmpMessage2, SmpMessage3, SmpMessage4};
// For the tests and fuzz targets (`otr4::hazmat`).
#[cfg(feature = "hazmat")]
pub use messages::{SMP_MESSAGE_2_LEN, SMP_MESSAGE_3_LEN, SMP_MESSAGE_4_LEN};

/// The SMP version hashed into the secret (otrv4.md §"Secret Information": "The version
/// described here is 1").
pub const SMP_VERSION: u8 = 1;

/// Bytes of the Secure Session ID hashed into the secret.
pub const SSID_LEN: usize = 8;

/// Why an SMP operation failed or why the state machine aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmpError {
    /// `Smp::receive` was given a TLV whose type is not 2–6.
    #[error("TLV of type {0:?} is not an SMP TLV")]
    NotSmpTlv(TlvType),
    /// The TLV value of an SMP message did not decode (bad length, invalid point, …).
    #[error("malformed SMP message: {0}")]
    Decode(#[from] DecodeError),
    /// An SMP message arrived in a state that does not expect it.
    #[error("SMP message {received} received in state {state:?}")]
    UnexpectedMessage {
        /// The message number (1–4).
        received: u8,
        /// The state it arrived in.
        state: SmpState,
    },
    /// A zero-knowledge proof of the peer did not verify; names the challenge checked.
    #[error("SMP zero-knowledge proof {0} did not verify")]
    BadProof(&'static str),
    /// A computed point degenerated to the identity element (otrv4.md §"Verifying that a
    /// point is on the curve"); names the value.
    #[error("SMP value {0} degenerated to the identity")]
    Degenerate(&'static str),
    /// `Smp::start` was called while an exchange is underway; call `Smp::abort` first to
    /// restart (otrv4.md §"User requests to begin SMP").
    #[error("an SMP exchange is already in progress")]
    InProgress,
    /// `Smp::respond` was called without a verified SMP message 1 awaiting an answer.
    #[error("no SMP message 1 is awaiting an answer")]
    NoPendingRequest,
    /// The question does not fit in a TLV.
    #[error("SMP question of {len} bytes exceeds the {max}-byte limit")]
    QuestionTooLong {
        /// The question's length.
        len: usize,
        /// `MAX_QUESTION_LEN`.
        max: usize,
    },
    /// The user-specified secret is longer than a DATA field can encode.
    #[error("SMP secret is longer than a DATA field allows")]
    SecretTooLong,
}

/// The SMP states of otrv4.md §"The SMP State Machine".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmpState {
    /// `SMPSTATE_EXPECT1`: no exchange underway (possibly with a verified message 1
    /// awaiting the user's answer, see `Smp::awaiting_secret`).
    Expect1,
    /// `SMPSTATE_EXPECT2`: we sent message 1.
    Expect2,
    /// `SMPSTATE_EXPECT3`: we sent message 2.
    Expect3,
    /// `SMPSTATE_EXPECT4`: we sent message 3.
    Expect4,
}

/// The conversation-specific inputs to the SMP secret (otrv4.md §"Secret Information").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpContext {
    /// The fingerprint of our long-term key and forging key in this conversation.
    pub our_fingerprint: Fingerprint,
    /// The fingerprint the peer uses in this conversation.
    pub their_fingerprint: Fingerprint,
    /// The Secure Session ID of the DAKE that established the conversation.
    pub ssid: [u8; SSID_LEN],
}

/// What the caller must do after [`Smp::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpEvent {
    /// A valid SMP message 1 arrived: ask the user for the secret (showing `question`, if
    /// any) and pass it to [`Smp::respond`].
    AskForSecret {
        /// The peer's question; `None` when the question field was empty.
        question: Option<alloc::vec::Vec<u8>>,
    },
    /// A valid SMP message 2 arrived: send this SMP message 3.
    SendTlv(Tlv),
    /// The exchange completed and the secrets are equal. `reply` is SMP message 4 to send
    /// when we are the responder; `None` when we are the initiator.
    Succeeded {
        /// The TLV to send, if any.
        reply: Option<Tlv>,
    },
    /// The exchange completed and the secrets differ. `reply` as in
    /// [`SmpEvent::Succeeded`].
    Failed {
        /// The TLV to send, if any.
        reply: Option<Tlv>,
    },
    /// The peer sent an SMP abort (type 6); the state is back to `SMPSTATE_EXPECT1`.
    AbortedByPeer,
    /// The message was unexpected, malformed or its proofs failed: send `send` (an SMP
    /// abort TLV); the state is back to `SMPSTATE_EXPECT1`.
    Aborted {
        /// The SMP abort TLV to send.
        send: Tlv,
        /// Why the exchange was aborted.
        reason: SmpError,
    },
}

/// `HashToScalar(i || v)` of otrv4.md §"SMP Hash Function" and §"HashToScalar":
/// `SHAKE-256("OTRv4" || i || v, 57)` read as a little-endian integer mod q, where the
/// integer `i` (1–8) takes the place of the usage ID and `v` is the concatenation of `parts`.
pub fn smp_hash(i: u8, parts: &[&[u8]]) -> Scalar {
    let mut h = Zeroizing::new([0u8; 57]);
    shake_into(DOMAIN_OTRV4, i, parts, h.as_mut());
    Scalar::from_bytes_mod_order(&h)
}

/// `HashToScalar(i || enc(A) [|| enc(B)])` over group elements (identity allowed: a forged
/// proof may produce it, and it then simply fails to match).
fn hash_points(i: u8, a: &EdwardsPoint, b: Option<&EdwardsPoint>) -> Scalar {
    let ea = encode_point(a);
    match b {
        Some(b) => smp_hash(i, &[&ea, &encode_point(b)]),
        None => smp_hash(i, &[&ea]),
    }
}

/// The SMP secret `x` or `y` (otrv4.md §"Secret Information"):
/// `HWC(usage_SMP_secret || 0x01 || initiator fingerprint (56) || responder fingerprint (56)
/// || SSID (8) || DATA(secret), 57)`, pruned as in §"Considerations while working with
/// elliptic curve parameters", read little-endian and reduced mod q.
///
/// `secret` is the user's input encoded as UTF-8.
pub fn smp_secret(
    initiator: &Fingerprint,
    responder: &Fingerprint,
    ssid: &[u8; SSID_LEN],
    secret: &[u8],
) -> Result<Scalar, SmpError> {
    let len = u32::try_from(secret.len()).map_err(|_| SmpError::SecretTooLong)?;
    let init: &[u8; FINGERPRINT_LEN] = initiator.as_bytes();
    let resp: &[u8; FINGERPRINT_LEN] = responder.as_bytes();
    let mut h = Zeroizing::new([0u8; 57]);
    shake_into(
        DOMAIN_OTRV4,
        Usage::SmpSecret as u8,
        &[&[SMP_VERSION], init, resp, ssid, &len.to_be_bytes(), secret],
        h.as_mut(),
    );
    prune(&mut h);
    Ok(Scalar::from_bytes_mod_order(&h))
}

/// `G * a + P * b` as a raw group element (identity allowed), for proof verification:
/// variable time, so `a` and `b` must be public (they come from the received message).
fn base_plus(a: &Scalar, p: &EdwardsPoint, b: &Scalar) -> EdwardsPoint {
    vartime_multiscalar_mul(Some(&a.0), [(&b.0, p)])
}

/// Checks a challenge in variable time (all inputs of a proof check are public).
fn check(expected: &Scalar, computed: &Scalar, what: &'static str) -> Result<(), SmpError> {
    if expected == computed {
        Ok(())
    } else {
        Err(SmpError::BadProof(what))
    }
}

/// A non-identity point from a computed group element.
fn nondegenerate(p: EdwardsPoint, what: &'static str) -> Result<Point, SmpError> {
    if bool::from(p.is_identity()) {
        Err(SmpError::Degenerate(what))
    } else {
        Ok(Point(p))
    }
}

/// The internal state; secrets are [`Scalar`]s, which zeroize on drop. One long-lived
/// value per conversation, so the variants are kept inline rather than boxed.
#[allow(clippy::large_enum_variant)]
enum Inner {
    /// `SMPSTATE_EXPECT1`, nothing pending.
    Expect1,
    /// `SMPSTATE_EXPECT1` with a verified message 1 waiting for the user's secret.
    AwaitingSecret { g2a: Point, g3a: Point },
    /// `SMPSTATE_EXPECT2` (initiator): `x`, `a2`, `a3`.
    Expect2 { x: Scalar, a2: Scalar, a3: Scalar },
    /// `SMPSTATE_EXPECT3` (responder): `G3a`, `G2`, `G3`, `b3`, `Pb`, `Qb`.
    Expect3 {
        g3a: Point,
        g2: Point,
        g3: Point,
        b3: Scalar,
        pb: Point,
        qb: Point,
    },
    /// `SMPSTATE_EXPECT4` (initiator): `G3b`, `Pa - Pb`, `Qa - Qb`, `a3`.
    Expect4 {
        a3: Scalar,
        g3b: Point,
        pa_pb: EdwardsPoint,
        qa_qb: Point,
    },
}

/// One side of the SMP state machine (otrv4.md §"The SMP State Machine"), sans-IO.
///
/// ```text
/// Alice: start()  ──TLV 2──▶  Bob: receive() → AskForSecret; respond()
/// Alice: receive() → SendTlv(TLV 4)  ◀──TLV 3──
/// ──TLV 4──▶  Bob: receive() → Succeeded/Failed { reply: Some(TLV 5) }
/// Alice: receive() → Succeeded/Failed { reply: None }  ◀──TLV 5──
/// ```
pub struct Smp {
    inner: Inner,
}

impl Default for Smp {
    fn default() -> Self {
        Smp::new()
    }
}

redacted_debug!(Smp { state = |s| s.state(), awaiting_secret = |s| s.awaiting_secret() });

impl Smp {
    /// A state machine in `SMPSTATE_EXPECT1`.
    pub fn new() -> Smp {
        Smp {
            inner: Inner::Expect1,
        }
    }

    /// The current SMP state.
    pub fn state(&self) -> SmpState {
        match self.inner {
            Inner::Expect1 | Inner::AwaitingSecret { .. } => SmpState::Expect1,
            Inner::Expect2 { .. } => SmpState::Expect2,
            Inner::Expect3 { .. } => SmpState::Expect3,
            Inner::Expect4 { .. } => SmpState::Expect4,
        }
    }

    /// Whether a verified SMP message 1 is waiting for [`Smp::respond`].
    pub fn awaiting_secret(&self) -> bool {
        matches!(self.inner, Inner::AwaitingSecret { .. })
    }

    /// Abandons any exchange without telling the peer (otrv4.md §"The SMP State Machine":
    /// when the conversation leaves `ENCRYPTED_MESSAGES`). Secrets are zeroized.
    pub fn reset(&mut self) {
        self.inner = Inner::Expect1;
    }

    /// The user aborts (otrv4.md §"User requests to abort SMP"): returns the type 6 TLV to
    /// send and resets to `SMPSTATE_EXPECT1`, in every state.
    pub fn abort(&mut self) -> Tlv {
        self.reset();
        Tlv::smp_abort()
    }

    /// The user begins SMP (otrv4.md §"User requests to begin SMP", §"SMP Message 1"):
    /// derives `x` with us as the initiator, builds SMP message 1 and moves to
    /// `SMPSTATE_EXPECT2`. Returns the type 2 TLV to send.
    ///
    /// An empty question is the same as none. Fails with [`SmpError::InProgress`] unless
    /// the state is `SMPSTATE_EXPECT1` (to restart, send [`Smp::abort`]'s TLV first). On
    /// success a pending unanswered message 1 is discarded; on error nothing changes.
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        ctx: &SmpContext,
        secret: &[u8],
        question: Option<&[u8]>,
    ) -> Result<Tlv, SmpError> {
        if self.state() != SmpState::Expect1 {
            return Err(SmpError::InProgress);
        }
        let question = question.unwrap_or(&[]);
        if question.len() > MAX_QUESTION_LEN {
            return Err(SmpError::QuestionTooLong {
                len: question.len(),
                max: MAX_QUESTION_LEN,
            });
        }
        let x = smp_secret(
            &ctx.our_fingerprint,
            &ctx.their_fingerprint,
            &ctx.ssid,
            secret,
        )?;
        let a2 = random_pruned_scalar(rng);
        let a3 = random_pruned_scalar(rng);
        let r2 = random_pruned_scalar(rng);
        let r3 = random_pruned_scalar(rng);
        let g2a = Point::mul_base(&a2).map_err(|_| SmpError::Degenerate("G2a"))?;
        let g3a = Point::mul_base(&a3).map_err(|_| SmpError::Degenerate("G3a"))?;
        let c2 = hash_points(1, &(EdwardsPoint::mul_base(&r2.0)), None);
        let d2 = &r2 - &(&a2 * &c2);
        let c3 = hash_points(2, &(EdwardsPoint::mul_base(&r3.0)), None);
        let d3 = &r3 - &(&a3 * &c3);
        let msg = SmpMessage1 {
            question: question.to_vec(),
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        };
        let tlv = msg.to_tlv()?;
        self.inner = Inner::Expect2 { x, a2, a3 };
        Ok(tlv)
    }

    /// The user answers a received SMP message 1 (otrv4.md §"SMP Message 2"): derives `y`
    /// with the peer as the initiator, builds SMP message 2 and moves to
    /// `SMPSTATE_EXPECT3`. Returns the type 3 TLV to send.
    ///
    /// Fails with [`SmpError::NoPendingRequest`] unless [`Smp::awaiting_secret`]. On any
    /// error the state is `SMPSTATE_EXPECT1` and the caller should send [`Smp::abort`]'s TLV.
    pub fn respond<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        ctx: &SmpContext,
        secret: &[u8],
    ) -> Result<Tlv, SmpError> {
        let (g2a, g3a) = match core::mem::replace(&mut self.inner, Inner::Expect1) {
            Inner::AwaitingSecret { g2a, g3a } => (g2a, g3a),
            other => {
                self.inner = other;
                return Err(SmpError::NoPendingRequest);
            }
        };
        let y = smp_secret(
            &ctx.their_fingerprint,
            &ctx.our_fingerprint,
            &ctx.ssid,
            secret,
        )?;
        let b2 = random_pruned_scalar(rng);
        let b3 = random_pruned_scalar(rng);
        let r2 = random_pruned_scalar(rng);
        let r3 = random_pruned_scalar(rng);
        let r4 = random_pruned_scalar(rng);
        let r5 = random_pruned_scalar(rng);
        let r6 = random_pruned_scalar(rng);
        let g2b = Point::mul_base(&b2).map_err(|_| SmpError::Degenerate("G2b"))?;
        let g3b = Point::mul_base(&b3).map_err(|_| SmpError::Degenerate("G3b"))?;
        let c2 = hash_points(3, &(EdwardsPoint::mul_base(&r2.0)), None);
        let d2 = &r2 - &(&b2 * &c2);
        let c3 = hash_points(4, &(EdwardsPoint::mul_base(&r3.0)), None);
        let d3 = &r3 - &(&b3 * &c3);
        let g2 = nondegenerate(g2a.0.mul(&b2.0), "G2")?;
        let g3 = nondegenerate(g3a.0.mul(&b3.0), "G3")?;
        let pb = nondegenerate(g3.0.mul(&r4.0), "Pb")?;
        let qb = nondegenerate(EdwardsPoint::mul_base(&r4.0) + g2.0.mul(&y.0), "Qb")?;
        let cp = hash_points(
            5,
            &(g3.0.mul(&r5.0)),
            Some(&(EdwardsPoint::mul_base(&r5.0) + g2.0.mul(&r6.0))),
        );
        let d5 = &r5 - &(&r4 * &cp);
        let d6 = &r6 - &(&y * &cp);
        let msg = SmpMessage2 {
            g2b,
            c2,
            d2,
            g3b,
            c3,
            d3,
            pb,
            qb,
            cp,
            d5,
            d6,
        };
        self.inner = Inner::Expect3 {
            g3a,
            g2,
            g3,
            b3,
            pb,
            qb,
        };
        Ok(msg.to_tlv())
    }

    /// Processes a received SMP TLV (types 2–6) per otrv4.md §"Receiving a SMP Message 1"
    /// … §"Receiving a SMP Message 4" and §"TLV Record Types" (type 6).
    ///
    /// A message in the wrong state, or one that is malformed or whose proofs fail, gives
    /// [`SmpEvent::Aborted`] (send the abort TLV) and resets to `SMPSTATE_EXPECT1`; so does
    /// any degenerate value while building our reply. The only error is
    /// [`SmpError::NotSmpTlv`], for which nothing changes.
    pub fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        tlv: &Tlv,
    ) -> Result<SmpEvent, SmpError> {
        let number = match tlv.typ {
            TlvType::SmpMessage1 => 1,
            TlvType::SmpMessage2 => 2,
            TlvType::SmpMessage3 => 3,
            TlvType::SmpMessage4 => 4,
            TlvType::SmpAbort => {
                self.reset();
                return Ok(SmpEvent::AbortedByPeer);
            }
            other => return Err(SmpError::NotSmpTlv(other)),
        };
        let state = self.state();
        let inner = core::mem::replace(&mut self.inner, Inner::Expect1);
        let result = match (number, inner) {
            (1, Inner::Expect1 | Inner::AwaitingSecret { .. }) => self.on_message_1(&tlv.value),
            (2, Inner::Expect2 { x, a2, a3 }) => self.on_message_2(rng, &tlv.value, x, a2, a3),
            (
                3,
                Inner::Expect3 {
                    g3a,
                    g2,
                    g3,
                    b3,
                    pb,
                    qb,
                },
            ) => on_message_3(rng, &tlv.value, &g3a, &g2, &g3, &b3, &pb, &qb),
            (
                4,
                Inner::Expect4 {
                    a3,
                    g3b,
                    pa_pb,
                    qa_qb,
                },
            ) => on_message_4(&tlv.value, &a3, &g3b, &pa_pb, &qa_qb),
            _ => Err(SmpError::UnexpectedMessage {
                received: number,
                state,
            }),
        };
        Ok(result.unwrap_or_else(|reason| {
            self.reset();
            SmpEvent::Aborted {
                send: Tlv::smp_abort(),
                reason,
            }
        }))
    }

    /// otrv4.md §"Receiving a SMP Message 1": verify the proofs for `G2a` and `G3a`.
    fn on_message_1(&mut self, value: &[u8]) -> Result<SmpEvent, SmpError> {
        let m = SmpMessage1::decode(value)?;
        // Points were validated by decoding (not identity, in the subgroup).
        let c2 = hash_points(1, &base_plus(&m.d2, &m.g2a.0, &m.c2), None);
        check(&m.c2, &c2, "c2 of SMP message 1")?;
        let c3 = hash_points(2, &base_plus(&m.d3, &m.g3a.0, &m.c3), None);
        check(&m.c3, &c3, "c3 of SMP message 1")?;
        self.inner = Inner::AwaitingSecret {
            g2a: m.g2a,
            g3a: m.g3a,
        };
        let question = if m.question.is_empty() {
            None
        } else {
            Some(m.question)
        };
        Ok(SmpEvent::AskForSecret { question })
    }

    /// otrv4.md §"Receiving a SMP Message 2", then §"SMP Message 3".
    fn on_message_2<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        value: &[u8],
        x: Scalar,
        a2: Scalar,
        a3: Scalar,
    ) -> Result<SmpEvent, SmpError> {
        let m = SmpMessage2::decode(value)?;
        let c2 = hash_points(3, &base_plus(&m.d2, &m.g2b.0, &m.c2), None);
        check(&m.c2, &c2, "c2 of SMP message 2")?;
        let c3 = hash_points(4, &base_plus(&m.d3, &m.g3b.0, &m.c3), None);
        check(&m.c3, &c3, "c3 of SMP message 2")?;
        let g2 = nondegenerate(m.g2b.0.mul(&a2.0), "G2")?;
        let g3 = nondegenerate(m.g3b.0.mul(&a3.0), "G3")?;
        let cp = hash_points(
            5,
            &vartime_multiscalar_mul(None, [(&m.d5.0, &g3.0), (&m.cp.0, &m.pb.0)]),
            Some(&vartime_multiscalar_mul(
                Some(&m.d5.0),
                [(&m.d6.0, &g2.0), (&m.cp.0, &m.qb.0)],
            )),
        );
        check(&m.cp, &cp, "cp of SMP message 2")?;

        let r4 = random_pruned_scalar(rng);
        let r5 = random_pruned_scalar(rng);
        let r6 = random_pruned_scalar(rng);
        let r7 = random_pruned_scalar(rng);
        let pa = nondegenerate(g3.0.mul(&r4.0), "Pa")?;
        let qa = nondegenerate(EdwardsPoint::mul_base(&r4.0) + g2.0.mul(&x.0), "Qa")?;
        let cp = hash_points(
            6,
            &(g3.0.mul(&r5.0)),
            Some(&(EdwardsPoint::mul_base(&r5.0) + g2.0.mul(&r6.0))),
        );
        let d5 = &r5 - &(&r4 * &cp);
        let d6 = &r6 - &(&x * &cp);
        let qa_qb = nondegenerate(qa.0 - m.qb.0, "Qa - Qb")?;
        let ra = nondegenerate(qa_qb.0.mul(&a3.0), "Ra")?;
        let cr = hash_points(
            7,
            &(EdwardsPoint::mul_base(&r7.0)),
            Some(&(qa_qb.0.mul(&r7.0))),
        );
        let d7 = &r7 - &(&a3 * &cr);
        let reply = SmpMessage3 {
            pa,
            qa,
            cp,
            d5,
            d6,
            ra,
            cr,
            d7,
        };
        self.inner = Inner::Expect4 {
            a3,
            g3b: m.g3b,
            pa_pb: pa.0 - m.pb.0,
            qa_qb,
        };
        Ok(SmpEvent::SendTlv(reply.to_tlv()))
    }
}

/// otrv4.md §"Receiving a SMP Message 3", then §"SMP Message 4" and the final comparison.
#[allow(clippy::too_many_arguments)]
fn on_message_3<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    value: &[u8],
    g3a: &Point,
    g2: &Point,
    g3: &Point,
    b3: &Scalar,
    pb: &Point,
    qb: &Point,
) -> Result<SmpEvent, SmpError> {
    let m = SmpMessage3::decode(value)?;
    let cp = hash_points(
        6,
        &vartime_multiscalar_mul(None, [(&m.d5.0, &g3.0), (&m.cp.0, &m.pa.0)]),
        Some(&vartime_multiscalar_mul(
            Some(&m.d5.0),
            [(&m.d6.0, &g2.0), (&m.cp.0, &m.qa.0)],
        )),
    );
    check(&m.cp, &cp, "cp of SMP message 3")?;
    let qa_qb = nondegenerate(m.qa.0 - qb.0, "Qa - Qb")?;
    let cr = hash_points(
        7,
        &base_plus(&m.d7, &g3a.0, &m.cr),
        Some(&vartime_multiscalar_mul(
            None,
            [(&m.d7.0, &qa_qb.0), (&m.cr.0, &m.ra.0)],
        )),
    );
    check(&m.cr, &cr, "cr of SMP message 3")?;

    let r7 = random_pruned_scalar(rng);
    let rb = nondegenerate(qa_qb.0.mul(&b3.0), "Rb")?;
    let cr = hash_points(
        8,
        &(EdwardsPoint::mul_base(&r7.0)),
        Some(&(qa_qb.0.mul(&r7.0))),
    );
    let d7 = &r7 - &(b3 * &cr);
    let reply = Some(SmpMessage4 { rb, cr, d7 }.to_tlv());

    let rab = m.ra.0.mul(&b3.0);
    let pa_pb = m.pa.0 - pb.0;
    if bool::from(rab.ct_eq(&pa_pb)) {
        Ok(SmpEvent::Succeeded { reply })
    } else {
        Ok(SmpEvent::Failed { reply })
    }
}

/// otrv4.md §"Receiving a SMP Message 4" and the final comparison.
fn on_message_4(
    value: &[u8],
    a3: &Scalar,
    g3b: &Point,
    pa_pb: &EdwardsPoint,
    qa_qb: &Point,
) -> Result<SmpEvent, SmpError> {
    let m = SmpMessage4::decode(value)?;
    let cr = hash_points(
        8,
        &base_plus(&m.d7, &g3b.0, &m.cr),
        Some(&vartime_multiscalar_mul(
            None,
            [(&m.d7.0, &qa_qb.0), (&m.cr.0, &m.rb.0)],
        )),
    );
    check(&m.cr, &cr, "cr of SMP message 4")?;
    let rab = m.rb.0.mul(&a3.0);
    if bool::from(rab.ct_eq(pa_pb)) {
        Ok(SmpEvent::Succeeded { reply: None })
    } else {
        Ok(SmpEvent::Failed { reply: None })
    }
}

#[cfg(test)]
mod tests;
