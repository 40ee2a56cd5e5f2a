#!/usr/bin/env bash
# tests/integration/apply_copy.sh - runs of INSERTs applied with COPY: escaping and order.
#
# A source and a replica (which logs its statements), rt-publisher and rt-subscriber.
# Checks, comparing every table's checksum between source and replica:
#  - one transaction of 5000 rows whose values need COPY's escaping (tabs, newlines,
#    carriage returns, backslashes, '\N' and '\.' lookalikes, NULLs, empty strings,
#    unicode, bytea hex with every byte value, arrays with quotes, jsonb), inserts into
#    a table with odd identifiers, and an UPDATE and a DELETE between two runs of the
#    same table, is applied with COPY and arrives equal;
#  - a short transaction stays on prepared INSERTs;
#  - 2000 single-row transactions written while the subscriber is stopped are grouped
#    into COPYs that span source transactions;
#  - a COPY that meets a row already on the replica stops applying (nothing of that
#    source transaction is kept), the retry names the exact change in the log and in
#    rt.conflicts, and once the row is removed the replica converges.
set -euo pipefail
RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_pg_start replica "log_statement = 'all'"
REPLICA_LOG="$RT_TMP/pg-replica/postgresql.log"
for c in source replica; do
    rt_psql "$c" <<'SQL'
CREATE TABLE esc (id int PRIMARY KEY, t text, b bytea, arr text[], j jsonb, n numeric,
                  ts timestamptz, note text);
CREATE TABLE "Odd ""Name""" ("the id" int PRIMARY KEY, "tab	col" text, "Ünï" text);
CREATE TABLE small (id int PRIMARY KEY, v text);
CREATE TABLE many (k text PRIMARY KEY, v int);
SQL
done

P_ROUTER="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
SUB_ARGS=(--publisher "$ROUTER" --target "$REPLICA_DSN" --name replica)
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" "${SUB_ARGS[@]}"

copies() { grep -c "statement: COPY $1" "$REPLICA_LOG" || true; }
log_has() { grep -qE -- "$2" "$1"; }

echo "== values that need escaping, one transaction"
rt_psql source <<'SQL'
BEGIN;
INSERT INTO esc
SELECT g,
       (ARRAY[E'tab\there', E'new\nline', E'cr\rreturn', E'back\\slash', E'\\N', 'N', E'\\.',
              '', NULL, 'é日本😀', E'\\\\N', E'end\\', E'\t', E'\n\\.\n', 'plain ' || g,
              E'\r\n', E'\\t', '"quoted"', E'nul-ish \\0', E'\\x41'])[1 + g % 20],
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 7 = 1 THEN ''::bytea
            WHEN g = 2 THEN (SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex')
                             FROM generate_series(0, 255) i)
            ELSE decode(lpad(to_hex(g % 256), 2, '0') || '005c0a090dff', 'hex') END,
       CASE WHEN g % 5 = 0 THEN NULL
            WHEN g % 5 = 1 THEN '{}'::text[]
            ELSE ARRAY['a"b', E'c\\d', NULL, '{x}', 'with,comma', E'tab\t', '', 'NULL'] END,
       jsonb_build_object('k', E'q"\\\n\t', 'n', g, 'u', 'ü'),
       g / 7.0,
       '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second',
       repeat(E'x\\', g % 3)
FROM generate_series(1, 5000) g;
UPDATE esc SET t = E'updated\tin the same transaction' WHERE id = 3;
DELETE FROM esc WHERE id = 4;
INSERT INTO esc (id, t) SELECT g, E'second run\\' || g FROM generate_series(5001, 5100) g;
INSERT INTO "Odd ""Name""" SELECT g, E'v\t' || g, 'ü' || g FROM generate_series(1, 20) g;
COMMIT;
SQL
rt_psql source -c "INSERT INTO small VALUES (1, E'a\tb'), (2, NULL), (3, E'\\\\N')"
rt_wait_converged 60 source replica
(($(copies '"public"."esc"') >= 2)) || rt_fail "the runs of esc were not applied with COPY"
(($(copies '"public"."Odd ""Name"""') == 1)) || rt_fail "the odd table was not applied with COPY"
(($(copies '"public"."small"') == 0)) || rt_fail "a 3-row transaction was applied with COPY"
grep -q 'execute rt_[0-9]*: INSERT INTO "public"."small"' "$REPLICA_LOG" ||
    rt_fail "the 3-row transaction did not use the prepared INSERT"
[[ "$(rt_psql replica -c "SELECT t FROM esc WHERE id = 3")" == "$(printf 'updated\tin the same transaction')" ]] ||
    rt_fail "the UPDATE between two COPY runs was lost"
[[ "$(rt_psql replica -c "SELECT count(*) FROM esc WHERE id = 4")" == 0 ]] ||
    rt_fail "the DELETE between two COPY runs was lost"
[[ "$(rt_psql replica -c "SELECT b = (SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex')
       FROM generate_series(0, 255) i) FROM esc WHERE id = 2")" == t ]] || rt_fail "bytea of every byte differs"

echo "== 2000 single-row transactions while the subscriber is stopped"
rc=0
rt_stop_daemon sub TERM || rc=$?
[[ "$rc" == 0 ]] || rt_fail "subscriber exited with status $rc on SIGTERM"
before="$(copies '"public"."many"')"
for i in $(seq 1 2000); do
    echo "INSERT INTO many VALUES ('k$i', $i);"
done >"$RT_TMP/many.sql"
rt_psql source -f "$RT_TMP/many.sql"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" "${SUB_ARGS[@]}"
rt_wait_converged 60 source replica
n="$(( $(copies '"public"."many"') - before ))"
echo "2000 transactions applied with $n COPY statements"
((n >= 1 && n < 100)) || rt_fail "$n COPYs for 2000 grouped single-row transactions"

echo "== a COPY that meets an existing row"
rt_psql replica -c "INSERT INTO many VALUES ('c50', -1)"
rt_psql source -c "INSERT INTO many SELECT 'c' || g, g FROM generate_series(1, 100) g"
rt_psql source -c "INSERT INTO small VALUES (10, 'after the conflict')"
rt_wait_until 30 "the COPY conflict in the log" log_has "$RT_TMP/sub.log" \
    'the COPY of [0-9]+ INSERTs into "public"."many" met a row that already exists'
rt_wait_until 30 "the exact change in the log" log_has "$RT_TMP/sub.log" \
    'conflict at seq [0-9]+ \(change 50\): INSERT into "public"."many": the row already exists'
stopped_row() {
    [[ "$(rt_psql replica -c "SELECT string_agg(op || ' ' || kind || ' ' || resolution || ' ' ||
          relation, ',') FROM rt.conflicts")" == 'INSERT insert_exists stopped "public"."many"' ]]
}
rt_wait_until 10 "the conflict, once, in rt.conflicts" stopped_row
sleep 1
[[ "$(rt_psql replica -c "SELECT count(*) FROM many WHERE k LIKE 'c%'")" == 1 ]] ||
    rt_fail "part of the conflicting transaction was kept"
[[ "$(rt_psql replica -c "SELECT count(*) FROM small WHERE id = 10")" == 0 ]] ||
    rt_fail "applying went past the conflict"
rt_daemon_alive sub || rt_fail "the subscriber died on a conflict"
rt_psql replica -c "DELETE FROM many WHERE k = 'c50'"
rt_wait_converged 90 source replica

rt_stop_clean sub pub
echo "apply copy: ok"
