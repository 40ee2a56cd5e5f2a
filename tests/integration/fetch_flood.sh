#!/usr/bin/env bash
# tests/integration/fetch_flood.sh - a peer that sends 120 FETCHes of 256 records and
# never reads: the publisher's memory stays bounded (it took 1 GB before) and its loop
# keeps serving, so a real subscriber keeps applying during the flood. The bound is
# 96 MiB of growth, 384 MiB in a sanitizer build (rt_sanitized).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pair_start
# ~30 MB of records of ~64 KiB: each FETCH of 256 records would queue ~16 MiB.
rt_psql source -c "INSERT INTO t SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 300000) g"
rt_wait_converged 120 source replica

before="$(rt__status_kb pub VmRSS)"
echo "publisher VmRSS before: $before kB"
# FETCH{seq 1, count 256}, 120 times, then 10 s without reading.
"$RT_BIN/rt_rawpeer" --id flood --flood 120,10 "$ROUTER" 94a546455443480101cd0100 \
    >"$RT_TMP/flood.out" 2>&1 &
flood_pid=$!
peak="$before"
sample() {
    local v
    v="$(rt__status_kb pub VmRSS)" || return 0
    ((v <= peak)) || peak="$v"
}
for i in $(seq 1 20); do
    rt_psql source -c "INSERT INTO t VALUES (1000000 + $i, 'during the flood')"
    sample
done
rt_wait_converged 30 source replica
while kill -0 "$flood_pid" 2>/dev/null; do
    sample
    sleep 0.2
done
cat "$RT_TMP/flood.out"
echo "publisher VmRSS during the flood: at most $peak kB"
rt_daemon_alive pub || rt_fail "the publisher died"
# One peer's queue is at most 1024 messages of at most ~64 KiB. Under the sanitizers
# freed memory stays in ASan's quarantine (up to 256 MiB) as well; without the bound a
# flood grew the publisher by ~900 MB.
bound=$((96 * 1024))
! rt_sanitized || bound=$((384 * 1024))
((peak - before < bound)) || rt_fail "the publisher grew by $((peak - before)) kB for one flooding peer"
rt_psql source -c "INSERT INTO t VALUES (2000000, 'after')"
rt_wait_converged 60 source replica
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "fetch flood: ok"
