/* tests/fuzz/fuzz_wire.c - libFuzzer target for the MessagePack frame decoders (records, control,
 * status). */
/*
 * Every input goes through rt_wire_prevalidate, rt_record_decode, rt_msg_decode,
 * rt_status_decode and rt_msg_peek_type. Whatever decodes is checked for the documented
 * invariants and round-tripped through the matching encoder: the re-encoded frame must
 * decode to equal fields, and encoding those again must give the same bytes.
 *
 * Built with -DGEN_SEEDS instead, this file is a program that writes the seed corpus
 * (tests/fuzz/corpus/fuzz_wire) into the directory named by its argument.
 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest name or text the codec accepts (RT__WIRE_MAX_STR in wire_int.h). */
#define S_MAX_STR 4096u

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static rt_record_decoder_t *s_dec;     /* decodes the input */
static rt_record_decoder_t *s_redec;   /* decodes the re-encoded frame */
static rt_record_builder_t *s_builder; /* re-encodes decoded records */

/* ---------------------------------------------------------------------------------
 * Records. */

/* A name: non-NULL, NUL-terminated, at most S_MAX_STR bytes (strnlen reads it whole
 * under ASan if the terminator is missing). */
static void s_check_name(const char *s)
{
    S_CHECK(s != NULL);
    S_CHECK(strnlen(s, S_MAX_STR + 1) <= S_MAX_STR);
}

/* Values of a row: borrowed text lies inside the frame [lo, hi) with its NUL. */
static void s_check_row(const rt_value_t *vals, uint32_t n, const char *lo, const char *hi)
{
    S_CHECK(n == 0 || vals != NULL);
    for (uint32_t i = 0; i < n; i++) {
        const rt_value_t *v = &vals[i];
        switch (v->kind) {
        case RT_VAL_NULL:
        case RT_VAL_UNCHANGED: S_CHECK(v->len == 0 && v->data == NULL); break;
        case RT_VAL_TEXT:
            S_CHECK(v->data != NULL && v->data >= lo && v->data < hi);
            S_CHECK(v->len < (size_t)(hi - v->data));
            S_CHECK(v->data[v->len] == '\0');
            S_CHECK(v->len == 0 || !memchr(v->data, '\0', v->len));
            break;
        default: S_CHECK(!"value kind");
        }
    }
}

/* Borrowed text of a DDL change: inside the frame [lo, hi) with its NUL. */
static void s_check_text(const char *s, const char *lo, const char *hi)
{
    S_CHECK(s != NULL && s >= lo && s < hi);
    S_CHECK(memchr(s, '\0', (size_t)(hi - s)) != NULL);
}

/* Walks every relation, change and value of rec, decoded from [lo, hi). */
static void s_check_record(const rt_record_t *rec, const char *lo, const char *hi)
{
    S_CHECK((rec->flags & ~(RT_REC_FIRST | RT_REC_LAST)) == 0);
    if (rec->origin)
        s_check_name(rec->origin);
    S_CHECK(rec->nrels == 0 || rec->rels != NULL);
    for (uint32_t i = 0; i < rec->nrels; i++) {
        const rt_relation_t *rel = &rec->rels[i];
        s_check_name(rel->schema);
        s_check_name(rel->table);
        S_CHECK(rel->replident == 'd' || rel->replident == 'n' || rel->replident == 'f' ||
                rel->replident == 'i');
        S_CHECK(rel->ncols == 0 || rel->cols != NULL);
        for (uint32_t j = 0; j < rel->ncols; j++)
            s_check_name(rel->cols[j].name);
    }
    S_CHECK(rec->nchanges == 0 || rec->changes != NULL);
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        if (ch->op == 'Q') {
            s_check_name(ch->seq_schema);
            s_check_name(ch->seq_name);
            S_CHECK(rec->nrels == 0 && rec->flags == (RT_REC_FIRST | RT_REC_LAST));
            S_CHECK(ch->nold == 0 && ch->nnew == 0 && !ch->old && !ch->new_ && !ch->ntrunc);
            continue;
        }
        if (ch->op == 'L') {
            S_CHECK(ch->ddl != NULL);
            s_check_name(ch->ddl->tag);
            S_CHECK(ch->ddl->tag[0] != '\0' && (ch->ddl->flags & ~RT_DDL_FLAGS) == 0);
            s_check_text(ch->ddl->search_path, lo, hi);
            s_check_text(ch->ddl->objects, lo, hi);
            s_check_text(ch->ddl->command, lo, hi);
            S_CHECK(ch->ddl->command[0] != '\0');
            S_CHECK(ch->nold == 0 && ch->nnew == 0 && !ch->old && !ch->new_ && !ch->ntrunc);
            continue;
        }
        if (ch->op == 'T') {
            S_CHECK((ch->trunc_flags & ~3u) == 0);
            S_CHECK(ch->ntrunc == 0 || ch->trunc_rels != NULL);
            for (uint32_t j = 0; j < ch->ntrunc; j++)
                S_CHECK(ch->trunc_rels[j] < rec->nrels);
            S_CHECK(ch->nold == 0 && ch->nnew == 0 && !ch->old && !ch->new_);
            continue;
        }
        S_CHECK(ch->op == 'I' || ch->op == 'U' || ch->op == 'D');
        S_CHECK(ch->rel < rec->nrels);
        S_CHECK(ch->ntrunc == 0 && ch->trunc_rels == NULL);
        uint32_t ncols = rec->rels[ch->rel].ncols;
        switch (ch->op) {
        case 'I': S_CHECK(ch->old_kind == 0 && ch->nold == 0 && ch->nnew == ncols); break;
        case 'U':
            S_CHECK(ch->old_kind == 0 || ch->old_kind == 'K' || ch->old_kind == 'O');
            S_CHECK(ch->nold == (ch->old_kind ? ncols : 0) && ch->nnew == ncols);
            break;
        case 'D':
            S_CHECK(ch->old_kind == 'K' || ch->old_kind == 'O');
            S_CHECK(ch->nold == ncols && ch->nnew == 0 && ch->new_ == NULL);
            break;
        }
        if (ch->old_kind)
            s_check_row(ch->old, ch->nold, lo, hi);
        else
            S_CHECK(ch->old == NULL);
        if (ch->op != 'D')
            s_check_row(ch->new_, ch->nnew, lo, hi);
    }
}

static bool s_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool s_row_eq(const rt_value_t *a, const rt_value_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (a[i].kind != b[i].kind || a[i].len != b[i].len)
            return false;
        if (a[i].kind == RT_VAL_TEXT && memcmp(a[i].data, b[i].data, a[i].len) != 0)
            return false;
    }
    return true;
}

static bool s_record_eq(const rt_record_t *a, const rt_record_t *b)
{
    if (a->seq != b->seq || a->xid != b->xid || a->flags != b->flags ||
        a->commit_lsn != b->commit_lsn || a->end_lsn != b->end_lsn ||
        a->commit_ts != b->commit_ts || !s_str_eq(a->origin, b->origin) || a->nrels != b->nrels ||
        a->nchanges != b->nchanges)
        return false;
    for (uint32_t i = 0; i < a->nrels; i++) {
        const rt_relation_t *x = &a->rels[i], *y = &b->rels[i];
        if (strcmp(x->schema, y->schema) || strcmp(x->table, y->table) ||
            x->replident != y->replident || x->ncols != y->ncols)
            return false;
        for (uint32_t j = 0; j < x->ncols; j++) {
            const rt_column_t *c = &x->cols[j], *d = &y->cols[j];
            if (strcmp(c->name, d->name) || c->typoid != d->typoid || c->typmod != d->typmod ||
                c->key != d->key)
                return false;
        }
    }
    for (uint32_t i = 0; i < a->nchanges; i++) {
        const rt_change_t *x = &a->changes[i], *y = &b->changes[i];
        if (x->op != y->op || x->rel != y->rel || x->old_kind != y->old_kind ||
            x->nold != y->nold || x->nnew != y->nnew || x->trunc_flags != y->trunc_flags ||
            x->ntrunc != y->ntrunc)
            return false;
        if (!s_row_eq(x->old, y->old, x->nold) || !s_row_eq(x->new_, y->new_, x->nnew))
            return false;
        if (x->ntrunc && memcmp(x->trunc_rels, y->trunc_rels, x->ntrunc * sizeof(uint32_t)))
            return false;
        if (x->op == 'L' &&
            (strcmp(x->ddl->tag, y->ddl->tag) || x->ddl->flags != y->ddl->flags ||
             strcmp(x->ddl->search_path, y->ddl->search_path) ||
             strcmp(x->ddl->objects, y->ddl->objects) || strcmp(x->ddl->command, y->ddl->command)))
            return false;
        if (x->op == 'Q' && (strcmp(x->seq_schema, y->seq_schema) ||
                             strcmp(x->seq_name, y->seq_name) || x->seq_value != y->seq_value))
            return false;
    }
    return true;
}

/* Encodes rec with the builder; the frame is owned by the builder until its next start. */
static int s_encode_record(const rt_record_t *rec, const void **frame, size_t *len)
{
    rt_record_builder_start(s_builder, rec->seq, rec->xid, rec->commit_lsn, rec->commit_ts,
                            rec->origin);
    for (uint32_t i = 0; i < rec->nrels; i++)
        S_CHECK(rt_record_builder_relation(s_builder, &rec->rels[i]) == i);
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        switch (ch->op) {
        case 'I': rt_record_builder_insert(s_builder, ch->rel, ch->nnew, ch->new_); break;
        case 'U':
            rt_record_builder_update(s_builder, ch->rel, ch->old_kind, ch->nold, ch->old, ch->nnew,
                                     ch->new_);
            break;
        case 'D':
            rt_record_builder_delete(s_builder, ch->rel, ch->old_kind, ch->nold, ch->old);
            break;
        case 'T':
            rt_record_builder_truncate(s_builder, ch->trunc_flags, ch->ntrunc, ch->trunc_rels);
            break;
        case 'Q':
            rt_record_builder_sequence(s_builder, ch->seq_schema, ch->seq_name, ch->seq_value);
            break;
        case 'L': rt_record_builder_ddl(s_builder, ch->ddl); break;
        }
    }
    S_CHECK(rt_record_builder_nchanges(s_builder) == rec->nchanges);
    return rt_record_builder_finish(s_builder, rec->flags, rec->end_lsn, frame, len);
}

/* Re-encodes a decoded record: the result decodes to equal fields, and encoding that
 * again gives the same bytes. */
static void s_roundtrip_record(const rt_record_t *rec)
{
    const void *frame;
    const rt_record_t *again;
    size_t len;

    int rc = s_encode_record(rec, &frame, &len);
    if (rc == RT_ENOMEM)
        return;
    S_CHECK(rc == RT_OK);
    char *copy = malloc(len);
    S_CHECK(copy != NULL);
    memcpy(copy, frame, len);
    S_CHECK(rt_msg_peek_type(copy, len) == RT_MSG_REC);
    rc = rt_record_decode(s_redec, copy, len, &again);
    if (rc != RT_ENOMEM) {
        S_CHECK(rc == RT_OK);
        s_check_record(again, copy, copy + len);
        S_CHECK(s_record_eq(rec, again));
        rc = s_encode_record(again, &frame, &len);
        S_CHECK(rc == RT_OK || rc == RT_ENOMEM);
        if (rc == RT_OK)
            S_CHECK(memcmp(frame, copy, len) == 0);
    }
    free(copy);
}

/* ---------------------------------------------------------------------------------
 * Control messages and STATUS_REPLY. */

static bool s_msg_eq(const rt_msg_t *a, const rt_msg_t *b)
{
    return a->type == b->type && s_str_eq(a->name, b->name) && s_str_eq(a->source, b->source) &&
           s_str_eq(a->endpoint, b->endpoint) && s_str_eq(a->text, b->text) && a->code == b->code &&
           a->state == b->state && a->seq == b->seq && a->last_seq == b->last_seq &&
           a->first_seq == b->first_seq && a->head_seq == b->head_seq && a->count == b->count &&
           a->paused == b->paused && a->conflicts == b->conflicts && a->commit_ts == b->commit_ts &&
           a->applied_at == b->applied_at && a->flags == b->flags;
}

static void s_check_msg(const rt_msg_t *m)
{
    S_CHECK(m->type > RT_MSG_REC && m->type != RT_MSG_STATUS_REPLY);
    /* SCHEMA_READY's text (the support script) is a text field of any length. */
    const char *strs[] = {m->name, m->source, m->endpoint,
                          m->type == RT_MSG_SCHEMA_READY ? NULL : m->text};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i])
            s_check_name(strs[i]);
    S_CHECK(m->state >= RT_SUB_STREAMING && m->state <= RT_SUB_LAST_STATE);
}

static void s_roundtrip_msg(const rt_msg_t *m)
{
    void *frame = NULL;
    size_t len = 0;
    rt_msg_t again;

    int rc = rt_msg_encode(m, &frame, &len);
    if (rc == RT_ENOMEM)
        return;
    S_CHECK(rc == RT_OK && frame != NULL);
    S_CHECK(rt_msg_peek_type(frame, len) == m->type);
    rc = rt_msg_decode(frame, len, &again);
    if (rc == RT_OK) {
        void *frame2 = NULL;
        size_t len2 = 0;
        S_CHECK(s_msg_eq(m, &again));
        rc = rt_msg_encode(&again, &frame2, &len2);
        S_CHECK(rc == RT_OK || rc == RT_ENOMEM);
        if (rc == RT_OK)
            S_CHECK(len2 == len && memcmp(frame2, frame, len) == 0);
        free(frame2);
        rt_msg_clear(&again);
    } else {
        S_CHECK(rc == RT_ENOMEM);
    }
    free(frame);
}

static void s_check_status(const rt_status_t *st)
{
    S_CHECK(strnlen(st->source, sizeof st->source) < sizeof st->source);
    S_CHECK(strnlen(st->slot, sizeof st->slot) < sizeof st->slot);
    S_CHECK(st->nsubs == 0 || st->subs != NULL);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const rt_status_sub_t *sub = &st->subs[i];
        S_CHECK(strnlen(sub->name, sizeof sub->name) < sizeof sub->name);
        S_CHECK(sub->state >= RT_SUB_STREAMING && sub->state <= RT_SUB_LAST_STATE);
        S_CHECK(strnlen(sub->error, sizeof sub->error) < sizeof sub->error);
    }
    S_CHECK(st->capture_state >= RT_CAPTURE_STREAMING && st->capture_state <= RT_CAPTURE_NONE);
    S_CHECK(st->retained_wal_bytes >= -1 && st->source_lag_bytes >= -1 && st->source_lag_ms >= -1 &&
            st->outbox_limit_bytes >= -1);
}

static bool s_status_eq(const rt_status_t *a, const rt_status_t *b)
{
    if (strcmp(a->source, b->source) || strcmp(a->slot, b->slot) || a->first_seq != b->first_seq ||
        a->head_seq != b->head_seq || a->records != b->records ||
        a->outbox_bytes != b->outbox_bytes || a->received_lsn != b->received_lsn ||
        a->confirmed_lsn != b->confirmed_lsn || a->captured_txns != b->captured_txns ||
        a->captured_rows != b->captured_rows || a->nsubs != b->nsubs ||
        a->capture_state != b->capture_state || a->oldest_ts != b->oldest_ts ||
        a->head_ts != b->head_ts || a->now_ts != b->now_ts ||
        a->retained_wal_bytes != b->retained_wal_bytes ||
        a->source_lag_bytes != b->source_lag_bytes || a->source_lag_ms != b->source_lag_ms ||
        a->outbox_limit_bytes != b->outbox_limit_bytes)
        return false;
    for (uint32_t i = 0; i < a->nsubs; i++) {
        const rt_status_sub_t *x = &a->subs[i], *y = &b->subs[i];
        if (strcmp(x->name, y->name) || x->acked_seq != y->acked_seq || x->state != y->state ||
            x->seen_ms_ago != y->seen_ms_ago || x->conflicts != y->conflicts ||
            x->commit_ts != y->commit_ts || x->applied_at != y->applied_at ||
            x->lag_bytes != y->lag_bytes || x->lag_ms != y->lag_ms || strcmp(x->error, y->error))
            return false;
    }
    return true;
}

static void s_roundtrip_status(const rt_status_t *st)
{
    void *frame = NULL;
    size_t len = 0;
    rt_status_t again;

    int rc = rt_status_encode(st, &frame, &len);
    if (rc == RT_ENOMEM)
        return;
    S_CHECK(rc == RT_OK && frame != NULL);
    S_CHECK(rt_msg_peek_type(frame, len) == RT_MSG_STATUS_REPLY);
    rc = rt_status_decode(frame, len, &again);
    if (rc == RT_OK) {
        void *frame2 = NULL;
        size_t len2 = 0;
        S_CHECK(s_status_eq(st, &again));
        rc = rt_status_encode(&again, &frame2, &len2);
        S_CHECK(rc == RT_OK || rc == RT_ENOMEM);
        if (rc == RT_OK)
            S_CHECK(len2 == len && memcmp(frame2, frame, len) == 0);
        free(frame2);
        rt_status_clear(&again);
    } else {
        S_CHECK(rc == RT_ENOMEM);
    }
    free(frame);
}

/* ---------------------------------------------------------------------------------
 * The target. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *lo = (const char *)data, *hi = lo + size;
    const rt_record_t *rec = NULL;
    rt_msg_t msg;
    rt_status_t st;
    int rc;

    if (!s_dec) {
        s_dec = rt_record_decoder_new();
        s_redec = rt_record_decoder_new();
        s_builder = rt_record_builder_new();
        S_CHECK(s_dec && s_redec && s_builder);
    }

    int pre = rt_wire_prevalidate(data, size);
    S_CHECK(pre == RT_OK || pre == RT_EPROTO);

    int type = rt_msg_peek_type(data, size);
    S_CHECK(type >= RT_MSG_UNKNOWN);

    rc = rt_record_decode(s_dec, data, size, &rec);
    S_CHECK(rc == RT_OK || rc == RT_EPROTO || rc == RT_ENOMEM);
    if (rc == RT_OK) {
        S_CHECK(pre == RT_OK && rec != NULL);
        s_check_record(rec, lo, hi);
        s_roundtrip_record(rec);
    } else {
        S_CHECK(rec == NULL);
    }

    rc = rt_msg_decode(data, size, &msg);
    S_CHECK(rc == RT_OK || rc == RT_EPROTO || rc == RT_ENOMEM);
    if (rc == RT_OK) {
        S_CHECK(pre == RT_OK && type == msg.type);
        s_check_msg(&msg);
        s_roundtrip_msg(&msg);
    }
    rt_msg_clear(&msg);

    rc = rt_status_decode(data, size, &st);
    S_CHECK(rc == RT_OK || rc == RT_EPROTO || rc == RT_ENOMEM);
    if (rc == RT_OK) {
        S_CHECK(pre == RT_OK);
        s_check_status(&st);
        s_roundtrip_status(&st);
    } else {
        S_CHECK(st.nsubs == 0 && st.subs == NULL);
    }
    rt_status_clear(&st);
    return 0;
}

#ifdef GEN_SEEDS
/* ---------------------------------------------------------------------------------
 * Seed corpus generator: fuzz_wire_gen DIR. */

static const char *s_dir;
static int s_nseeds;

/* Writes one seed file and runs it through the target. */
static void s_emit(const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    LLVMFuzzerTestOneInput(data, len);
    s_nseeds++;
}

#define S_TEXT(s)                                                                                  \
    {                                                                                              \
        RT_VAL_TEXT, sizeof(s) - 1, s                                                              \
    }
#define S_NULL                                                                                     \
    {                                                                                              \
        RT_VAL_NULL, 0, NULL                                                                       \
    }
#define S_UNCH                                                                                     \
    {                                                                                              \
        RT_VAL_UNCHANGED, 0, NULL                                                                  \
    }

static rt_column_t s_kv_cols[] = {{"id", 23, -1, true}, {"v", 25, -1, false}, {"n", 23, -1, false}};
static const rt_relation_t s_kv = {"public", "kv", 'd', 3, s_kv_cols};
static rt_column_t s_wide_cols[] = {{"k1", 23, -1, true},
                                    {"k2", 25, -1, true},
                                    {"c_num", 1700, 655366, false},
                                    {"c_bytea", 17, -1, false},
                                    {"c_json", 3802, -1, false}};
static const rt_relation_t s_wide = {"app", "wide table", 'f', 5, s_wide_cols};
static const rt_relation_t s_empty_rel = {"", "nocols", 'n', 0, NULL};
static rt_column_t s_idx_cols[] = {{"uuid", 2950, -1, true}};
static const rt_relation_t s_idx = {"sch\xc3\xa9ma", "t_idx", 'i', 1, s_idx_cols};

/* Finishes the builder's record and emits it. */
static void s_emit_record(const char *name, uint8_t flags, rt_lsn_t end_lsn)
{
    const void *frame;
    size_t len;
    if (rt_record_builder_finish(s_builder, flags, end_lsn, &frame, &len) != RT_OK) {
        fprintf(stderr, "cannot build record %s\n", name);
        exit(1);
    }
    const rt_record_t *rec;
    if (rt_record_decode(s_dec, frame, len, &rec) != RT_OK) {
        fprintf(stderr, "record %s does not decode\n", name);
        exit(1);
    }
    char *copy = malloc(len);
    S_CHECK(copy != NULL);
    memcpy(copy, frame, len);
    s_emit(name, copy, len);
    free(copy);
}

static void s_gen_records(void)
{
    rt_record_builder_t *b;
    const rt_value_t kv1[] = {S_TEXT("1"), S_TEXT("one"), S_TEXT("10")};
    const rt_value_t kv2[] = {S_TEXT("2"), S_TEXT("two"), S_NULL};
    const rt_value_t kv2b[] = {S_TEXT("2"), S_UNCH, S_TEXT("")};
    const rt_value_t kvkey[] = {S_TEXT("1"), S_NULL, S_NULL};
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const rt_value_t wide1[] = {S_TEXT("-32768"),
                                S_TEXT("a \"quoted\" key"),
                                S_TEXT("3.14159"),
                                S_TEXT("\\x00ff10"),
                                {RT_VAL_TEXT, sizeof big - 1, big}};
    const rt_value_t wide2[] = {S_TEXT("7"), S_TEXT("k"), S_NULL, S_UNCH,
                                S_TEXT("{\"a\": [1, 2, null]}")};
    const rt_value_t idx1[] = {S_TEXT("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")};
    const uint32_t both[] = {0, 1};
    uint32_t r0, r1, r2;

    /* Take over the shared builder and decoder (the target created them). */
    b = s_builder;

    rt_record_builder_start(b, 1, 741, 0x155C210, 848932428522742, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_insert(b, r0, 3, kv1);
    rt_record_builder_insert(b, r0, 3, kv2);
    s_emit_record("rec-insert.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C240);

    rt_record_builder_start(b, 2, 742, 0x155C290, 848932428523248, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_update(b, r0, 0, 0, NULL, 3, kv2b);
    rt_record_builder_update(b, r0, 'K', 3, kvkey, 3, kv1);
    rt_record_builder_update(b, r0, 'O', 3, kv1, 3, kv2);
    s_emit_record("rec-update.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C2C0);

    rt_record_builder_start(b, 3, 743, 0x155C3C8, 848932428523501, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_delete(b, r0, 'K', 3, kvkey);
    rt_record_builder_delete(b, r0, 'O', 3, kv2);
    s_emit_record("rec-delete.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C3F8);

    rt_record_builder_start(b, 4, 744, 0x155C660, 848932428524999, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    r1 = rt_record_builder_relation(b, &s_wide);
    rt_record_builder_truncate(b, 3, 2, both);
    rt_record_builder_truncate(b, 0, 1, &r1);
    s_emit_record("rec-truncate.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C690);

    rt_record_builder_start(b, 4, 0, 0x155C660, 848932428524999, NULL);
    rt_record_builder_sequence(b, "public", "kv_id_seq", 1042);
    rt_record_builder_sequence(b, "app", "neg", INT64_MIN);
    s_emit_record("rec-sequences.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C690);

    rt_record_builder_start(b, 5, 746, 0x155C700, 848932428525111, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_insert(b, r0, 3, kv1);
    rt_record_builder_ddl(b, &(rt_ddl_t){"ALTER TABLE", "pg_catalog, public", "table public.kv",
                                         "ALTER TABLE kv ADD COLUMN n int", 0});
    rt_record_builder_ddl(b, &(rt_ddl_t){"CREATE TABLE", "\"a b\", public", "table \"a b\".x",
                                         "DO $$ BEGIN CREATE TABLE x (); END $$", RT_DDL_NESTED});
    rt_record_builder_insert(b, r0, 3, kv2);
    s_emit_record("rec-ddl.mp", RT_REC_FIRST | RT_REC_LAST, 0x155C730);

    rt_record_builder_start(b, 5, 745, 0x1600000, 848932428600000, "node_a");
    r0 = rt_record_builder_relation(b, &s_wide);
    r1 = rt_record_builder_relation(b, &s_kv);
    r2 = rt_record_builder_relation(b, &s_idx);
    rt_record_builder_insert(b, r0, 5, wide1);
    rt_record_builder_update(b, r0, 'O', 5, wide1, 5, wide2);
    rt_record_builder_insert(b, r1, 3, kv1);
    rt_record_builder_insert(b, r2, 1, idx1);
    rt_record_builder_delete(b, r2, 'K', 1, idx1);
    rt_record_builder_delete(b, r0, 'O', 5, wide2);
    s_emit_record("rec-mixed-origin.mp", RT_REC_FIRST, 0);

    rt_record_builder_start(b, 6, 745, 0x1600000, 848932428600000, "node_a");
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_insert(b, r0, 3, kv2);
    s_emit_record("rec-middle.mp", 0, 0);

    rt_record_builder_start(b, 7, 745, 0x1600000, 848932428600000, "");
    r0 = rt_record_builder_relation(b, &s_kv);
    rt_record_builder_update(b, r0, 0, 0, NULL, 3, kv1);
    s_emit_record("rec-last-empty-origin.mp", RT_REC_LAST, 0x1600030);

    rt_record_builder_start(b, 8, 746, 0x1700000, -1, NULL);
    s_emit_record("rec-empty.mp", RT_REC_FIRST | RT_REC_LAST, 0x1700030);

    rt_record_builder_start(b, 9, 747, 0x1800000, 0, NULL);
    r0 = rt_record_builder_relation(b, &s_empty_rel);
    rt_record_builder_insert(b, r0, 0, NULL);
    rt_record_builder_delete(b, r0, 'O', 0, NULL);
    rt_record_builder_truncate(b, 2, 0, NULL);
    s_emit_record("rec-nocols.mp", RT_REC_FIRST | RT_REC_LAST, 0x1800030);

    rt_record_builder_start(b, UINT64_MAX, UINT32_MAX, UINT64_MAX, INT64_MIN, NULL);
    r0 = rt_record_builder_relation(b, &s_idx);
    rt_record_builder_insert(b, r0, 1, idx1);
    s_emit_record("rec-extremes.mp", RT_REC_FIRST | RT_REC_LAST, UINT64_MAX);

    /* Many small changes in one record (as a capture chunk would hold). */
    rt_record_builder_start(b, 10, 748, 0x1900000, 848932428700000, NULL);
    r0 = rt_record_builder_relation(b, &s_kv);
    for (int i = 0; i < 40; i++)
        rt_record_builder_insert(b, r0, 3, i % 2 ? kv1 : kv2);
    s_emit_record("rec-many.mp", RT_REC_FIRST, 0);
}

static void s_emit_msg(const char *name, const rt_msg_t *m)
{
    void *frame;
    size_t len;
    int rc = rt_msg_encode(m, &frame, &len);
    if (rc == RT_EINVAL && (m->type == RT_MSG_FORGET || m->type == RT_MSG_REPLAY)) {
        fprintf(stderr, "note: %s not written: the codec does not encode it yet\n", name);
        return;
    }
    if (rc != RT_OK) {
        fprintf(stderr, "cannot encode %s\n", name);
        exit(1);
    }
    s_emit(name, frame, len);
    free(frame);
}

static void s_gen_msgs(void)
{
    char *name = "sub-1", *source = "src", *endpoint = "tcp://127.0.0.1:5556";
    rt_msg_t m;

    m = (rt_msg_t){.type = RT_MSG_HELLO, .name = name, .seq = 41};
    s_emit_msg("msg-hello.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_WELCOME,
                   .source = source,
                   .endpoint = endpoint,
                   .first_seq = 1,
                   .head_seq = 100000,
                   .run_id = 0x9e3779b97f4a7c15ull};
    s_emit_msg("msg-welcome.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_WELCOME,
                   .source = source,
                   .endpoint = endpoint,
                   .first_seq = 50,
                   .head_seq = 100000,
                   .paused = true};
    s_emit_msg("msg-welcome-paused.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_FETCH, .seq = 42, .count = 256};
    s_emit_msg("msg-fetch.mp", &m);
    m = (rt_msg_t){
        .type = RT_MSG_FETCHED, .seq = 42, .last_seq = 297, .head_seq = 300, .run_id = 7};
    s_emit_msg("msg-fetched.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_ACK,
                   .seq = 297,
                   .state = RT_SUB_CATCHING_UP,
                   .text = "",
                   .conflicts = 0,
                   .commit_ts = 848932428600000,
                   .applied_at = 848932428600250};
    s_emit_msg("msg-ack.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_ACK,
                   .seq = 150,
                   .state = RT_SUB_ERROR,
                   .conflicts = 3,
                   .text = "duplicate key value violates unique constraint \"kv_pkey\""};
    s_emit_msg("msg-ack-error.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_HUGZ, .head_seq = UINT64_MAX, .run_id = 0x9e3779b97f4a7c15ull};
    s_emit_msg("msg-hugz.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_LIVE, .head_seq = 299, .run_id = 0x9e3779b97f4a7c15ull};
    s_emit_msg("msg-live.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_ERROR, .code = RT_ETRIMMED, .text = "range trimmed"};
    s_emit_msg("msg-error.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_PING};
    s_emit_msg("msg-ping.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_PONG, .source = source, .head_seq = 300};
    s_emit_msg("msg-pong.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_STATUS};
    s_emit_msg("msg-status.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_PAUSE, .name = name};
    s_emit_msg("msg-pause.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_RESUME, .name = ""};
    s_emit_msg("msg-resume.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_OK, .text = "paused sub-1"};
    s_emit_msg("msg-ok.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_FORGET, .name = name, .flags = RT_FORGET_FORCE};
    s_emit_msg("msg-forget.mp", &m);
    m = (rt_msg_t){
        .type = RT_MSG_REPLAY, .name = name, .seq = 100, .last_seq = 0, .flags = RT_REPLAY_RESET};
    s_emit_msg("msg-replay.mp", &m);
    m = (rt_msg_t){.type = RT_MSG_REPLAY,
                   .name = name,
                   .commit_ts = 848932428600000,
                   .flags = RT_REPLAY_SINCE | RT_REPLAY_DRY_RUN};
    s_emit_msg("msg-replay-since.mp", &m);
    rt_sync_ddl_t ddl[1] = {{.schema = "app",
                             .table = "orders",
                             .pre = "CREATE TABLE app.orders (id int);\n",
                             .post = "ALTER TABLE ONLY app.orders ADD CONSTRAINT orders_pkey "
                                     "PRIMARY KEY (id);\n"}};
    m = (rt_msg_t){.type = RT_MSG_SCHEMA_READY,
                   .sync_id = 7,
                   .ddl = ddl,
                   .nddl = 1,
                   .text = "\n--\n-- Name: status; Type: TYPE; Schema: app; Owner: -\n--\n\n"
                           "CREATE TYPE app.status AS ENUM ('new', 'paid');\n"};
    s_emit_msg("msg-schema-ready.mp", &m);
}

static void s_gen_status(void)
{
    rt_status_sub_t subs[3] = {
        {.name = "sub-1",
         .acked_seq = 297,
         .state = RT_SUB_STREAMING,
         .seen_ms_ago = 12,
         .conflicts = 2,
         .commit_ts = 848932428600000,
         .applied_at = 848932428600250,
         .lag_bytes = 0,
         .lag_ms = 250},
        {.name = "sub-2", .state = RT_SUB_OFFLINE, .seen_ms_ago = -1, .lag_ms = -1},
        {.name = "sub-3",
         .acked_seq = 150,
         .state = RT_SUB_ERROR,
         .seen_ms_ago = 5000,
         .lag_bytes = 1 << 20,
         .lag_ms = 61000,
         .error = "duplicate key value violates unique constraint \"kv_pkey\""},
    };
    rt_status_t st = {.source = "src",
                      .slot = "rt_slot",
                      .first_seq = 1,
                      .head_seq = 300,
                      .records = 300,
                      .outbox_bytes = 1 << 20,
                      .received_lsn = 0x16B374D848,
                      .confirmed_lsn = 0x16B374D800,
                      .captured_txns = 120,
                      .captured_rows = 4500,
                      .nsubs = 3,
                      .subs = subs,
                      .capture_state = RT_CAPTURE_BLOCKED,
                      .oldest_ts = 848932428500000,
                      .head_ts = 848932428600000,
                      .now_ts = 848932428700000,
                      .retained_wal_bytes = 96 << 20,
                      .source_lag_bytes = 1 << 20,
                      .source_lag_ms = 1500,
                      .outbox_limit_bytes = 8 << 20};
    void *frame;
    size_t len;

    if (rt_status_encode(&st, &frame, &len) != RT_OK)
        exit(1);
    s_emit("status-reply.mp", frame, len);
    free(frame);
    st.nsubs = 0;
    st.subs = NULL;
    if (rt_status_encode(&st, &frame, &len) != RT_OK)
        exit(1);
    s_emit("status-reply-nosubs.mp", frame, len);
    free(frame);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    s_dir = argv[1];
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0); /* creates the decoders */
    s_gen_records();
    s_gen_msgs();
    s_gen_status();
    printf("%d seeds written to %s\n", s_nseeds, s_dir);
    rt_record_decoder_destroy(&s_dec);
    rt_record_decoder_destroy(&s_redec);
    rt_record_builder_destroy(&s_builder);
    return 0;
}
#endif
