/* common/status_json.h - a publisher's status as JSON (rtctl status --json, /api/status). */
#ifndef RT_STATUS_JSON_H
#define RT_STATUS_JSON_H

#include "buf.h"
#include "wire.h"

/* Appends a publisher's status as one JSON object, without a trailing newline, with the
 * fields and order of `rtctl status --json`:
 * {"source":..,"slot":..,"capture_state":"streaming","first_seq":N,"head_seq":N,
 *  "records":N,"outbox_bytes":N,"oldest_record_age_ms":N,"head_age_ms":N,
 *  "received_lsn":"X/Y","confirmed_lsn":"X/Y","captured_txns":N,"captured_rows":N,
 *  "retained_wal_bytes":N,"source_lag_bytes":N,"source_lag_ms":N,"outbox_limit_bytes":N,
 *  "subscribers":[{"name":..,"state":"streaming","acked_seq":N,"applied_seq":N,
 *  "lag_records":N,"lag_bytes":N,"lag_ms":N,"conflicts":N,"last_commit_ts_ms":N,
 *  "last_applied_at_ms":N,"seen_ms_ago":N,"error":".."},...]}
 * lag_records is head_seq - acked_seq (0 if ahead); ages and the slot's figures
 * (retained_wal_bytes, source_lag_*) are -1 when unknown, outbox_limit_bytes is 0 without a
 * limit and -1 from an older publisher; the two timestamps are Unix milliseconds (0: none). */
void rt_status_json(rt_buf_t *out, const rt_status_t *st);

#endif
