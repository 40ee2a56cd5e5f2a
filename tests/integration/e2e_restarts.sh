#!/usr/bin/env bash
# tests/integration/e2e_restarts.sh - subscribers and the publisher stopped (SIGTERM) and
# killed (SIGKILL) in the middle of a non-idempotent workload, then started again: every
# replica converges with no transaction missing or applied twice.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

source "$RT_SRC/tests/lib/counter.sh"
rt_counter_setup "" source replica1 replica2
printf 'BEGIN;\n%s\nCOMMIT;\n' "$RT_COUNTER_TX" >"$RT_TMP/tx.sql"

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
}
start_pub
rt_start_sub replica1
rt_start_sub replica2

"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 4 -j 2 -T 34 -R 400 postgres >"$RT_TMP/pgbench.out" 2>&1 &
PGBENCH=$!

step() { sleep "$1"; echo "-- $(date +%T) $2"; }
step 4 "replica1: SIGTERM"
rt_stop_daemon replica1 TERM || rt_fail "replica1 did not stop cleanly on SIGTERM"
step 2 "replica1: start"
rt_start_sub replica1
step 3 "replica2: SIGKILL"
rt_kill9 replica2
step 2 "replica2: start"
rt_start_sub replica2
step 3 "publisher: SIGKILL"
rt_kill9 pub
step 2 "publisher: start"
start_pub
step 4 "publisher: SIGTERM"
rt_stop_daemon pub TERM || rt_fail "the publisher did not stop cleanly on SIGTERM"
step 1 "publisher: start"
start_pub
step 3 "replica1 and publisher: SIGKILL"
rt_kill9 replica1
rt_kill9 pub
step 2 "both: start"
start_pub
rt_start_sub replica1

wait "$PGBENCH" || { cat "$RT_TMP/pgbench.out"; rt_fail "pgbench failed"; }
grep -E 'number of transactions actually processed' "$RT_TMP/pgbench.out"
rt_wait_converged 180 source replica1 replica2

rt_counter_check "" source replica1 replica2
for d in replica1 replica2 pub; do
    rt_stop_daemon "$d" || rt_fail "$d exited non-zero on SIGTERM"
done
echo "e2e restarts: ok"
