/*
 * otr4 from C: two users, three devices, one in-process XMPP server with a prekey server
 * (otr4_sim_*, feature `sim`). Online DAKE, an offline first message through the prekey
 * server, MULTICASTING to a second own device, SMP, and save/load mid-conversation.
 * Prints the conversation; exits 0 only if every device read every message exactly once.
 * Build and run: otr4-ffi/tests/c/run.sh
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otr4.h"

#define S(str) (const uint8_t *)(str), strlen(str)

static void die(const char *what, otr4_status st) {
    otr4_buf msg = {0};
    otr4_last_error(&msg);
    fprintf(stderr, "FAILED: %s: %s (%d): %s\n", what, otr4_status_str(st), (int)st,
            msg.ptr ? (const char *)msg.ptr : "");
    otr4_buf_free(&msg);
    exit(1);
}

#define CHECK(call)                                                                         \
    do {                                                                                    \
        otr4_status st_ = (call);                                                           \
        if (st_ != OTR4_OK) die(#call, st_);                                                \
    } while (0)

typedef struct {
    const char *name; /* "alice/laptop" */
    const char *bare; /* "alice@example.org" */
    const char *full; /* "alice@example.org/laptop" */
    otr4_engine engine;
    int online;
    uint32_t tag;
    /* What this device read: "from-device-name: text" lines, counted by the checks. */
    char log[16][160];
    int logged;
    int smp_succeeded;
    int saves;
} device;

static otr4_sim sim;
static device devs[3] = {
    {.name = "alice/laptop", .bare = "alice@example.org", .full = "alice@example.org/laptop"},
    {.name = "alice/phone", .bare = "alice@example.org", .full = "alice@example.org/phone"},
    {.name = "bob/desktop", .bare = "bob@example.org", .full = "bob@example.org/desktop"},
};
#define ALICE_LAPTOP (&devs[0])
#define ALICE_PHONE (&devs[1])
#define BOB (&devs[2])
static const char *PASS = "correct horse battery staple";
static otr4_buf saved[3];

static const char *device_name(const char *jid, uint32_t tag) {
    for (int i = 0; i < 3; i++)
        if (devs[i].tag == tag && strcmp(devs[i].bare, jid) == 0) return devs[i].name;
    return "?";
}

static const char *trust_name(uint32_t t) {
    switch (t) {
    case OTR4_TRUST_TOFU: return "tofu";
    case OTR4_TRUST_VERIFIED: return "verified";
    case OTR4_TRUST_CHANGED: return "CHANGED";
    default: return "-";
    }
}

/* Drains a device's events (printing the interesting ones) and sends its stanzas. */
static int pump(device *d) {
    int moved = 0;
    otr4_event ev;
    while (otr4_engine_next_event(d->engine, &ev) == OTR4_OK) {
        const char *peer = (const char *)ev.peer.ptr, *text = (const char *)ev.text.ptr;
        switch (ev.kind) {
        case OTR4_EVENT_MESSAGE:
            printf("  %-13s <- %-13s [%s%s] %s%s%s%s\n", d->name, device_name(peer, ev.device),
                   trust_name(ev.trust), ev.listed ? ", listed" : "", text,
                   ev.sent_to.len ? "  (copy, sent to " : "",
                   ev.sent_to.len ? (const char *)ev.sent_to.ptr : "", ev.sent_to.len ? ")" : "");
            if (d->logged < 16)
                snprintf(d->log[d->logged++], sizeof d->log[0], "%s: %s",
                         device_name(peer, ev.device), text);
            break;
        case OTR4_EVENT_SECURE:
            printf("  %-13s secure with %s (%s DAKE)\n", d->name, device_name(peer, ev.device),
                   ev.detail ? "non-interactive, via the prekey server" : "interactive");
            break;
        case OTR4_EVENT_SMP:
            if (ev.detail == OTR4_SMP_ASK_SECRET) {
                printf("  %-13s SMP question from %s: \"%s\" -> answering\n", d->name,
                       device_name(peer, ev.device), text);
                CHECK(otr4_engine_smp_respond(d->engine, ev.peer.ptr, ev.peer.len, ev.device,
                                              S("the library")));
            } else if (ev.detail == OTR4_SMP_SUCCEEDED) {
                printf("  %-13s SMP with %s succeeded: verified\n", d->name,
                       device_name(peer, ev.device));
                d->smp_succeeded = 1;
            } else if (ev.detail == OTR4_SMP_FAILED || ev.detail == OTR4_SMP_ABORTED) {
                printf("  %-13s SMP with %s failed\n", d->name, device_name(peer, ev.device));
            }
            break;
        case OTR4_EVENT_UNDECRYPTABLE:
        case OTR4_EVENT_ERROR:
        case OTR4_EVENT_NOT_SENT:
            printf("  %-13s problem: %s\n", d->name, text);
            break;
        case OTR4_EVENT_SAVE_STATE:
            d->saves++; /* a real client saves here, before sending the stanzas */
            break;
        default:
            break;
        }
        otr4_event_free(&ev);
    }
    otr4_buf st;
    while (otr4_engine_next_stanza(d->engine, &st) == OTR4_OK) {
        CHECK(otr4_sim_submit(sim, S(d->full), st.ptr, st.len));
        otr4_buf_free(&st);
        moved = 1;
    }
    return moved;
}

/* Delivers stanzas until the network is quiet. */
static void settle(void) {
    for (int round = 0; round < 1000; round++) {
        int moved = 0;
        for (int i = 0; i < 3; i++)
            if (devs[i].online) moved |= pump(&devs[i]);
        for (int i = 0; i < 3; i++) {
            if (!devs[i].online) continue;
            otr4_buf st;
            while (otr4_sim_next_stanza(sim, S(devs[i].full), &st) == OTR4_OK) {
                otr4_status s = otr4_engine_feed(devs[i].engine, st.ptr, st.len);
                if (s != OTR4_OK && s != OTR4_BAD_STANZA) die("otr4_engine_feed", s);
                otr4_buf_free(&st);
                moved = 1;
            }
        }
        if (!moved) return;
    }
}

static void go_online(device *d) {
    CHECK(otr4_sim_connect(sim, S(d->full)));
    CHECK(otr4_engine_online(d->engine, S(d->full)));
    CHECK(otr4_engine_tag(d->engine, &d->tag));
    d->online = 1;
    settle();
}

/* Goes offline and saves the whole engine (keys, sessions, device lists, trust). */
static void save_and_close(device *d) {
    CHECK(otr4_engine_offline(d->engine));
    pump(d);
    CHECK(otr4_sim_disconnect(sim, S(d->full)));
    d->online = 0;
    int i = (int)(d - devs);
    CHECK(otr4_engine_save(d->engine, S(PASS), &saved[i]));
    CHECK(otr4_engine_free(d->engine));
    printf("  %-13s saved (%zu bytes, Argon2id + XChaCha20-Poly1305) and closed\n", d->name,
           saved[i].len);
}

static void load_and_connect(device *d) {
    int i = (int)(d - devs);
    otr4_engine e;
    otr4_status st = otr4_engine_load(saved[i].ptr, saved[i].len, S("wrong passphrase"), &e);
    if (st != OTR4_WRONG_KEY) die("load with a wrong passphrase", st);
    CHECK(otr4_engine_load(saved[i].ptr, saved[i].len, S(PASS), &d->engine));
    otr4_buf_free(&saved[i]);
    printf("  %-13s loaded from its saved state (a wrong passphrase was refused)\n", d->name);
    go_online(d);
}

static void say(device *d, const char *to, const char *text) {
    printf("  %-13s -> %-17s %s\n", d->name, to, text);
    CHECK(otr4_engine_send(d->engine, S(to), S(text)));
    settle();
}

static int count(device *d, const char *line) {
    int n = 0;
    for (int i = 0; i < d->logged; i++) n += strcmp(d->log[i], line) == 0;
    return n;
}

int main(void) {
    printf("otr4 %u (ABI) from C: example.org with prekey.example.org, in process\n",
           otr4_abi_version());
    CHECK(otr4_sim_new(S("example.org"), &sim));
    CHECK(otr4_sim_add_user(sim, S("alice@example.org")));
    CHECK(otr4_sim_add_user(sim, S("bob@example.org")));
    for (int i = 0; i < 3; i++) {
        const char *label = strchr(devs[i].name, '/') + 1;
        CHECK(otr4_engine_new(S(devs[i].bare), S(label), &devs[i].engine));
    }

    printf("\n1. Three devices come online (prekeys published, device lists read)\n");
    for (int i = 0; i < 3; i++) go_online(&devs[i]);

    printf("\n2. Bob's desktop goes offline, saved\n");
    save_and_close(BOB);

    printf("\n3. Offline first message: Alice's laptop writes to Bob through the prekey server;"
           " her phone gets a copy (MULTICASTING)\n");
    say(ALICE_LAPTOP, "bob@example.org", "Hi Bob! Lunch on Friday?");

    printf("\n4. Bob's desktop loads its saved state, catches up, reads, answers (online DAKE"
           " with Alice's phone)\n");
    load_and_connect(BOB);
    say(BOB, "alice@example.org", "Hi Alice, Friday works.");
    say(ALICE_PHONE, "bob@example.org", "Great, the usual place at noon.");

    printf("\n5. SMP: Bob's desktop verifies Alice's laptop\n");
    CHECK(otr4_engine_smp_start(BOB->engine, S("alice@example.org"), ALICE_LAPTOP->tag,
                                S("the library"), S("Where did we first meet?")));
    settle();

    printf("\n6. Save/load mid-conversation: Alice's laptop restarts from its saved state\n");
    save_and_close(ALICE_LAPTOP);
    load_and_connect(ALICE_LAPTOP);
    say(ALICE_LAPTOP, "bob@example.org", "Back after a restart.");
    say(BOB, "alice@example.org", "Welcome back.");

    printf("\nChecks\n");
    int ok = 1;
    struct { device *d; const char *line; } want[] = {
        {BOB, "alice/laptop: Hi Bob! Lunch on Friday?"},
        {ALICE_PHONE, "alice/laptop: Hi Bob! Lunch on Friday?"},
        {ALICE_LAPTOP, "bob/desktop: Hi Alice, Friday works."},
        {ALICE_PHONE, "bob/desktop: Hi Alice, Friday works."},
        {BOB, "alice/phone: Great, the usual place at noon."},
        {ALICE_LAPTOP, "alice/phone: Great, the usual place at noon."},
        {BOB, "alice/laptop: Back after a restart."},
        {ALICE_PHONE, "alice/laptop: Back after a restart."},
        {ALICE_LAPTOP, "bob/desktop: Welcome back."},
        {ALICE_PHONE, "bob/desktop: Welcome back."},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int n = count(want[i].d, want[i].line);
        printf("  %s %-13s read \"%s\" %d time(s)\n", n == 1 ? "ok  " : "FAIL", want[i].d->name,
               want[i].line, n);
        ok &= n == 1;
    }
    int smp = BOB->smp_succeeded && ALICE_LAPTOP->smp_succeeded;
    printf("  %s SMP verified Bob's desktop and Alice's laptop to each other\n",
           smp ? "ok  " : "FAIL");
    ok &= smp;

    for (int i = 0; i < 3; i++) CHECK(otr4_engine_free(devs[i].engine));
    CHECK(otr4_sim_free(sim));
    printf("%s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
    return ok ? 0 : 1;
}
