/*
 * A line-driven libotr 4.1 peer for otr4's OTRv3 interop test (test-vectors/tests/
 * libotr_interop.rs). Written against libotr's public API only: otrl_message_sending and
 * otrl_message_receiving with in-memory OtrlMessageAppOps callbacks.
 *
 * Usage: harness <dir>   (the private key, instance tag and fingerprint files live in <dir>;
 * the key is generated there on first use)
 *
 * Commands on stdin, one per line:
 *   recv <text>   a message from "otr4" arrives     send <text>   the user types <text>
 *   fp            print our fingerprint
 * Output lines: OUT <text> (to be delivered to otr4), MSG <text> (shown to the user),
 * SECURE <peer fingerprint>, EVENT <n>, FP <fingerprint>; every command ends with DONE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gcrypt.h>
#include <libotr/proto.h>
#include <libotr/userstate.h>
#include <libotr/message.h>
#include <libotr/privkey.h>
#include <libotr/instag.h>

#define ACCOUNT "libotr@example.org"
#define PROTOCOL "xmpp"
#define PEER "otr4@example.org"

static OtrlUserState us;
static char instag_path[4096];
static int max_size = 0;

static OtrlPolicy cb_policy(void *o, ConnContext *c) {
    (void)o; (void)c;
    return OTRL_POLICY_ALLOW_V3;
}
static void cb_create_privkey(void *o, const char *a, const char *p) { (void)o; (void)a; (void)p; }
static int cb_is_logged_in(void *o, const char *a, const char *p, const char *r) {
    (void)o; (void)a; (void)p; (void)r;
    return 1;
}
static void cb_inject(void *o, const char *a, const char *p, const char *r, const char *m) {
    (void)o; (void)a; (void)p; (void)r;
    printf("OUT %s\n", m);
}
static void cb_update_context_list(void *o) { (void)o; }
static void cb_new_fingerprint(void *o, OtrlUserState u, const char *a, const char *p,
                               const char *n, unsigned char fp[20]) {
    (void)o; (void)u; (void)a; (void)p; (void)n; (void)fp;
}
static void cb_write_fingerprints(void *o) { (void)o; }
static void cb_gone_secure(void *o, ConnContext *c) {
    char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN];
    (void)o;
    if (c->active_fingerprint && c->active_fingerprint->fingerprint) {
        otrl_privkey_hash_to_human(human, c->active_fingerprint->fingerprint);
        printf("SECURE %s\n", human);
    } else {
        printf("SECURE ?\n");
    }
}
static void cb_gone_insecure(void *o, ConnContext *c) { (void)o; (void)c; printf("INSECURE\n"); }
static void cb_still_secure(void *o, ConnContext *c, int r) { (void)o; (void)c; (void)r; printf("STILL_SECURE\n"); }
static int cb_max_message_size(void *o, ConnContext *c) { (void)o; (void)c; return max_size; }
static const char *cb_account_name(void *o, const char *a, const char *p) { (void)o; (void)p; return a; }
static void cb_account_name_free(void *o, const char *a) { (void)o; (void)a; }
static void cb_received_symkey(void *o, ConnContext *c, unsigned int use, const unsigned char *d,
                               size_t l, const unsigned char *k) {
    (void)o; (void)c; (void)use; (void)d; (void)l; (void)k;
}
static const char *cb_error_message(void *o, ConnContext *c, OtrlErrorCode e) {
    (void)o; (void)c;
    static char buf[32];
    snprintf(buf, sizeof buf, "error %d", (int)e);
    return buf;
}
static void cb_error_message_free(void *o, const char *m) { (void)o; (void)m; }
static const char *cb_resent_prefix(void *o, ConnContext *c) { (void)o; (void)c; return "[resent]"; }
static void cb_resent_prefix_free(void *o, const char *p) { (void)o; (void)p; }
static void cb_smp_event(void *o, OtrlSMPEvent e, ConnContext *c, unsigned short pct, char *q) {
    (void)o; (void)c; (void)q;
    printf("SMP %d %u\n", (int)e, (unsigned)pct);
}
static void cb_msg_event(void *o, OtrlMessageEvent e, ConnContext *c, const char *m, gcry_error_t err) {
    (void)o; (void)c; (void)m; (void)err;
    printf("EVENT %d\n", (int)e);
}
static void cb_create_instag(void *o, const char *a, const char *p) {
    (void)o;
    otrl_instag_generate(us, instag_path, a, p);
}
static void cb_timer_control(void *o, unsigned int interval) { (void)o; (void)interval; }

static OtrlMessageAppOps ops = {
    cb_policy, cb_create_privkey, cb_is_logged_in, cb_inject, cb_update_context_list,
    cb_new_fingerprint, cb_write_fingerprints, cb_gone_secure, cb_gone_insecure,
    cb_still_secure, cb_max_message_size, cb_account_name, cb_account_name_free,
    cb_received_symkey, cb_error_message, cb_error_message_free, cb_resent_prefix,
    cb_resent_prefix_free, cb_smp_event, cb_msg_event, cb_create_instag, NULL, NULL,
    cb_timer_control,
};

int main(int argc, char **argv) {
    char key_path[4096], line[1 << 16];
    char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN];
    const char *frag = getenv("HARNESS_MAX_MESSAGE_SIZE");

    if (argc != 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    if (frag) max_size = atoi(frag);
    setvbuf(stdout, NULL, _IOLBF, 0);
    OTRL_INIT;
    us = otrl_userstate_create();
    snprintf(key_path, sizeof key_path, "%s/otr.private_key", argv[1]);
    snprintf(instag_path, sizeof instag_path, "%s/otr.instance_tags", argv[1]);
    if (otrl_privkey_read(us, key_path) || !otrl_privkey_find(us, ACCOUNT, PROTOCOL)) {
        if (otrl_privkey_generate(us, key_path, ACCOUNT, PROTOCOL)) {
            fprintf(stderr, "key generation failed\n");
            return 1;
        }
    }
    otrl_instag_read(us, instag_path);

    while (fgets(line, sizeof line, stdin)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (strncmp(line, "recv ", 5) == 0) {
            char *newmsg = NULL;
            OtrlTLV *tlvs = NULL;
            int ignore = otrl_message_receiving(us, &ops, NULL, ACCOUNT, PROTOCOL, PEER,
                                                line + 5, &newmsg, &tlvs, NULL, NULL, NULL);
            if (!ignore) printf("MSG %s\n", newmsg ? newmsg : line + 5);
            if (tlvs) otrl_tlv_free(tlvs);
            otrl_message_free(newmsg);
        } else if (strncmp(line, "send ", 5) == 0) {
            char *newmsg = NULL;
            gcry_error_t err = otrl_message_sending(us, &ops, NULL, ACCOUNT, PROTOCOL, PEER,
                                                    OTRL_INSTAG_BEST, line + 5, NULL, &newmsg,
                                                    OTRL_FRAGMENT_SEND_ALL, NULL, NULL, NULL);
            if (err) printf("ERROR %u\n", (unsigned)err);
            else if (!newmsg) printf("OUT %s\n", line + 5);
            otrl_message_free(newmsg);
        } else if (strcmp(line, "fp") == 0) {
            if (otrl_privkey_fingerprint(us, human, ACCOUNT, PROTOCOL))
                printf("FP %s\n", human);
        } else {
            printf("ERROR unknown command\n");
        }
        printf("DONE\n");
    }
    otrl_userstate_free(us);
    return 0;
}
