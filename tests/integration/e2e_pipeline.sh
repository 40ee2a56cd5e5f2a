#!/usr/bin/env bash
# tests/integration/e2e_pipeline.sh - a source and two replicas: every change type,
# identifier and common type, pgbench tpcb-like for 10 s and a 1,000,000-row transaction
# reach both replicas exactly once (per-table checksums and pgbench balances compared).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

SQL="$RT_SRC/tests/integration/sql"
for c in source replica1 replica2; do
    rt_pg_start "$c"
    rt_psql "$c" -f "$SQL/schema.sql"
done
pgbench_on() {
    local name="$1" port
    shift
    port="$(rt__var "$name")_PORT"
    "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "${!port}" -U postgres "$@" postgres
}
# pgbench tables (with keys, no rows) everywhere; the source's rows come later, replicated.
for c in source replica1 replica2; do
    pgbench_on "$c" -q -i -I dtp -s 1 >/dev/null 2>&1
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA1_DSN" --name replica1
rt_start_daemon replica2 "$RT_TMP/replica2.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA2_DSN" --name replica2

echo "== every change type"
rt_psql source -f "$SQL/workload.sql"
rt_wait_converged 120 source replica1 replica2
# The TOASTed bodies survived updates of other columns.
[[ "$(rt_psql replica1 -c "SELECT count(*) FROM docs WHERE length(body) = 102400")" == 4 ]] ||
    rt_fail "TOASTed values were not kept on replica1"
[[ "$(rt_psql replica2 -c "SELECT count(*) FROM nopk")" == 4 ]] || rt_fail "nopk rows on replica2"

echo "== pgbench tpcb-like, 10 s"
pgbench_on source -q -i -I g -s 1 >/dev/null 2>&1
pgbench_on source -n -b tpcb-like -T 10 -c 2 -j 2 | grep -E '^(tps|number of transactions actually)'
t0="$(rt__now_ms)"
rt_wait_converged 180 source replica1 replica2
echo "catch-up after pgbench: $(( $(rt__now_ms) - t0 )) ms"
sums="SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT count(*) FROM pgbench_history)"
s="$(rt_psql source -c "$sums")"
for r in replica1 replica2; do
    [[ "$(rt_psql "$r" -c "$sums")" == "$s" ]] || rt_fail "pgbench balances differ on $r"
done
echo "pgbench balances equal: $s"

echo "== one 1,000,000-row transaction"
t0="$(rt__now_ms)"
rt_psql source -c "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g"
t_commit="$(rt__now_ms)"
big_done() {
    [[ "$(rt_psql replica1 -c 'SELECT count(*) FROM big')" == 1000000 &&
        "$(rt_psql replica2 -c 'SELECT count(*) FROM big')" == 1000000 ]]
}
rt_wait_until 300 "1,000,000 rows on both replicas" big_done
t1="$(rt__now_ms)"
echo "1M-row transaction: source commit $((t_commit - t0)) ms, end to end $((t1 - t0)) ms," \
    "$((1000000 * 1000 / (t1 - t0))) rows/s"
rt_assert_same source replica1 replica2

"$RT_BIN/rtctl" --publisher "$ROUTER" status
grep -q '"name":"replica1"' <<<"$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)" ||
    rt_fail "rtctl status --json does not list replica1"
"$RT_BIN/rtctl" ping "$ROUTER"

rt_stop_clean replica1 replica2 pub
if grep -E 'ERROR|AddressSanitizer|runtime error' "$RT_TMP"/*.log; then
    rt_fail "errors in the daemon logs"
fi
echo "e2e pipeline: ok"
