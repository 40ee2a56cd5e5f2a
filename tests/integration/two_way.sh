#!/usr/bin/env bash
# tests/integration/two_way.sh - two nodes that both take writes, each running a
# publisher and a subscriber for the other (node names a and b for both daemons).
# 1. Both write at once, disjoint keys, inserts, updates and deletes, each transaction
#    also bumping its node's counter: the nodes converge (checksums), every write is on
#    both once (the counters equal the number of transactions), and nothing comes back:
#    once quiet, each publisher's outbox holds exactly its own node's transactions and
#    stops growing.
# 2. rt's own schema stays on its node: rows written to rt.conflicts and to another
#    rt table outside any replication origin, and a TRUNCATE naming a replicated table
#    with rt.conflicts, reach the other node as the replicated table's TRUNCATE only;
#    its subscriber keeps streaming.
# 3. A schema change on a reaches b (rows written on b with the new column come back
#    to a), is not logged on b, and neither outbox takes more than its own change.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

for n in a b; do
    rt_pg_start "$n"
    rt_psql "$n" <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v text, node text);
CREATE TABLE counters (node text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO counters VALUES ('a', 0), ('b', 0);
SQL
done

declare -A ROUTER PUB
for n in a b; do
    ROUTER[$n]="tcp://127.0.0.1:$(rt_free_port)"
    PUB[$n]="tcp://127.0.0.1:$(rt_free_port)"
done
other() { [[ "$1" == a ]] && echo b || echo a; }
for n in a b; do
    dsn="$(rt_dsn "$n")"
    rt_start_daemon "pub_$n" "$RT_TMP/pub_$n.log" "$RT_BIN/rt-publisher" --source "$dsn" \
        --outbox "$RT_TMP/outbox_$n" --name "$n" --listen "${ROUTER[$n]}" --pub "${PUB[$n]}"
done
for n in a b; do
    o="$(other "$n")"
    rt_start_daemon "sub_$n" "$RT_TMP/sub_$n.log" "$RT_BIN/rt-subscriber" \
        --publisher "${ROUTER[$o]}" --target "$(rt_dsn "$n")" --name "$n"
done
head_seq() { rt_status_json "${ROUTER[$1]}" | jq -r .head_seq; }
sub_state() { rt_status_json "${ROUTER[$(other "$1")]}" | jq -r --arg n "$1" '.subscribers[] | select(.name == $n) | .state'; }
rt_wait_until 30 "a's subscriber streaming" bash -c "[[ \$('$RT_BIN/rtctl' --publisher '${ROUTER[b]}' status --json | jq -r '.subscribers[0].state') == streaming ]]"
rt_wait_until 30 "b's subscriber streaming" bash -c "[[ \$('$RT_BIN/rtctl' --publisher '${ROUTER[a]}' status --json | jq -r '.subscribers[0].state') == streaming ]]"

echo "== 1. both nodes write at once"
H0a="$(head_seq a)"
H0b="$(head_seq b)"
TXNS=150
writer() { # NODE FIRST_ID: TXNS transactions of disjoint keys (a odd, b even)
    local n="$1" base="$2" i id
    for ((i = 0; i < TXNS; i++)); do
        id=$((base + 2 * i))
        echo "BEGIN;
INSERT INTO t VALUES ($id, 'new', '$n');
UPDATE t SET v = 'upd $i' WHERE id = $((id - 2 * (i % 3))) AND node = '$n';
DELETE FROM t WHERE id = $((id - 20)) AND node = '$n' AND $i % 4 = 0;
UPDATE counters SET n = n + 1 WHERE node = '$n';
COMMIT;"
    done | rt_psql "$n" -q >/dev/null
}
writer a 1 &
wa=$!
writer b 2 &
wb=$!
wait "$wa" || rt_fail "the writer on a failed"
wait "$wb" || rt_fail "the writer on b failed"
rt_wait_converged 90 a b
for n in a b; do
    got="$(rt_psql "$n" -c "SELECT string_agg(node || '=' || n, ',' ORDER BY node) FROM counters")"
    [[ "$got" == "a=$TXNS,b=$TXNS" ]] || rt_fail "counters on $n: $got, expected a=$TXNS,b=$TXNS"
done
echo "each write on both nodes once"
# Nothing comes back: each outbox holds its own node's transactions only, and stays.
sleep 2
for n in a b; do
    h0="H0$n"
    grew=$(($(head_seq "$n") - ${!h0}))
    ((grew == TXNS)) || rt_fail "outbox of $n grew by $grew records, expected its $TXNS transactions"
done
Ha="$(head_seq a)"
Hb="$(head_seq b)"
sleep 2
[[ "$(head_seq a)" == "$Ha" && "$(head_seq b)" == "$Hb" ]] ||
    rt_fail "an outbox still grows while both nodes are quiet (a change loops)"

echo "== 2. rt's own schema stays on its node"
rt_psql b <<'SQL'
CREATE TABLE rt.extra (id int PRIMARY KEY);
INSERT INTO rt.extra VALUES (1), (2);
INSERT INTO rt.conflicts (source, kind, resolution, detail) VALUES ('x', 'test', 'skipped', 'written on b');
INSERT INTO t VALUES (100000, 'after rt rows', 'b');
SQL
rt_wait_converged 30 a b
rt_psql b -c "TRUNCATE t, rt.conflicts"
rt_psql b -c "INSERT INTO t VALUES (100001, 'after the truncate', 'b')"
rt_wait_converged 30 a b
[[ "$(rt_psql a -c "SELECT string_agg(id::text, ',') FROM t")" == 100001 ]] ||
    rt_fail "a's t after the truncate: $(rt_psql a -c "SELECT string_agg(id::text, ',') FROM t")"
[[ "$(rt_psql a -c "SELECT count(*) FROM rt.conflicts WHERE kind = 'test'")" == 0 ]] ||
    rt_fail "b's rt.conflicts row reached a"
[[ "$(rt_psql a -c "SELECT to_regclass('rt.extra') IS NULL")" == t ]] || rt_fail "rt.extra reached a"
[[ "$(sub_state a)" == streaming ]] || rt_fail "a's subscriber is $(sub_state a)"
if grep -q 'refused' "$RT_TMP/sub_a.log"; then
    rt_fail "a's subscriber refused a record"
fi

echo "== 3. a schema change made on one node reaches the other once, and does not come back"
Ha="$(head_seq a)"
Hb="$(head_seq b)"
rt_psql a -c "ALTER TABLE t ADD COLUMN note text DEFAULT 'from a'"
rt_psql b -c "INSERT INTO t (id, v, node, note) VALUES (100002, 'after the DDL', 'b', 'b wrote it')"
rt_wait_converged 30 a b
sleep 2
(($(head_seq a) == Ha + 1)) || rt_fail "a's outbox grew by $(($(head_seq a) - Ha)) records, expected its DDL only"
(($(head_seq b) == Hb + 1)) || rt_fail "b's outbox grew by $(($(head_seq b) - Hb)) records, expected its insert only"
[[ "$(rt_psql b -c "SELECT count(*) FROM rt.ddl_log")" == 0 ]] || rt_fail "the DDL applied on b was logged on b"
[[ "$(rt_psql a -c "SELECT note FROM t WHERE id = 100002")" == "b wrote it" ]] || rt_fail "b's row with the new column did not reach a"
[[ "$(sub_state a)" == streaming && "$(sub_state b)" == streaming ]] || rt_fail "a subscriber stopped"

rt_stop_clean sub_a sub_b pub_a pub_b
echo "two way: ok"
