#!/usr/bin/env bash
# tests/fault/big_txn_replaced.sh - the chunks of a large transaction are stored (and
# being applied) when the publisher is killed and its slot dropped, so the source never
# sends that transaction again. The restarted publisher discards the stored chunks when
# another transaction arrives in their place; the subscriber, which never commits part
# of a transaction, starts over from its last commit: the replica has none of the lost
# transaction's rows, and the workload that follows converges exactly.
#
# RT_FAULT_ROWS rows in the lost transaction (default 1000000, 500000 in a sanitizer build).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

ROWS="${RT_FAULT_ROWS:-$(fault_scale 1000000 500000)}"
echo "big_txn_replaced: a $ROWS-row transaction lost with the slot while it is stored"

fault_big_start
fault_log "source: inserting $ROWS rows in one transaction"
"$RT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$SOURCE_DSN" \
    -c "INSERT INTO big SELECT g, g % 1000, md5(g::text) FROM generate_series(1, $ROWS) g" ||
    rt_fail "the big transaction failed"

rt_wait_until 120 "stored chunks of the open transaction" fault_open_chunks ||
    rt_fail "no stored chunk of the open transaction seen"
fault_log "kill -9 of the publisher, then its slot is dropped"
rt_kill9 pub
drop_slot() {
    rt_psql source -c "SELECT pg_drop_replication_slot('rt_src')" >/dev/null 2>&1
}
rt_wait_until 30 "the slot to be dropped" drop_slot || rt_fail "the slot rt_src could not be dropped"
fault_start_pub

fault_load_start 200 2
rt_wait_until 60 "the publisher to discard the lost transaction's chunks" \
    grep -q 'discarding them' "$RT_TMP/pub.log" ||
    rt_fail "the publisher did not discard the stored chunks"
fault_log "$(grep 'discarding them' "$RT_TMP/pub.log" | sed 's/.*WARNING: //')"
fault_wait_caught_up 60 replica1
n="$(rt_psql replica1 -c 'SELECT count(*) FROM big')"
((n == 0)) || rt_fail "replica1 committed $n rows of the lost transaction"
fault_log "replica1 has none of the lost transaction's rows"
restarts="$(grep -c 'replaced an incomplete' "$RT_TMP/replica1.log" || true)"
# The lost rows exist only on the source: remove them there (replicated as a TRUNCATE).
rt_psql source -c "TRUNCATE big" >/dev/null
sleep 2
fault_load_stop
fault_check 120 50 source replica1
fault_stop_all replica1 pub
echo "big_txn_replaced: ok (the subscriber started over $restarts time(s) on replaced chunks)"
