#!/usr/bin/env bash
# tests/fault/outbox_full.sh - a publisher with a small outbox (--max-outbox-mb) and its
# only subscriber stopped: the outbox fills, the publisher stops reading from PostgreSQL
# and says so ("outbox is full") while the source keeps accepting writes (its slot
# retains the WAL); then the subscriber starts, the outbox is trimmed after its ACKs,
# the publisher resumes and everything converges with nothing lost or doubled.
#
# RT_FAULT_OUTBOX_MB (default 8); RT_FAULT_FULL_S seconds of writes while full
# (default 5; soak: 120); RT_FAULT_ROUNDS fill-and-drain rounds (default 1; soak: 5).
set -euo pipefail
FAULT_PAD=2000
source "$RT_SRC/tests/fault/fault_lib.bash"

MB="${RT_FAULT_OUTBOX_MB:-8}"
FULL_S="${RT_FAULT_FULL_S:-5}"
ROUNDS="${RT_FAULT_ROUNDS:-1}"
echo "outbox_full: --max-outbox-mb $MB, ${FULL_S}s of writes while full, $ROUNDS round(s)"

fault_clusters source replica1
fault_start_pub --max-outbox-mb "$MB" --retention-seconds 0
fault_start_sub replica1
rt_wait_until 30 "replica1 registered" bash -c \
    "[[ \$(\"$RT_BIN/rtctl\" --publisher '$ROUTER' status --json) == *'\"name\":\"replica1\"'* ]]"
fault_load_start 1000 4

slot_lag() {
    rt_psql source -c "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'rt_src'"
}
count() { grep -c "$1" "$RT_TMP/pub.log" || true; }
more_than() { (($(count "$1") > $2)); }
max_bytes=0
sample_outbox() {
    local b
    b="$(rt_json_num "$(rt_status_json "$ROUTER")" outbox_bytes)" || return 0
    ((b <= max_bytes)) || max_bytes="$b"
}

for ((round = 1; round <= ROUNDS; round++)); do
    rt_stop_daemon replica1 || rt_fail "replica1 exited non-zero on SIGTERM"
    full="$(count 'outbox is full')"
    room="$(count 'outbox has room again')"
    fault_log "round $round/$ROUNDS: replica1 stopped; waiting for the outbox to fill"
    rt_wait_until 120 "the publisher to report a full outbox" more_than 'outbox is full' "$full"
    fault_log "publisher: $(grep 'outbox is full' "$RT_TMP/pub.log" | tail -1 | sed 's/.*WARNING: //')"
    before="$(fault__counter source)"
    lag0="$(slot_lag)"
    for ((i = 0; i < FULL_S; i++)); do
        sleep 1
        sample_outbox
        fault_alive_or_fail pub load
    done
    after="$(fault__counter source)"
    lag1="$(slot_lag)"
    ((after > before)) || rt_fail "the source stopped accepting writes while the outbox was full"
    ((lag1 > lag0)) || rt_fail "the slot's retained WAL did not grow while the outbox was full ($lag0 -> $lag1 bytes)"
    more_than 'outbox has room again' "$room" && rt_fail "the outbox had room again with no subscriber to acknowledge"
    fault_log "while full: the source committed $((after - before)) transactions, the slot retains $lag1 bytes of WAL (was $lag0)"
    fault_start_sub replica1
    rt_wait_until 120 "the publisher to resume reading" more_than 'outbox has room again' "$room"
    fault_log "publisher: outbox has room again, reading resumed"
    fault_wait_caught_up 120 replica1
    fault_log "replica1 caught up"
done
fault_load_stop
fault_check 120 100 source replica1
sample_outbox
fault_log "largest outbox size seen: $(fault_mib $((max_bytes / 1024))) MiB (limit $MB MiB)"
((max_bytes <= (MB + 1) * 1048576)) || rt_fail "the outbox grew to $max_bytes bytes, past its $MB MiB limit"
fault_stop_all replica1 pub
echo "outbox_full: ok ($ROUNDS round(s))"
