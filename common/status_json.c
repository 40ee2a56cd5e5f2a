/* common/status_json.c - a publisher's status as JSON (rtctl status --json, /api/status). */
#include "status_json.h"

#include <inttypes.h>

/* Milliseconds between two PostgreSQL-epoch times, or -1 if either is unknown. */
static int64_t s_age_ms(int64_t now_us, int64_t then_us)
{
    return now_us && then_us ? (now_us - then_us) / 1000 : -1;
}

void rt_status_json(rt_buf_t *out, const rt_status_t *st)
{
    char r[32], c[32];
    rt_buf_puts(out, "{\"source\":");
    rt_buf_json_string(out, st->source);
    rt_buf_puts(out, ",\"slot\":");
    rt_buf_json_string(out, st->slot);
    /* A relay's publisher ("" for a publisher), and its head as the relay last heard. */
    rt_buf_puts(out, ",\"upstream\":");
    rt_buf_json_string(out, st->upstream);
    rt_buf_printf(out, ",\"upstream_head_seq\":%" PRIu64, st->upstream_head);
    rt_buf_printf(out,
                  ",\"capture_state\":\"%s\",\"security\":\"%s\",\"first_seq\":%" PRIu64
                  ",\"head_seq\":%" PRIu64 ",\"records\":%" PRIu64 ",\"outbox_bytes\":%" PRIu64
                  ",\"oldest_record_age_ms\":%" PRId64 ",\"head_age_ms\":%" PRId64
                  ",\"received_lsn\":\"%s\",\"confirmed_lsn\":\"%s\",\"captured_txns\":%" PRIu64
                  ",\"captured_rows\":%" PRIu64 ",\"retained_wal_bytes\":%" PRId64
                  ",\"source_lag_bytes\":%" PRId64 ",\"source_lag_ms\":%" PRId64
                  ",\"outbox_limit_bytes\":%" PRId64 ",\"subscribers\":[",
                  rt_capture_state_name(st->capture_state), rt_security_name(st->security),
                  st->first_seq, st->head_seq, st->records, st->outbox_bytes,
                  st->records ? s_age_ms(st->now_ts, st->oldest_ts) : -1,
                  st->records ? s_age_ms(st->now_ts, st->head_ts) : -1,
                  rt_lsn_format(st->received_lsn, r, sizeof r),
                  rt_lsn_format(st->confirmed_lsn, c, sizeof c), st->captured_txns,
                  st->captured_rows, st->retained_wal_bytes, st->source_lag_bytes,
                  st->source_lag_ms, st->outbox_limit_bytes);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const rt_status_sub_t *s = &st->subs[i];
        rt_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        rt_buf_json_string(out, s->name);
        rt_buf_printf(out,
                      ",\"state\":\"%s\",\"acked_seq\":%" PRIu64 ",\"applied_seq\":%" PRIu64
                      ",\"lag_records\":%" PRIu64 ",\"lag_bytes\":%" PRIu64 ",\"lag_ms\":%" PRId64
                      ",\"conflicts\":%" PRIu64 ",\"last_commit_ts_ms\":%" PRId64
                      ",\"last_applied_at_ms\":%" PRId64 ",\"seen_ms_ago\":%" PRId64 ",\"error\":",
                      rt_sub_state_name((int)s->state), s->acked_seq, s->acked_seq,
                      st->head_seq > s->acked_seq ? st->head_seq - s->acked_seq : 0, s->lag_bytes,
                      s->lag_ms, s->conflicts,
                      s->commit_ts ? rt_pg_to_unix_us(s->commit_ts) / 1000 : 0,
                      s->applied_at ? rt_pg_to_unix_us(s->applied_at) / 1000 : 0, s->seen_ms_ago);
        rt_buf_json_string(out, s->error);
        if (s->copy.tables_total)
            rt_buf_printf(out,
                          ",\"copy\":{\"tables_done\":%" PRIu64 ",\"tables_total\":%" PRIu64
                          ",\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"bytes_total\":%" PRIu64
                          ",\"elapsed_ms\":%" PRIu64 "}",
                          s->copy.tables_done, s->copy.tables_total, s->copy.rows, s->copy.bytes,
                          s->copy.bytes_total, s->copy.elapsed_ms);
        rt_buf_putc(out, '}');
    }
    rt_buf_puts(out, "]}");
}
