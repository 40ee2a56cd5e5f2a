#!/usr/bin/env bash
# tests/integration/stream_inprogress.sh - transactions streamed before their commit.
#
# The source runs with logical_decoding_work_mem = 64kB, so every transaction of more
# than a few hundred rows reaches rt-publisher in protocol 2 stream blocks while it is
# still running. Checks, comparing every table's checksum between source and replica:
#  - a committed streamed transaction (inserts, updates and deletes of its own rows,
#    a TRUNCATE in the middle) arrives whole;
#  - a streamed transaction that rolls back leaves nothing on the replica;
#  - subtransactions rolled back after they were streamed (ROLLBACK TO SAVEPOINT,
#    nested savepoints, a PL/pgSQL exception block) are left out, released ones kept;
#  - two streamed transactions interleaved with each other and with small ones are
#    applied in commit order (the later-started one commits first);
#  - the publisher killed (-9) while a transaction is open and already partly
#    streamed: restarted, it receives that transaction from its beginning again and
#    stores it once;
#  - a streamed transaction with an rt_ origin (applied by an rt subscriber on the
#    source) is not sent back;
#  - while a large prepared transaction waits for its COMMIT PREPARED, the idle
#    publisher confirms the source's position past it (the slot does not hold WAL
#    back), and, killed then, still receives it whole at the COMMIT PREPARED;
#  - the publisher logged each streamed commit, so the blocks really were used.
set -euo pipefail
RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
source "$RT_SRC/tests/lib/cluster.sh"
source "$RT_SRC/tests/lib/session.sh"
rt_setup

rt_pg_start source "logical_decoding_work_mem = 64kB" "max_prepared_transactions = 2"
rt_pg_start replica
for c in source replica; do
    rt_psql "$c" <<'SQL'
CREATE TABLE big (id int PRIMARY KEY, grp int NOT NULL, v text);
CREATE TABLE other (id int PRIMARY KEY, v text);
CREATE TABLE small (id serial PRIMARY KEY, v text);
SQL
done

P_ROUTER="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
PUB_ARGS=(--source "$SOURCE_DSN" --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER"
    --pub "tcp://127.0.0.1:$(rt_free_port)")
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" "${PUB_ARGS[@]}"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$REPLICA_DSN" --name replica

streamed() { grep -c 'streamed before its commit, committed' "$RT_TMP/pub.log" || true; }
small() { rt_psql source -c "INSERT INTO small (v) VALUES ('$1')"; }

rt_sess_open sx source
rt_sess_open sy source

echo "== a committed streamed transaction with updates, deletes and a TRUNCATE"
rt_psql source <<'SQL'
BEGIN;
INSERT INTO other SELECT g, 'before ' || g FROM generate_series(1, 3000) g;
TRUNCATE other;
INSERT INTO big SELECT g, 1, md5(g::text) FROM generate_series(1, 20000) g;
UPDATE big SET v = 'updated ' || id WHERE id % 7 = 0;
DELETE FROM big WHERE id % 11 = 0;
INSERT INTO other SELECT g, 'after ' || g FROM generate_series(1, 3000) g;
COMMIT;
SQL
small one
rt_wait_converged 60 source replica
n="$(streamed)"
((n >= 1)) || rt_fail "the publisher logged no streamed transaction"
echo "streamed commits so far: $n"

echo "== a streamed transaction that rolls back"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 2, 'rolled back' FROM generate_series(100001, 130000) g"
rt_sess_run sx "DELETE FROM big WHERE id < 5000"
rt_sess_run sx "ROLLBACK"
small two
rt_wait_converged 60 source replica
[[ "$(rt_psql replica -c "SELECT count(*) FROM big WHERE grp = 2")" == 0 ]] ||
    rt_fail "the replica has rows of the rolled back transaction"

echo "== subtransactions rolled back after they were streamed"
rt_psql source <<'SQL'
BEGIN;
INSERT INTO big SELECT g, 3, 'top' FROM generate_series(200001, 210000) g;
SAVEPOINT a;
INSERT INTO big SELECT g, 4, 'in a, rolled back' FROM generate_series(210001, 220000) g;
SAVEPOINT b;
INSERT INTO big SELECT g, 5, 'in b, released, then rolled back with a' FROM generate_series(220001, 230000) g;
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
INSERT INTO big SELECT g, 6, 'after a' FROM generate_series(230001, 240000) g;
SAVEPOINT c;
UPDATE big SET v = 'updated in c, rolled back' WHERE grp = 3;
ROLLBACK TO SAVEPOINT c;
SAVEPOINT d;
DELETE FROM big WHERE grp = 6 AND id % 2 = 0;
RELEASE SAVEPOINT d;
DO $$
BEGIN
    INSERT INTO big SELECT g, 7, 'in an exception block' FROM generate_series(240001, 250000) g;
    RAISE EXCEPTION 'undo the block';
EXCEPTION WHEN raise_exception THEN
    INSERT INTO big VALUES (250001, 8, 'in the handler');
END $$;
COMMIT;
SQL
small three
rt_wait_converged 60 source replica
[[ "$(rt_psql replica -c "SELECT string_agg(grp || ':' || n, ' ' ORDER BY grp)
      FROM (SELECT grp, count(*) n FROM big WHERE grp >= 3 GROUP BY grp) s")" == "3:10000 6:5000 8:1" ]] ||
    rt_fail "the replica kept rows of rolled back subtransactions"

echo "== two streamed transactions interleaved; the later one commits first"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 9, 'x' FROM generate_series(300001, 320000) g"
rt_sess_run sy "BEGIN"
rt_sess_run sy "INSERT INTO big SELECT g, 10, 'y' FROM generate_series(400001, 420000) g"
small four
rt_sess_run sx "UPDATE big SET v = 'x updated' WHERE grp = 9 AND id % 3 = 0"
rt_sess_run sy "UPDATE other SET v = 'y was here' WHERE id <= 2000"
rt_sess_run sy "COMMIT"
small five
rt_sess_run sx "UPDATE other SET v = v || ', then x' WHERE id <= 1000"
rt_sess_run sx "INSERT INTO big SELECT g, 9, 'x more' FROM generate_series(320001, 325000) g"
rt_sess_run sx "COMMIT"
rt_wait_converged 60 source replica

echo "== the publisher killed while a transaction is open and partly streamed"
rt_sess_run sx "BEGIN"
rt_sess_run sx "INSERT INTO big SELECT g, 11, 'before the kill' FROM generate_series(500001, 520000) g"
before="$(streamed)"
rt_kill9 pub
rt_sess_run sx "INSERT INTO big SELECT g, 11, 'after the kill' FROM generate_series(520001, 530000) g"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" "${PUB_ARGS[@]}"
rt_sess_run sx "DELETE FROM big WHERE grp = 11 AND id % 5 = 0"
rt_sess_run sx "COMMIT"
small six
rt_wait_converged 60 source replica
(($(streamed) > before)) || rt_fail "the transaction open across the kill was not streamed"

echo "== a streamed transaction with an rt_ origin is not sent back"
rt_psql source -c "SELECT pg_replication_origin_create('rt_elsewhere')" >/dev/null
rt_psql source <<'SQL'
SELECT pg_replication_origin_session_setup('rt_elsewhere') \g /dev/null
BEGIN;
INSERT INTO big SELECT g, 12, 'from elsewhere' FROM generate_series(600001, 620000) g;
COMMIT;
SQL
small seven
has_seven() { [[ "$(rt_psql replica -c "SELECT count(*) FROM small WHERE v = 'seven'")" == 1 ]]; }
rt_wait_until 30 "the row after the filtered transaction" has_seven
[[ "$(rt_psql replica -c "SELECT count(*) FROM big WHERE grp = 12")" == 0 ]] ||
    rt_fail "a transaction with an rt_ origin was sent back"
rt_psql replica -c "INSERT INTO big SELECT g, 12, 'from elsewhere' FROM generate_series(600001, 620000) g"
rt_wait_converged 60 source replica

echo "== a prepared streamed transaction pending: the slot confirms past it while idle"
rt_psql source <<'SQL'
BEGIN;
INSERT INTO big SELECT g, 13, 'prepared' FROM generate_series(700001, 720000) g;
PREPARE TRANSACTION 'rt_pending';
SQL
small eight
has_eight() { [[ "$(rt_psql replica -c "SELECT count(*) FROM small WHERE v = 'eight'")" == 1 ]]; }
rt_wait_until 30 "the row committed after the prepared transaction" has_eight
rt_psql source -c "CHECKPOINT" # WAL past the last change: only an idle confirmation passes it
target="$(rt_psql source -c "SELECT pg_current_wal_lsn()")"
confirmed_past() {
    [[ "$(rt_psql source -c "SELECT confirmed_flush_lsn >= '$target' FROM pg_replication_slots
          WHERE slot_name = 'rt_src'")" == t ]]
}
rt_wait_until 30 "the slot to confirm $target with the prepared transaction pending" confirmed_past
echo "slot confirmed past $target while the prepared transaction waits"
# Confirmed past its start, it is still sent whole: the source keeps its WAL.
rt_kill9 pub
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" "${PUB_ARGS[@]}"
rt_psql source -c "COMMIT PREPARED 'rt_pending'"
rt_wait_converged 60 source replica
[[ "$(rt_psql replica -c "SELECT count(*) FROM big WHERE grp = 13")" == 20000 ]] ||
    rt_fail "the prepared transaction did not arrive whole"

echo "streamed commits: $(streamed)"
(($(streamed) >= 6)) || rt_fail "fewer streamed commits than streamed transactions"
rt_sess_close sx
rt_sess_close sy
rt_stop_clean sub pub
[[ -z "$(ls "$RT_TMP/outbox" | grep stream- || true)" ]] || rt_fail "spool files left in the outbox"
echo "stream in progress: ok"
