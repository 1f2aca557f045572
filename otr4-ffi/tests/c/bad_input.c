/*
 * The C ABI fed bad input: every call must return the documented status, never crash or
 * leak (run under valgrind by run.sh). Needs the features `sim` and `test-hooks`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otr4.h"

#define S(str) (const uint8_t *)(str), strlen(str)

static int failures = 0;

static void expect(const char *what, otr4_status got, otr4_status want) {
    otr4_buf msg = {0};
    if (got != OTR4_OK && got != OTR4_NONE) otr4_last_error(&msg);
    int ok = got == want;
    printf("  %s %-58s %s%s%s\n", ok ? "ok  " : "FAIL", what, otr4_status_str(got),
           msg.len ? " — " : "", msg.len ? (const char *)msg.ptr : "");
    if (!ok) {
        printf("       wanted: %s\n", otr4_status_str(want));
        failures++;
    }
    otr4_buf_free(&msg);
}

int main(void) {
    otr4_engine e, e2;
    otr4_session s;
    otr4_buf buf = {0};
    otr4_event ev;
    uint32_t tag = 0;

    printf("null pointers\n");
    expect("engine_new(jid = NULL)", otr4_engine_new(NULL, 5, S("x"), &e), OTR4_NULL_POINTER);
    expect("engine_new(out = NULL)", otr4_engine_new(S("a@b.c"), S("x"), NULL), OTR4_NULL_POINTER);
    expect("session_new(out = NULL)", otr4_session_new(S("a@b.c"), NULL), OTR4_NULL_POINTER);
    expect("last_error(NULL)", otr4_last_error(NULL), OTR4_NULL_POINTER);
    expect("engine_load(key = NULL)", otr4_engine_load_with_key(S("blob"), NULL, &e),
           OTR4_NULL_POINTER);
    otr4_buf_free(NULL);
    otr4_event_free(NULL);

    printf("invalid UTF-8 and arguments\n");
    const char bad[] = {'a', (char)0xC3, '@', 'b', 0};
    expect("engine_new(jid not UTF-8)", otr4_engine_new(S(bad), S("x"), &e), OTR4_INVALID_UTF8);
    expect("engine_new(jid not a bare JID)", otr4_engine_new(S("no-at-sign"), S("x"), &e),
           OTR4_INVALID_ARGUMENT);

    if (otr4_test_engine_new(S("alice@example.org"), S("laptop"), 42, 1700000000, &e) != OTR4_OK)
        return 1;
    expect("engine_send(text not UTF-8)", otr4_engine_send(e, S("bob@example.org"), S(bad)),
           OTR4_INVALID_UTF8);
    expect("engine_send(to = NULL)", otr4_engine_send(e, NULL, 3, S("hi")), OTR4_NULL_POINTER);
    expect("engine_remove_device(tag 5)", otr4_engine_remove_device(e, 5), OTR4_INVALID_ARGUMENT);
    expect("engine_accept_prekey_server_key(domain = NULL)",
           otr4_engine_accept_prekey_server_key(e, NULL, 3, S("00")), OTR4_NULL_POINTER);
    expect("engine_accept_prekey_server_key(no server known)",
           otr4_engine_accept_prekey_server_key(e, S("example.org"), S("ab")),
           OTR4_INVALID_ARGUMENT);
    expect("engine_online(not our full JID)", otr4_engine_online(e, S("bob@example.org/x")),
           OTR4_INVALID_ARGUMENT);

    printf("handles\n");
    otr4_engine zero = {0}, forged = {0x0000000500000001ull};
    expect("engine_tick(zero handle)", otr4_engine_tick(zero), OTR4_INVALID_HANDLE);
    expect("engine_tick(forged handle)", otr4_engine_tick(forged), OTR4_INVALID_HANDLE);
    otr4_session as_session = {e.id};
    expect("session_tick(an engine's handle)", otr4_session_tick(as_session),
           OTR4_INVALID_HANDLE);
    expect("engine_tag(live handle)", otr4_engine_tag(e, &tag), OTR4_OK);

    printf("garbage stanzas\n");
    const char *garbage[] = {"", "not xml", "<message", "<message><body>x</message>",
                             "<message xmlns='jabber:client'><a><b><c></a></message>"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        char what[80];
        snprintf(what, sizeof what, "engine_feed(\"%s\")", garbage[i]);
        expect(what, otr4_engine_feed(e, S(garbage[i])), OTR4_BAD_STANZA);
    }
    size_t deep_n = 100;
    char *deep = malloc(deep_n * 7 + 1);
    deep[0] = 0;
    for (size_t i = 0; i < deep_n; i++) strcat(deep, "<a>");
    for (size_t i = 0; i < deep_n; i++) strcat(deep, "</a>");
    expect("engine_feed(100 levels deep)", otr4_engine_feed(e, S(deep)), OTR4_BAD_STANZA);
    free(deep);
    size_t big = 64u << 20;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    memcpy(huge, "<message>", 9);
    expect("engine_feed(64 MiB stanza)", otr4_engine_feed(e, (const uint8_t *)huge, big),
           OTR4_BAD_STANZA);
    free(huge);
    expect("engine_feed(a stranger's message)",
           otr4_engine_feed(e, S("<message xmlns='jabber:client' from='eve@evil.example/x' "
                                 "to='alice@example.org/laptop' type='chat'><body>hi</body>"
                                 "</message>")),
           OTR4_OK);
    int errors = 0;
    while (otr4_engine_next_event(e, &ev) == OTR4_OK) {
        errors += ev.kind == OTR4_EVENT_ERROR;
        otr4_event_free(&ev);
        otr4_event_free(&ev); /* a second free is harmless */
    }
    printf("  %s each refused stanza queued an OTR4_EVENT_ERROR (%d)\n",
           errors == 7 ? "ok  " : "FAIL", errors);
    failures += errors != 7;
    expect("engine_next_event when none is queued", otr4_engine_next_event(e, &ev), OTR4_NONE);

    printf("saved state\n");
    expect("engine_save", otr4_engine_save(e, S("pass"), &buf), OTR4_OK);
    expect("engine_save(empty passphrase)", otr4_engine_save(e, S(""), &(otr4_buf){0}),
           OTR4_INVALID_ARGUMENT);
    expect("engine_load(wrong passphrase)", otr4_engine_load(buf.ptr, buf.len, S("Pass"), &e2),
           OTR4_WRONG_KEY);
    uint8_t key[OTR4_KEY_LEN] = {1};
    expect("engine_load_with_key(a passphrase blob)",
           otr4_engine_load_with_key(buf.ptr, buf.len, key, &e2), OTR4_WRONG_KEY);
    expect("engine_load(truncated by 1 byte)",
           otr4_engine_load(buf.ptr, buf.len - 1, S("pass"), &e2), OTR4_TRUNCATED);
    expect("engine_load(truncated to 40 bytes)", otr4_engine_load(buf.ptr, 40, S("pass"), &e2),
           OTR4_TRUNCATED);
    buf.ptr[buf.len / 2] ^= 0x01;
    expect("engine_load(one bit flipped)", otr4_engine_load(buf.ptr, buf.len, S("pass"), &e2),
           OTR4_TAMPERED);
    buf.ptr[buf.len / 2] ^= 0x01;
    expect("engine_load(garbage)", otr4_engine_load(S("definitely not a blob"), S("pass"), &e2),
           OTR4_NOT_A_BLOB);
    expect("session_load(an engine blob)", otr4_session_load(buf.ptr, buf.len, S("pass"), &s),
           OTR4_NOT_A_BLOB);
    expect("engine_load(intact)", otr4_engine_load(buf.ptr, buf.len, S("pass"), &e2), OTR4_OK);
    otr4_buf_free(&buf);
    otr4_buf_free(&buf); /* a second free is harmless */
    expect("engine_free(loaded copy)", otr4_engine_free(e2), OTR4_OK);

    printf("lifetime and panics\n");
    expect("engine_free", otr4_engine_free(e), OTR4_OK);
    expect("engine_free(again: stale)", otr4_engine_free(e), OTR4_INVALID_HANDLE);
    expect("engine_send(stale handle)", otr4_engine_send(e, S("bob@example.org"), S("hi")),
           OTR4_INVALID_HANDLE);
    expect("test_panic (caught at the boundary)", otr4_test_panic(), OTR4_PANIC);
    expect("status_str(unknown)", strcmp(otr4_status_str(999), "unknown status") == 0
                                      ? OTR4_OK : OTR4_REFUSED, OTR4_OK);

    printf("%s\n", failures ? "SOME CHECKS FAILED" : "all bad-input checks passed");
    return failures ? 1 : 0;
}
