#!/usr/bin/env bash
# tests/integration/mesh_lww.sh - three nodes that all take writes (a mesh: each node
# runs a publisher and a subscriber for each other node, all named after their node),
# under --conflict-policy last_write_wins (track_commit_timestamp = on everywhere).
# All three write at once (for several seconds, while a subscriber and a publisher are
# killed with SIGKILL at random moments and started again) to 20 shared keys (upserts, updates and deletes, so that the
# same key is inserted, changed and deleted on several nodes at the same moment), each
# transaction also inserting a row of the write log (node, i, key, value or NULL for a
# delete; key NULL when an update or delete found no row, so wrote nothing) and bumping
# its node's counter. After it quiesces:
#  - every table is equal on the three nodes (checksums);
#  - every node's transactions are on every node once (write log rows, counters);
#  - each shared key holds the value of its latest write by commit time (ties: the
#    node name sorting last), or is absent when that write was a delete, as read from
#    the write log's commit times; a partitioned table written by the same
#    transactions the same way ends the same (tombstones of a partition root); a table
#    without a key (REPLICA IDENTITY FULL) converges too;
#  - conflicts were met, and each is recorded with both versions;
#  - `rtctl status` given the three publishers shows each node's lag behind each other;
#  - a subscriber purges the tombstones older than --tombstone-hours when it connects.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

NODES=(a b c)
for n in "${NODES[@]}"; do
    rt_pg_start "$n" "track_commit_timestamp = on"
    rt_psql "$n" <<'SQL'
CREATE TABLE kv (k int PRIMARY KEY, v text, node text);
CREATE TABLE wlog (node text, i int, k int, v text, PRIMARY KEY (node, i));
CREATE TABLE cnt (node text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO cnt VALUES ('a', 0), ('b', 0), ('c', 0);
CREATE TABLE pt (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (1) TO (11);
CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (11) TO (21);
CREATE TABLE ft (node text, i int, v text);
ALTER TABLE ft REPLICA IDENTITY FULL;
SQL
done
declare -A ROUTER PUB
for n in "${NODES[@]}"; do
    ROUTER[$n]="tcp://127.0.0.1:$(rt_free_port)"
    PUB[$n]="tcp://127.0.0.1:$(rt_free_port)"
done
for n in "${NODES[@]}"; do
    rt_start_daemon "pub_$n" "$RT_TMP/pub_$n.log" "$RT_BIN/rt-publisher" --source "$(rt_dsn "$n")" \
        --outbox "$RT_TMP/outbox_$n" --name "$n" --listen "${ROUTER[$n]}" --pub "${PUB[$n]}"
done
for n in "${NODES[@]}"; do
    for o in "${NODES[@]}"; do
        [[ "$n" != "$o" ]] || continue
        rt_start_daemon "sub_${n}_$o" "$RT_TMP/sub_${n}_$o.log" "$RT_BIN/rt-subscriber" \
            --publisher "${ROUTER[$o]}" --target "$(rt_dsn "$n")" --name "$n" \
            --conflict-policy last_write_wins
    done
done
streaming() { # NODE: every subscriber at NODE's publisher streams
    local s
    s="$(rt_status_json "${ROUTER[$1]}" | jq -r '[.subscribers[] | .state == "streaming"] | all and length == 2')"
    [[ "$s" == true ]]
}
for n in "${NODES[@]}"; do
    rt_wait_until 30 "the subscribers of $n streaming" streaming "$n"
done
for n in "${NODES[@]}"; do
    grep -q 'conflict policy last_write_wins' "$RT_TMP/sub_${n}_$([[ $n == a ]] && echo b || echo a).log" ||
        rt_fail "the subscribers on $n do not say their policy"
done

echo "== all three nodes write to the same keys at once"
TXNS="${RT_MESH_TXNS:-400}"
writer() { # NODE SEED
    local n="$1" i k op
    RANDOM="$2"
    for ((i = 1; i <= TXNS; i++)); do
        k=$((RANDOM % 20 + 1))
        op=$((RANDOM % 10))
        # As an application writing rows that other nodes write too: a transaction the
        # node fails to break a deadlock (with rt's apply) is run again.
        echo "DO \$w\$ BEGIN FOR a IN 1..50 LOOP BEGIN"
        # A delete or update that finds no row writes nothing: logged with key NULL.
        # The partitioned pt gets the same change as kv in the same transaction.
        if ((op < 2)); then
            echo "WITH d AS (DELETE FROM kv WHERE k = $k RETURNING 1)"
            echo "INSERT INTO wlog SELECT '$n', $i, CASE WHEN EXISTS (SELECT 1 FROM d) THEN $k END, NULL;"
            echo "DELETE FROM pt WHERE k = $k;"
        elif ((op < 6)); then
            echo "INSERT INTO kv VALUES ($k, '$n$i', '$n') ON CONFLICT (k) DO UPDATE SET v = excluded.v, node = excluded.node;"
            echo "INSERT INTO wlog VALUES ('$n', $i, $k, '$n$i');"
            echo "INSERT INTO pt VALUES ($k, '$n$i') ON CONFLICT (k) DO UPDATE SET v = excluded.v;"
        else
            echo "WITH u AS (UPDATE kv SET v = '$n$i', node = '$n' WHERE k = $k RETURNING 1)"
            echo "INSERT INTO wlog SELECT '$n', $i, CASE WHEN EXISTS (SELECT 1 FROM u) THEN $k END, '$n$i';"
            echo "UPDATE pt SET v = '$n$i' WHERE k = $k;"
        fi
        # ft (no key, REPLICA IDENTITY FULL): each node's own rows, some deleted again.
        echo "INSERT INTO ft VALUES ('$n', $i, 'x');"
        ((i % 5 != 0)) || echo "DELETE FROM ft WHERE node = '$n' AND i = $((i - 3));"
        echo "UPDATE cnt SET n = n + 1 WHERE node = '$n';"
        echo "RETURN; EXCEPTION WHEN deadlock_detected THEN PERFORM pg_sleep(0.01 * a); END;"
        echo "END LOOP; RAISE EXCEPTION 'deadlocked 50 times'; END \$w\$;"
        ((i % 10 != 0)) || echo "SELECT pg_sleep(0.15);"
    done | rt_psql "$n" -q >/dev/null
}
pids=()
seed=1
for n in "${NODES[@]}"; do
    writer "$n" $((seed++ * 7919)) &
    pids+=($!)
done
# Meanwhile a subscriber and a publisher crash (SIGKILL) at random moments and start
# again.
RANDOM=$$
sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
echo "kill -9 of b's subscriber for a"
rt_kill9 sub_b_a
sleep "0.$((RANDOM % 10))"
rt_start_daemon sub_b_a "$RT_TMP/sub_b_a.log" "$RT_BIN/rt-subscriber" \
    --publisher "${ROUTER[a]}" --target "$(rt_dsn b)" --name b --conflict-policy last_write_wins
sleep "$((RANDOM % 2)).$((RANDOM % 10))"
echo "kill -9 of c's publisher"
rt_kill9 pub_c
sleep "0.$((RANDOM % 10))"
rt_start_daemon pub_c "$RT_TMP/pub_c.log" "$RT_BIN/rt-publisher" --source "$(rt_dsn c)" \
    --outbox "$RT_TMP/outbox_c" --name c --listen "${ROUTER[c]}" --pub "${PUB[c]}"
for p in "${pids[@]}"; do
    wait "$p" || rt_fail "a writer failed"
done

echo "== the nodes converge"
rt_wait_converged 120 a b c
for n in "${NODES[@]}"; do
    got="$(rt_psql "$n" -c "SELECT string_agg(node || '=' || n, ',' ORDER BY node) FROM cnt")"
    [[ "$got" == "a=$TXNS,b=$TXNS,c=$TXNS" ]] || rt_fail "counters on $n: $got"
    got="$(rt_psql "$n" -c "SELECT count(*) FROM wlog")"
    [[ "$got" == $((3 * TXNS)) ]] || rt_fail "write log rows on $n: $got, expected $((3 * TXNS))"
done
# Nothing is sent on: each publisher's outbox holds exactly its node's transactions
# (one record each), not the ones rt applied there.
for n in "${NODES[@]}"; do
    h="$(rt_status_json "${ROUTER[$n]}" | jq -r .head_seq)"
    [[ "$h" == "$TXNS" ]] || rt_fail "the outbox of $n holds $h records, expected its $TXNS transactions"
done
echo "every transaction on every node once, from its own node only"

# The latest write of each key by commit time (a row applied by rt has its source's
# commit time), ties to the node sorting last; a delete's value is NULL.
expected_sql="SELECT coalesce(string_agg(k || '=' || v, ',' ORDER BY k), '') FROM (
  SELECT DISTINCT ON (k) k, v FROM wlog WHERE k IS NOT NULL
  ORDER BY k, pg_xact_commit_timestamp(xmin) DESC, node COLLATE \"C\" DESC) w WHERE v IS NOT NULL"
actual_sql="SELECT coalesce(string_agg(k || '=' || v, ',' ORDER BY k), '') FROM kv"
for n in "${NODES[@]}"; do
    want="$(rt_psql "$n" -c "$expected_sql")"
    got="$(rt_psql "$n" -c "$actual_sql")"
    [[ "$got" == "$want" ]] || rt_fail "kv on $n is not the latest writes:
  got  $got
  want $want"
done
echo "each shared key holds its latest write"
pt_sql="SELECT coalesce(string_agg(k || '=' || v, ',' ORDER BY k), '') FROM pt"
for n in "${NODES[@]}"; do
    [[ "$(rt_psql "$n" -c "$pt_sql")" == "$(rt_psql "$n" -c "$actual_sql")" ]] ||
        rt_fail "the partitioned table on $n differs from kv, written by the same transactions"
done
echo "the partitioned table too"

total=0
for n in "${NODES[@]}"; do
    c="$(rt_psql "$n" -c "SELECT count(*) FROM rt.conflicts")"
    echo "conflicts resolved on $n: $c ($(rt_psql "$n" -c "SELECT string_agg(kind || ' ' || resolution || ' ' || n, ', ') FROM (SELECT kind, resolution, count(*) n FROM rt.conflicts GROUP BY 1, 2 ORDER BY 1, 2) x"))"
    total=$((total + c))
    [[ "$(rt_psql "$n" -c "SELECT count(*) FROM rt.conflicts WHERE resolution = 'stopped'")" == 0 ]] ||
        rt_fail "a conflict stopped a subscriber on $n"
    [[ "$(rt_psql "$n" -c "SELECT count(*) FROM rt.conflicts WHERE remote_node IS NULL OR remote_time IS NULL OR local_node IS NULL")" == 0 ]] ||
        rt_fail "a conflict on $n is recorded without its versions"
done
((total > 0)) || rt_fail "no conflict was met: the workload does not test resolution"

echo "== rtctl status across the mesh"
CTLM=("$RT_BIN/rtctl" --publisher "${ROUTER[a]}" --publisher "${ROUTER[b]}" --publisher "${ROUTER[c]}")
"${CTLM[@]}" status >"$RT_TMP/mesh_status.txt"
sed -n '/^mesh:/,$p' "$RT_TMP/mesh_status.txt" | tee "$RT_TMP/mesh_matrix.txt"
for n in "${NODES[@]}"; do
    row="$(grep -E "^  $n " "$RT_TMP/mesh_matrix.txt")" || rt_fail "no mesh row for $n"
    # One "." (itself) and a lag for each other source, nobody missing or stopped.
    read -r -a cells <<<"${row#"  $n "}"
    dots=0
    for cell in "${cells[@]}"; do
        [[ "$cell" != "." ]] || dots=$((dots + 1))
        [[ "$cell" != "-" && "$cell" != error && "$cell" != paused && "$cell" != gone ]] ||
            rt_fail "mesh row of $n: $row"
    done
    ((dots == 1)) || rt_fail "mesh row of $n: $row"
done
[[ "$("${CTLM[@]}" status --json | jq -r 'map(.source) | join(",")')" == "a,b,c" ]] ||
    rt_fail "status --json of three publishers: $("${CTLM[@]}" status --json | head -c 300)"
rc=0
"${CTLM[@]}" pause a 2>"$RT_TMP/multi.err" || rc=$?
[[ "$rc" == 2 ]] && grep -q 'for status only' "$RT_TMP/multi.err" ||
    rt_fail "pause with three --publisher: exit $rc $(cat "$RT_TMP/multi.err")"

echo "== tombstones past --tombstone-hours are purged, the others kept"
tomb="rt.tomb_$(rt_psql a -c "SELECT 'kv'::regclass::oid")"
recent="$(rt_psql a -c "SELECT count(*) FROM $tomb")"
((recent > 0)) || rt_fail "no tombstone on a after the deletes"
# A tombstone whose commit time is not known (here: a frozen transaction id) is older
# than any window.
rt_psql a -c "INSERT INTO $tomb (k, rt_xid) VALUES (1000, '2')"
rt_stop_daemon sub_a_b
rt_start_daemon sub_a_b "$RT_TMP/sub_a_b.log" "$RT_BIN/rt-subscriber" \
    --publisher "${ROUTER[b]}" --target "$(rt_dsn a)" --name a --conflict-policy last_write_wins \
    --tombstone-hours 1
rt_wait_until 20 "the old tombstone purged" bash -c "[[ \$('$RT_PG_BIN/psql' -X -qAt -d '$(rt_dsn a)' -c 'SELECT count(*) FROM $tomb WHERE k = 1000') == 0 ]]"
[[ "$(rt_psql a -c "SELECT count(*) FROM $tomb")" == "$recent" ]] ||
    rt_fail "recent tombstones purged: $(rt_psql a -c "SELECT count(*) FROM $tomb") of $recent left"

rt_stop_clean sub_a_b sub_a_c sub_b_a sub_b_c sub_c_a sub_c_b pub_a pub_b pub_c
echo "mesh last_write_wins: ok"
