#!/usr/bin/env bash
# tests/fault/pub_drops.sh - a publisher whose PUB socket drops almost everything
# (--pub-hwm 1) under an unlimited workload: the subscribers notice the gaps, FETCH the
# missing records from the outbox and converge with no transaction lost or doubled.
#
# RT_FAULT_SECONDS (default 10; soak: 300) of workload; RT_FAULT_HWM (default 1).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

SECONDS_LOAD="${RT_FAULT_SECONDS:-10}"
HWM="${RT_FAULT_HWM:-1}"
echo "pub_drops: --pub-hwm $HWM, ${SECONDS_LOAD}s of unlimited workload"

fault_clusters source replica1 replica2
fault_start_pub --pub-hwm "$HWM"
# debug: each FETCH is logged, which is what this test counts.
RT_FAULT_LOG_LEVEL=debug fault_start_sub replica1
RT_FAULT_LOG_LEVEL=debug fault_start_sub replica2
fault_load_start 0 4
sleep "$SECONDS_LOAD"
fault_alive_or_fail pub replica1 replica2 load
fault_load_stop
fault_check 120 1000 source replica1 replica2
txns="$(fault__counter source)"
for r in replica1 replica2; do
    n="$(grep -cE 'DEBUG: FETCH( [0-9]+)? from seq' "$RT_TMP/$r.log" || true)"
    fault_log "$r sent $n FETCH(es) for $txns transactions"
    ((n > 0)) || rt_fail "$r never fetched: the PUB drops went unnoticed or did not happen"
done
fault_stop_all replica1 replica2 pub
echo "pub_drops: ok"
