#!/usr/bin/env bash
# tests/integration/publish_crash.sh - the publisher killed (SIGKILL) between publishing
# records and storing them, under a non-idempotent workload, again and again: the
# subscribers had applied and committed those records; the new run finds where each one
# stands by the commit LSN of the last record it committed, and every replica converges
# with no transaction missing, applied twice or skipped (schemas/protocol.md, "Live
# records and durability").
#
# RT_TEST_COMMIT_DELAY_MS holds each outbox commit back, so that at every kill records
# are published and not stored; the restarted publisher stores them again, under seqs of
# its own (sequence records land where its polls put them).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

source "$RT_SRC/tests/lib/counter.sh"
# events has no key: a transaction applied twice leaves a second row there, which the
# checksums see. Some transactions are large enough to be cut into several records.
rt_counter_setup "$RT_COUNTER_EVENTS" source replica1 replica2
rt_counter_script "$RT_TMP/tx.sql"

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" env RT_TEST_COMMIT_DELAY_MS="$1" \
        "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" --outbox "$RT_TMP/outbox" --name src \
        --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
}
start_pub 150
rt_start_sub replica1
rt_start_sub replica2

"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 4 -j 2 -T 30 -R 300 postgres >"$RT_TMP/pgbench.out" 2>&1 &
PGBENCH=$!

# The kills land at random points of the commit cycle; the delay differs by round.
for delay in 150 300 80 200 120; do
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 2.5 + (r % 200) / 100 }')"
    echo "-- $(date +%T) publisher: SIGKILL, restart with a commit delay of $delay ms"
    rt_kill9 pub
    sleep 0.3
    start_pub "$delay"
done

wait "$PGBENCH" || { cat "$RT_TMP/pgbench.out"; rt_fail "pgbench failed"; }
grep -E 'number of transactions actually processed' "$RT_TMP/pgbench.out"
rt_wait_converged 180 source replica1 replica2

rt_counter_check "$RT_COUNTER_EVENTS_CHECK" source replica1 replica2

# The window was hit: at some kill a subscriber had committed records the publisher had
# not stored, and the new run placed it by their commit LSN.
early="$(cat "$RT_TMP/replica1.log" "$RT_TMP/replica2.log" |
    grep -c 'committed before the publisher had stored it' || true)"
anew="$(cat "$RT_TMP/replica1.log" "$RT_TMP/replica2.log" | grep -c 'numbered anew' || true)"
rolled="$(cat "$RT_TMP/replica1.log" "$RT_TMP/replica2.log" |
    grep -c 'rolled back the records it had not stored' || true)"
echo "subscribers said HELLO from a seq the publisher had not stored $early time(s)," \
    "found it numbered anew $anew time(s), rolled back unfinished transactions $rolled time(s)"
((early > 0)) || rt_fail "no kill found a subscriber past the stored head: the test did not test"
for d in replica1 replica2 pub; do
    rt_stop_daemon "$d" || rt_fail "$d exited non-zero on SIGTERM"
done
echo "publish crash: ok"
