/* rtctl/outbox.c - rtctl outbox inspect: an offline, read-only look into an outbox. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "outbox.h"

/* Records read per call while summing sizes: each call is one short read transaction. */
#define S_SCAN_CHUNK 10000
/* Changes and value bytes shown of the decoded record. */
#define S_SHOW_CHANGES 20
#define S_SHOW_VALUE 60

typedef struct {
    uint64_t records, bytes, last;
} s_sum_t;

static int s_sum_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_sum_t *s = arg;
    (void)data;
    s->records++;
    s->bytes += len;
    s->last = seq;
    return 0;
}

/* A copy of one record (the bytes are only valid inside the read callback). */
typedef struct {
    void *data;
    size_t len;
} s_copy_t;

static int s_copy_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_copy_t *c = arg;
    (void)seq;
    c->data = malloc(len ? len : 1);
    if (!c->data)
        return RT_ENOMEM;
    memcpy(c->data, data, len);
    c->len = len;
    return 1;
}

static int s_print_sub(void *arg, const rt_outbox_sub_t *sub)
{
    (void)arg;
    printf("  subscriber %-20s acked seq %-10" PRIu64 " last state %s%s\n", sub->name,
           sub->acked_seq, rt_sub_state_name(sub->state), sub->enabled ? "" : ", PAUSED");
    return 0;
}

static void s_print_value(const rt_value_t *v)
{
    if (v->kind == RT_VAL_NULL) {
        fputs("NULL", stdout);
        return;
    }
    if (v->kind == RT_VAL_UNCHANGED) {
        fputs("(unchanged TOAST)", stdout);
        return;
    }
    putchar('\'');
    for (uint32_t i = 0; i < v->len && i < S_SHOW_VALUE; i++) {
        unsigned char c = (unsigned char)v->data[i];
        if (c == '\'')
            fputs("''", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\'');
    if (v->len > S_SHOW_VALUE)
        printf("...(%" PRIu32 " bytes)", v->len);
}

/* Prints "col=value, ..." for the columns of img (only key columns if keys_only). */
static void s_print_row(const rt_relation_t *rel, const rt_value_t *img, uint32_t n, bool keys_only)
{
    bool first = true;
    for (uint32_t i = 0; i < n && i < rel->ncols; i++) {
        if (keys_only && !rel->cols[i].key)
            continue;
        printf("%s%s=", first ? "" : ", ", rel->cols[i].name);
        s_print_value(&img[i]);
        first = false;
    }
}

static void s_print_record(const rt_record_t *r, size_t len)
{
    char cl[32], el[32], when[48];
    printf("record seq %" PRIu64 " (%zu bytes):\n", r->seq, len);
    printf("  xid %" PRIu32 ", flags %s%s%s, commit LSN %s, end LSN %s\n", r->xid,
           r->flags & RT_REC_FIRST ? "FIRST" : "",
           (r->flags & RT_REC_FIRST) && (r->flags & RT_REC_LAST) ? "|" : "",
           r->flags & RT_REC_LAST ? "LAST" : (r->flags ? "" : "none (middle)"),
           rt_lsn_format(r->commit_lsn, cl, sizeof cl),
           r->end_lsn ? rt_lsn_format(r->end_lsn, el, sizeof el) : "-");
    printf("  committed %s, origin %s\n", rt_ctl_pg_time(r->commit_ts, when, sizeof when),
           r->origin ? r->origin : "none");
    printf("  relations: %" PRIu32 "\n", r->nrels);
    for (uint32_t i = 0; i < r->nrels; i++) {
        const rt_relation_t *rel = &r->rels[i];
        printf("    %" PRIu32 ": %s.%s (replica identity %c):", i, rel->schema, rel->table,
               rel->replident);
        for (uint32_t c = 0; c < rel->ncols; c++)
            printf("%s %s oid %" PRIu32 "%s", c ? "," : "", rel->cols[c].name, rel->cols[c].typoid,
                   rel->cols[c].key ? " key" : "");
        putchar('\n');
    }
    printf("  changes: %" PRIu32 "\n", r->nchanges);
    for (uint32_t i = 0; i < r->nchanges && i < S_SHOW_CHANGES; i++) {
        const rt_change_t *ch = &r->changes[i];
        if (ch->op == 'Q') {
            printf("    SEQUENCE %s.%s last value %" PRId64 "\n", ch->seq_schema, ch->seq_name,
                   ch->seq_value);
            continue;
        }
        if (ch->op == 'L') {
            printf("    DDL %s%s%s (search_path %s): %s\n", ch->ddl->tag,
                   ch->ddl->flags & RT_DDL_NESTED ? ", run inside a function or DO block" : "",
                   ch->ddl->flags & RT_DDL_PROTECTED ? ", touching a protected schema" : "",
                   ch->ddl->search_path, ch->ddl->command);
            continue;
        }
        if (ch->op == 'T') {
            printf("    TRUNCATE");
            for (uint32_t j = 0; j < ch->ntrunc; j++)
                printf("%s %s.%s", j ? "," : "", r->rels[ch->trunc_rels[j]].schema,
                       r->rels[ch->trunc_rels[j]].table);
            printf("%s%s\n", ch->trunc_flags & 1 ? " CASCADE" : "",
                   ch->trunc_flags & 2 ? " RESTART IDENTITY" : "");
            continue;
        }
        const rt_relation_t *rel = &r->rels[ch->rel];
        printf("    %s %s.%s",
               ch->op == 'I'   ? "INSERT"
               : ch->op == 'U' ? "UPDATE"
                               : "DELETE",
               rel->schema, rel->table);
        if (ch->old_kind) {
            printf(" %s(", ch->old_kind == 'K' ? "key" : "old row");
            s_print_row(rel, ch->old, ch->nold, ch->old_kind == 'K');
            printf(")");
        }
        if (ch->new_) {
            printf(ch->op == 'I' ? ": " : " set ");
            s_print_row(rel, ch->new_, ch->nnew, false);
        }
        putchar('\n');
    }
    if (r->nchanges > S_SHOW_CHANGES)
        printf("    ... and %" PRIu32 " more changes\n", r->nchanges - S_SHOW_CHANGES);
}

/* Commit LSN of record seq (0 if unreadable). */
static rt_lsn_t s_commit_lsn(rt_outbox_t *ob, rt_record_decoder_t *dec, uint64_t seq)
{
    s_copy_t c = {0};
    rt_lsn_t lsn = 0;
    const rt_record_t *r;
    if (rt_outbox_read(ob, seq, 1, 0, s_copy_one, &c) >= 0 && c.data &&
        rt_record_decode(dec, c.data, c.len, &r) == RT_OK)
        lsn = r->commit_lsn;
    free(c.data);
    return lsn;
}

static int s_inspect(const char *dir, bool has_seq, uint64_t seq)
{
    int code = RT_EXIT_FAILURE;
    rt_record_decoder_t *dec = rt_record_decoder_new();
    rt_outbox_t *ob = rt_outbox_open_readonly(dir);
    s_copy_t rec = {0};
    char b1[32], b2[32], b3[32], l1[32], l2[32], l3[32];
    if (!ob || !dec) {
        fprintf(stderr, "rtctl outbox inspect: cannot read an outbox in %s\n", dir);
        goto cleanup;
    }
    rt_outbox_stat_t st;
    if (rt_outbox_stat(ob, &st) < 0) {
        fprintf(stderr, "rtctl outbox inspect: cannot read the statistics of %s\n", dir);
        goto cleanup;
    }
    char source[256] = "?", slot[256] = "?";
    if (rt_outbox_meta_get(ob, "source", source, sizeof source) < 0)
        snprintf(source, sizeof source, "(not set)");
    if (rt_outbox_meta_get(ob, "slot", slot, sizeof slot) < 0)
        snprintf(slot, sizeof slot, "(not set)");
    char path[4200];
    struct stat fst;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    uint64_t file_bytes = stat(path, &fst) == 0 ? (uint64_t)fst.st_size : 0;

    s_sum_t sum = {0};
    for (uint64_t from = st.first_seq; from <= st.head_seq;) {
        uint64_t before = sum.records;
        int rc = rt_outbox_read(ob, from, S_SCAN_CHUNK, 0, s_sum_one, &sum);
        if (rc == RT_ETRIMMED) { /* a publisher trimmed meanwhile: go on from its first */
            from = rt_outbox_first_seq(ob) > from ? rt_outbox_first_seq(ob) : from + 1;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "rtctl outbox inspect: cannot read the records of %s\n", dir);
            goto cleanup;
        }
        if (sum.records == before)
            break;
        from = sum.last + 1;
    }
    rt_outbox_pos_t pos = rt_outbox_position(ob);
    printf("outbox %s (format %d): source %s, slot %s\n", dir, RT_OUTBOX_FORMAT, source, slot);
    if (st.records == 0) {
        printf("  records: none (head seq %" PRIu64 ")\n", st.head_seq);
    } else {
        printf("  records: %" PRIu64 ", seqs %" PRIu64 "..%" PRIu64 " (head seq %" PRIu64
               "), %s of record bytes\n",
               st.records, st.first_seq, st.head_seq, st.head_seq,
               rt_ctl_bytes(sum.bytes, b1, sizeof b1));
        printf("  LSNs: commit %s (seq %" PRIu64 ") .. %s (seq %" PRIu64 "); confirmed end %s\n",
               rt_lsn_format(s_commit_lsn(ob, dec, st.first_seq), l1, sizeof l1), st.first_seq,
               rt_lsn_format(pos.last_commit_lsn, l2, sizeof l2), st.head_seq,
               rt_lsn_format(pos.last_end_lsn, l3, sizeof l3));
    }
    printf("  size: data.mdb %s, %s in use, map %s\n", rt_ctl_bytes(file_bytes, b1, sizeof b1),
           rt_ctl_bytes(st.used_bytes, b2, sizeof b2), rt_ctl_bytes(st.map_bytes, b3, sizeof b3));
    if (rt_outbox_sub_each(ob, s_print_sub, NULL) < 0) {
        fprintf(stderr, "rtctl outbox inspect: cannot read the subscribers of %s\n", dir);
        goto cleanup;
    }
    if (!has_seq) {
        if (st.records == 0) {
            code = RT_EXIT_OK;
            goto cleanup;
        }
        seq = st.head_seq;
    }
    if (seq < st.first_seq || seq > st.head_seq) {
        fprintf(stderr, "rtctl outbox inspect: seq %" PRIu64 " is not in the outbox (%s)\n", seq,
                st.records ? "" : "it is empty");
        if (st.records)
            fprintf(stderr, "rtctl outbox inspect: seqs %" PRIu64 "..%" PRIu64 " are\n",
                    st.first_seq, st.head_seq);
        goto cleanup;
    }
    int rc = rt_outbox_read(ob, seq, 1, 0, s_copy_one, &rec);
    const rt_record_t *r;
    if (rc < 0 || !rec.data) {
        fprintf(stderr, "rtctl outbox inspect: record seq %" PRIu64 " cannot be read (%s)\n", seq,
                rt_strerror(rc < 0 ? rc : RT_ENOTFOUND));
        goto cleanup;
    }
    if (rt_record_decode(dec, rec.data, rec.len, &r) != RT_OK) {
        fprintf(stderr, "rtctl outbox inspect: record seq %" PRIu64 " (%zu bytes) is malformed\n",
                seq, rec.len);
        goto cleanup;
    }
    s_print_record(r, rec.len);
    code = RT_EXIT_OK;
cleanup:
    free(rec.data);
    rt_outbox_destroy(&ob);
    rt_record_decoder_destroy(&dec);
    return code;
}

int rt_ctl_cmd_outbox(const rt_ctl_t *g, int argc, char **argv)
{
    (void)g;
    const char *dir = NULL;
    uint64_t seq = 0;
    bool has_seq = false;
    if (argc < 2 || strcmp(argv[1], "inspect") != 0) {
        fprintf(stderr, "rtctl outbox: expected \"inspect\" (usage: rtctl outbox inspect DIR "
                        "[--seq N])\n");
        return RT_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--seq") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rtctl outbox inspect: --seq needs a value\n");
                return RT_EXIT_USAGE;
            }
            if (!rt_ctl_parse_u64("outbox inspect", "--seq", argv[++i], &seq))
                return RT_EXIT_USAGE;
            has_seq = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "rtctl outbox inspect: unknown option \"%s\"\n", argv[i]);
            return RT_EXIT_USAGE;
        } else if (dir) {
            fprintf(stderr, "rtctl outbox inspect: one DIR only (got \"%s\" and \"%s\")\n", dir,
                    argv[i]);
            return RT_EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        fprintf(stderr, "rtctl outbox inspect: missing the outbox DIR\n");
        return RT_EXIT_USAGE;
    }
    return s_inspect(dir, has_seq, seq);
}
