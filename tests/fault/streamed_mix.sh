#!/usr/bin/env bash
# tests/fault/streamed_mix.sh - large transactions streamed while they run, beside a
# steady load of small ones, to a replica and to a replica behind an rt-relay.
#
# The source runs with logical_decoding_work_mem = 64kB, so the large transactions (and
# at times small ones) reach rt-publisher in blocks while they run; two loops run them
# concurrently (inserts, updates, deletes, subtransactions rolled back and released,
# whole transactions rolled back, TOASTed values, a unique key) while pgbench commits
# small transactions that update shared rows. Under this load the subscribers fall
# behind and catch up from the outbox, ahead of what their SUB delivers: blocks that come
# after the records main took are left to the records (never applied over rows main
# applied, which shows as a duplicate key, or held as locks main then waits for). Checks:
# both replicas equal the source by checksum; each applied transactions from their blocks;
# no conflict, no lock timeout and no rt.conflicts row on either.
#
# RT_FAULT_MIX_S seconds of load (default 20, 10 in a sanitizer build).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

DUR="${RT_FAULT_MIX_S:-$(fault_scale 20 10)}"
echo "streamed_mix: ${DUR}s of large streamed transactions beside small ones"

rt_pg_start source "logical_decoding_work_mem = 64kB"
rt_pg_start replica
rt_pg_start far
for c in source replica far; do
    rt_psql "$c" <<'SQL'
CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL, note text);
INSERT INTO acct SELECT g, 0, NULL FROM generate_series(1, 1000) g;
CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, v text, u bigint UNIQUE);
CREATE TABLE hist (id bigserial PRIMARY KEY, aid int, delta int);
SQL
done

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
rt_pair_daemons
RELAY="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt-relay" --publisher "$ROUTER" \
    --outbox "$RT_TMP/relay" --name relay --listen "$RELAY" --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon fsub "$RT_TMP/fsub.log" "$RT_BIN/rt-subscriber" --publisher "$RELAY" \
    --target "$FAR_DSN" --name far

cat >"$RT_TMP/small.sql" <<'SQL'
\set aid random(1, 1000)
\set d random(-50, 50)
BEGIN;
UPDATE acct SET bal = bal + :d WHERE id = :aid;
INSERT INTO hist (aid, delta) VALUES (:aid, :d);
COMMIT;
SQL
rt_start_bg small "$RT_TMP/small.log" "$RT_PG_BIN/pgbench" -n -h 127.0.0.1 -p "$SOURCE_PORT" \
    -U postgres -c 2 -j 2 -T "$DUR" -f "$RT_TMP/small.sql" postgres

# big K: one large transaction of kind K % 6, its rows keyed from K * 100000.
big() {
    local k="$1" b=$(($1 * 100000))
    case $((k % 6)) in
    0) echo "BEGIN; INSERT INTO items SELECT $b+g, $k, md5(g::text) FROM generate_series(1, 8000) g;
        UPDATE items SET v = 'u' || id WHERE grp = $k AND id % 3 = 0;
        DELETE FROM items WHERE grp = $k AND id % 5 = 0; COMMIT;" ;;
    1) echo "BEGIN; INSERT INTO items SELECT $b+g, $k, md5(g::text) FROM generate_series(1, 5000) g;
        SAVEPOINT a; INSERT INTO items SELECT $b+5000+g, $k, 'a' FROM generate_series(1, 5000) g;
        UPDATE acct SET note = 'big $k' WHERE id % 97 = $((k % 97)); ROLLBACK TO SAVEPOINT a;
        SAVEPOINT b; INSERT INTO items SELECT $b+20000+g, $k, 'b' FROM generate_series(1, 3000) g;
        RELEASE SAVEPOINT b; COMMIT;" ;;
    2) echo "BEGIN; INSERT INTO items SELECT $b+g, $k, md5(g::text) FROM generate_series(1, 6000) g;
        ROLLBACK;" ;;
    3) echo "BEGIN; INSERT INTO items SELECT $b+g, $k, md5(g::text) FROM generate_series(1, 6000) g;
        UPDATE acct SET bal = bal + 1 WHERE id = $((k % 1000 + 1));
        INSERT INTO items SELECT $b+50000+g, $k, 'later' FROM generate_series(1, 4000) g; COMMIT;" ;;
    4) echo "BEGIN; UPDATE items SET v = v || 'x' WHERE grp = $((k - 2));
        DELETE FROM items WHERE grp = $((k - 4));
        INSERT INTO items SELECT $b+g, $k, repeat('z', 3000) FROM generate_series(1, 3000) g; COMMIT;" ;;
    5) echo "BEGIN; INSERT INTO items SELECT $b+g, $k, md5(g::text), $b+g FROM generate_series(1, 6000) g;
        SAVEPOINT s1; INSERT INTO items SELECT $b+6000+g, $k, 's1' FROM generate_series(1, 3000) g;
        SAVEPOINT s2; UPDATE items SET u = NULL WHERE grp = $k AND id % 2 = 0;
        ROLLBACK TO SAVEPOINT s2; RELEASE SAVEPOINT s1; COMMIT;" ;;
    esac
}
# big_loop FIRST: large transactions FIRST, FIRST + 2, ... until the load ends.
big_loop() {
    local k="$1" end=$(($(rt__now_ms) + DUR * 1000))
    while (($(rt__now_ms) < end)); do
        big "$k" | rt_psql source -q >/dev/null
        k=$((k + 2))
    done
}
big_loop 10 >"$RT_TMP/big1.log" 2>&1 &
B1=$!
big_loop 11 >"$RT_TMP/big2.log" 2>&1 &
B2=$!
rc=0
wait "$B1" || rc=$?
wait "$B2" || rc=$?
((rc == 0)) || { cat "$RT_TMP/big1.log" "$RT_TMP/big2.log"; rt_fail "a large transaction failed"; }
wait "$SMALL_PID" || { cat "$RT_TMP/small.log"; rt_fail "pgbench failed"; }
grep -E '^(number of transactions actually processed|tps)' "$RT_TMP/small.log" || true

rt_wait_converged 180 source replica
rt_wait_converged 180 source far
for s in sub fsub; do
    log="$RT_TMP/$s.log"
    n="$(grep -c 'applied from its blocks while it ran' "$log" || true)"
    left="$(grep -c 'it is applied from its records after its commit' "$log" || true)"
    echo "$s: $n transactions committed from their blocks, $left left to their records"
    ((n >= 1)) || rt_fail "$s committed no transaction from its blocks"
    if grep -E 'conflict at|lock timeout' "$log" >&2; then
        rt_fail "$s met a conflict or a lock timeout"
    fi
done
for c in replica far; do
    [[ "$(rt_psql "$c" -c "SELECT count(*) FROM rt.conflicts")" == 0 ]] ||
        rt_fail "$c: rt.conflicts has rows"
done
rt_stop_clean fsub relay sub pub
echo "streamed_mix: ok"
