/* tests/tools/fake_publisher.c - a scripted publisher peer (ROUTER + PUB) for subscriber tests.
 *
 * Serves a fixed, deterministic stream of REC records built with the project's
 * wire codec, speaking the real protocol (PING/PONG, HELLO/WELCOME or ERROR,
 * FETCH/FETCHED, ACK, HUGZ). Records are "committed" one every --interval-ms and
 * published over PUB, except every seq with seq % 7 == 3, which is never
 * published (so the subscriber must FETCH it); malformed frames are sprinkled on
 * PUB and sent once before the first PONG. Prints one line per event on stdout:
 *   hello NAME APPLIED | fetch FROM COUNT LAST | ack SEQ STATE | done HEAD
 *
 * The stream (tables in schemas public; the replica must have them):
 *   items(id int4 key, val text, note text)   other(k text key, v int4)
 *   events(n int4, note text) replica identity full (no key)
 *   big(id int8 key, payload text)            late_t(id int4 key, v text)
 * See s_build() for the exact changes; tests/integration/subscriber_apply.sh
 * checks the replica's final state against them.
 */
#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"
#include "sock.h"
#include "wire.h"

typedef struct {
    void *data;
    size_t len;
} s_rec_t;

static s_rec_t *s_recs;
static uint64_t s_nrecs;
static uint64_t s_cap;
static rt_record_builder_t *s_b;
static uint64_t s_seq;
static uint32_t s_xid = 1000;
static bool s_in_txn;

static rt_column_t s_items_cols[] = {
    {"id", 23, -1, true}, {"val", 25, -1, false}, {"note", 25, -1, false}};
static rt_relation_t s_items = {"public", "items", 'd', 3, s_items_cols};
static rt_column_t s_other_cols[] = {{"k", 25, -1, true}, {"v", 23, -1, false}};
static rt_relation_t s_other = {"public", "other", 'd', 2, s_other_cols};
static rt_column_t s_events_cols[] = {{"n", 23, -1, false}, {"note", 25, -1, false}};
static rt_relation_t s_events = {"public", "events", 'f', 2, s_events_cols};
static rt_column_t s_big_cols[] = {{"id", 20, -1, true}, {"payload", 25, -1, false}};
static rt_relation_t s_big = {"public", "big", 'd', 2, s_big_cols};
static rt_column_t s_late_cols[] = {{"id", 23, -1, true}, {"v", 25, -1, false}};
static rt_relation_t s_late = {"public", "late_t", 'd', 2, s_late_cols};

static rt_value_t T(const char *s)
{
    return (rt_value_t){.kind = RT_VAL_TEXT, .len = (uint32_t)strlen(s), .data = s};
}
static const rt_value_t N = {.kind = RT_VAL_NULL};
static const rt_value_t U = {.kind = RT_VAL_UNCHANGED};

/* Starts the next record of the current (or a new) source transaction; every record
 * of a transaction carries its commit LSN and time (those of its first seq). */
static void s_start(void)
{
    static uint64_t txn_seq;
    s_seq++;
    if (!s_in_txn) {
        s_xid++;
        s_in_txn = true;
        txn_seq = s_seq;
    }
    rt_record_builder_start(s_b, s_seq, s_xid, 0x1000000 + txn_seq,
                            700000000000000LL + (int64_t)txn_seq, NULL);
}

/* Finishes the record with flags and stores a copy. */
static void s_finish(uint8_t flags)
{
    const void *data;
    size_t len;
    if (rt_record_builder_finish(s_b, flags, (flags & RT_REC_LAST) ? 0x2000000 + s_seq : 0, &data,
                                 &len) != RT_OK) {
        fprintf(stderr, "fake_publisher: cannot encode seq %" PRIu64 "\n", s_seq);
        exit(1);
    }
    if (s_nrecs == s_cap) {
        s_cap = s_cap ? s_cap * 2 : 256;
        s_recs = realloc(s_recs, s_cap * sizeof *s_recs);
    }
    s_recs[s_nrecs].data = malloc(len);
    memcpy(s_recs[s_nrecs].data, data, len);
    s_recs[s_nrecs].len = len;
    s_nrecs++;
    if (flags & RT_REC_LAST)
        s_in_txn = false;
}

#define FL (RT_REC_FIRST | RT_REC_LAST)

static void s_items_insert(uint32_t rel, int id, const char *val, const char *note)
{
    char ids[16];
    snprintf(ids, sizeof ids, "%d", id);
    rt_value_t v[3] = {T(ids), val ? T(val) : N, note ? T(note) : N};
    rt_record_builder_insert(s_b, rel, 3, v);
}

/* --evil: what a hostile publisher would send: a superuser's password changed in
 * pg_catalog.pg_authid, then a row in rt's own schema; a subscriber applies neither. */
static void s_build_evil(void)
{
    static rt_column_t authid_cols[] = {{"rolname", 19, -1, true}, {"rolpassword", 25, -1, false}};
    static rt_relation_t authid = {"pg_catalog", "pg_authid", 'd', 2, authid_cols};
    static rt_column_t conflict_cols[] = {{"id", 20, -1, true}, {"kind", 25, -1, false}};
    static rt_relation_t conflicts = {"rt", "conflicts", 'd', 2, conflict_cols};
    s_start();
    uint32_t r = rt_record_builder_relation(s_b, &authid);
    rt_value_t v[2] = {T("postgres"), T("md5evil")};
    rt_record_builder_update(s_b, r, 0, 0, NULL, 2, v);
    s_finish(FL);
    s_start();
    r = rt_record_builder_relation(s_b, &conflicts);
    rt_value_t c[2] = {T("1"), T("forged")};
    rt_record_builder_insert(s_b, r, 2, c);
    s_finish(FL);
}

static void s_build(int small_txns, int big_rows)
{
    char a[64], b2[64];
    uint32_t it, ot, ev, bg, lt;

    /* 1: three inserts. */
    s_start();
    it = rt_record_builder_relation(s_b, &s_items);
    s_items_insert(it, 1, "a1", "n1");
    s_items_insert(it, 2, "a2", "n2");
    s_items_insert(it, 3, "a3", NULL);
    s_finish(FL);
    /* 2: update with an unchanged (TOAST) column, no old image. */
    s_start();
    it = rt_record_builder_relation(s_b, &s_items);
    {
        rt_value_t nv[3] = {T("2"), T("b2"), U};
        rt_record_builder_update(s_b, it, 0, 0, NULL, 3, nv);
    }
    s_finish(FL);
    /* 3-5: one transaction in three records. */
    for (int part = 0; part < 3; part++) {
        s_start();
        it = rt_record_builder_relation(s_b, &s_items);
        if (part < 2) {
            for (int i = 0; i < 10; i++) {
                snprintf(a, sizeof a, "v%d", 10 + part * 10 + i);
                s_items_insert(it, 10 + part * 10 + i, a, NULL);
            }
            s_finish(part == 0 ? RT_REC_FIRST : 0);
        } else {
            rt_value_t old1[3] = {T("1"), N, N};
            rt_record_builder_delete(s_b, it, 'K', 3, old1);
            rt_value_t old10[3] = {T("10"), N, N};
            rt_value_t new110[3] = {T("110"), T("x"), T("y")};
            rt_record_builder_update(s_b, it, 'K', 3, old10, 3, new110);
            s_finish(RT_REC_LAST);
        }
    }
    /* 6: two tables, duplicate rows in a table without a key. */
    s_start();
    ot = rt_record_builder_relation(s_b, &s_other);
    ev = rt_record_builder_relation(s_b, &s_events);
    {
        rt_value_t o1[2] = {T("a"), T("1")}, o2[2] = {T("b"), T("2")};
        rt_record_builder_insert(s_b, ot, 2, o1);
        rt_record_builder_insert(s_b, ot, 2, o2);
        rt_value_t e1[2] = {T("1"), T("e1")}, e2[2] = {T("2"), T("e2")};
        rt_record_builder_insert(s_b, ev, 2, e1);
        rt_record_builder_insert(s_b, ev, 2, e2);
        rt_record_builder_insert(s_b, ev, 2, e2);
    }
    s_finish(FL);
    /* 7: truncate, delete one of two identical rows. */
    s_start();
    ot = rt_record_builder_relation(s_b, &s_other);
    ev = rt_record_builder_relation(s_b, &s_events);
    {
        uint32_t rels[1] = {ot};
        rt_record_builder_truncate(s_b, 0, 1, rels);
        rt_value_t e2[2] = {T("2"), T("e2")};
        rt_record_builder_delete(s_b, ev, 'O', 2, e2);
    }
    s_finish(FL);
    /* 8: insert, full-row update. */
    s_start();
    ot = rt_record_builder_relation(s_b, &s_other);
    ev = rt_record_builder_relation(s_b, &s_events);
    {
        rt_value_t o3[2] = {T("c"), T("3")};
        rt_record_builder_insert(s_b, ot, 2, o3);
        rt_value_t e1[2] = {T("1"), T("e1")}, e1u[2] = {T("1"), T("e1-upd")};
        rt_record_builder_update(s_b, ev, 'O', 2, e1, 2, e1u);
    }
    s_finish(FL);
    /* 9: a transaction without changes. */
    s_start();
    s_finish(FL);
    /* Small transactions; every fifth spans two records. */
    for (int i = 0; i < small_txns; i++) {
        snprintf(a, sizeof a, "%d", 100 + i);
        rt_value_t e[2] = {T(a), T("m")};
        s_start();
        it = rt_record_builder_relation(s_b, &s_items);
        s_items_insert(it, 1000 + i, "s", NULL);
        if (i % 5 == 4) {
            s_finish(RT_REC_FIRST);
            s_start();
        }
        ev = rt_record_builder_relation(s_b, &s_events);
        rt_record_builder_insert(s_b, ev, 2, e);
        s_finish(i % 5 == 4 ? RT_REC_LAST : FL);
    }
    /* A conflict: updates row 999, which the replica does not have. */
    s_start();
    it = rt_record_builder_relation(s_b, &s_items);
    {
        rt_value_t nv[3] = {T("999"), T("z"), U};
        rt_record_builder_update(s_b, it, 0, 0, NULL, 3, nv);
    }
    s_finish(FL);
    printf("conflict_seq %" PRIu64 "\n", s_seq);
    /* A table the replica does not have yet. */
    s_start();
    lt = rt_record_builder_relation(s_b, &s_late);
    {
        rt_value_t l[2] = {T("1"), T("l1")};
        rt_record_builder_insert(s_b, lt, 2, l);
    }
    s_finish(FL);
    printf("missing_seq %" PRIu64 "\n", s_seq);
    /* One big transaction in ~64 KiB records. */
    s_start();
    bg = rt_record_builder_relation(s_b, &s_big);
    uint8_t flags = RT_REC_FIRST;
    for (int i = 1; i <= big_rows; i++) {
        snprintf(a, sizeof a, "%d", i);
        snprintf(b2, sizeof b2, "payload-%08d-abcdefghijklmnopqrstuvwxyz", i);
        rt_value_t v[2] = {T(a), T(b2)};
        rt_record_builder_insert(s_b, bg, 2, v);
        if (rt_record_builder_size(s_b) >= RT_RECORD_TARGET_BYTES && i < big_rows) {
            s_finish(flags);
            flags = 0;
            s_start();
            bg = rt_record_builder_relation(s_b, &s_big);
        }
    }
    s_finish(flags | RT_REC_LAST);
    printf("big_last_seq %" PRIu64 "\n", s_seq);
    /* Last: key delete, update keeping the key, update of a note. */
    s_start();
    bg = rt_record_builder_relation(s_b, &s_big);
    it = rt_record_builder_relation(s_b, &s_items);
    {
        rt_value_t d[2] = {T("5"), N};
        rt_record_builder_delete(s_b, bg, 'K', 2, d);
        rt_value_t u6[2] = {T("6"), T("six")};
        rt_record_builder_update(s_b, bg, 0, 0, NULL, 2, u6);
        rt_value_t u3[3] = {T("3"), U, T("last")};
        rt_record_builder_update(s_b, it, 0, 0, NULL, 3, u3);
    }
    s_finish(FL);
    printf("total %" PRIu64 "\n", s_seq);
    fflush(stdout);
}

static void s_send_router(zsock_t *router, zframe_t *id, const void *data, size_t len)
{
    zmsg_t *m = zmsg_new();
    zmsg_append(m, &(zframe_t *){zframe_dup(id)});
    zmsg_addmem(m, data, len);
    if (zmsg_send(&m, router) != 0)
        zmsg_destroy(&m);
}

static void s_send_msg(zsock_t *router, zframe_t *id, const rt_msg_t *msg)
{
    void *f;
    size_t len;
    if (rt_msg_encode(msg, &f, &len) != RT_OK)
        return;
    s_send_router(router, id, f, len);
    free(f);
}

static void s_publish(zsock_t *pub, const void *data, size_t len)
{
    zframe_t *f = zframe_new(data, len);
    zframe_send(&f, pub, ZFRAME_DONTWAIT);
    zframe_destroy(&f);
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *pubep = NULL, *advertise = NULL, *source = "demo";
    zcert_t *cert = NULL;
    bool evil = false;
    uint64_t first_seq = 1;
    int interval_ms = 5, small = 300, big = 100000;
    static struct option opts[] = {{"listen", 1, 0, 'l'},
                                   {"pub", 1, 0, 'p'},
                                   {"advertise", 1, 0, 'a'},
                                   {"source", 1, 0, 's'},
                                   {"first-seq", 1, 0, 'f'},
                                   {"interval-ms", 1, 0, 'i'},
                                   {"small", 1, 0, 'm'},
                                   {"big", 1, 0, 'b'},
                                   {"cert", 1, 0, 'c'},
                                   {"evil", 0, 0, 'e'},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'p': pubep = optarg; break;
        case 'a': advertise = optarg; break;
        case 's': source = optarg; break;
        case 'f': first_seq = strtoull(optarg, NULL, 10); break;
        case 'i': interval_ms = atoi(optarg); break;
        case 'm': small = atoi(optarg); break;
        case 'b': big = atoi(optarg); break;
        case 'e': evil = true; break;
        case 'c':
            if (!(cert = rt_curve_load_secret(optarg)))
                return 2;
            break;
        default: return 2;
        }
    }
    if (!listen || !pubep) {
        fprintf(stderr,
                "usage: fake_publisher --listen EP --pub EP [--advertise EP] [--source NAME] "
                "[--first-seq N] [--interval-ms MS] [--small N] [--big ROWS] [--cert SECRET] "
                "[--evil]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_b = rt_record_builder_new();
    if (evil)
        s_build_evil();
    else
        s_build(small, big);

    /* With --cert: a CURVE server with its own key and no ZAP handler, so it would take
     * any client: what a stranger posing as the publisher looks like. */
    rt_sock_opts_t ro = {
        .type = ZMQ_ROUTER, .endpoint = listen, .bind = true, .what = "ROUTER", .cert = cert};
    rt_sock_opts_t po = {
        .type = ZMQ_PUB, .endpoint = pubep, .bind = true, .what = "PUB", .cert = cert};
    zsock_t *router = rt_sock_new(&ro);
    zsock_t *pub = router ? rt_sock_new(&po) : NULL;
    if (!pub)
        return 1;
    zpoller_t *poller = zpoller_new(router, NULL);
    uint64_t head = 0, last_ack = UINT64_MAX;
    int64_t next_commit = zclock_mono(), last_pub = zclock_mono();
    bool garbage_sent = false, done = false;
    static const unsigned char garbage[] = {0x93, 0xa3, 'R', 'E', 'C', 0x01, 0xdd, 0xff, 0xff};

    while (!zsys_interrupted) {
        int64_t now = zclock_mono();
        while (head < s_nrecs && now >= next_commit) {
            head++;
            if (head % 7 != 3)
                s_publish(pub, s_recs[head - 1].data, s_recs[head - 1].len);
            if (head % 50 == 0)
                s_publish(pub, garbage, sizeof garbage);
            last_pub = now;
            next_commit += interval_ms;
            if (interval_ms == 0)
                break;
        }
        if (head == s_nrecs && !done) {
            printf("done %" PRIu64 "\n", head);
            done = true;
        }
        if (now - last_pub >= 1000) {
            rt_msg_t h = {.type = RT_MSG_HUGZ, .head_seq = head};
            void *f;
            size_t len;
            if (rt_msg_encode(&h, &f, &len) == RT_OK) {
                s_publish(pub, f, len);
                free(f);
            }
            last_pub = now;
        }
        void *which = zpoller_wait(poller, 10);
        if (which != router)
            continue;
        zmsg_t *in = zmsg_recv(router);
        if (!in)
            continue;
        zframe_t *id = zmsg_pop(in);
        zframe_t *body = zmsg_first(in);
        rt_msg_t m;
        if (!id || !body || rt_msg_decode(zframe_data(body), zframe_size(body), &m) != RT_OK) {
            printf("bad frame\n");
            zframe_destroy(&id);
            zmsg_destroy(&in);
            continue;
        }
        rt_msg_t out = {0};
        switch (m.type) {
        case RT_MSG_PING:
            if (!garbage_sent) {
                s_send_router(router, id, garbage, sizeof garbage);
                garbage_sent = true;
            }
            out = (rt_msg_t){.type = RT_MSG_PONG, .source = (char *)source, .head_seq = head};
            s_send_msg(router, id, &out);
            break;
        case RT_MSG_HELLO:
            printf("hello %s %" PRIu64 "\n", m.name, m.seq);
            if (m.seq + 1 < first_seq) {
                out = (rt_msg_t){.type = RT_MSG_ERROR,
                                 .code = RT_ETRIMMED,
                                 .text = "records before the outbox's first seq were trimmed"};
            } else {
                out = (rt_msg_t){.type = RT_MSG_WELCOME,
                                 .source = (char *)source,
                                 .endpoint = (char *)(advertise ? advertise : pubep),
                                 .first_seq = first_seq,
                                 .head_seq = head};
            }
            s_send_msg(router, id, &out);
            break;
        case RT_MSG_FETCH: {
            uint64_t last = 0;
            size_t bytes = 0;
            uint64_t from = m.seq < first_seq ? first_seq : m.seq;
            for (uint64_t s = from; s <= head && s < from + m.count && bytes < 8u * 1024 * 1024;
                 s++) {
                s_send_router(router, id, s_recs[s - 1].data, s_recs[s - 1].len);
                bytes += s_recs[s - 1].len;
                last = s;
            }
            out = (rt_msg_t){
                .type = RT_MSG_FETCHED, .seq = m.seq, .last_seq = last, .head_seq = head};
            s_send_msg(router, id, &out);
            printf("fetch %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", m.seq, m.count, last);
            break;
        }
        case RT_MSG_ACK:
            if (m.seq != last_ack)
                printf("ack %" PRIu64 " %s\n", m.seq, rt_sub_state_name((int)m.state));
            last_ack = m.seq;
            break;
        default: printf("unexpected type %d\n", m.type); break;
        }
        rt_msg_clear(&m);
        zframe_destroy(&id);
        zmsg_destroy(&in);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
    zsock_destroy(&pub);
    for (uint64_t i = 0; i < s_nrecs; i++)
        free(s_recs[i].data);
    free(s_recs);
    rt_record_builder_destroy(&s_b);
    return 0;
}
