#!/usr/bin/env bash
# tests/integration/pub_subscription_limit.sh - a peer on the PUB port that sends a 4 MiB
# subscription frame, again at every reconnect, is dropped before the frame is read: the
# publisher's memory stays where it was and a real subscriber keeps converging.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

rt_pair_start
rt_psql source -c "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 1000) g"
rt_wait_converged 60 source replica

before="$(rt__status_kb pub VmRSS)"
echo "publisher VmRSS before: $before kB"
# Three hostile peers at once for 4 s, each resending its subscription on reconnect.
hostile=()
for i in 1 2 3; do
    "$RT_BIN/rt_rawpeer" --subscribe $((4 << 20)) 4 "$PUB_EP" >"$RT_TMP/hostile$i.out" 2>&1 &
    hostile+=($!)
done
# Writes go on meanwhile and must still reach the replica over PUB.
for i in $(seq 1 20); do
    rt_psql source -c "INSERT INTO t VALUES (1000 + $i, 'during')"
    sleep 0.2
done
for pid in "${hostile[@]}"; do
    timeout 30 tail --pid="$pid" -f /dev/null || rt_fail "a hostile peer (pid $pid) did not end"
done
cat "$RT_TMP"/hostile*.out
after="$(rt__status_kb pub VmRSS)"
peak="$(rt_vmhwm_kb pub)"
echo "publisher VmRSS after: $after kB (peak $peak kB)"
rt_daemon_alive pub || rt_fail "the publisher died"
# Accepted, the frames grew it by 131 MiB, kept after the peers left; 8 MiB of slack
# covers ordinary allocation noise (32 MiB in a sanitizer build, whose quarantine keeps
# freed memory resident).
bound=8192
! rt_sanitized || bound=32768
((after - before < bound)) || rt_fail "the publisher grew by $((after - before)) kB"
rt_wait_converged 60 source replica
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "pub subscription limit: ok"
