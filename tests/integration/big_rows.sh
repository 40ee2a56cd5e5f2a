#!/usr/bin/env bash
# tests/integration/big_rows.sh - rows larger than a control message (64 MiB) replicate:
# a 66 MiB value inserted, updated and next to small rows in one transaction reaches a
# streaming replica, and a second replica that joins with --init copy --create-tables
# copies it. Checked by checksums. (Logical decoding itself sends a row of at most 1 GiB,
# PostgreSQL's largest message: rt's limit for a record is that plus room.)
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_pg_start r1
rt_pg_start r2
for c in source r1; do
    rt_psql "$c" -c "CREATE TABLE big (id int PRIMARY KEY, v text, n int)"
done
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon r1 "$RT_TMP/r1.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$R1_DSN" --name r1

MIB=$((1024 * 1024))
rt_psql source -c "INSERT INTO big VALUES (1, repeat('a', 66 * $MIB), 1)"
rt_psql source <<SQL
BEGIN;
INSERT INTO big SELECT g, 'small ' || g, g FROM generate_series(10, 1000) g;
INSERT INTO big VALUES (2, repeat('b', 65 * $MIB) || 'end', 2);
UPDATE big SET n = 5 WHERE id = 10;
COMMIT;
SQL
rt_psql source -c "UPDATE big SET v = v || repeat('c', 4 * $MIB) WHERE id = 1"
rt_wait_converged 180 source r1
len="$(rt_psql r1 -c "SELECT length(v) FROM big WHERE id = 1")"
[[ "$len" == $((70 * MIB)) ]] || rt_fail "the replica's 70 MiB value has $len characters"
echo "streamed: values of 70 MiB and 65 MiB"

echo "-- a replica joins with --init copy --create-tables"
rt_start_daemon r2 "$RT_TMP/r2.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$R2_DSN" --name r2 --init copy --create-tables
rt_psql source -c "INSERT INTO big VALUES (3, 'after the copy', 3)"
rt_wait_converged 180 source r1 r2
echo "big_rows: ok"
