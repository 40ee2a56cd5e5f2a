#!/usr/bin/env bash
# tests/fault/pg_restarts.sh - the source PostgreSQL restarted in immediate mode (a crash)
# in the middle of a workload, and each replica PostgreSQL restarted in immediate mode
# while its subscriber applies: the publisher reconnects and skips what it already
# stored, the subscribers reconnect, nothing is lost or doubled.
#
# The publisher keeps no record past its acknowledgement (--retention-seconds 0), and
# subscribers commit without waiting for the replica's WAL flush: a replica's crash takes
# back the commits not yet on its disk, which its subscriber must not have acknowledged
# (else they are trimmed, and it cannot catch up).
#
# RT_FAULT_ROUNDS (default 2; soak: 30) rounds of: source crash, replica crash.
# RT_FAULT_RATE transactions/s (default 300).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

ROUNDS="${RT_FAULT_ROUNDS:-2}"
RATE="${RT_FAULT_RATE:-300}"
echo "pg_restarts: $ROUNDS rounds"

fault_start_tpcb "$RATE" --retention-seconds 0

count() { grep -c "$2" "$RT_TMP/$1.log" || true; }
more_than() { (($(count "$1" "$2") > $3)); }

for ((round = 1; round <= ROUNDS; round++)); do
    sleep 3
    fault_alive_or_fail pub replica1 replica2 load
    resumed="$(count pub 'replication stream resumed')"
    fault_log "round $round/$ROUNDS: source PostgreSQL: immediate restart"
    rt_pg_restart source immediate
    rt_wait_until 60 "the publisher to resume the replication stream" \
        more_than pub 'replication stream resumed' "$resumed"
    fault_log "publisher resumed the replication stream"
    sleep 3
    fault_alive_or_fail pub replica1 replica2 load
    r="replica$(((round - 1) % 2 + 1))"
    again="$(count "$r" 'connected to the replica')"
    fault_log "round $round/$ROUNDS: $r PostgreSQL: immediate restart while applying"
    rt_pg_restart "$r" immediate
    rt_wait_until 60 "$r's subscriber to reconnect to its replica" \
        more_than "$r" 'connected to the replica' "$again"
    fault_log "$r's subscriber reconnected to its replica"
done
sleep 2
fault_alive_or_fail pub replica1 replica2 load
fault_load_stop
fault_check 180 100 source replica1 replica2
grep -q 'source: replication stream lost' "$RT_TMP/pub.log" || rt_fail "the publisher never noticed the source crash"
! grep -h 'trimmed' "$RT_TMP/replica1.log" "$RT_TMP/replica2.log" ||
    rt_fail "a subscriber needed records the publisher had trimmed"
echo "pg_restarts: replica crashes that took back commits: $(cat "$RT_TMP/replica1.log" \
    "$RT_TMP/replica2.log" | grep -c 'its server lost the commits not yet on its disk' || true)"
fault_stop_all replica1 replica2 pub
echo "pg_restarts: ok ($ROUNDS rounds)"
