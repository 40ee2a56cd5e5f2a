#!/usr/bin/env bash
# tests/integration/initial_copy.sh - replicas join a populated source with --init copy
# while the source takes writes: each gets the rows of one snapshot, then exactly the
# transactions committed after it (no gap, no overlap), proven by per-table checksums.
# Also: a replica table that is not empty is refused unless --truncate, a missing table
# or column is refused before anything is copied, a subscriber killed in the middle of
# a copy resumes it (tables already copied are kept), and no temporary slot outlives
# its copy.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

SCHEMA="
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE big (id bigint PRIMARY KEY, n int NOT NULL, v text, at timestamptz DEFAULT now());
CREATE TABLE kinds (id int PRIMARY KEY, m mood, j jsonb, b bytea, a int[], x numeric(12,3));
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE TABLE parted (id int, region int, v text, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
CREATE TABLE gen (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
CREATE TABLE child (id bigint PRIMARY KEY, big_id bigint REFERENCES big (id));
CREATE TABLE \"Mixed Case\" (\"Id\" int PRIMARY KEY, \"Value\" text);
"
for c in source replica1 replica2 replica3; do
    rt_pg_start "$c"
done
for c in source replica1 replica2; do
    rt_psql "$c" -c "$SCHEMA"
done
# replica3: a table missing and a column missing.
rt_psql replica3 -c "$(sed -e '/CREATE TABLE gen/d' \
    -e 's/a int\[\], x numeric(12,3)/a int[]/' <<<"$SCHEMA")"

# The source is populated before rt exists: these rows are in no outbox.
rt_psql source <<'SQL'
INSERT INTO big SELECT g, g % 1000, repeat(md5(g::text), 3) FROM generate_series(1, 300000) g;
INSERT INTO kinds SELECT g, (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood,
    jsonb_build_object('g', g, 's', 'tab	and "quote"'), decode(md5(g::text), 'hex'),
    ARRAY[g, -g], g / 7.0 FROM generate_series(1, 2000) g;
INSERT INTO nokey SELECT g % 50, 'row ' || g FROM generate_series(1, 3000) g;
INSERT INTO parted SELECT g, 1 + g % 2, E'line\nbreak ' || g FROM generate_series(1, 20000) g;
INSERT INTO gen (id, a) SELECT g, g FROM generate_series(1, 1000) g;
INSERT INTO child SELECT g, g FROM generate_series(1, 5000) g;
INSERT INTO "Mixed Case" SELECT g, NULL FROM generate_series(1, 100) g;
SQL
# On replica2, loading gen takes about 5 s (an index on a slow expression), so that a kill
# finds its copy under way with the bigger tables copied.
rt_psql replica2 -c "CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE sql
    AS 'SELECT \$1 FROM pg_sleep(0.005)'; CREATE INDEX gen_slow ON gen (slow(id))"
# replica1 already holds a row of its own.
rt_psql replica1 -c "INSERT INTO kinds (id) VALUES (-1)"

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
# Tables over 8 MB are offered in parts (ranges of pages), one per job at most.
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP" --copy-part-mb 8

# sub LABEL CLUSTER ARGS... : runs a subscriber in the foreground, returns its status.
sub_fg() {
    local label="$1" dsn
    dsn="$(rt__var "$2")_DSN"
    shift 2
    timeout 60 "$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "${!dsn}" \
        --name "$label" "$@" >>"$RT_TMP/$label.log" 2>&1
}

echo "-- a replica table that holds rows is refused, and nothing is copied"
rc=0
sub_fg replica1 replica1 --init copy || rc=$?
[[ "$rc" == 2 ]] || rt_fail "expected exit status 2 for a non-empty table, got $rc"
grep -q 'replica table public.kinds is not empty' "$RT_TMP/replica1.log" ||
    rt_fail "the refusal does not name public.kinds"
[[ "$(rt_psql replica1 -c 'SELECT count(*) FROM big')" == 0 ]] ||
    rt_fail "rows were copied although a table was refused"
[[ "$(rt_psql replica1 -c 'SELECT count(*) FROM kinds')" == 1 ]] || rt_fail "kinds was changed"

echo "-- a missing table and a missing column are refused before anything is copied"
rc=0
sub_fg replica3 replica3 --init copy || rc=$?
[[ "$rc" == 2 ]] || rt_fail "expected exit status 2 for a missing table, got $rc"
grep -q 'table public.gen is missing on the replica' "$RT_TMP/replica3.log" ||
    rt_fail "the refusal does not name the missing table public.gen"
grep -q 'public.kinds on the replica has no column x' "$RT_TMP/replica3.log" ||
    rt_fail "the refusal does not name the missing column kinds.x"
[[ "$(rt_psql replica3 -c 'SELECT count(*) FROM big')" == 0 ]] ||
    rt_fail "rows were copied although a table was refused"

# Writes during the copies: every table changes, rows move between partitions, and
# rows are added to, changed in and removed from the biggest table.
cat >"$RT_TMP/tx.sql" <<'SQL'
\set id random(1, 300000)
\set nid random(400000, 100000000)
BEGIN;
UPDATE big SET n = n + 1 WHERE id = :id;
INSERT INTO big VALUES (:nid, 0, 'new') ON CONFLICT DO NOTHING;
DELETE FROM big WHERE id = :id + 1 AND NOT EXISTS (SELECT 1 FROM child WHERE big_id = :id + 1);
INSERT INTO child VALUES (:nid, :nid) ON CONFLICT DO NOTHING;
INSERT INTO nokey VALUES (:id % 50, 'w');
DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE a = (:id + 7) % 50 LIMIT 1);
UPDATE parted SET region = 3 - region WHERE id = :id % 20000 + 1;
UPDATE kinds SET x = x + 1, m = 'happy' WHERE id = :id % 2000 + 1;
UPDATE gen SET a = a + 1 WHERE id = :id % 1000 + 1;
UPDATE "Mixed Case" SET "Value" = 'w' || :id WHERE "Id" = :id % 100 + 1;
COMMIT;
SQL
"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 2 -j 1 -T 25 -R 150 postgres >"$RT_TMP/pgbench.out" 2>&1 &
PGBENCH=$!
sleep 1

echo "-- replica1 with --truncate, 3 jobs, under writes"
RT_READY_TIMEOUT=120 rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA1_DSN" --name replica1 --init copy --truncate \
    --copy-jobs 3
grep -q 'initial copy done' "$RT_TMP/replica1.log" || rt_fail "replica1: no 'initial copy done'"
grep -q 'initial copy: public.big copied, [0-9]* rows (in parts)' "$RT_TMP/replica1.log" ||
    rt_fail "replica1 did not copy public.big in parts"
grep -E 'initial copy: [0-9]+ tables in ' "$RT_TMP/replica1.log"
[[ "$(rt_psql replica1 -c 'SELECT count(*) FROM kinds WHERE id = -1')" == 0 ]] ||
    rt_fail "--truncate kept the replica's own row"

echo "-- replica2 with 1 job, killed in the middle of its copy, then started again"
rt_start_bg replica2 "$RT_TMP/replica2.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$REPLICA2_DSN" --name replica2 --init copy --copy-jobs 1
# The biggest table goes first; kill once it is copied and the others are not.
one_copied() {
    local n
    n="$(rt_psql replica2 -c "SELECT count(*) FROM rt.sync_tables WHERE state = 'r'" \
        2>/dev/null || echo 0)"
    ((n >= 1))
}
rt_wait_until 60 "replica2 copied its first table" one_copied
# Its progress, as rtctl status shows it while it copies.
copy_shown() {
    "$RT_BIN/rtctl" --publisher "$ROUTER" status >"$RT_TMP/status.txt" 2>&1 &&
        grep -qE '^  replica2 +copying' "$RT_TMP/status.txt" &&
        grep -qE 'initial copy: [1-7] of 8 tables, [0-9]+ rows' "$RT_TMP/status.txt"
}
rt_wait_until 10 "rtctl status to show replica2's copy" copy_shown || {
    cat "$RT_TMP/status.txt" >&2
    rt_fail "rtctl status does not show the copy's progress"
}
grep -E 'replica2|initial copy' "$RT_TMP/status.txt"
rt_kill9 replica2
ready="$(rt_psql replica2 -c "SELECT relname FROM rt.sync_tables WHERE state = 'r' ORDER BY 1")"
pending="$(rt_psql replica2 -c "SELECT count(*) FROM rt.sync_tables WHERE state = 'c'")"
echo "copied before the kill: $(tr '\n' ' ' <<<"$ready"); still to copy: $pending"
((pending > 0)) || rt_fail "every table was copied before the kill: nothing to resume"
[[ "$(rt_psql replica2 -c "SELECT count(*) FROM pg_replication_origin WHERE roname = 'rt_src'")" == 0 ]] ||
    rt_fail "replica2 has an origin before its copy ended"
: >"$RT_TMP/replica2.second.log"
RT_READY_TIMEOUT=120 rt_start_daemon replica2 "$RT_TMP/replica2.second.log" \
    "$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "$REPLICA2_DSN" --name replica2 \
    --init copy --copy-jobs 1
grep -q 'resuming a copy that did not finish' "$RT_TMP/replica2.second.log" ||
    rt_fail "replica2 did not resume its copy"
for t in $ready; do
    if grep -q "initial copy: public.$t copied" "$RT_TMP/replica2.second.log"; then
        rt_fail "replica2 copied $t again although it was copied before the kill"
    fi
done

wait "$PGBENCH" || { cat "$RT_TMP/pgbench.out" >&2; rt_fail "pgbench failed"; }
grep -E "number of transactions actually processed" "$RT_TMP/pgbench.out" || true
rt_wait_converged 120 source replica1 replica2

echo "-- streaming goes on after the copy"
rt_psql source -c "INSERT INTO big VALUES (-5, 5, 'after'); DELETE FROM gen WHERE id <= 10;
    TRUNCATE nokey"
rt_wait_converged 60 source replica1 replica2

echo "-- no temporary slot outlives its copy"
no_temporary_slot() {
    [[ "$(rt_psql source -c 'SELECT count(*) FROM pg_replication_slots WHERE temporary')" == 0 ]]
}
rt_wait_until 60 "the copies' temporary slots are gone" no_temporary_slot
rt_psql source -c "SELECT slot_name, temporary FROM pg_replication_slots"

echo "-- a restarted subscriber does not copy again"
rt_stop_daemon replica1
: >"$RT_TMP/replica1.again.log"
rt_start_daemon replica1 "$RT_TMP/replica1.again.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA1_DSN" --name replica1 --init copy --truncate
if grep -q 'initial copy' "$RT_TMP/replica1.again.log"; then
    rt_fail "replica1 started another initial copy although it has progress"
fi
rt_psql source -c "UPDATE big SET v = 'last' WHERE id = 10"
rt_wait_converged 60 source replica1 replica2

echo "-- rtctl resync: a damaged replica is copied again, online, under writes"
# Rows changed behind rt's back: no checksum can match until the replica is copied again.
rt_psql replica1 -c "SET session_replication_role = replica; DELETE FROM big WHERE id % 7 = 0;
    UPDATE kinds SET m = NULL"
"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 2 -j 1 -T 10 -R 100 postgres >"$RT_TMP/pgbench2.out" 2>&1 &
PGBENCH=$!
"$RT_BIN/rtctl" --publisher "$ROUTER" resync replica1
resynced() { sed -n '/asks for a resync/,$p' "$RT_TMP/replica1.again.log" | grep -q 'initial copy done'; }
rt_wait_until 60 "replica1 to finish its resync" resynced
echo "-- rtctl resync of a subscriber that is not running: done when it connects"
rt_stop_daemon replica2
rt_psql replica2 -c "DELETE FROM parted WHERE id % 3 = 0"
"$RT_BIN/rtctl" --publisher "$ROUTER" resync replica2 | tee "$RT_TMP/resync2.txt"
grep -q 'not connected' "$RT_TMP/resync2.txt" || rt_fail "rtctl resync did not say replica2 is away"
: >"$RT_TMP/replica2.third.log"
RT_READY_TIMEOUT=120 rt_start_daemon replica2 "$RT_TMP/replica2.third.log" \
    "$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "$REPLICA2_DSN" --name replica2
grep -q 'a resync: every table is copied again' "$RT_TMP/replica2.third.log" ||
    rt_fail "replica2 did not carry out the stored resync"
wait "$PGBENCH" || { cat "$RT_TMP/pgbench2.out" >&2; rt_fail "pgbench failed"; }
rt_wait_converged 120 source replica1 replica2
echo "-- --table is refused, saying so"
rc=0
"$RT_BIN/rtctl" --publisher "$ROUTER" resync replica1 --table public.big 2>&1 | tee "$RT_TMP/resync3.txt" || rc=$?
((rc != 0)) || rt_fail "rtctl resync --table succeeded"
grep -q 'not available yet' "$RT_TMP/resync3.txt" || rt_fail "no clear refusal of --table"
echo "initial_copy: ok"
