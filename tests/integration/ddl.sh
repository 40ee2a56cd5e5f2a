#!/usr/bin/env bash
# tests/integration/ddl.sh - schema changes reach every replica in order with the rows
# (rt-publisher --ddl on, rt-subscriber --ddl apply, the defaults). One source, two
# replicas with empty databases. Each covered DDL form runs interleaved with row changes,
# in transactions of its own and together with rows in one transaction; after each step
# the table definitions (columns, types, defaults, NOT NULL, constraints, indexes, enum
# labels, partitions, from pg_catalog) and every table's checksum are compared between
# the source and both replicas. Then: one transaction of DDL and 200,000 inserts (streamed
# before its commit); a DDL that fails on one replica stops that one only, naming the
# command and the seq, and it goes on once the replica is fixed; DDL from a DO block and
# a query string of several statements stop the subscribers with a clear message and are
# stepped over (rtctl skip NAME --seq N, and --ddl skip); kill -9 of each daemon while DDL
# is in flight.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

# Transactions over 64 kB are streamed to the publisher before their commit.
rt_pg_start source "logical_decoding_work_mem = 64kB"
rt_pg_start r1
rt_pg_start r2

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
pub_start() {
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP"
}
# sub_start NAME [FLAGS...]
sub_start() {
    local n="$1"
    shift
    rt_start_daemon "$n" "$RT_TMP/$n.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "$(rt_dsn "$n")" --name "$n" "$@"
}
pub_start
grep -q "installed rt's DDL capture" "$RT_TMP/pub.log" || rt_fail "the publisher did not install its DDL capture"
sub_start r1
sub_start r2

DEFS_SQL="
WITH rels AS (
  SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT LIKE 'pg\\_%'
    AND n.nspname NOT IN ('information_schema', 'rt'))
SELECT format('%s.%s column %s %s%s%s', r.nspname, r.relname, a.attname,
              format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
              coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''))
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('%s.%s constraint %s %s', r.nspname, r.relname, co.conname, pg_get_constraintdef(co.oid))
FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
UNION ALL
SELECT format('index %s', indexdef) FROM pg_indexes
WHERE schemaname NOT LIKE 'pg\\_%' AND schemaname NOT IN ('information_schema', 'rt')
UNION ALL
SELECT format('enum %s.%s: %s', n.nspname, t.typname,
              (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'e'
UNION ALL
SELECT format('partition %s of %s %s', i.inhrelid::regclass, i.inhparent::regclass,
              pg_get_expr(c.relpartbound, c.oid))
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
UNION ALL
SELECT format('domain %s.%s %s%s', n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod),
              (SELECT string_agg(' ' || pg_get_constraintdef(co.oid), '' ORDER BY co.conname)
               FROM pg_constraint co WHERE co.contypid = t.oid))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'd'
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'rt')
UNION ALL
SELECT format('function %s', pg_get_functiondef(p.oid)) FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'rt')
UNION ALL
SELECT format('comment %s.%s: %s', r.nspname, r.relname, obj_description(r.oid, 'pg_class'))
FROM rels r WHERE obj_description(r.oid, 'pg_class') IS NOT NULL
UNION ALL
SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'rt')
UNION ALL
SELECT format('schema %s', nspname) FROM pg_namespace
WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'rt', 'public')
ORDER BY 1"
defs() { rt_psql "$1" <<<"$DEFS_SQL"; }
same_defs() {
    defs source >"$RT_TMP/defs.source"
    local n
    for n in r1 r2; do
        defs "$n" >"$RT_TMP/defs.$n"
        cmp -s "$RT_TMP/defs.source" "$RT_TMP/defs.$n" || return 1
    done
}
# step WHAT: waits until both replicas have the source's definitions and rows.
step() {
    if ! rt_wait_until 60 "the definitions after: $1" same_defs; then
        diff -u "$RT_TMP/defs.source" "$RT_TMP/defs.r1" >&2 || true
        diff -u "$RT_TMP/defs.source" "$RT_TMP/defs.r2" >&2 || true
        rt_fail "the replicas' definitions differ from the source's after: $1"
    fi
    rt_wait_converged 60 source r1 r2 >/dev/null || rt_fail "rows differ after: $1"
    echo "ok: $1 ($(wc -l <"$RT_TMP/defs.source") definition lines)"
}
# src SQL: runs SQL on the source as psql -f does, one statement at a time (DDL sent as
# one query string of several statements is tested on its own below).
src() { rt_psql source <<<"$1"; }

echo "-- each DDL form among rows"
src "CREATE SCHEMA app"
step "CREATE SCHEMA"
src "CREATE TYPE app.mood AS ENUM ('sad', 'ok')"
step "CREATE TYPE"
src "BEGIN; CREATE TABLE app.t (id int PRIMARY KEY, v text, m app.mood);
     INSERT INTO app.t SELECT g, 'v' || g, 'ok' FROM generate_series(1, 100) g; COMMIT"
step "CREATE TABLE with its first rows in the same transaction"
src "INSERT INTO app.t VALUES (101, 'x', 'sad')"
src "ALTER TABLE app.t ADD COLUMN w int DEFAULT 7"
src "INSERT INTO app.t (id, v, w) VALUES (102, 'y', 8)"
step "ALTER TABLE ADD COLUMN"
src "ALTER TABLE app.t RENAME COLUMN v TO v2"
src "UPDATE app.t SET v2 = v2 || '!' WHERE id % 10 = 0"
step "ALTER TABLE RENAME COLUMN"
src "BEGIN; UPDATE app.t SET w = w + 1 WHERE id < 50; ALTER TABLE app.t ALTER COLUMN w TYPE bigint;
     UPDATE app.t SET w = 5000000000 WHERE id = 1; COMMIT"
step "ALTER COLUMN TYPE among rows of one transaction"
src "ALTER TABLE app.t ALTER COLUMN w SET DEFAULT 9"
src "INSERT INTO app.t (id, v2) VALUES (103, 'z')"
src "ALTER TABLE app.t ALTER COLUMN w DROP DEFAULT"
src "UPDATE app.t SET m = 'ok' WHERE m IS NULL"
src "ALTER TABLE app.t ALTER COLUMN m SET NOT NULL"
step "SET/DROP DEFAULT, SET NOT NULL"
src "ALTER TABLE app.t ALTER COLUMN m DROP NOT NULL"
src "ALTER TABLE app.t ADD CONSTRAINT w_positive CHECK (w > 0)"
src "ALTER TABLE app.t ADD CONSTRAINT v2_unique UNIQUE (v2)"
step "DROP NOT NULL, ADD CONSTRAINT"
src "ALTER TABLE app.t DROP CONSTRAINT w_positive"
src "CREATE INDEX t_w ON app.t (w)"
src "INSERT INTO app.t (id, v2, w) VALUES (104, 'q', -1)"
step "DROP CONSTRAINT, CREATE INDEX"
src "CREATE UNIQUE INDEX CONCURRENTLY t_conc ON app.t (id, v2)"
src "INSERT INTO app.t (id, v2) VALUES (106, 'after the concurrent index')"
step "CREATE INDEX CONCURRENTLY (a plain CREATE INDEX on the replicas)"
src "DROP INDEX CONCURRENTLY app.t_conc"
src "DROP INDEX app.t_w"
src "ALTER TABLE app.t DROP COLUMN w"
src "DELETE FROM app.t WHERE id > 100"
step "DROP INDEX, ALTER TABLE DROP COLUMN"
src "ALTER TYPE app.mood ADD VALUE 'great'"
src "INSERT INTO app.t (id, v2, m) VALUES (105, 'great', 'great')"
step "ALTER TYPE ADD VALUE, then the new value in the next transaction"
src "CREATE TABLE app.p (id int, at date NOT NULL, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
src "CREATE TABLE app.p2025 PARTITION OF app.p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
src "INSERT INTO app.p SELECT g, date '2025-01-01' + g, 'p' FROM generate_series(1, 300) g"
src "CREATE TABLE app.p2026 (id int NOT NULL, at date NOT NULL, v text, PRIMARY KEY (id, at))"
src "INSERT INTO app.p2026 VALUES (1, '2026-03-01', 'before attach')"
src "ALTER TABLE app.p ATTACH PARTITION app.p2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
src "INSERT INTO app.p VALUES (2, '2026-04-01', 'after attach')"
step "partitions created and attached"
src "ALTER TABLE app.p DETACH PARTITION app.p2025"
src "INSERT INTO app.p2025 VALUES (9999, '2025-05-05', 'detached')"
src "TRUNCATE app.p"
step "DETACH PARTITION, TRUNCATE of a partitioned table"
src "CREATE DOMAIN app.posint AS int CHECK (VALUE > 0)"
src "CREATE FUNCTION app.twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT \$1 * 2'"
src "CREATE VIEW app.tv AS SELECT id, app.twice(id) AS d FROM app.t"
src "COMMENT ON TABLE app.t IS 'the main table'"
src "CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) AS n FROM app.t"
src "CREATE TABLE app.pos (id app.posint PRIMARY KEY); INSERT INTO app.pos VALUES (3)"
step "CREATE DOMAIN, FUNCTION, VIEW, MATERIALIZED VIEW, COMMENT"
src "CREATE TABLE app.gone (id int PRIMARY KEY); INSERT INTO app.gone VALUES (1)"
src "DROP TABLE app.gone"
step "DROP TABLE"
src "CREATE TEMP TABLE scratch (x int)"
[[ "$(rt_psql source -c "SELECT count(*) FROM rt.ddl_log WHERE command LIKE '%TEMP TABLE%'")" == 0 ]] ||
    rt_fail "a temporary table's DDL was logged"

echo "-- one transaction: DDL and 200,000 inserts, streamed before its commit"
src "BEGIN;
     CREATE SCHEMA bulk;
     CREATE TYPE bulk.kind AS ENUM ('x', 'y');
     CREATE TABLE bulk.b (id int PRIMARY KEY, v text, k bulk.kind DEFAULT 'x');
     INSERT INTO bulk.b SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
     ALTER TABLE bulk.b ADD COLUMN extra int DEFAULT 1;
     INSERT INTO bulk.b SELECT g, md5(g::text), 'y', g FROM generate_series(50001, 100000) g;
     ALTER TABLE bulk.b RENAME COLUMN v TO v2;
     ALTER TABLE bulk.b ALTER COLUMN extra TYPE bigint;
     ALTER TABLE bulk.b ALTER COLUMN extra SET DEFAULT 2;
     ALTER TABLE bulk.b ALTER COLUMN v2 SET NOT NULL;
     ALTER TABLE bulk.b ADD CONSTRAINT extra_pos CHECK (extra > 0);
     CREATE INDEX b_extra ON bulk.b (extra);
     INSERT INTO bulk.b (id, v2) SELECT g, md5(g::text) FROM generate_series(100001, 150000) g;
     ALTER TYPE bulk.kind ADD VALUE 'z';
     CREATE TABLE bulk.p (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
     CREATE TABLE bulk.p1 PARTITION OF bulk.p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
     CREATE TABLE bulk.p2 (id int NOT NULL, at date NOT NULL, PRIMARY KEY (id, at));
     ALTER TABLE bulk.p ATTACH PARTITION bulk.p2 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
     INSERT INTO bulk.p SELECT g, date '2025-01-01' + g % 700 FROM generate_series(1, 50000) g;
     ALTER TABLE bulk.p DETACH PARTITION bulk.p1;
     DROP INDEX bulk.b_extra;
     ALTER TABLE bulk.b DROP CONSTRAINT extra_pos;
     ALTER TABLE bulk.b DROP COLUMN k;
     CREATE TABLE bulk.gone (id int);
     DROP TABLE bulk.gone;
     COMMIT"
step "each kind of DDL among 200,000 inserts in one transaction"

echo "-- a DDL that fails on r2 stops r2 only, naming the command and the seq"
rt_psql r2 -c "CREATE INDEX t_v2 ON app.t (id)"
src "CREATE INDEX t_v2 ON app.t (v2)"
src "INSERT INTO app.t (id, v2) VALUES (200, 'after the index')"
failed() { grep -q 'CREATE INDEX failed on the replica: SQLSTATE 42P07' "$RT_TMP/r2.log"; }
rt_wait_until 30 "r2 to report the failed CREATE INDEX" failed
grep 'CREATE INDEX failed on the replica' "$RT_TMP/r2.log" | head -1
grep -q 'seq [0-9]*: CREATE INDEX failed on the replica: .*(CREATE INDEX t_v2 ON app.t (v2))' "$RT_TMP/r2.log" ||
    rt_fail "r2's message does not name the seq and the command"
rt_wait_converged 30 source r1 >/dev/null
rt_daemon_alive r2 || rt_fail "r2 exited instead of retrying"
rt_psql r2 -c "DROP INDEX app.t_v2"
step "r2 goes on once its conflicting index is gone"

echo "-- DDL inside a DO block, and a query string of several statements"
src "DO \$\$ BEGIN ALTER TABLE app.t ADD COLUMN z int; END \$\$"
src "INSERT INTO app.t (id, v2, z) VALUES (201, 'zz', 1)"
nested() { grep -q 'ALTER TABLE ran inside a function or DO block on the source' "$RT_TMP/$1.log"; }
rt_wait_until 30 "r1 to report the DDL of a DO block" nested r1
rt_wait_until 30 "r2 to report the DDL of a DO block" nested r2
# The operator makes the change on each replica and steps over it with rtctl skip.
ctl() { "$RT_BIN/rtctl" --publisher "$ROUTER" "$@"; }
seq="$(grep -o 'seq [0-9]*: ALTER TABLE ran inside' "$RT_TMP/r1.log" | head -1 | cut -d' ' -f2 | tr -d :)"
grep -q "rtctl skip r1 --seq $seq" "$RT_TMP/r1.log" || rt_fail "r1's message does not name rtctl skip"
rc=0
ctl skip r1 >"$RT_TMP/skip_bad.txt" 2>&1 || rc=$?
[[ "$rc" == 2 ]] || rt_fail "rtctl skip without --seq: expected exit status 2, got $rc"
for n in r1 r2; do
    rt_psql "$n" -c "ALTER TABLE app.t ADD COLUMN z int"
    ctl skip "$n" --seq "$seq"
done
step "DDL of a DO block made by hand and stepped over with rtctl skip"
for n in r1 r2; do
    grep -q "seq $seq: ALTER TABLE stepped over (rtctl skip)" "$RT_TMP/$n.log" ||
        rt_fail "$n did not log the DDL it stepped over"
    [[ "$(rt_psql "$n" -c "SELECT count(*) FROM rt.conflicts WHERE seq = $seq AND kind = 'ddl_skipped'")" == 1 ]] ||
        rt_fail "$n did not record the skip in rt.conflicts"
done
rt_psql source -c "ALTER TABLE app.t ADD COLUMN y1 int; ALTER TABLE app.t ADD COLUMN y2 int"
several() { grep -q 'a query string of several statements is not replayed' "$RT_TMP/$1.log"; }
rt_wait_until 30 "r1 to refuse a query string of several statements" several r1
src "INSERT INTO app.t (id, v2, y1, y2) VALUES (202, 'y', 1, 2)"
left_out() { grep -q 'ALTER TABLE left out (--ddl skip)' "$RT_TMP/$1.log"; }
for n in r1 r2; do
    rt_psql "$n" -c "ALTER TABLE app.t ADD COLUMN y1 int; ALTER TABLE app.t ADD COLUMN y2 int"
    rt_stop_daemon "$n"
    : >"$RT_TMP/$n.log"
    sub_start "$n" --ddl skip
    rt_wait_until 30 "$n to leave the DDL out" left_out "$n"
done
rt_wait_converged 30 source r1 r2 >/dev/null
for n in r1 r2; do
    rt_stop_daemon "$n"
    sub_start "$n"
done
step "a query string of several statements stepped over by hand"

echo "-- kill -9 of each daemon while DDL is in flight"
# ddl_writes I: a transaction that adds a table, writes it, alters it and writes again.
ddl_writes() {
    local i="$1"
    cat <<SQL
BEGIN;
CREATE TABLE app.k$i (id int PRIMARY KEY, v text);
INSERT INTO app.k$i SELECT g, 'k' FROM generate_series(1, 50) g;
ALTER TABLE app.k$i ADD COLUMN n int DEFAULT $i;
UPDATE app.t SET v2 = 'k$i' WHERE id = $i % 100 + 1;
COMMIT;
SQL
}
rt_writer_start writer source ddl_writes 0.05
sleep 2
rt_kill9 pub
sleep 1
pub_start
sleep 2
rt_kill9 r1
sleep 1
sub_start r1
sleep 2
rt_writer_stop writer
step "kill -9 of the publisher and of r1 during DDL"
n="$(rt_psql r1 -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'app' AND tablename LIKE 'k%'")"
echo "tables made during the kills: $n"
((n > 5)) || rt_fail "too few DDL transactions ran during the kills ($n)"
echo "ddl: ok"
