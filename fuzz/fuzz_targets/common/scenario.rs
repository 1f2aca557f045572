//! A deterministic two-party conversation (Alice and Bob, default policy) shared by the
//! `conversation_receive` and `persist_import` fuzz targets and by `test-vectors corpus`.
//!
//! Everything is derived from fixed seeds, so Bob's client can be rebuilt in any protocol
//! state on every fuzz iteration with the very same ephemeral keys, and the messages Alice
//! sent in the recorded run (the corpus seeds) are valid inputs for that state: the fuzzer
//! starts from real Auth-R, Auth-I and Data Messages instead of having to find them.
//!
//! Persistence exports use the fixed key [`KEY`]; [`seal`] and [`open`] implement the
//! documented export envelope (otr4::hazmat::conversation persist module docs) so the fuzzer can
//! reach the parser behind the authentication tag.

use chacha20::ChaCha20Rng;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::Tlv;
use otr4::hazmat::conversation::{ACCOUNT_MAGIC, CLIENT_MAGIC, PERSIST_VERSION, SALT_LEN, TAG_LEN};
use otr4::hazmat::crypto::chacha::apply_keystream;
use otr4::shake_into;
use otr4::{Account, Client, ConversationState, Event, PERSIST_KEY_LEN, Policy};
use rand_core::SeedableRng;

/// The persistence key of every export in the scenario.
pub const KEY: [u8; PERSIST_KEY_LEN] = [0x5a; PERSIST_KEY_LEN];
/// The time of every call.
pub const NOW: i64 = 1_780_000_000;
/// Alice's bare JID.
pub const ALICE: &str = "alice@example.org";
/// Bob's bare JID.
pub const BOB: &str = "bob@example.org";
/// The states Bob's conversation with Alice can be put in, in this order: `START`,
/// `WAITING_AUTH_R`, `WAITING_AUTH_I`, `ENCRYPTED_MESSAGES`, `FINISHED`.
pub const STATES: [ConversationState; 5] = [
    ConversationState::Start,
    ConversationState::WaitingAuthR,
    ConversationState::WaitingAuthI,
    ConversationState::Encrypted,
    ConversationState::Finished,
];

/// What the recorded run left behind.
pub struct Prepared {
    /// Bob's account, exported under [`KEY`].
    pub bob_account: Vec<u8>,
    /// Alice's instance tag.
    pub alice_tag: InstanceTag,
    /// Alice's (untargeted) Identity message, which puts Bob in `WAITING_AUTH_I`.
    pub alice_identity: String,
    /// Bob's client exported in `START` (knowing nobody), `ENCRYPTED_MESSAGES` and
    /// `FINISHED`.
    pub client_exports: Vec<Vec<u8>>,
    /// Bob's client exported in `ENCRYPTED_MESSAGES`.
    pub encrypted: Vec<u8>,
    /// Bob's client exported in `FINISHED`.
    pub finished: Vec<u8>,
    /// Messages Alice sent that are meaningful to Bob in a state: `(state index, texts)`.
    pub seeds: Vec<(u8, Vec<String>)>,
}

/// The RNG of one fuzz iteration for state `index`: the same on every iteration.
pub fn rng_for(index: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([index.wrapping_add(1); 32])
}

/// The texts of the `Send` events.
pub fn sends(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// An empty prekey store for `c`: nobody publishes Prekey Ensembles in the scenario.
pub fn no_prekeys(c: &Client) -> PrekeyStore {
    PrekeyStore::new(c.account().instance_tag())
}

fn bob_fresh(p: &Prepared) -> Option<Client> {
    Some(Client::new(
        Account::import(&KEY, &p.bob_account).ok()?.0,
        BOB,
    ))
}

/// Bob's client with his conversation with Alice in `STATES[index % 5]`, rebuilt
/// deterministically with `rng` (which the caller keeps using), and the events that got it
/// there. `None` if the state could not be reached (a bug in the scenario or in otr4).
pub fn bob_in(index: u8, p: &Prepared, rng: &mut ChaCha20Rng) -> Option<(Client, Vec<Event>)> {
    let index = index % 5;
    let (client, events) = match index {
        0 => (bob_fresh(p)?, Vec::new()),
        1 => {
            let mut c = bob_fresh(p)?;
            let ev = c.start_dake(ALICE, Some(p.alice_tag), NOW, rng);
            (c, ev)
        }
        2 => {
            let mut c = bob_fresh(p)?;
            let ev = c.receive(ALICE, &p.alice_identity, &mut no_prekeys(&c), NOW, rng);
            (c, ev)
        }
        3 => (Client::import(&KEY, &p.encrypted).ok()?.0, Vec::new()),
        _ => (Client::import(&KEY, &p.finished).ok()?.0, Vec::new()),
    };
    let want = *STATES.get(usize::from(index))?;
    let got = client
        .conversation(ALICE, p.alice_tag)
        .map_or(ConversationState::Start, |c| c.state());
    (got == want).then_some((client, events))
}

/// Delivers every `Send` of `events` (from `from`) to `to`, then `to`'s replies back, until
/// quiet. Returns the texts `from` sent, in order.
fn deliver(
    from: &mut Client,
    from_jid: &str,
    to: &mut Client,
    to_jid: &str,
    events: Vec<Event>,
    rng: &mut ChaCha20Rng,
) -> Vec<String> {
    let mut sent = Vec::new();
    let mut wire: Vec<(bool, String)> = sends(&events).into_iter().map(|t| (true, t)).collect();
    while !wire.is_empty() {
        let (forward, text) = wire.remove(0);
        let replies = if forward {
            sent.push(text.clone());
            to.receive(from_jid, &text, &mut no_prekeys(to), NOW, rng)
        } else {
            from.receive(to_jid, &text, &mut no_prekeys(from), NOW, rng)
        };
        wire.extend(sends(&replies).into_iter().map(|t| (!forward, t)));
    }
    sent
}

/// Runs the scenario once. `None` if any step did not behave as expected.
pub fn prepare() -> Option<Prepared> {
    let mut rng = ChaCha20Rng::from_seed([0x42; 32]);
    let bob_account = Account::generate(&mut rng, Policy::default(), NOW).ok()?;
    let bob_account = bob_account.export(
        &PrekeyStore::new(bob_account.instance_tag()),
        &KEY,
        &mut rng,
    );
    let alice_account = Account::generate(&mut rng, Policy::default(), NOW).ok()?;
    let alice_export = alice_account.export(
        &PrekeyStore::new(alice_account.instance_tag()),
        &KEY,
        &mut rng,
    );
    let alice_tag = alice_account.instance_tag();
    let alice_fresh = || {
        Some(Client::new(
            Account::import(&KEY, &alice_export).ok()?.0,
            ALICE,
        ))
    };
    let mut seeds: Vec<(u8, Vec<String>)> = Vec::new();

    // START: a query message, an Identity message, plaintext with and without a tag, an
    // error message.
    let mut alice = alice_fresh()?;
    let query = sends(&alice.start(BOB, NOW, &mut rng));
    let plain = sends(&alice.send(BOB, "hello in plaintext", &[], NOW, &mut rng));
    let mut alice_w = alice_fresh()?;
    let identity = sends(&alice_w.start_dake(BOB, None, NOW, &mut rng));
    let alice_identity = identity.first()?.clone();
    for texts in [query, plain, identity] {
        seeds.push((0, texts));
    }
    seeds.push((0, vec!["?OTR Error: ERROR_2: not in private state".into()]));
    seeds.push((0, vec!["just some text".into()]));

    let mut p = Prepared {
        bob_account,
        alice_tag,
        alice_identity,
        client_exports: Vec::new(),
        encrypted: Vec::new(),
        finished: Vec::new(),
        seeds,
    };
    let bob = bob_fresh(&p)?;
    p.client_exports
        .push(bob.export(&no_prekeys(&bob), &KEY, &mut rng));

    // WAITING_AUTH_R: Alice's Auth-R to Bob's Identity; a simultaneous Identity.
    let mut r1 = rng_for(1);
    let (_, events) = bob_in(1, &p, &mut r1)?;
    let mut alice = alice_fresh()?;
    let mut auth_r = Vec::new();
    for t in sends(&events) {
        let ev = alice.receive(BOB, &t, &mut no_prekeys(&alice), NOW, &mut rng);
        auth_r.extend(sends(&ev));
    }
    p.seeds.push((1, auth_r));
    p.seeds.push((1, vec![p.alice_identity.clone()]));

    // WAITING_AUTH_I: Alice's Auth-I (and anything she sends with it); then the DAKE
    // completes and they talk.
    let mut r2 = rng_for(2);
    let (mut bob, events) = bob_in(2, &p, &mut r2)?;
    let mut auth_i = Vec::new();
    for t in sends(&events) {
        let ev = alice_w.receive(BOB, &t, &mut no_prekeys(&alice_w), NOW, &mut rng);
        auth_i.extend(sends(&ev));
    }
    p.seeds.push((2, auth_i.clone()));
    for t in &auth_i {
        bob.receive(ALICE, t, &mut no_prekeys(&bob), NOW, &mut rng);
    }
    let alice = &mut alice_w;
    let bob_tag = bob.account().instance_tag();
    if bob.conversation(ALICE, alice_tag)?.state() != ConversationState::Encrypted
        || alice.conversation(BOB, bob_tag)?.state() != ConversationState::Encrypted
    {
        return None;
    }
    let ev = alice.send(BOB, "first encrypted message", &[], NOW, &mut rng);
    deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng);
    let ev = bob.send(ALICE, "reply", &[], NOW, &mut rng);
    deliver(&mut bob, BOB, alice, ALICE, ev, &mut rng);
    p.encrypted = bob.export(&no_prekeys(&bob), &KEY, &mut rng);
    p.client_exports.push(p.encrypted.clone());

    // ENCRYPTED_MESSAGES: data messages (a new ratchet, with TLVs), SMP, an extra symmetric
    // key, a fragmented message, and the end of the conversation.
    let ev = alice.send(BOB, "a new ratchet", &[Tlv::padding(8)], NOW, &mut rng);
    p.seeds
        .push((3, deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng)));
    let ev = alice.smp_start(BOB, bob_tag, b"secret", Some("question?"), NOW, &mut rng);
    p.seeds
        .push((3, deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng)));
    let ev = alice.use_extra_symmetric_key(BOB, bob_tag, *b"file", b"data", NOW, &mut rng);
    p.seeds
        .push((3, deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng)));
    let mut small = *alice.account().policy();
    small.max_message_size = 200;
    alice.set_policy(small).ok()?;
    let ev = alice.send(BOB, &"fragmented ".repeat(20), &[], NOW, &mut rng);
    p.seeds
        .push((3, deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng)));
    alice.set_policy(Policy::default()).ok()?;
    let ev = alice.end(BOB, None, NOW, &mut rng);
    p.seeds
        .push((3, deliver(alice, ALICE, &mut bob, BOB, ev, &mut rng)));
    if bob.conversation(ALICE, alice_tag)?.state() != ConversationState::Finished {
        return None;
    }
    p.finished = bob.export(&no_prekeys(&bob), &KEY, &mut rng);
    p.client_exports.push(p.finished.clone());

    // FINISHED: Alice starts over.
    p.seeds.push((4, sends(&alice.start(BOB, NOW, &mut rng))));
    p.seeds.push((
        4,
        sends(&alice.start_dake(BOB, Some(bob_tag), NOW, &mut rng)),
    ));
    p.seeds.push((4, vec!["plaintext after the end".into()]));
    p.seeds.retain(|(_, t)| !t.is_empty());
    Some(p)
}

/// `KDF(usage || key || salt, n)` of the export envelope.
fn derive(usage: u8, salt: &[u8], out: &mut [u8]) {
    shake_into(b"otr4-persistence", usage, &[&KEY, salt], out);
}

/// Wraps `contents` in an export envelope under [`KEY`] with an all-zero salt: `magic ||
/// version || salt || DATA(ChaCha20(enc_key, contents)) || tag`.
pub fn seal(magic: [u8; 8], contents: &[u8]) -> Vec<u8> {
    let salt = [0u8; SALT_LEN];
    let mut enc_key = [0u8; 32];
    derive(0x01, &salt, &mut enc_key);
    let mut mac_key = [0u8; 64];
    derive(0x02, &salt, &mut mac_key);
    let mut ct = contents.to_vec();
    apply_keystream(&enc_key, &mut ct);
    let len = u32::try_from(ct.len()).unwrap_or(u32::MAX);
    let mut out = [
        &magic[..],
        &PERSIST_VERSION.to_be_bytes(),
        &salt,
        &len.to_be_bytes(),
    ]
    .concat();
    out.extend_from_slice(&ct);
    let mut tag = [0u8; TAG_LEN];
    shake_into(b"otr4-persistence", 0x03, &[&mac_key, &out], &mut tag);
    out.extend_from_slice(&tag);
    out
}

/// The magic and decrypted contents of an export under [`KEY`] (the tag is not checked).
pub fn open(bytes: &[u8]) -> Option<([u8; 8], Vec<u8>)> {
    let (magic, rest) = bytes.split_first_chunk::<8>()?;
    let (_version, rest) = rest.split_first_chunk::<2>()?;
    let (salt, rest) = rest.split_first_chunk::<SALT_LEN>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let mut ct = rest.get(..len)?.to_vec();
    let mut enc_key = [0u8; 32];
    derive(0x01, salt, &mut enc_key);
    apply_keystream(&enc_key, &mut ct);
    if magic != &ACCOUNT_MAGIC && magic != &CLIENT_MAGIC {
        return None;
    }
    Some((*magic, ct))
}
