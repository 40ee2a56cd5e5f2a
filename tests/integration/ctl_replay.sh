#!/usr/bin/env bash
# tests/integration/ctl_replay.sh - rtctl replay against a real publisher and replica.
#
# 1. An outage of the replica: the subscriber backs off; after the replica is back,
#    `replay --dry-run` counts exactly the records, transactions and rows it lacks,
#    `replay` sends them at once (no waiting for the back-off) and it converges.
# 2. A plain replay of records already applied changes nothing (exactly once).
# 3. --since TIME resolves to the first record committed at or after TIME.
# 4. A replica restored from a dump: pg_dump while a writer keeps inserting (two rows
#    a transaction), updating and deleting, the tables dropped and restored from the dump, then
#    `replay --from <progress at dump time + 1> --reset` moves the replica's origin
#    back and re-applies with apply_remote: it converges (checksums), and the records
#    the dump already had show up as resolved conflicts.
# 5. Refusals: --reset of a subscriber that is not connected, a trimmed range (naming
#    the seqs still available), an unknown subscriber; usage errors exit 2.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

for c in source r1; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)"
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
CTL=("$RT_BIN/rtctl" --publisher "$ROUTER")
start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB" "$@"
}
start_sub() {
    rt_start_daemon r1 "$RT_TMP/r1.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "$R1_DSN" --name r1
}
status_json() { "${CTL[@]}" status --json; }
sub_json() { status_json | jq -r ".subscribers[] | select(.name == \"r1\") | $1"; }
sub_is() { [[ "$(sub_json "$1")" == "$2" ]]; }
head_seq() { status_json | jq .head_seq; }
# The publisher stores a source commit a little after it: wait for the head to reach it.
stored_through() { (($(head_seq) >= $1)); }
progress() {
    rt_psql r1 -c "SELECT coalesce((pg_replication_origin_progress('rt_src', true) - '0/0'::pg_lsn)::bigint, 0)"
}
next_id=1
write() { # write N: N one-row INSERT transactions
    local end=$((next_id + $1 - 1))
    for ((i = next_id; i <= end; i++)); do
        echo "INSERT INTO t (id, v) VALUES ($i, 'row $i');"
    done | rt_psql source
    next_id=$((end + 1))
}

start_pub
start_sub
write 10
rt_wait_converged 60 source r1

echo "== usage errors"
for args in "replay" "replay r1 --from" "replay r1 --from x" "replay r1 --from 0" \
    "replay r1 --from 5 --to 4" "replay r1 --from 2 --since @1" "replay r1 --since yesterday" \
    "replay r1 r2" "replay r1 --bogus"; do
    rc=0
    # shellcheck disable=SC2086
    "${CTL[@]}" $args >/dev/null 2>&1 || rc=$?
    [[ "$rc" == 2 ]] || rt_fail "rtctl $args: exit $rc, expected 2"
done
rc=0
"${CTL[@]}" replay nosuch 2>"$RT_TMP/err" || rc=$?
[[ "$rc" == 1 ]] && grep -q 'no subscriber named "nosuch" (known: r1)' "$RT_TMP/err" ||
    rt_fail "replay of an unknown subscriber: exit $rc $(cat "$RT_TMP/err")"

echo "== 1. replica outage, then replay"
# r1 acknowledges what its replica flushed: wait for it to say it has all 10.
rt_wait_until 10 "r1 acked $(head_seq)" sub_is .applied_seq "$(head_seq)"
rt_pg_stop r1
H0="$(head_seq)"
write 25
rt_wait_until 30 "the publisher to store the 25 transactions" stored_through $((H0 + 25))
H="$(head_seq)"
P="$(sub_json .applied_seq)"
echo "replica down at applied seq $P, head $H"
rt_wait_until 30 "r1 in error" sub_is .state error
# Paused, r1 cannot catch up by itself when its replica is back: what it applies from
# here on comes from the replay alone.
"${CTL[@]}" pause r1 >/dev/null
rt_pg_restart r1
"${CTL[@]}" replay r1 --from $((P + 1)) --dry-run | tee "$RT_TMP/dry.out"
N=$((H - P))
grep -q "^replay to r1 of seqs $((P + 1))\.\.$H: would send $N records, $N transactions, $N rows" \
    "$RT_TMP/dry.out" || rt_fail "dry run does not count $N records, transactions and rows"
sleep 1
[[ "$(progress)" == "$P" ]] || rt_fail "the dry run applied something"
grep -q "sending $N records" <<<"$("${CTL[@]}" replay r1 --from $((P + 1)))" || rt_fail "replay output"
t0="$(rt__now_ms)"
"${CTL[@]}" resume r1 >/dev/null
rt_wait_converged 30 source r1
echo "caught up $(($(rt__now_ms) - t0)) ms after the replay was resumed"

echo "== 2. a replay of applied records changes nothing"
rt_wait_until 10 "r1 acked $H" sub_is .applied_seq "$H"
sums_before="$(rt_table_checksums r1)"
prog_before="$(progress)"
"${CTL[@]}" replay r1 --from 1 | tee "$RT_TMP/plain.out"
grep -q "sending 0 records.*$prog_before records already applied by r1" "$RT_TMP/plain.out" ||
    rt_fail "plain replay of applied records: $(cat "$RT_TMP/plain.out")"
sleep 2
[[ "$(rt_table_checksums r1)" == "$sums_before" && "$(progress)" == "$prog_before" ]] ||
    rt_fail "a replay of applied records changed the replica"

echo "== 3. --since"
sleep 1.2
since="$(date -u '+%Y-%m-%d %H:%M:%S.%N' | cut -c1-23)"
sleep 0.2
H0="$(head_seq)"
write 5
rt_wait_until 30 "r1 acked $((H0 + 5))" sub_is .applied_seq $((H0 + 5))
"${CTL[@]}" replay r1 --since "$since" --dry-run | tee "$RT_TMP/since.out"
grep -q "^replay to r1 of seqs $((H0 + 1))\.\.$((H0 + 5)): would send 0 records" "$RT_TMP/since.out" ||
    rt_fail "--since $since did not resolve to seq $((H0 + 1))"
rc=0
"${CTL[@]}" replay r1 --since "2999-01-01 00:00:00" --dry-run 2>"$RT_TMP/err" || rc=$?
[[ "$rc" == 1 ]] && grep -q 'no record in the outbox' "$RT_TMP/err" || rt_fail "--since in the future"

echo "== 4. a replica restored from a dump, then replay --reset"
cat >"$RT_TMP/writer.sh" <<EOF
i=100000
while :; do
    i=\$((i + 1))
    "$RT_PG_BIN/psql" -X -q -d "$SOURCE_DSN" -c "INSERT INTO t (id, v) VALUES (\$i, 'w \$i'), (\$i + 1000000, 'w2 \$i')" \
        -c "UPDATE t SET n = n + 1, v = 'upd ' || \$i WHERE id = (SELECT id FROM t ORDER BY random() LIMIT 1)" \
        -c "DELETE FROM t WHERE id = (SELECT id FROM t WHERE id % 3 = \$i % 3 ORDER BY random() LIMIT 1)" \
        || exit 1
    sleep 0.02
done
EOF
rt_start_bg writer "$RT_TMP/writer.log" bash "$RT_TMP/writer.sh"
sleep 3
D="$(progress)"
sleep 1
"$RT_PG_BIN/pg_dump" -h 127.0.0.1 -p "$R1_PORT" -U postgres -Fc -t t -f "$RT_TMP/r1.dump" postgres
echo "dumped r1 at progress $D or later"
sleep 3
"${CTL[@]}" pause r1 >/dev/null
rt_wait_until 10 "r1 paused" sub_is .state paused
rt_psql r1 -c "DROP TABLE t"
"$RT_PG_BIN/pg_restore" -h 127.0.0.1 -p "$R1_PORT" -U postgres -d postgres "$RT_TMP/r1.dump"
"${CTL[@]}" replay r1 --from $((D + 1)) --reset | tee "$RT_TMP/reset.out"
grep -q "its progress is moved back to seq $D first" "$RT_TMP/reset.out" || rt_fail "reset output"
rt_wait_until 10 "r1 acked $D" sub_is .applied_seq "$D"
[[ "$(progress)" == "$D" ]] || rt_fail "origin progress $(progress), expected $D"
grep -q "origin rt_src of replica .* moved from seq [0-9]* to seq $D" "$RT_TMP/r1.log" ||
    rt_fail "the origin move is not logged"
"${CTL[@]}" resume r1 >/dev/null
sleep 3
rt_stop_daemon writer || true
rt_wait_converged 60 source r1
resolved="$(rt_psql r1 -c "SELECT count(*) FROM rt.conflicts WHERE resolution <> 'stopped'")"
echo "conflicts resolved by the replay: $resolved"
((resolved > 0)) || rt_fail "the replay re-applied nothing the dump already had"
[[ "$(rt_psql r1 -c "SELECT count(*) FROM rt.conflicts WHERE resolution = 'stopped'")" == 0 ]] ||
    rt_fail "the replay with reset stopped on a conflict"
rt_wait_until 10 "r1 streaming" sub_is .state streaming
write 5
rt_wait_converged 30 source r1

echo "== 5. refusals"
rt_stop_daemon r1
rc=0
"${CTL[@]}" replay r1 --from 1 --reset 2>"$RT_TMP/err" || rc=$?
[[ "$rc" == 1 ]] && grep -q 'not connected: a replay with --reset needs it running' "$RT_TMP/err" ||
    rt_fail "--reset of a stopped subscriber: exit $rc $(cat "$RT_TMP/err")"
start_sub
rt_wait_until 10 "r1 streaming" sub_is .state streaming
rt_stop_daemon pub
start_pub --retention-seconds 0
write 3
trimmed() { (($(status_json | jq .first_seq) > 1)); }
rt_wait_until 20 "the outbox trimmed" trimmed
# With its only subscriber paused nothing more is trimmed: these stay available.
"${CTL[@]}" pause r1 >/dev/null
H0="$(head_seq)"
write 3
rt_wait_until 30 "the publisher to store the 3 transactions" stored_through $((H0 + 3))
F="$(status_json | jq .first_seq)"
H="$(head_seq)"
rc=0
"${CTL[@]}" replay r1 --from 1 2>"$RT_TMP/err" || rc=$?
[[ "$rc" == 1 ]] && grep -q "records 1\.\.$((F - 1)) were trimmed from the outbox; seqs $F\.\.$H are still available" "$RT_TMP/err" ||
    rt_fail "replay of a trimmed range: exit $rc $(cat "$RT_TMP/err")"
"${CTL[@]}" resume r1 >/dev/null
rt_wait_converged 30 source r1

rt_stop_clean r1 pub
echo "ctl replay: ok"
