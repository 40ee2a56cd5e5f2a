#!/usr/bin/env bash
# tests/integration/streamed_apply.sh - a large transaction applied on the replica while it
# still runs on the source (schemas/protocol.md, "Streamed transactions").
#
# The source runs with logical_decoding_work_mem = 64kB, so a transaction of a few thousand
# rows reaches rt-publisher in blocks while it runs, and rt-publisher sends them on
# (STREAM). Checks, comparing every table's checksum between source and replica:
#  - while the source's transaction is open, rt-subscriber's side session already holds
#    its rows on the replica (its locks on the table), and none is visible; at the commit
#    the replica has them all, and the subscriber logged the side's commit;
#  - small transactions committed meanwhile reach the replica before it commits;
#  - updates and deletes of rows the transaction wrote, and subtransactions rolled back
#    after their blocks were applied, end as on the source;
#  - a transaction rolled back on the source leaves nothing, and no side transaction open;
#  - rt-subscriber killed (-9) while the side holds a transaction: restarted, it applies
#    that transaction from its records after its commit;
#  - a row of the transaction locked by a session of the replica's own: the side gives up
#    after its 1 s lock_timeout instead of holding up the subscriber (a small transaction
#    committed meanwhile arrives), and the transaction is applied after its commit once
#    the lock is gone;
#  - restarted after side commits, rt-subscriber applies nothing twice (the origin's
#    progress moved with each side commit; the error policy would stop on a duplicate),
#    and its /metrics counts the side commits;
#  - a replica with no replication origin slot left for the side session (max_replication_
#    slots = 1): its subscriber says so (a warning, no error) and applies the same
#    transactions after their commit;
#  - a replica behind an rt-relay: the relay sends the blocks on, and that replica's side
#    session holds the open transaction's rows too and commits it from its blocks.
set -euo pipefail
RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
source "$RT_SRC/tests/lib/cluster.sh"
source "$RT_SRC/tests/lib/session.sh"
rt_setup

rt_pg_start source "logical_decoding_work_mem = 64kB"
rt_pg_start replica
rt_pg_start tight "max_replication_slots = 1"
rt_pg_start far
for c in source replica tight far; do
    rt_psql "$c" <<'SQL'
CREATE TABLE big (id int PRIMARY KEY, grp int NOT NULL, v text);
CREATE TABLE small (id serial PRIMARY KEY, v text);
SQL
done

P_ROUTER="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
H_SUB="$(rt_free_port)"
SUB_ARGS=(--publisher "$ROUTER" --target "$REPLICA_DSN" --name replica --http "127.0.0.1:$H_SUB")
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" "${SUB_ARGS[@]}"
rt_start_daemon tsub "$RT_TMP/tsub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$TIGHT_DSN" --name tight
RELAY="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt-relay" --publisher "$ROUTER" \
    --outbox "$RT_TMP/relay" --name relay --listen "$RELAY" --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon fsub "$RT_TMP/fsub.log" "$RT_BIN/rt-subscriber" --publisher "$RELAY" \
    --target "$FAR_DSN" --name far

side_commits() { grep -c 'applied from its blocks while it ran' "$RT_TMP/sub.log" || true; }
small() { rt_psql source -c "INSERT INTO small (v) VALUES ('$1')"; }
# The replica's sessions of rt-subscriber that hold a lock on big (a side transaction).
side_holds() {
    rt_psql "${1:-replica}" -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE a.application_name = 'rt-subscriber' AND l.relation = 'big'::regclass
          AND l.mode = 'RowExclusiveLock'"
}
side_open() { [[ "$(side_holds "${1:-replica}")" -ge 1 ]]; }
side_closed() { [[ "$(side_holds)" == 0 ]]; }
replica_has() { [[ "$(rt_psql replica -c "SELECT count(*) FROM small WHERE v = '$1'")" == 1 ]]; }

rt_sess_open sx source

echo "== applied while it runs; small transactions pass it"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 1, md5(g::text) FROM generate_series(1, 20000) g"
rt_wait_until 30 "the side session to hold the open transaction's rows" side_open
rt_wait_until 30 "the side session behind the relay to hold them too" side_open far
[[ "$(rt_psql replica -c "SELECT count(*) FROM big")" == 0 ]] ||
    rt_fail "rows of a transaction still open on the source are visible on the replica"
for i in 1 2 3; do small "while open $i"; done
rt_wait_until 30 "the small transactions committed meanwhile" replica_has "while open 3"
rt_sess_run sx "UPDATE big SET v = 'updated ' || id WHERE id % 7 = 0"
rt_sess_run sx "DELETE FROM big WHERE id % 11 = 0"
rt_sess_run sx "SAVEPOINT a"
rt_sess_run sx "INSERT INTO big SELECT g, 2, 'in a, rolled back' FROM generate_series(20001, 30000) g"
rt_sess_run sx "UPDATE big SET v = 'updated in a' WHERE grp = 1 AND id % 5 = 0"
rt_sess_run sx "ROLLBACK TO SAVEPOINT a"
rt_sess_run sx "SAVEPOINT b"
rt_sess_run sx "INSERT INTO big SELECT g, 3, 'in b, released' FROM generate_series(30001, 40000) g"
rt_sess_run sx "RELEASE SAVEPOINT b"
rt_sess_run sx "INSERT INTO big SELECT g, 4, 'after b' FROM generate_series(40001, 45000) g"
rt_sess_run sx "COMMIT"
small "after one"
rt_wait_converged 60 source replica
(($(side_commits) == 1)) || rt_fail "the subscriber logged $(side_commits) side commits, not 1"
[[ "$(rt_psql replica -c "SELECT count(*) FROM big WHERE grp = 2")" == 0 ]] ||
    rt_fail "the replica kept rows of a rolled back subtransaction"

echo "== rolled back on the source"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 5, 'rolled back' FROM generate_series(100001, 130000) g"
rt_wait_until 30 "the side session to hold the open transaction's rows" side_open
rt_sess_run sx "ROLLBACK"
rt_wait_until 30 "the side transaction to be rolled back" side_closed
small "after two"
rt_wait_converged 60 source replica

echo "== rt-subscriber killed while the side holds a transaction"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 6, 'before the kill' FROM generate_series(200001, 220000) g"
rt_wait_until 30 "the side session to hold the open transaction's rows" side_open
rt_kill9 sub
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" "${SUB_ARGS[@]}"
rt_sess_run sx "INSERT INTO big SELECT g, 6, 'after the kill' FROM generate_series(220001, 230000) g"
rt_sess_run sx "UPDATE big SET v = 'updated after the kill' WHERE grp = 6 AND id % 3 = 0"
rt_sess_run sx "COMMIT"
small "after three"
rt_wait_converged 60 source replica

echo "== a row locked on the replica by a session of its own"
rt_sess_open lx replica
rt_sess_run lx "BEGIN"
rt_sess_run lx "SELECT v FROM big WHERE id = 1 FOR UPDATE"
rt_sess_run sx "BEGIN"
rt_sess_run sx "UPDATE big SET v = 'updated while locked on the replica' WHERE id = 1"
rt_sess_run sx "INSERT INTO big SELECT g, 8, 'locked' FROM generate_series(400001, 420000) g"
gave_up() { grep -q 'lock timeout' "$RT_TMP/sub.log"; }
rt_wait_until 30 "the side session to give up on the locked row" gave_up
small "while locked"
rt_wait_until 30 "a small transaction to pass the locked one" replica_has "while locked"
rt_sess_run sx "COMMIT"
rt_sess_run lx "ROLLBACK"
rt_sess_close lx
small "after the lock"
rt_wait_converged 60 source replica

echo "== restarted after side commits: nothing applied twice"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 7, 'last' FROM generate_series(300001, 320000) g"
rt_sess_run sx "DELETE FROM big WHERE grp = 7 AND id % 2 = 0"
rt_sess_run sx "COMMIT"
small "after four"
rt_wait_converged 60 source replica
n="$(side_commits)"
((n >= 2)) || rt_fail "the subscriber logged $n side commits, not at least 2"
command -v curl >/dev/null 2>&1 || rt_fail "curl is not installed (apt-get install curl)"
metrics="$(curl -sS --max-time 10 "http://127.0.0.1:$H_SUB/metrics")"
counted="$(awk '$1 == "rt_subscriber_streamed_transactions_total" { print $2 }' <<<"$metrics")"
[[ "$counted" == 1 ]] ||
    rt_fail "/metrics counts ${counted:-no} streamed transactions since the kill, not 1"
echo "/metrics: rt_subscriber_streamed_transactions_total $counted"
rt_stop_daemon sub
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" "${SUB_ARGS[@]}"
small "after the restart"
rt_wait_converged 60 source replica
[[ "$(rt_psql replica -c "SELECT count(*) FROM rt.conflicts")" == 0 ]] ||
    rt_fail "rt.conflicts has rows"
echo "side commits: $(side_commits)"

rt_wait_converged 60 source tight
grep -q 'no second replica session for applying large transactions' "$RT_TMP/tsub.log" ||
    rt_fail "the subscriber of a replica without room for the side origin did not say so"
! grep 'rt-subscriber ERROR:' "$RT_TMP/tsub.log" ||
    rt_fail "the subscriber of a replica without room for the side origin logged an error"
! grep -q 'applied from its blocks while it ran' "$RT_TMP/tsub.log" ||
    rt_fail "the subscriber of a replica without room for the side origin used one"

rt_wait_converged 60 source far
grep -q 'applied from its blocks while it ran' "$RT_TMP/fsub.log" ||
    rt_fail "the subscriber behind the relay committed no transaction from its blocks"
echo "side commits behind the relay: $(grep -c 'applied from its blocks while it ran' "$RT_TMP/fsub.log")"

rt_sess_close sx
rt_stop_clean fsub relay tsub sub pub
echo "streamed apply: ok"
