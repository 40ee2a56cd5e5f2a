#!/usr/bin/env bash
# tests/integration/replica_shapes.sh - replica tables shaped otherwise than the source's
# take everything the source's accept.
# 1. TRUNCATE of a table that is a plain table on the source and partitioned on the
#    replica (PostgreSQL refuses TRUNCATE ONLY there): its partitions are emptied, as
#    PostgreSQL's own apply does; with another table in the same statement, RESTART
#    IDENTITY, and through a source partition whose replica twin is sub-partitioned.
# 2. A replica column GENERATED ALWAYS AS IDENTITY takes the source's keys on insert,
#    update and delete (not a change of that key: PostgreSQL lets no UPDATE set such a
#    column, see README); a replica column GENERATED ... STORED the source does not
#    have is computed there.
# Each step ends with the tables equal (checksums over the columns both have).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_pg_start replica
rt_psql source <<'SQL'
CREATE TABLE leaf (id int PRIMARY KEY, v text);
CREATE TABLE plain (id serial PRIMARY KEY, v text);
CREATE TABLE pt (id int, region int, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE pt_a PARTITION OF pt FOR VALUES IN (1, 2);
CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN (3);
CREATE TABLE ident (id int PRIMARY KEY, v text);
CREATE TABLE gen (id int PRIMARY KEY, a int);
SQL
rt_psql replica <<'SQL'
CREATE TABLE leaf (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE leaf_lo PARTITION OF leaf FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE leaf_hi PARTITION OF leaf FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE plain (id serial PRIMARY KEY, v text);
CREATE TABLE pt (id int, region int, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE pt_a PARTITION OF pt FOR VALUES IN (1, 2) PARTITION BY LIST (region);
CREATE TABLE pt_a1 PARTITION OF pt_a FOR VALUES IN (1);
CREATE TABLE pt_a2 PARTITION OF pt_a FOR VALUES IN (2);
CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN (3);
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE gen (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
SQL
# The replica's generated column is not the source's: compare the columns both have.
checksums_equal() {
    local q="SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM"
    local t
    for t in "leaf" "plain" "pt" "ident" "(SELECT id, a FROM gen) AS"; do
        [[ "$(rt_psql source -c "$q $t x")" == "$(rt_psql replica -c "$q $t x")" ]] || return 1
    done
}
converged() {
    rt_wait_until 60 "the replica's tables equal the source's" checksums_equal
    echo "tables equal"
}

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
rt_pair_daemons

echo "== 1. TRUNCATE of tables partitioned on the replica"
rt_psql source <<'SQL'
INSERT INTO leaf SELECT g, 'v' || g FROM generate_series(1, 300) g;
INSERT INTO plain (v) SELECT 'p' || g FROM generate_series(1, 20) g;
INSERT INTO pt SELECT g, 1 + g % 3, 'r' FROM generate_series(1, 90) g;
SQL
converged
rt_psql source -c "TRUNCATE leaf"
rt_psql source -c "INSERT INTO leaf VALUES (5, 'after'), (150, 'after')"
converged
[[ "$(rt_psql replica -c "SELECT count(*) FROM leaf_lo")/$(rt_psql replica -c "SELECT count(*) FROM leaf_hi")" == 1/1 ]] ||
    rt_fail "the replica's partitions of leaf were not emptied"
rt_psql source -c "TRUNCATE leaf, plain RESTART IDENTITY"
rt_psql source -c "INSERT INTO plain (v) VALUES ('again')"
converged
[[ "$(rt_psql replica -c "SELECT id FROM plain")" == 1 ]] || rt_fail "RESTART IDENTITY did not reach plain"
rt_psql source -c "TRUNCATE pt"
rt_psql source -c "INSERT INTO pt VALUES (1, 1, 'after'), (2, 2, 'after'), (3, 3, 'after')"
converged
[[ "$(rt_psql replica -c "SELECT count(*) FROM pt_a1")$(rt_psql replica -c "SELECT count(*) FROM pt_a2")" == 11 ]] ||
    rt_fail "the sub-partitions of pt_a were not emptied"
echo "partitioned on the replica: truncated with their partitions"

echo "== 2. identity and generated columns of the replica's own"
rt_psql source <<'SQL'
INSERT INTO ident SELECT g, 'i' || g FROM generate_series(1, 50) g;
UPDATE ident SET v = 'upd' WHERE id % 5 = 0;
DELETE FROM ident WHERE id % 11 = 0;
INSERT INTO gen SELECT g, g FROM generate_series(1, 50) g;
UPDATE gen SET a = a + 1 WHERE id % 3 = 0;
SQL
converged
[[ "$(rt_psql replica -c "SELECT count(*) FROM gen WHERE twice <> a * 2")" == 0 ]] ||
    rt_fail "the replica's generated column is not a * 2"
echo "identity and generated columns: the source's rows, the replica's computed values"

acked="$(rt_json_sub_acked "$(rt_status_json "$ROUTER")" replica)" || rt_fail "the replica is not in the status"
((acked > 0)) || rt_fail "the replica acknowledged nothing"
if grep -q "ERROR" "$RT_TMP/sub.log"; then
    grep "ERROR" "$RT_TMP/sub.log" | head -5 >&2
    rt_fail "the subscriber met an error"
fi
rt_stop_clean sub pub
echo "replica shapes: ok"
