#!/usr/bin/env bash
# tests/fault/relay_kills.sh - relays under kill -9 (schemas/protocol.md, "Relays").
#
# A tree: the publisher feeds relay1, relay1 feeds relay2; replica1 follows relay1,
# replica2 follows relay2, replica3 the publisher itself. Under a non-idempotent workload
# with transactions of several records, relay1 and relay2 are killed (SIGKILL) and
# started again, and the publisher once, with its outbox commits held back so that the
# relays hold records it published and had not stored. Every replica must end equal to
# the source by checksum, with no transaction lost or applied twice, and each relay must
# hold the publisher's records under the same seqs, acknowledged by its subscribers.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

source "$RT_SRC/tests/lib/counter.sh"
rt_counter_setup "$RT_COUNTER_EVENTS
CREATE TABLE bulk (id int PRIMARY KEY, pad text);" source replica1 replica2 replica3
rt_counter_script "$RT_TMP/tx.sql"

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
R1="tcp://127.0.0.1:$(rt_free_port)"
R1_PUB="tcp://127.0.0.1:$(rt_free_port)"
R2="tcp://127.0.0.1:$(rt_free_port)"
R2_PUB="tcp://127.0.0.1:$(rt_free_port)"
R2_HTTP="127.0.0.1:$(rt_free_port)"

start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" env RT_TEST_COMMIT_DELAY_MS="$1" \
        "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" --outbox "$RT_TMP/outbox" --name src \
        --listen "$ROUTER" --pub "$PUB_EP"
}
start_relay1() {
    rt_start_daemon relay1 "$RT_TMP/relay1.log" "$RT_BIN/rt-relay" --publisher "$ROUTER" \
        --outbox "$RT_TMP/relay1" --name relay1 --listen "$R1" --pub "$R1_PUB"
}
start_relay2() {
    rt_start_daemon relay2 "$RT_TMP/relay2.log" "$RT_BIN/rt-relay" --publisher "$R1" \
        --outbox "$RT_TMP/relay2" --name relay2 --listen "$R2" --pub "$R2_PUB" --http "$R2_HTTP"
}

# Some history first: a new relay's outbox starts at the publisher's oldest record.
start_pub 0
"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -t 20 postgres >/dev/null 2>&1 || rt_fail "pgbench failed"
stored_some() { (($(rt_json_num "$(rt_status_json "$ROUTER")" head_seq) > 0)); }
rt_wait_until 30 "the publisher to store the first transactions" stored_some
start_relay1
start_relay2
grep -q "starts at the publisher's oldest record, seq 1\$" "$RT_TMP/relay1.log" ||
    rt_fail "relay1 did not start its outbox at the publisher's oldest record"
rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" --publisher "$R1" \
    --target "$REPLICA1_DSN" --name replica1
rt_start_daemon replica2 "$RT_TMP/replica2.log" "$RT_BIN/rt-subscriber" --publisher "$R2" \
    --target "$REPLICA2_DSN" --name replica2
rt_start_sub replica3

"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
    -c 4 -j 2 -T 40 -R 300 postgres >"$RT_TMP/pgbench.out" 2>&1 &
PGBENCH=$!

pause() { sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 2 + (r % 200) / 100 }')"; }
for round in 1 2 3; do
    pause
    echo "-- $(date +%T) relay1: SIGKILL, restart"
    rt_kill9 relay1
    sleep 0.5
    start_relay1
    pause
    echo "-- $(date +%T) relay2: SIGKILL, restart"
    rt_kill9 relay2
    sleep 0.5
    start_relay2
done
pause
echo "-- $(date +%T) publisher: SIGKILL, restart with outbox commits held back"
rt_stop_daemon pub TERM
start_pub 300
pause
rt_kill9 pub
sleep 0.3
start_pub 0

wait "$PGBENCH" || { cat "$RT_TMP/pgbench.out"; rt_fail "pgbench failed"; }
grep -E 'number of transactions actually processed' "$RT_TMP/pgbench.out"

# A transaction of several hundred records; the publisher killed while relay1 has stored
# some of them: relay1 drops them (the publisher may send the transaction otherwise) and
# starts a new run, and its subscribers roll back what they hold of it.
records_of() { rt_json_num "$(rt_status_json "$1")" records; }
before="$(records_of "$R1")"
rt_psql source -c "INSERT INTO bulk SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, 300000) i" &
BULK=$!
took_some() { (($(records_of "$R1") > before + 40)); }
rt_wait_until 60 "relay1 to store records of the large transaction" took_some
echo "-- $(date +%T) publisher: SIGKILL in the middle of the large transaction"
rt_kill9 pub
wait "$BULK" || rt_fail "the large insert failed"
start_pub 0
rt_wait_converged 180 source replica1 replica2 replica3
rt_counter_check "$RT_COUNTER_EVENTS_CHECK" source replica1 replica2 replica3

# Same seqs everywhere: each relay's head is the publisher's, and each subscriber
# acknowledged it where it is connected.
head_of() { rt_json_num "$(rt_status_json "$1")" head_seq; }
check_heads() {
    local h
    h="$(head_of "$ROUTER")" || return 1
    [[ "$(head_of "$R1")" == "$h" && "$(head_of "$R2")" == "$h" ]] || return 1
    [[ "$(rt_json_sub_acked "$(rt_status_json "$R1")" replica1)" == "$h" ]] || return 1
    [[ "$(rt_json_sub_acked "$(rt_status_json "$R2")" replica2)" == "$h" ]] || return 1
    [[ "$(rt_json_sub_acked "$(rt_status_json "$R1")" relay2)" == "$h" ]] || return 1
    [[ "$(rt_json_sub_acked "$(rt_status_json "$ROUTER")" relay1)" == "$h" ]]
}
rt_wait_until 30 "the relays and their subscribers at the publisher's head" check_heads
h="$(head_of "$ROUTER")"
echo "heads: publisher $h, relay1 $(head_of "$R1"), relay2 $(head_of "$R2")"
# Byte for byte: the relays' records are the publisher's.
ref="$("$RT_BIN/rt_outbox_digest" "$RT_TMP/outbox" 1 "$h")" || rt_fail "publisher outbox: no digest"
for r in relay1 relay2; do
    got="$("$RT_BIN/rt_outbox_digest" "$RT_TMP/$r" 1 "$h")" || rt_fail "$r outbox: no digest"
    [[ "$got" == "$ref" ]] || rt_fail "$r holds other records than the publisher: $got against $ref"
done
echo "outboxes of the publisher, relay1 and relay2 hold the same seqs 1..$h: $ref"
# A relay's status names what it follows, that publisher's head and what it took.
r2="$(rt_status_json "$R2")"
[[ "$r2" == *"\"upstream\":\"$R1\",\"upstream_head_seq\":$h,"* && "$r2" == *'"capture_state":"streaming"'* ]] ||
    rt_fail "relay2's status does not say it follows $R1 at head $h: $r2"
[[ "$(rt_json_num "$r2" captured_txns)" -gt 0 ]] || rt_fail "relay2's status counts no transaction taken"
[[ "$(rt_status_json "$ROUTER")" == *'"upstream":"",'* ]] || rt_fail "the publisher's status names an upstream"
"$RT_BIN/rtctl" --publisher "$R2" status >"$RT_TMP/relay2.status"
grep -q "^relay of source src, following $R1: streaming" "$RT_TMP/relay2.status" &&
    grep -q "its publisher: head seq $h, 0 records ahead of this outbox" "$RT_TMP/relay2.status" ||
    rt_fail "rtctl status of relay2: $(cat "$RT_TMP/relay2.status")"
# ... and so does its --http: /api/status, and /metrics with the outbox's head.
command -v curl >/dev/null 2>&1 || rt_fail "curl is not installed (apt-get install curl)"
api="$(curl -sS --max-time 10 "http://$R2_HTTP/api/status")" || rt_fail "relay2 --http: no /api/status"
[[ "$api" == *"\"upstream\":\"$R1\""* ]] || rt_fail "relay2's /api/status: $api"
# (read whole first: grep -q leaving early would fail curl's write, and pipefail the test)
metrics="$(curl -sS --max-time 10 "http://$R2_HTTP/metrics")"
grep -q "^rt_publisher_head_seq $h\$" <<<"$metrics" ||
    rt_fail "relay2's /metrics has no rt_publisher_head_seq $h"
# The publisher's restart reached the relays' subscribers as a new run.
grep -q 'publisher restarted' "$RT_TMP/relay1.log" ||
    rt_fail "relay1 did not see the publisher's restart"
grep 'of an unfinished transaction were dropped' "$RT_TMP/relay1.log" ||
    rt_fail "relay1 held no stored records of an unfinished transaction at the kill: the test did not test"
rt_stop_clean replica1 replica2 replica3 relay2 relay1 pub
echo "relay kills: ok"
