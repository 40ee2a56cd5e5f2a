#!/usr/bin/env bash
# tests/integration/resync_tables.sh - rtctl resync NAME --table SCHEMA.TABLE copies chosen
# tables of a streaming replica again while its other tables go on applying: a damaged
# table is copied under a new snapshot, the changes the apply passed meanwhile are applied
# to it after its copy (only those committed after the snapshot), and the replica ends
# equal to the source by checksum, under writes. A subscriber killed during such a copy
# resumes it at its next start. Bad names are refused: not SCHEMA.TABLE (rtctl), not a
# table of the replica (the subscriber says so and goes on), a subscriber not running
# (the publisher says so).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

SCHEMA="
CREATE TABLE big (id bigint PRIMARY KEY, n int NOT NULL, v text);
CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), note text);
CREATE TABLE side (id int PRIMARY KEY, big_id bigint, v text);
"
for c in source replica; do
    rt_pg_start "$c"
    rt_psql "$c" -c "$SCHEMA"
done
rt_psql source -c "INSERT INTO big SELECT g, g % 100, md5(g::text) FROM generate_series(1, 200000) g;
    INSERT INTO side SELECT g, g, 's' || g FROM generate_series(1, 1000) g"
# Loading big on the replica takes some seconds (an index on a slow expression for one
# row in 400), so that the resync is seen while it copies.
rt_psql replica -c "CREATE FUNCTION slow(bigint) RETURNS bigint IMMUTABLE LANGUAGE sql
    AS 'SELECT \$1 FROM pg_sleep(0.01)'; CREATE INDEX big_slow ON big (slow(id)) WHERE id % 400 = 0"

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP" \
    --retention-seconds 0
sub_start() {
    RT_READY_TIMEOUT=120 rt_start_daemon replica "$RT_TMP/replica.log" "$RT_BIN/rt-subscriber" \
        --publisher "$ROUTER" --target "$REPLICA_DSN" --name replica --init copy --truncate
}
sub_start
rt_wait_converged 60 source replica

# writes I: one source transaction of the workload.
writes() {
    local i="$1"
    cat <<SQL
BEGIN;
UPDATE big SET n = n + 1, v = 'w$i' WHERE id = ($i * 7919) % 200000 + 1;
INSERT INTO big VALUES (200000 + $i, $i, 'new $i');
DELETE FROM big WHERE id = ($i * 104729) % 200000 + 1;
INSERT INTO ticks (note) VALUES ('w$i');
UPDATE side SET v = 'w$i' WHERE id = $i % 1000 + 1;
COMMIT;
SQL
}
rt_writer_start writer source writes 0.02

ctl() { "$RT_BIN/rtctl" --publisher "$ROUTER" "$@"; }

echo "-- bad names are refused"
rc=0
ctl resync replica --table nodot >"$RT_TMP/bad.txt" 2>&1 || rc=$?
[[ "$rc" == 2 ]] || rt_fail "rtctl resync --table nodot: expected exit status 2, got $rc"
grep -q 'is not SCHEMA.TABLE' "$RT_TMP/bad.txt" || rt_fail "no clear refusal of --table nodot"
rc=0
ctl resync nobody --table public.big >"$RT_TMP/nobody.txt" 2>&1 || rc=$?
((rc != 0)) || rt_fail "a resync of chosen tables for an unknown subscriber succeeded"

echo "-- big is damaged behind rt's back, then copied again while ticks and side stream"
sleep 1
rt_psql replica -c "SET session_replication_role = replica; DELETE FROM big WHERE id % 5 = 0;
    UPDATE big SET v = 'damaged' WHERE id % 11 = 0"
ctl resync replica --table public.big --table public.nope | tee "$RT_TMP/resync1.txt"
grep -q 'copies 2 tables again' "$RT_TMP/resync1.txt" || rt_fail "rtctl resync did not say what it asked"
copying() { grep -q 'resync of chosen tables; the others stream' "$RT_TMP/replica.log"; }
rt_wait_until 30 "the replica to start copying big" copying
grep -q 'resync: public.nope is not a table of the replica' "$RT_TMP/replica.log" ||
    rt_fail "the subscriber did not say public.nope is not a table"
# While big copies, a marker written to ticks reaches the replica.
rt_psql source -c "INSERT INTO ticks (note) VALUES ('marker')"
marker() { [[ "$(rt_psql replica -c "SELECT count(*) FROM ticks WHERE note = 'marker'")" == 1 ]]; }
rt_wait_until 30 "the marker in ticks to reach the replica" marker
copied() { grep -q 'resync: the chosen tables are copied' "$RT_TMP/replica.log"; }
if copied; then
    rt_fail "big's copy ended before ticks' marker was applied: the other tables did not stream during it"
fi
echo "ticks streamed while big was copied"
shown() { grep -q 'initial copy: [0-9]* of [0-9]* tables' <<<"$(ctl status)"; }
rt_wait_until 10 "rtctl status to show the copy" shown
rt_wait_until 120 "big's copy to end" copied
replayed() { grep -q 'the replay for the resynced tables is done' "$RT_TMP/replica.log"; }
rt_wait_until 60 "the replay for big to end" replayed
sleep 1
rt_writer_stop writer
rt_wait_converged 60 source replica
n="$(rt_psql replica -c "SELECT count(*) FROM rt.sync_tables WHERE state = 'c' OR replayed IS NOT NULL")"
[[ "$n" == 0 ]] || rt_fail "rt.sync_tables still holds $n tables held or replaying"
# big was loaded without its key and indexes, built once its rows were in, as they were.
grep -q 'initial copy: 2 keys and indexes of 1 tables are built once their rows are in' \
    "$RT_TMP/replica.log" || rt_fail "the resync did not load big before building its indexes"
idx="$(rt_psql replica -c "SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes
    WHERE tablename = 'big'")"
[[ "$idx" == *"UNIQUE INDEX big_pkey ON public.big USING btree (id)"*"INDEX big_slow ON public.big USING btree (slow(id)) WHERE ((id % (400)::bigint) = 0)"* ]] ||
    rt_fail "big's indexes after the resync: $idx"
n="$(rt_psql replica -c "SELECT count(*) FROM rt.sync_ddl")"
[[ "$n" == 0 ]] || rt_fail "rt.sync_ddl still holds $n tables' indexes to build"

# damage_and_resync K M: under writes, rows of big (id % K = 0) and side (id % M = 0)
# vanish behind rt's back, and both tables are copied again.
damage_and_resync() {
    rt_writer_start writer source writes 0.02
    rt_psql replica -c "SET session_replication_role = replica; DELETE FROM big WHERE id % $1 = 0;
        DELETE FROM side WHERE id % $2 = 0"
    : >"$RT_TMP/replica.log"
    ctl resync replica --table public.big --table public.side
    rt_wait_until 30 "the replica to start copying big and side again" copying
}

echo "-- a subscriber killed while it copies a table again resumes at its next start"
damage_and_resync 3 2
rt_kill9 replica
held="$(rt_psql replica -c "SELECT count(*) FROM rt.sync_tables WHERE state = 'c'")"
echo "killed with $held tables held"
: >"$RT_TMP/replica.log"
sub_start
if ((held > 0)); then
    rt_wait_until 120 "the resumed copy to end" copied
else
    echo "(the kill came after the copy)"
fi
rt_writer_stop writer
rt_wait_converged 90 source replica

# big_indexed: big has its key and both indexes, and none is left to build.
big_indexed() {
    [[ "$(rt_psql replica -c "SELECT (SELECT count(*) FROM pg_indexes WHERE tablename = 'big'
        AND indexname IN ('big_pkey', 'big_slow')) = 2 AND NOT EXISTS (SELECT 1 FROM rt.sync_ddl)")" == t ]]
}
echo "-- a subscriber killed while it builds the indexes of a table copied again builds them next"
damage_and_resync 3 2
# big's rows are in (no table held) and its indexes are still to build (big_slow takes ~5 s).
building() {
    [[ "$(rt_psql replica -c "SELECT NOT EXISTS (SELECT 1 FROM rt.sync_tables WHERE state = 'c')
        AND EXISTS (SELECT 1 FROM rt.sync_ddl)")" == t ]]
}
rt_wait_until 60 "big's rows to be in, its indexes not built" building
rt_kill9 replica
: >"$RT_TMP/replica.log"
sub_start
left() { grep -q 'the keys and indexes a stopped attempt left to build are built' "$RT_TMP/replica.log"; }
rt_wait_until 30 "the restarted subscriber to build what was left" left
rt_wait_until 60 "big's key and indexes" big_indexed
rt_writer_stop writer
rt_wait_converged 90 source replica

echo "-- a publisher killed while big copies keeps what side, already copied, replays"
# side's copy ends first and waits to replay the records after the copy's head, while
# ticks streams and is acknowledged past them; the restarted publisher (no retention)
# must not trim them.
damage_and_resync 7 3
side_copied() {
    [[ "$(rt_psql replica -c "SELECT count(*) FROM rt.sync_tables
        WHERE relname = 'side' AND state = 'r' AND replayed IS NOT NULL")" == 1 ]]
}
rt_wait_until 30 "side's copy to end" side_copied
sleep 2
rt_kill9 pub
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP" \
    --retention-seconds 0
rt_wait_until 120 "the copy to end after the publisher's restart" copied
rt_wait_until 60 "the replay after the publisher's restart" replayed
rt_writer_stop writer
rt_wait_converged 90 source replica
if grep -q 'were trimmed' "$RT_TMP/replica.log"; then
    rt_fail "the subscriber found the records it replays trimmed"
fi

echo "-- a resync of chosen tables needs the subscriber running"
rt_stop_daemon replica
rc=0
ctl resync replica --table public.big >"$RT_TMP/away.txt" 2>&1 || rc=$?
((rc != 0)) || rt_fail "a resync of chosen tables for a stopped subscriber succeeded"
grep -q 'is not connected' "$RT_TMP/away.txt" || rt_fail "rtctl did not say the subscriber is away"
echo "resync_tables: ok"
