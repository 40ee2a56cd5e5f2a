#!/usr/bin/env bash
# tests/integration/apply_deadlock.sh - a deadlock between rt's apply and the replica's
# own application: the replica fails rt's transaction, not the application's, and rt
# applies it again at once.
#
# On each replica (one under the conflict policy error, one under last_write_wins) a
# local session "gate" holds t3's row; the source commits one transaction updating t1,
# t3 and t2 (in that order), so rt's apply locks t1's row and waits for the gate. A local
# session "app" then updates t2's row and waits for t1's. When the gate commits, the
# apply takes t3's row and waits for t2's, which app holds: a deadlock. Both sessions
# waited since before it formed; rt's session checks for deadlocks after 100 ms, app's
# after PostgreSQL's default 1 s, so the replica fails rt's statement. Checks: app's
# transaction commits (no "deadlock detected" for it), the subscriber logs that it
# applies the record again and never stops applying, and the replicas end right: the
# error replica equal to the source by checksum, the last_write_wins replica with the
# local rows that committed after the source's transaction (app's t1 and t2, the gate's
# t3), each such conflict recorded. The same for a COPY of inserts (the policy error's
# way for a run of them) that deadlocks on keys local sessions insert, alone in its
# source transaction (applied again at once) and at the end of a transaction of several
# records (the rollback takes the records before it: the subscriber fetches and applies
# the transaction again from its first record, at once).
set -euo pipefail
RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
source "$RT_SRC/tests/lib/cluster.sh"
source "$RT_SRC/tests/lib/session.sh"
rt_setup

rt_pg_start source
rt_pg_start rerr
rt_pg_start rlww "track_commit_timestamp = on"
for c in source rerr rlww; do
    rt_psql "$c" <<'SQL'
CREATE TABLE t1 (id int PRIMARY KEY, v text);
CREATE TABLE t2 (id int PRIMARY KEY, v text);
CREATE TABLE t3 (id int PRIMARY KEY, v text);
CREATE TABLE c (id int PRIMARY KEY);
CREATE TABLE d (id int PRIMARY KEY, v text);
SQL
done

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon sub_rerr "$RT_TMP/sub_rerr.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RERR_DSN" --name rerr
rt_start_daemon sub_rlww "$RT_TMP/sub_rlww.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RLWW_DSN" --name rlww --conflict-policy last_write_wins
rt_psql source -c "INSERT INTO t1 VALUES (1, 'first'); INSERT INTO t2 VALUES (1, 'first');
    INSERT INTO t3 VALUES (1, 'first')"
rt_wait_converged 60 source rerr rlww

lock_waiting() { # lock_waiting CLUSTER APPNAME: a session of APPNAME there waits for a lock
    [[ "$(rt_psql "$1" -c "SELECT count(*) FROM pg_stat_activity
          WHERE application_name = '$2' AND wait_event_type = 'Lock'")" -ge 1 ]]
}
# app_waiting CLUSTER APPNAME WHAT: waits at once (up to 5 s, polling every 10 ms) until
# APPNAME waits for a lock there; app's own deadlock check comes 1 s after it began to wait.
app_waiting() {
    local i
    for ((i = 0; i < 500; i++)); do
        ! lock_waiting "$1" "$2" || return 0
        sleep 0.01
    done
    rt_fail "$3"
}

declare -A APP_TAG=() GATE_TAG=()
for r in rerr rlww; do
    rt_sess_open "gate_$r" "$r"
    rt_sess_open "app_$r" "$r"
    rt_sess_run "gate_$r" "BEGIN"
    rt_sess_run "gate_$r" "UPDATE t3 SET v = 'gate' WHERE id = 1"
done
echo "== the source updates t1, t3 and t2 in one transaction"
rt_psql source -c "BEGIN; UPDATE t1 SET v = 'source' WHERE id = 1;
    UPDATE t3 SET v = 'source' WHERE id = 1; UPDATE t2 SET v = 'source' WHERE id = 1; COMMIT"
for r in rerr rlww; do
    rt_wait_until 60 "rt's apply on $r waiting for the gate" lock_waiting "$r" rt-subscriber
    rt_sess_run "app_$r" "BEGIN"
    rt_sess_run "app_$r" "SET LOCAL deadlock_timeout = '1s'"
    rt_sess_run "app_$r" "UPDATE t2 SET v = 'app' WHERE id = 1"
    rt_sess_send "app_$r" "UPDATE t1 SET v = 'app' WHERE id = 1"
    APP_TAG[$r]="$RT_SESS_TAG"
done
echo "== each gate commits while app waits: rt's apply closes a deadlock"
for r in rerr rlww; do
    app_waiting "$r" "app_$r" "app on $r does not wait for rt's row lock"
    rt_sess_send "gate_$r" "COMMIT"
    GATE_TAG[$r]="$RT_SESS_TAG"
done
for r in rerr rlww; do
    rt_sess_wait "gate_$r" "${GATE_TAG[$r]}" idle COMMIT
    rt_sess_wait "app_$r" "${APP_TAG[$r]}" "idle in transaction" "app's UPDATE of t1"
    rt_sess_run "app_$r" "COMMIT"
    ! grep -i 'deadlock' "$RT_TMP/psql_app_$r.log" || rt_fail "the replica failed app's transaction on $r"
done

echo "== rt applied the record again, without stopping"
for r in rerr rlww; do
    rt_wait_until 30 "$r's subscriber to log the deadlock" \
        grep -q 'SQLSTATE 40P01.*applying it again' "$RT_TMP/sub_$r.log"
    ! grep -q 'stopped applying' "$RT_TMP/sub_$r.log" || rt_fail "the subscriber of $r stopped applying"
done
rt_psql source -c "INSERT INTO t3 VALUES (2, 'after')"
rt_wait_converged 60 source rerr
want="1 app,1 app,1 gate,2 after"
lww_rows() {
    rt_psql rlww -c "SELECT string_agg(id || ' ' || v, ',' ORDER BY t, id) FROM (
        SELECT 1 t, * FROM t1 UNION ALL SELECT 2, * FROM t2 UNION ALL SELECT 3, * FROM t3) x"
}
lww_ok() { [[ "$(lww_rows)" == "$want" ]]; }
rt_wait_until 30 "rlww to hold the later local rows ($want)" lww_ok ||
    rt_fail "rlww holds $(lww_rows)"
[[ "$(rt_psql rlww -c "SELECT string_agg(relation || ' ' || kind || ' ' || resolution, ',' ORDER BY relation) FROM rt.conflicts")" == \
    *t1*t2*t3* ]] || rt_fail "rlww recorded: $(rt_psql rlww -c "SELECT * FROM rt.conflicts")"

# copy_deadlock BASE BEFORE: rt's COPY inserts key BASE+1, then waits for key BASE+3,
# which the gate inserted; app inserts key BASE+2 and waits for key BASE+1. The gate
# rolls back: the COPY inserts key BASE+3, then waits for key BASE+2: the deadlock. app
# then rolls back, and rt's retry inserts every key. BEFORE: SQL the source transaction
# runs first.
copy_deadlock() {
    local b="$1" before="$2" app_tag
    rt_sess_run gate_rerr "BEGIN"
    rt_sess_run gate_rerr "INSERT INTO c VALUES ($((b + 3)))"
    # More rows than commit in one round trip: the run goes to a COPY.
    rt_psql source -c "$before INSERT INTO c VALUES ($((b + 1))), ($((b + 3))), ($((b + 2)));
        INSERT INTO c SELECT generate_series($((b + 4)), $((b + 40)))"
    rt_wait_until 60 "rt's COPY on rerr waiting for the gate" lock_waiting rerr rt-subscriber
    rt_sess_run app_rerr "BEGIN"
    rt_sess_run app_rerr "INSERT INTO c VALUES ($((b + 2)))"
    rt_sess_send app_rerr "INSERT INTO c VALUES ($((b + 1)))"
    app_tag="$RT_SESS_TAG"
    app_waiting rerr app_rerr "app on rerr does not wait for rt's key"
    rt_sess_run gate_rerr "ROLLBACK"
    rt_sess_wait app_rerr "$app_tag" "idle in transaction" "app's INSERT of key $((b + 1))"
    rt_sess_run app_rerr "ROLLBACK"
    rt_wait_converged 60 source rerr
    ! grep -q 'stopped applying' "$RT_TMP/sub_rerr.log" || rt_fail "the subscriber of rerr stopped applying"
    ! grep -i 'deadlock' "$RT_TMP/psql_app_rerr.log" || rt_fail "the replica failed app's transaction"
}

echo "== a deadlock in a COPY (a run of inserts under the policy error)"
copy_deadlock 0 ""
grep -q 'failed the COPY into .*SQLSTATE 40P01.*applying it again' "$RT_TMP/sub_rerr.log" ||
    rt_fail "rerr's subscriber did not log the COPY's deadlock"

echo "== the same at the end of a transaction of several records"
# 1000 rows of 300 bytes before it: records are cut at about 64 KiB.
copy_deadlock 100 "INSERT INTO d SELECT g, repeat('x', 300) FROM generate_series(1, 1000) g;"
grep -q 'applying the replica transaction again from seq' "$RT_TMP/sub_rerr.log" ||
    rt_fail "rerr's subscriber did not apply the transaction again from its first record"

for r in rerr rlww; do
    rt_sess_close "gate_$r"
    rt_sess_close "app_$r"
done
rt_stop_clean sub_rerr sub_rlww pub
echo "apply deadlock: ok"
