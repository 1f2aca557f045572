//! A whole online OTRv4 conversation between Alice and Bob, printed as a transcript:
//! accounts, query message, the interactive DAKE, messages both ways, SMP, the extra
//! symmetric key, and the end of the conversation.
//!
//! Run with `cargo run --example online_chat -p otr4`.

use otr4::hazmat::wire::codec::Codec;
use std::collections::VecDeque;

use otr4::PrekeyStore;
use otr4::hazmat::wire::encoded::decode_otr;
use otr4::hazmat::wire::messages::Message;
use otr4::{Account, Client, ConversationError, ConversationState, Event, Policy, SmpUpdate};
use rand::SeedableRng;
use rand::rngs::StdRng;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

struct Party {
    name: &'static str,
    jid: &'static str,
    client: Client,
    /// The secrets of published Prekey messages (none here: this chat is online only).
    prekeys: PrekeyStore,
}

/// Describes a message on the wire: its kind, size and the start of its bytes in hex.
fn describe(text: &str) -> String {
    if !text.starts_with("?OTR:") {
        return format!("{text:?}");
    }
    let Ok(bytes) = decode_otr(text) else {
        return String::from("(undecodable)");
    };
    let kind = match Message::decode(&bytes) {
        Ok(Message::Identity(_)) => String::from("Identity message"),
        Ok(Message::AuthR(_)) => String::from("Auth-R message"),
        Ok(Message::AuthI(_)) => String::from("Auth-I message"),
        Ok(Message::Data(d)) => format!(
            "Data message (ratchet {}, message {}{}{})",
            d.i,
            d.j,
            if d.flags & 1 != 0 {
                ", IGNORE_UNREADABLE"
            } else {
                ""
            },
            if d.revealed_mac_keys.is_empty() {
                String::new()
            } else {
                format!(", reveals {} MAC keys", d.revealed_mac_keys.len() / 64)
            }
        ),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("malformed ({e})"),
    };
    let head = hex::encode(bytes.get(..12).unwrap_or(&bytes));
    format!(
        "{kind}: {} bytes ({} encoded) {head}…",
        bytes.len(),
        text.len()
    )
}

/// Prints a party's non-send events and puts its sends on the wire (`true`: from Alice).
fn show(party: &Party, events: Vec<Event>, wire: &mut VecDeque<(bool, String)>) {
    let from_alice = party.name == "Alice";
    let to = if from_alice { "Bob" } else { "Alice" };
    for e in events {
        match e {
            Event::Send { text, .. } => {
                println!("  {:>5} → {:<5} {}", party.name, to, describe(&text));
                wire.push_back((from_alice, text));
            }
            Event::Received {
                text, encrypted, ..
            } => {
                let how = if encrypted { "encrypted" } else { "PLAINTEXT" };
                println!("        {} reads ({how}): {text:?}", party.name);
            }
            Event::Secure {
                ssid,
                bold_half,
                their_fingerprint,
                instance,
                ..
            } => {
                let [a, b] = ssid.halves();
                let shown = if bold_half == 0 {
                    format!("*{a:08x}* {b:08x}")
                } else {
                    format!("{a:08x} *{b:08x}*")
                };
                println!(
                    "        {} is SECURE with instance {instance}: SSID {shown}",
                    party.name
                );
                println!("          peer fingerprint {their_fingerprint}");
            }
            Event::Smp { update, .. } => match update {
                SmpUpdate::AskForSecret { question } => println!(
                    "        {} is asked to verify: {:?}",
                    party.name,
                    question.unwrap_or_default()
                ),
                SmpUpdate::InProgress => {}
                other => println!("        {}: SMP {other:?}", party.name),
            },
            Event::ExtraSymmetricKey {
                key, context, data, ..
            } => println!(
                "        {} has extra symmetric key for {:?}/{:?}: {}…",
                party.name,
                String::from_utf8_lossy(&context),
                String::from_utf8_lossy(&data),
                hex::encode(key.as_bytes().get(..16).unwrap_or_default())
            ),
            Event::Finished { .. } => {
                println!(
                    "        {}: the peer ended the conversation (FINISHED)",
                    party.name
                );
            }
            Event::Disconnected { reason, .. } => {
                println!("        {}: disconnected ({reason:?})", party.name);
            }
            other => println!("        {}: {other:?}", party.name),
        }
    }
}

/// Delivers everything on the wire until it is quiet.
fn run(
    alice: &mut Party,
    bob: &mut Party,
    wire: &mut VecDeque<(bool, String)>,
    now: i64,
    rng: &mut StdRng,
) {
    while let Some((from_alice, text)) = wire.pop_front() {
        let (from, to) = if from_alice {
            (&*alice, &mut *bob)
        } else {
            (&*bob, &mut *alice)
        };
        let events = to
            .client
            .receive(from.jid, &text, &mut to.prekeys, now, rng);
        show(to, events, wire);
    }
}

fn party(
    name: &'static str,
    jid: &'static str,
    rng: &mut StdRng,
    now: i64,
) -> Result<Party, ConversationError> {
    let account = Account::generate(rng, Policy::default(), now)?;
    Ok(Party {
        name,
        jid,
        prekeys: PrekeyStore::new(account.instance_tag()),
        client: Client::new(account, jid),
    })
}

fn main() -> Result<(), ConversationError> {
    let mut rng = StdRng::seed_from_u64(2024);
    let now: i64 = 1_700_000_000;
    let mut wire = VecDeque::new();

    println!("== Accounts");
    let mut alice = party("Alice", ALICE, &mut rng, now)?;
    let mut bob = party("Bob", BOB, &mut rng, now)?;
    for p in [&alice, &bob] {
        let a = p.client.account();
        println!(
            "  {:<5} {:<18} instance {}",
            p.name,
            p.jid,
            a.instance_tag()
        );
        println!("        fingerprint {}", a.fingerprint());
    }
    let alice_tag = alice.client.account().instance_tag();
    let bob_tag = bob.client.account().instance_tag();

    println!("\n== Alice requests a private conversation (query message), then the DAKE");
    let ev = alice.client.start(BOB, now, &mut rng);
    show(&alice, ev, &mut wire);
    run(&mut alice, &mut bob, &mut wire, now, &mut rng);

    println!("\n== Messages both ways (each reply starts a new DH ratchet)");
    let script = [
        (true, "Hi Bob, is this private?"),
        (false, "Yes, Alice: OTRv4 with a double ratchet."),
        (false, "Two in a row stay in one chain."),
        (true, "Great. Let's verify each other."),
    ];
    for (from_alice, text) in script {
        let (sender, peer) = if from_alice {
            (&mut alice, BOB)
        } else {
            (&mut bob, ALICE)
        };
        let ev = sender.client.send(peer, text, &[], now, &mut rng);
        show(sender, ev, &mut wire);
        run(&mut alice, &mut bob, &mut wire, now, &mut rng);
    }

    println!("\n== Socialist Millionaires Protocol");
    let ev = alice.client.smp_start(
        BOB,
        bob_tag,
        b"the blue cafe",
        Some("Where did we first meet?"),
        now,
        &mut rng,
    );
    show(&alice, ev, &mut wire);
    run(&mut alice, &mut bob, &mut wire, now, &mut rng);
    let ev = bob
        .client
        .smp_respond(ALICE, alice_tag, b"the blue cafe", now, &mut rng);
    show(&bob, ev, &mut wire);
    run(&mut alice, &mut bob, &mut wire, now, &mut rng);

    println!("\n== Extra symmetric key (TLV type 7)");
    let ev =
        alice
            .client
            .use_extra_symmetric_key(BOB, bob_tag, *b"FILE", b"holiday.jpg", now, &mut rng);
    show(&alice, ev, &mut wire);
    run(&mut alice, &mut bob, &mut wire, now, &mut rng);

    println!("\n== Alice ends the conversation (TLV type 1)");
    let ev = alice.client.end(BOB, None, now, &mut rng);
    show(&alice, ev, &mut wire);
    run(&mut alice, &mut bob, &mut wire, now, &mut rng);
    let state = |p: &Party, jid: &str, tag| {
        p.client
            .conversation(jid, tag)
            .map_or(ConversationState::Start, |c| c.state())
    };
    println!(
        "\n  Alice is in {:?}, Bob is in {:?}",
        state(&alice, BOB, bob_tag),
        state(&bob, ALICE, alice_tag)
    );
    Ok(())
}
