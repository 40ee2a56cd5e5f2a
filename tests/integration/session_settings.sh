#!/usr/bin/env bash
# tests/integration/session_settings.sh - settings of the role rt connects as that would
# stop its work are overridden in rt's sessions.
#
# On the source and the replica, rt's role has statement_timeout 100ms, lock_timeout
# 100ms, idle_in_transaction_session_timeout 300ms and default_transaction_isolation
# serializable; on the replica also default_transaction_read_only on. Then a replica
# joins a source of 300,000 rows with --init copy (COPYs and snapshots held open longer
# than those timeouts), a transaction of 200,000 rows streams, and a row the replica's
# own session holds for 1.5 s is updated on the source. Each must converge (checksums)
# without the subscriber ever stopping applying; the same settings still apply to any
# other session of that role.
set -euo pipefail
RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_pg_start replica
for c in source replica; do
    rt_psql "$c" <<'SQL'
CREATE TABLE big (id int PRIMARY KEY, v text);
CREATE ROLE rt_user LOGIN SUPERUSER REPLICATION;
ALTER ROLE rt_user SET statement_timeout = '100ms';
ALTER ROLE rt_user SET lock_timeout = '100ms';
ALTER ROLE rt_user SET idle_in_transaction_session_timeout = '300ms';
ALTER ROLE rt_user SET default_transaction_isolation = 'serializable';
SQL
done
rt_psql replica -c "ALTER ROLE rt_user SET default_transaction_read_only = on"
rt_psql source -c "INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 300000) g"
dsn() { echo "host=127.0.0.1 port=$(rt_port "$1") dbname=postgres user=rt_user"; }

echo "== the role's settings hold for its other sessions"
rc=0
"$RT_PG_BIN/psql" -X -qAt -d "$(dsn replica)" -c "INSERT INTO big VALUES (0, 'x')" \
    2>"$RT_TMP/ro.err" || rc=$?
((rc != 0)) && grep -q 'read-only transaction' "$RT_TMP/ro.err" ||
    rt_fail "rt_user wrote on the replica outside rt (exit $rc): $(cat "$RT_TMP/ro.err")"
rc=0
"$RT_PG_BIN/psql" -X -qAt -d "$(dsn source)" -c "SELECT pg_sleep(0.5)" 2>"$RT_TMP/st.err" || rc=$?
((rc != 0)) && grep -q 'statement timeout' "$RT_TMP/st.err" ||
    rt_fail "rt_user's statement_timeout did not hold outside rt (exit $rc): $(cat "$RT_TMP/st.err")"

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$(dsn source)" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
echo "== a replica joins with --init copy"
RT_READY_TIMEOUT=120 rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$(dsn replica)" --name replica --init copy --copy-jobs 2
rt_wait_converged 120 source replica

echo "== a transaction of 200,000 rows"
rt_psql source -c "INSERT INTO big SELECT g, 'second ' || g FROM generate_series(300001, 500000) g"
rt_wait_converged 120 source replica

echo "== a row the replica's own session holds for 1.5 s"
rt_start_bg holder "$RT_TMP/holder.log" rt_psql replica \
    -c "BEGIN; UPDATE big SET v = 'held' WHERE id = 1; SELECT pg_sleep(1.5); ROLLBACK"
held() { [[ "$(rt_psql replica -c "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND pid <> pg_backend_pid() AND pid IN (SELECT pid FROM pg_stat_activity WHERE query LIKE '%held%')")" -ge 1 ]]; }
rt_wait_until 30 "the replica's session to hold the row" held
rt_psql source -c "UPDATE big SET v = 'updated' WHERE id = 1"
wait "$HOLDER_PID" || rt_fail "the holding session failed: $(cat "$RT_TMP/holder.log")"
rt_wait_converged 60 source replica
[[ "$(rt_psql replica -c "SELECT v FROM big WHERE id = 1")" == updated ]] ||
    rt_fail "the update of the held row did not apply"

! grep -q 'stopped applying\|canceling statement\|terminating connection' "$RT_TMP/sub.log" "$RT_TMP/pub.log" ||
    rt_fail "rt's sessions met the role's settings: $(grep -h 'stopped applying\|canceling\|terminating' "$RT_TMP/sub.log" "$RT_TMP/pub.log" | head -5)"
rt_stop_clean sub pub
echo "session settings: ok"
