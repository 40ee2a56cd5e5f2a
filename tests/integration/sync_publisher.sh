#!/usr/bin/env bash
# tests/integration/sync_publisher.sh - the publisher's side of the initial copy, driven by
# tests/tools/rt_copyclient (a subscriber without a replica).
#
# A source publishes a plain table, a larger one (many frames, little credit), a table
# with a row filter and a column list, a partitioned table published via its root, a table
# with a generated column, an inheritance parent and its child, and a table with names
# that need quoting. The copy of each, text and binary, equals psql's COPY of the same
# rows and columns (the source is quiet meanwhile). SYNC_READY lists exactly those
# tables, with the columns sent. A COPY for an unknown session, for a table index out of
# range or with unknown flags is answered ERROR. A temporary slot exists while a session
# runs and is gone after SYNC_END, and after a kill -9 of the client once the session's
# timeout (sync-timeout-seconds) passed; the subscriber shows "copying" meanwhile. A long
# transaction delays the snapshot without the session timing out, and a new SYNC of the
# same subscriber cancels the session that waits. With every replication slot taken, SYNC
# is answered with an ERROR that says so. A bad name is refused, and under CURVE a copy
# for a name comes only from the key of that name.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_psql source <<'SQL'
CREATE TABLE t1 (id int PRIMARY KEY, v text, b bytea, n numeric, ts timestamptz);
INSERT INTO t1 SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g || E' tab\there\nnewline \\ back' END,
    decode(md5(g::text), 'hex'), g / 3.0, '2026-01-01'::timestamptz + g * interval '1 minute'
    FROM generate_series(1, 500) g;
CREATE TABLE big (id bigint PRIMARY KEY, pad text);
INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g;
CREATE TABLE f (id int, grp int, secret text, note text, PRIMARY KEY (id, grp));
INSERT INTO f SELECT g, g % 3, 'secret ' || g, 'note ' || g FROM generate_series(1, 300) g;
CREATE TABLE p (id int, k int, v text) PARTITION BY RANGE (k);
CREATE TABLE p_low PARTITION OF p FOR VALUES FROM (0) TO (100);
CREATE TABLE p_high PARTITION OF p FOR VALUES FROM (100) TO (1000);
INSERT INTO p SELECT g, g % 200, 'p' || g FROM generate_series(1, 400) g;
CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED, c text);
INSERT INTO g (id, a, c) SELECT x, x * 10, 'g' || x FROM generate_series(1, 100) x;
CREATE TABLE inh_parent (id int PRIMARY KEY, v text);
CREATE TABLE inh_child (extra int) INHERITS (inh_parent);
INSERT INTO inh_parent SELECT x, 'parent ' || x FROM generate_series(1, 50) x;
INSERT INTO inh_child SELECT x, 'child ' || x, x FROM generate_series(1001, 1030) x;
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" ("Col 1" int, "select" text);
INSERT INTO "Odd Schema"."Mixed Case" VALUES (1, 'a'), (2, NULL), (3, 'it''s');
CREATE TABLE unpublished (id int);
INSERT INTO unpublished VALUES (1);
CREATE PUBLICATION rt_copy FOR TABLE t1, big, f (id, grp, note) WHERE (grp = 1), p, g,
    inh_parent, "Odd Schema"."Mixed Case" WITH (publish_via_partition_root = true);
SQL

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --publication rt_copy --listen "$ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --sync-timeout-seconds 3
COPYCLIENT=("$RT_BIN/rt_copyclient" --timeout 30000)

# The rows and columns each table's copy must hold, in the order a scan gives them.
declare -A WANT=(
    [public.t1]="SELECT id, v, b, n, ts FROM ONLY public.t1"
    [public.big]="SELECT id, pad FROM ONLY public.big"
    [public.f]="SELECT id, grp, note FROM ONLY public.f WHERE grp = 1"
    [public.p]="SELECT id, k, v FROM public.p"
    [public.g]="SELECT id, a, c FROM ONLY public.g"
    [public.inh_parent]="SELECT id, v FROM ONLY public.inh_parent"
    [public.inh_child]="SELECT id, v, extra FROM ONLY public.inh_child"
    ["Odd Schema.Mixed Case"]="SELECT \"Col 1\", \"select\" FROM ONLY \"Odd Schema\".\"Mixed Case\""
)

# copy_and_compare FORMAT_FLAG... : copies every table and compares each with psql's COPY.
copy_and_compare() {
    local dir="$RT_TMP/copy$*" opt="" line idx name want
    mkdir -p "$dir"
    [[ "$*" != *--binary* ]] || opt=" (FORMAT binary)"
    "${COPYCLIENT[@]}" --name replica1 --jobs 3 --credit 2 --out "$dir" "$@" "$ROUTER" \
        >"$dir/out" 2>"$dir/err" || { cat "$dir/out" "$dir/err" >&2; rt_fail "the copy $* failed"; }
    grep -q '^ready sync_id=[0-9]* seq=0 lsn=[0-9A-F]*/[0-9A-F]* snapshot=[0-9A-F-]* tables=8$' "$dir/out" ||
        { cat "$dir/out" >&2; rt_fail "no SYNC_READY with 8 tables"; }
    ! grep -q 'unpublished\|p_low\|p_high' "$dir/out" || rt_fail "a table that is not published was offered"
    for name in "${!WANT[@]}"; do
        line="$(grep -F " $name relkind=" "$dir/out")" || rt_fail "table $name was not offered"
        idx="$(awk '{print $2}' <<<"$line")"
        grep -q "^done $idx rows=" "$dir/out" || rt_fail "table $name was not copied"
        want="$dir/want.$idx"
        rt_psql source -c "COPY (${WANT[$name]}) TO STDOUT$opt" >"$want"
        if ! cmp -s "$want" "$dir/$idx.copy"; then
            diff <(od -c "$want" | head -20) <(od -c "$dir/$idx.copy" | head -20) >&2 || true
            rt_fail "the copy$opt of $name differs from psql's COPY"
        fi
        rows="$(grep "^done $idx rows=" "$dir/out" | sed 's/.*rows=\([0-9]*\).*/\1/')"
        [[ "$rows" == "$(rt_psql source -c "SELECT count(*) FROM (${WANT[$name]}) s")" ]] ||
            rt_fail "COPY_DONE of $name says $rows rows"
    done
    echo "copy$opt: 8 tables equal psql's COPY"
    CLIENT_OUT="$dir/out"
}

copy_and_compare
grep -q ' public.g relkind=r .* cols=id:integer:23,a:integer:23,c:text:25$' "$CLIENT_OUT" ||
    rt_fail "the generated column of g was offered: $(grep public.g "$CLIENT_OUT")"
grep -q ' public.f relkind=r .* cols=id:integer:23,grp:integer:23,note:text:25$' "$CLIENT_OUT" ||
    rt_fail "the column list of f was not applied: $(grep public.f "$CLIENT_OUT")"
grep -q ' public.p relkind=p bytes=[1-9][0-9]* ' "$CLIENT_OUT" ||
    rt_fail "p is not offered as a partitioned root with its partitions' size"
grep -q ' public.big relkind=r bytes=[1-9][0-9]* ' "$CLIENT_OUT" || rt_fail "big has no size"
grep -q ' public.t1 relkind=r .*,ts:timestamp with time zone:1184$' "$CLIENT_OUT" ||
    rt_fail "t1's columns: $(grep public.t1 "$CLIENT_OUT")"
big_frames="$(grep "^done $(grep -F ' public.big ' "$CLIENT_OUT" | awk '{print $2}') " "$CLIENT_OUT" |
    sed 's/.*frames=//')"
((big_frames > 4)) || rt_fail "big came in $big_frames frames: expected several of at most 256 KiB"
copy_and_compare --binary
rt_wait_until 10 "the sessions to end" bash -c \
    "[[ \$(grep -c 'ended: done (SYNC_END)' '$RT_TMP/pub.log') -ge 2 ]]"

# slots_of_sessions: temporary slots of copy sessions on the source.
slots_of_sessions() {
    rt_psql source -c "SELECT count(*) FROM pg_replication_slots
                       WHERE slot_name LIKE 'rt\\_sync\\_%' AND temporary"
}
no_session_slot() { [[ "$(slots_of_sessions)" == 0 ]]; }
one_session_slot() { [[ "$(slots_of_sessions)" == 1 ]]; }
no_session_slot || rt_fail "a temporary slot outlived its session"

# Errors: an unknown session, a table out of range, unknown flags.
out="$("${COPYCLIENT[@]}" --name replica2 --sync-id 12345 --tables 0 "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^error 0 -4 no copy session 12345 (the publisher restarted or dropped it)' <<<"$out" ||
    rt_fail "a COPY for an unknown session: rc $rc, $out"
out="$("${COPYCLIENT[@]}" --name replica2 --tables 0,8 "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^done 0 ' <<<"$out" && grep -q '^error 8 -7 COPY of table 8: copy session [0-9]* has 8 tables' <<<"$out" ||
    rt_fail "a COPY of a table out of range: rc $rc, $out"
out="$("${COPYCLIENT[@]}" --name replica2 --tables 0 --flags 6 "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^error 0 -7 COPY flags 0x6' <<<"$out" || rt_fail "unknown COPY flags: rc $rc, $out"
echo "errors: unknown session, table out of range and unknown flags are refused"

# A session holds a temporary slot until SYNC_END; the subscriber shows "copying".
rt_start_bg hold "$RT_TMP/hold.log" "${COPYCLIENT[@]}" --name replica3 --tables 0 --hold 4 "$ROUTER"
rt_wait_until 20 "the held session's slot" one_session_slot
status="$(rt_status_json "$ROUTER")"
grep -q '{"name":"replica3","state":"copying"' <<<"$status" ||
    rt_fail "replica3 is not shown copying: $status"
hold_over() { ! rt_daemon_alive hold; }
rt_wait_until 30 "the held client to end" hold_over
rt_stop_daemon hold || rt_fail "the held client failed: $(cat "$RT_TMP/hold.log")"
rt_wait_until 20 "the slot to go after SYNC_END" no_session_slot
grep -q 'copy session [0-9]* of subscriber replica3 ended: done (SYNC_END)' "$RT_TMP/pub.log" ||
    rt_fail "the end of replica3's session was not logged"
echo "slot: held during the session, dropped after SYNC_END"

# A client killed -9 mid-session: the session times out (3 s) and its slot goes.
rt_start_bg killed "$RT_TMP/killed.log" "${COPYCLIENT[@]}" --name replica4 --tables 0 --hold 600 "$ROUTER"
rt_wait_until 20 "the killed client's slot" one_session_slot
rt_kill9 killed
rt_wait_until 30 "the slot to go after the session's timeout" no_session_slot
grep -q 'copy session [0-9]* of subscriber replica4 ended: timeout: not heard from for 3 s' "$RT_TMP/pub.log" ||
    rt_fail "the timeout was not logged"
echo "slot: dropped once the session of a killed client timed out"

# A long transaction holds up the snapshot: the session waits (its timeout runs only once
# SYNC_READY went) and says so; a new SYNC of the same subscriber drops the waiting session,
# whose slot creation is cancelled; once the transaction ends the new one copies.
rt_start_bg longtx "$RT_TMP/longtx.log" "$RT_PG_BIN/psql" -X -q -d "$SOURCE_DSN" \
    -c "BEGIN; SELECT txid_current(); SELECT pg_sleep(600) /* longtx */"
longtx_open() {
    [[ "$(rt_psql source -c "SELECT count(*) FROM pg_stat_activity
                              WHERE query LIKE '%/* longtx */%' AND backend_xid IS NOT NULL
                                AND pid <> pg_backend_pid()")" == 1 ]]
}
rt_wait_until 20 "the long transaction" longtx_open
rt_start_bg waiting1 "$RT_TMP/waiting1.log" "${COPYCLIENT[@]}" --name replica6 --tables 0 "$ROUTER"
rt_wait_until 20 "the note that the slot waits" grep -q \
    'creating the slot waits for the transactions running on the source' "$RT_TMP/pub.log"
one_session_slot || rt_fail "no slot while the session waits"
first_slot="$(rt_psql source -c "SELECT slot_name FROM pg_replication_slots WHERE temporary")"
rt_kill9 waiting1
sleep 4 # past the timeout of 3 s: a session that is not ready yet does not time out
[[ "$(rt_psql source -c "SELECT slot_name FROM pg_replication_slots WHERE temporary")" == "$first_slot" ]] ||
    rt_fail "the waiting session was dropped before it was ready"
rt_start_bg waiting2 "$RT_TMP/waiting2.log" "${COPYCLIENT[@]}" --name replica6 --tables 0 "$ROUTER"
first_slot_gone() {
    [[ "$(rt_psql source -c "SELECT count(*) FROM pg_replication_slots
                              WHERE slot_name = '$first_slot'")" == 0 ]]
}
rt_wait_until 20 "the replaced session's slot to go" first_slot_gone
grep -q 'of subscriber replica6 ended: the subscriber started a new copy' "$RT_TMP/pub.log" ||
    rt_fail "the replaced session's end was not logged"
rt_psql source -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE query LIKE '%/* longtx */%' AND pid <> pg_backend_pid()" >/dev/null
rt_stop_daemon longtx >/dev/null 2>&1 || true
waiting2_over() { ! rt_daemon_alive waiting2; }
rt_wait_until 30 "the second copy to end" waiting2_over
rt_stop_daemon waiting2 || rt_fail "the copy after the long transaction failed: $(cat "$RT_TMP/waiting2.log")"
grep -q '^done 0 rows=3 ' "$RT_TMP/waiting2.log" || rt_fail "waiting2: $(cat "$RT_TMP/waiting2.log")"
rt_wait_until 20 "no copy slot left" no_session_slot
echo "long transaction: the session waited, was replaced, and the copy went on after it"

# Every slot taken: SYNC is answered with an ERROR naming the cause.
used="$(rt_psql source -c "SELECT count(*) FROM pg_replication_slots")"
for ((i = used; i < 10; i++)); do
    rt_psql source -c "SELECT pg_create_logical_replication_slot('filler_$i', 'pgoutput')" >/dev/null
done
out="$("${COPYCLIENT[@]}" --name replica5 "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^error sync -9 initial copy for replica5 failed: .*all replication slots are in use' <<<"$out" ||
    rt_fail "SYNC with every slot taken: rc $rc, $out"
for ((i = used; i < 10; i++)); do
    rt_psql source -c "SELECT pg_drop_replication_slot('filler_$i')" >/dev/null
done
echo "slots exhausted: SYNC answered with the cause"

# A name that is not one is refused before anything starts.
out="$("${COPYCLIENT[@]}" --name 'bad name' "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^error sync -7 SYNC: subscriber names are' <<<"$out" ||
    rt_fail "SYNC with a bad name: rc $rc, $out"

rt_daemon_alive pub || rt_fail "the publisher died"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
! grep -q 'dangling\|sanitizer' "$RT_TMP/pub.log" || rt_fail "the publisher left something behind"

# Under CURVE, a copy for NAME comes only from NAME's key.
K="$RT_TMP/keys"
mkdir -p "$K/allow"
for n in pub replica1 replica2; do
    "$RT_BIN/rtctl" keygen "$n" --dir "$K" >/dev/null
done
cp "$K/replica1.cert" "$K/replica2.cert" "$K/allow/"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --publication rt_copy --listen "$ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --cert "$K/pub.cert_secret" --allow "$K/allow"
AS_REPLICA1=(--cert "$K/replica1.cert_secret" --server-key "$K/pub.cert")
out="$("${COPYCLIENT[@]}" "${AS_REPLICA1[@]}" --name replica1 --tables 0 "$ROUTER")" ||
    rt_fail "a copy under CURVE failed: $out"
grep -q '^done 0 rows=3 ' <<<"$out" || rt_fail "a copy under CURVE: $out"
out="$("${COPYCLIENT[@]}" "${AS_REPLICA1[@]}" --name replica2 --tables 0 "$ROUTER")" && rc=0 || rc=$?
((rc == 1)) && grep -q '^error sync -7 SYNC for subscriber replica2 refused: it comes from the key of replica1' <<<"$out" ||
    rt_fail "a SYNC for replica2 with replica1's key: rc $rc, $out"
echo "curve: a copy for a name comes only from that name's key"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "sync publisher: ok"
