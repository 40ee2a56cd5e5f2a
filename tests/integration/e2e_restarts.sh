#!/usr/bin/env bash
# tests/integration/e2e_restarts.sh - subscribers and the publisher stopped (SIGTERM) and
# killed (SIGKILL) in the middle of a non-idempotent workload, then started again: every
# replica converges with no transaction missing or applied twice.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

SCHEMA="
CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE log (id bigint PRIMARY KEY, n bigint NOT NULL, pad text);
INSERT INTO counter VALUES (1, 0);
"
for c in source replica1 replica2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "$SCHEMA"
done
rt_psql source -c "CREATE SEQUENCE log_id"
# Every transaction adds 1 to the counter and logs the value it produced: a lost
# transaction leaves a gap, a doubled one breaks counter = count(log) or the key.
cat >"$RT_TMP/tx.sql" <<'SQL'
BEGIN;
UPDATE counter SET n = n + 1 WHERE id = 1;
INSERT INTO log SELECT nextval('log_id'), n, repeat('x', 100) FROM counter WHERE id = 1;
COMMIT;
SQL

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
}
start_sub() {
    local dsn
    dsn="$(rt__var "$1")_DSN"
    rt_start_daemon "$1" "$RT_TMP/$1.log" "$RT_BIN/rt-subscriber" \
        --publisher "$ROUTER" --target "${!dsn}" --name "$1"
}
start_pub
start_sub replica1
start_sub replica2

"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 4 -j 2 -T 34 -R 400 postgres >"$RT_TMP/pgbench.out" 2>&1 &
PGBENCH=$!

step() { sleep "$1"; echo "-- $(date +%T) $2"; }
step 4 "replica1: SIGTERM"
rt_stop_daemon replica1 TERM || rt_fail "replica1 did not stop cleanly on SIGTERM"
step 2 "replica1: start"
start_sub replica1
step 3 "replica2: SIGKILL"
rt_kill9 replica2
step 2 "replica2: start"
start_sub replica2
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
start_sub replica1

wait "$PGBENCH" || { cat "$RT_TMP/pgbench.out"; rt_fail "pgbench failed"; }
grep -E 'number of transactions actually processed' "$RT_TMP/pgbench.out"
rt_wait_converged 180 source replica1 replica2

check="SELECT (SELECT n FROM counter), (SELECT count(*) FROM log), (SELECT count(DISTINCT n) FROM log), (SELECT max(n) FROM log)"
s="$(rt_psql source -c "$check")"
for r in replica1 replica2; do
    v="$(rt_psql "$r" -c "$check")"
    [[ "$v" == "$s" ]] || rt_fail "$r: counter/log $v differ from the source's $s"
done
IFS='|' read -r n cnt distinct max <<<"$s"
[[ "$n" == "$cnt" && "$cnt" == "$distinct" && "$distinct" == "$max" && "$n" -gt 1000 ]] ||
    rt_fail "source counter/log inconsistent: $s"
echo "counter = log rows = $n on the source and both replicas"
for d in replica1 replica2 pub; do
    rt_stop_daemon "$d" || rt_fail "$d exited non-zero on SIGTERM"
done
echo "e2e restarts: ok"
