/*
 * libotr 4.1's OTRv3 timed for the same operations as otr4's `v3` criterion bench
 * (benches/benches/v3.rs): the AKE with both sides' work (query to both encrypted), one
 * 1 KiB message encrypted and decrypted, and a full SMP exchange. Two OtrlUserStates in one
 * process; messages pass through in-memory queues. Written against libotr's public API.
 *
 * Usage: bench <dir>   (the two DSA keys are generated into <dir> on first use)
 * Prints one line per operation: the median of the runs, in microseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <gcrypt.h>
#include <libotr/proto.h>
#include <libotr/userstate.h>
#include <libotr/privkey.h>
#include <libotr/message.h>

#define PROTO "xmpp"
#define QLEN 64

struct side {
    const char *name, *peer;
    OtrlUserState us;
    char instag_path[4096];
    char *queue[QLEN]; /* messages this side sent, for the other side */
    int n;
    int smp_done, smp_ok, ask;
};
static struct side A = {"alice", "bob", 0, "", {0}, 0, 0, 0, 0};
static struct side B = {"bob", "alice", 0, "", {0}, 0, 0, 0, 0};

static OtrlPolicy cb_policy(void *o, ConnContext *c) { (void)o; (void)c; return OTRL_POLICY_ALLOW_V3; }
static void cb_create_privkey(void *o, const char *a, const char *p) { (void)o; (void)a; (void)p; }
static int cb_is_logged_in(void *o, const char *a, const char *p, const char *r) {
    (void)o; (void)a; (void)p; (void)r; return 1;
}
static void cb_inject(void *o, const char *a, const char *p, const char *r, const char *m) {
    struct side *s = o; (void)a; (void)p; (void)r;
    if (s->n < QLEN) s->queue[s->n++] = strdup(m);
}
static void cb_nop(void *o) { (void)o; }
static void cb_new_fpr(void *o, OtrlUserState u, const char *a, const char *p, const char *un,
                       unsigned char f[20]) { (void)o; (void)u; (void)a; (void)p; (void)un; (void)f; }
static void cb_ctx(void *o, ConnContext *c) { (void)o; (void)c; }
static void cb_still(void *o, ConnContext *c, int r) { (void)o; (void)c; (void)r; }
static int cb_max(void *o, ConnContext *c) { (void)o; (void)c; return 0; }
static const char *cb_acct(void *o, const char *a, const char *p) { (void)o; (void)p; return a; }
static void cb_free(void *o, const char *a) { (void)o; (void)a; }
static void cb_symkey(void *o, ConnContext *c, unsigned int u, const unsigned char *d,
                      size_t l, const unsigned char *k) {
    (void)o; (void)c; (void)u; (void)d; (void)l; (void)k;
}
static const char *cb_err(void *o, ConnContext *c, OtrlErrorCode e) { (void)o; (void)c; (void)e; return "error"; }
static const char *cb_prefix(void *o, ConnContext *c) { (void)o; (void)c; return ""; }
static void cb_smp(void *o, OtrlSMPEvent e, ConnContext *c, unsigned short pct, char *q) {
    struct side *s = o; (void)c; (void)pct; (void)q;
    if (e == OTRL_SMPEVENT_ASK_FOR_SECRET) s->ask = 1;
    if (e == OTRL_SMPEVENT_SUCCESS || e == OTRL_SMPEVENT_FAILURE) {
        s->smp_done = 1;
        s->smp_ok = e == OTRL_SMPEVENT_SUCCESS;
    }
}
static void cb_msg_event(void *o, OtrlMessageEvent e, ConnContext *c, const char *m, gcry_error_t err) {
    (void)o; (void)e; (void)c; (void)m; (void)err;
}
static void cb_instag(void *o, const char *a, const char *p) {
    struct side *s = o;
    otrl_instag_generate(s->us, s->instag_path, a, p);
}
static void cb_timer(void *o, unsigned int i) { (void)o; (void)i; }

static OtrlMessageAppOps ops = {
    cb_policy, cb_create_privkey, cb_is_logged_in, cb_inject, cb_nop, cb_new_fpr, cb_nop,
    cb_ctx, cb_ctx, cb_still, cb_max, cb_acct, cb_free, cb_symkey, cb_err, cb_free,
    cb_prefix, cb_free, cb_smp, cb_msg_event, cb_instag, NULL, NULL, cb_timer,
};

static struct side *other(struct side *s) { return s == &A ? &B : &A; }

/* Delivers every queued message until both queues are empty. */
static void pump(void) {
    int moved = 1;
    while (moved) {
        moved = 0;
        for (int k = 0; k < 2; k++) {
            struct side *from = k ? &B : &A, *to = other(from);
            while (from->n) {
                char *m = from->queue[0];
                memmove(from->queue, from->queue + 1, sizeof(char *) * (size_t)--from->n);
                char *newmsg = NULL;
                OtrlTLV *tlvs = NULL;
                otrl_message_receiving(to->us, &ops, to, to->name, PROTO, to->peer, m, &newmsg,
                                       &tlvs, NULL, NULL, NULL);
                otrl_tlv_free(tlvs);
                otrl_message_free(newmsg);
                free(m);
                moved = 1;
            }
        }
    }
}

static ConnContext *ctx(struct side *s) {
    return otrl_context_find(s->us, s->peer, s->name, PROTO, OTRL_INSTAG_BEST, 0, NULL, NULL, NULL);
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

static void setup(struct side *s, const char *dir) {
    char key[4096];
    s->us = otrl_userstate_create();
    snprintf(key, sizeof key, "%s/%s.private_key", dir, s->name);
    snprintf(s->instag_path, sizeof s->instag_path, "%s/%s.instance_tags", dir, s->name);
    if (otrl_privkey_read(s->us, key) || !otrl_privkey_find(s->us, s->name, PROTO))
        if (otrl_privkey_generate(s->us, key, s->name, PROTO)) exit(1);
    otrl_instag_read(s->us, s->instag_path);
}

static void ake(void) {
    ConnContext *c;
    if ((c = ctx(&A))) otrl_context_force_plaintext(c);
    if ((c = ctx(&B))) otrl_context_force_plaintext(c);
    char *newmsg = NULL;
    otrl_message_receiving(B.us, &ops, &B, B.name, PROTO, B.peer, "?OTRv3?", &newmsg, NULL,
                           NULL, NULL, NULL);
    otrl_message_free(newmsg);
    pump();
    if (ctx(&A)->msgstate != OTRL_MSGSTATE_ENCRYPTED || ctx(&B)->msgstate != OTRL_MSGSTATE_ENCRYPTED) {
        fprintf(stderr, "AKE failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    enum { RUNS = 21, MSGS = 2001 };
    static double t[MSGS];
    static char text[1025];
    if (argc != 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    OTRL_INIT;
    setup(&A, argv[1]);
    setup(&B, argv[1]);
    ake(); /* instance tags and contexts exist from here on */

    for (int i = 0; i < RUNS; i++) {
        double t0 = now_us();
        ake();
        t[i] = now_us() - t0;
    }
    printf("AKE, both sides (query to both encrypted): %.0f us\n", median(t, RUNS));

    memset(text, 'x', 1024);
    for (int i = 0; i < MSGS; i++) {
        char *wire = NULL, *newmsg = NULL;
        OtrlTLV *tlvs = NULL;
        double t0 = now_us();
        otrl_message_sending(A.us, &ops, &A, A.name, PROTO, A.peer, OTRL_INSTAG_BEST, text,
                             NULL, &wire, OTRL_FRAGMENT_SEND_ALL, NULL, NULL, NULL);
        otrl_message_receiving(B.us, &ops, &B, B.name, PROTO, B.peer, wire, &newmsg, &tlvs,
                               NULL, NULL, NULL);
        t[i] = now_us() - t0;
        if (!newmsg || strcmp(newmsg, text)) {
            fprintf(stderr, "1 KiB message lost\n");
            return 1;
        }
        otrl_message_free(wire);
        otrl_message_free(newmsg);
        otrl_tlv_free(tlvs);
        pump();
    }
    printf("1 KiB: encrypt, then decrypt: %.1f us\n", median(t, MSGS));

    for (int i = 0; i < RUNS; i++) {
        A.smp_done = B.smp_done = B.ask = 0;
        double t0 = now_us();
        otrl_message_initiate_smp(A.us, &ops, &A, ctx(&A), (const unsigned char *)"shared secret", 13);
        pump();
        if (!B.ask) return 1;
        otrl_message_respond_smp(B.us, &ops, &B, ctx(&B), (const unsigned char *)"shared secret", 13);
        pump();
        t[i] = now_us() - t0;
        if (!A.smp_done || !B.smp_done || !A.smp_ok || !B.smp_ok) {
            fprintf(stderr, "SMP did not succeed\n");
            return 1;
        }
    }
    printf("SMP, full exchange, both sides: %.0f us\n", median(t, RUNS));
    return 0;
}
