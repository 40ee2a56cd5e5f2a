#!/usr/bin/env bash
# tests/integration/fetch_flood.sh - a peer that sends 120 FETCHes of 256 records and
# never reads is dropped, not buffered: the publisher shuts its connection down (the
# peer sees it closed, the publisher logs it), its memory grows by little more than the
# per-peer cap of 4 replies (32 MiB) for a moment, and its loop keeps serving, so a real
# subscriber keeps applying during the flood. Then the same under CURVE, while that
# subscriber catches up through a slow link: the flooding peer is dropped, the
# subscriber, which reads, never is.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

# flood LABEL [RAWPEER OPTION...]: 120 FETCH{seq 1, count 256} from peer "flood", then
# 10 s without reading; the publisher must drop it and stay within its bound.
flood() {
    local label="$1" before peak bound out="$RT_TMP/flood-$1.out"
    shift
    before="$(rt__status_kb pub VmRSS)"
    rt_vmhwm_reset pub
    "$RT_BIN/rt_rawpeer" --id flood "$@" --flood 120,10 "$ROUTER" 94a546455443480101cd0100 \
        >"$out" 2>&1 &
    local flood_pid=$!
    for i in $(seq 1 20); do
        rt_psql source -c "INSERT INTO t VALUES ($((label + i)), 'during the flood')"
    done
    rt_wait_converged 60 source replica
    wait "$flood_pid" || rt_fail "rt_rawpeer failed: $(cat "$out")"
    peak="$(rt_vmhwm_kb pub)"
    cat "$out"
    echo "publisher VmRSS before: $before kB, peak during the flood: $peak kB"
    rt_daemon_alive pub || rt_fail "the publisher died"
    grep -q 'disconnected by the publisher' "$out" || rt_fail "the flooding peer was not disconnected"
    grep -q 'dropped peer flood (127.0.0.1:[0-9]*): it does not read' "$RT_TMP/pub.log" ||
        rt_fail "the publisher did not log the drop"
    # 4 replies of 8 MiB wait at most, plus the reply that passed the cap. Under the
    # sanitizers freed memory stays in ASan's quarantine (up to 256 MiB) as well; without
    # any bound a flood grew the publisher by ~900 MB, with a queue of 1024 messages per
    # peer but no drop by up to 64 MiB.
    bound=$((48 * 1024))
    ! rt_sanitized || bound=$((320 * 1024))
    ((peak - before < bound)) || rt_fail "the publisher grew by $((peak - before)) kB for one flooding peer"
}

rt_pair_start
# ~30 MB of records of ~64 KiB: each FETCH of 256 records is answered with 8 MiB.
rt_psql source -c "INSERT INTO t SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 300000) g"
rt_wait_converged 120 source replica

echo "== a peer that does not read"
flood 1000000
rt_psql source -c "INSERT INTO t VALUES (2000000, 'after')"
rt_wait_converged 60 source replica

echo "== under CURVE, while the subscriber catches up through a slow link"
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_psql source -c "INSERT INTO t SELECT g, repeat(md5(g::text), 3) FROM generate_series(3000001, 3200000) g"
stored() { # LSN: the publisher confirmed the source up to LSN
    [[ "$(rt_psql source -Atc "SELECT confirmed_flush_lsn >= '$1' FROM pg_replication_slots WHERE slot_name = 'rt_src'")" == t ]]
}
rt_wait_until 60 "the publisher to store them" stored "$(rt_psql source -Atc 'SELECT pg_current_wal_lsn()')"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
K="$RT_TMP/keys"
mkdir -p "$K/allow"
"$RT_BIN/rtctl" keygen flood --dir "$K" >/dev/null
cp "$K/flood.cert" "$K/allow/"
# The subscriber's link carries 3 MB/s: 20 MB to catch up, with its 3 FETCHes of up to
# 7 MiB waiting at the publisher all along.
RELAY_PORT="$(rt_free_port)"
RT_PROXY_RATE=3000000 rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt_tcpproxy" \
    "$RELAY_PORT:${ROUTER##*:}"
rt_pair_daemons --curve "$K" --via "tcp://127.0.0.1:$RELAY_PORT"
flood 4000000 --cert "$K/flood.cert_secret" --server-key "$K/pub.cert"
rt_wait_converged 120 source replica
if grep 'dropped peer replica' "$RT_TMP/pub.log"; then
    rt_fail "the subscriber, which reads, was dropped"
fi
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "fetch flood: ok"
