#!/usr/bin/env bash
# tests/integration/slot_busy.sh - a publisher that starts while another WAL sender
# streams from its slot (as the WAL sender of a killed publisher does until it notices)
# waits for the slot instead of exiting: it logs that it waits, is not ready meanwhile,
# stops within 5 s on SIGTERM while waiting, and once the slot is released it starts,
# saying how long it waited, and replicates.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pg_start source
rt_pg_start replica
for c in source replica; do
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done
recvlogical() {
    "$RT_PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -d postgres \
        --slot rt_src "$@"
}
recvlogical --create-slot -P pgoutput
rt_psql source -c "CREATE PUBLICATION rt_src FOR ALL TABLES"
slot_active() { # 1 when a WAL sender streams from the slot
    [[ "$(rt_psql source -Atc "SELECT count(*) FROM pg_replication_slots
        WHERE slot_name = 'rt_src' AND active")" == 1 ]]
}
hold() { # LABEL: streams from the slot until stopped
    rt_start_bg "$1" "$RT_TMP/$1.log" "$RT_PG_BIN/pg_recvlogical" -h 127.0.0.1 \
        -p "$SOURCE_PORT" -U postgres -d postgres --slot rt_src --start \
        -o proto_version=1 -o publication_names=rt_src -f /dev/null
    rt_wait_until 20 "$1 to stream from the slot" slot_active
}
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
publisher() { # LABEL
    rt_start_bg "$1" "$RT_TMP/$1.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP"
}
waits() { grep -q 'is active for PID .*; waiting up to 60 s for it' "$RT_TMP/$1.log"; }

echo "-- SIGTERM while waiting for the slot"
hold holder1
publisher pub1
rt_wait_until 20 "pub1 to wait for the slot" waits pub1
t0="$(rt__now_ms)"
rc=0
rt_stop_daemon pub1 TERM || rc=$?
elapsed=$(($(rt__now_ms) - t0))
((elapsed < 5000)) || rt_fail "pub1 took $elapsed ms to stop while waiting for the slot"
grep -q ' ready:' "$RT_TMP/pub1.log" && rt_fail "pub1 said ready without the slot"
echo "stopped in $elapsed ms (status $rc)"

echo "-- the slot released: the waiting publisher starts"
publisher pub2
rt_wait_until 20 "pub2 to wait for the slot" waits pub2
sleep 1
grep -q ' ready:' "$RT_TMP/pub2.log" && rt_fail "pub2 said ready while the slot was in use"
rt_stop_daemon holder1 TERM >/dev/null || true
ready() { grep -q ' ready:' "$RT_TMP/pub2.log"; }
rt_wait_until 30 "pub2 to start once the slot is free" ready
grep -h 'replication slot rt_src is ours after' "$RT_TMP/pub2.log" ||
    rt_fail "pub2 does not say how long it waited"

rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$REPLICA_DSN" --name r1
rt_psql source -c "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g"
rt_wait_converged 60 source replica
echo "ok"
