#!/usr/bin/env bash
# tests/fault/big_txn_restart.sh - kill -9 of the publisher while it stores the chunks of
# one large source transaction, which the subscriber is already applying (chunks are
# served as they are stored), and again while the source sends that transaction to the
# restarted publisher. The publisher keeps the stored chunks, skips the changes they
# hold when the source sends the transaction again, and stores the rest after them; the subscriber, whose replica transaction stays open across the
# restart, commits it once: counter and checksums equal, the transaction applied once.
#
# RT_FAULT_ROWS rows (default 1000000); RT_FAULT_ROUNDS kills (default 2).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

ROWS="${RT_FAULT_ROWS:-1000000}"
KILLS="${RT_FAULT_ROUNDS:-2}"
echo "big_txn_restart: one transaction of $ROWS rows, $KILLS kill(s) of the publisher while it is stored"

fault_big_start
fault_log "source: inserting $ROWS rows in one transaction"
"$RT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$SOURCE_DSN" -c "$(fault_big_sql "$ROWS")" ||
    rt_fail "the big transaction failed"
fault_log "source: committed"

# True when chunks of the open transaction are stored, or (DONE=1) when replica1 already
# has the whole transaction: the publisher stored its last chunk before another kill.
open_or_done() {
    fault_open_chunks && return 0
    fault__reached replica1 1 && DONE=1
}
kills=0
for ((k = 1; k <= KILLS; k++)); do
    DONE=0
    rt_wait_until 120 "stored chunks of the open transaction" open_or_done ||
        rt_fail "neither stored chunks of the open transaction nor the transaction on replica1"
    if ((DONE)); then
        fault_log "no stored chunk of an open transaction seen before kill $k (the transaction is complete)"
        break
    fi
    fault_log "kill -9 of the publisher with chunks of the open transaction stored ($k/$KILLS)"
    rt_kill9 pub
    kills=$((kills + 1))
    fault_start_pub
    # The source sends the transaction again (from its beginning: it is streamed before
    # its commit marker); the next kill lands while it does, or while the rest is stored.
    ((k == KILLS)) || sleep 2
done
((kills > 0)) || rt_fail "the publisher was never killed while chunks of the transaction were stored"
rt_wait_until 120 "the restarted publisher to resume the transaction" \
    eval '(($(grep -c "resuming transaction" "$RT_TMP/pub.log" || true) >= 1))' ||
    rt_fail "the restarted publisher did not resume the transaction"
fault_log "$(grep 'resuming transaction' "$RT_TMP/pub.log" | tail -n 1 | sed 's/.*INFO: //')"

rt_wait_until 600 "replica1 to apply the transaction" fault__reached replica1 1 ||
    rt_fail "replica1 did not apply the transaction within 600 s"
n="$(rt_psql replica1 -c 'SELECT count(*) FROM big')"
((n == ROWS)) || rt_fail "replica1 has $n rows of $ROWS"
fault_check 300 1 source replica1
resumed="$(grep -c 'resuming transaction' "$RT_TMP/pub.log" || true)"
grep -q 'discarding them' "$RT_TMP/pub.log" && rt_fail "the publisher discarded stored chunks"
grep -q 'replaced an incomplete' "$RT_TMP/replica1.log" && rt_fail "replica1 saw replaced chunks"
fault_stop_all replica1 pub
echo "big_txn_restart: ok ($ROWS rows, $kills kill(s), resumed $resumed time(s))"
