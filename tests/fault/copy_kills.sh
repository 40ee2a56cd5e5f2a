#!/usr/bin/env bash
# tests/fault/copy_kills.sh - an initial copy (--init copy, over CURVE) into an empty
# replica while the source takes the counter and tpcb-like workloads, with a kill -9 of
# the publisher, then of the replica's PostgreSQL, then of the subscriber, each in the
# middle of the copy: every start resumes it (tables already copied are kept, the others
# copied again under a new snapshot) and the replica ends equal to the source, with no
# transaction lost or applied twice, and no temporary slot left on the source.
#
# RT_FAULT_RATE transactions/s (default 200).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

RATE="${RT_FAULT_RATE:-200}"
ROWS="$(fault_scale 300000 150000)"
BIG="big_1 big_2 big_3 big_4 big_5 big_6"

fault_clusters source replica1
fault_tpcb source
# The replica has the tables, empty.
"$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$REPLICA1_PORT" -U postgres -i -I dtp -q postgres \
    >"$RT_TMP/pgbench-init.replica1.log" 2>&1 || rt_fail "pgbench -i on replica1 failed"
rt_psql replica1 -c "DELETE FROM counter"
# Tables that take a while each, one job: a kill always finds tables still to copy.
for t in $BIG; do
    for c in source replica1; do
        rt_psql "$c" -c "CREATE TABLE $t (id int PRIMARY KEY, pad text)"
    done
    rt_psql source -c "INSERT INTO $t SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $ROWS) g"
done
fault_log "source: 6 tables of $ROWS rows besides the workload's"

fault_curve replica1
fault_start_pub
fault_load_start "$RATE" 2

copied() {
    rt_psql replica1 -c "SELECT count(*) FROM rt.sync_tables WHERE source = 'src' AND state = 'r'" \
        2>/dev/null || echo 0
}
more_copied() { (($(copied) > $1)); }
origin() { rt_psql replica1 -c "SELECT count(*) FROM pg_replication_origin WHERE roname = 'rt_src'"; }
# The subscriber says ready only once its copy is done: started in the background.
start_sub() {
    rt_start_bg replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "$REPLICA1_DSN" --name replica1 --cert "$FAULT_KEYS/replica1.cert_secret" \
        --publisher-key "$FAULT_KEYS/pub.cert" --init copy --copy-jobs 1
}

# kill_when_copied N WHAT CMD...: once more than N tables are copied and the copy is not
# over, runs CMD (a kill); prints the tables copied then.
kill_when_copied() {
    local n="$1" what="$2"
    shift 2
    rt_wait_until 120 "more than $n tables copied" more_copied "$n" || {
        fault_report_daemons
        rt_fail "the copy did not get past $n tables"
    }
    [[ "$(origin)" == 0 ]] || rt_fail "the copy ended before the $what kill: make the tables bigger"
    fault_log "$(copied) tables copied: kill -9 of $what"
    "$@"
}

start_sub
kill_when_copied 0 "the publisher" rt_kill9 pub
sleep 1
fault_start_pub
fault_log "publisher started again"

n="$(copied)"
kill_when_copied "$n" "the replica's PostgreSQL" rt_pg_restart replica1 immediate
fault_log "replica PostgreSQL started again"

n="$(copied)"
if [[ "$(origin)" == 0 ]]; then
    kill_when_copied "$n" "the subscriber" rt_kill9 replica1
    start_sub
fi

rt_wait_until 180 "the copy to end" grep -q 'initial copy done' "$RT_TMP/replica1.log" || {
    fault_report_daemons
    rt_fail "the copy did not end"
}
fault_log "$(grep -c 'initial copy: starting again' "$RT_TMP/replica1.log" || true) restarts of the copy"
grep -E 'initial copy: [0-9]+ tables in ' "$RT_TMP/replica1.log" | tail -1 || true
sleep 3
fault_alive_or_fail pub replica1 load
fault_load_stop
fault_check 120 50 source replica1
no_temporary_slot() {
    [[ "$(rt_psql source -c 'SELECT count(*) FROM pg_replication_slots WHERE temporary')" == 0 ]]
}
rt_wait_until 60 "the copies' temporary slots to be dropped" no_temporary_slot
fault_stop_all replica1 pub
echo "copy_kills: ok"
