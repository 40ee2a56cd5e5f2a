#!/usr/bin/env bash
# tests/fault/big_txn.sh - one source transaction of many rows with a text column: the
# publisher and the subscriber stream it through in chunks, their peak RSS (VmHWM,
# sampled every 0.5 s) stays bounded, and the replica equals the source.
#
# RT_FAULT_ROWS rows (default 2000000, 500000 in a sanitizer build; soak: 10000000);
# RT_FAULT_RSS_MB bound on each daemon's peak RSS (default 256); RT_FAULT_BIG_S bound on
# the time to apply it (default 900). In a sanitizer build the peaks are reported, not
# bounded: AddressSanitizer keeps up to 256 MiB of freed memory in quarantine and adds
# shadow memory, so they measure the sanitizer more than rt.
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

ROWS="${RT_FAULT_ROWS:-$(fault_scale 2000000 500000)}"
RSS_MB="${RT_FAULT_RSS_MB:-256}"
BIG_S="${RT_FAULT_BIG_S:-900}"
if fault_asan; then
    echo "big_txn: one transaction of $ROWS rows, sanitizer build: peak RSS reported, not bounded"
else
    echo "big_txn: one transaction of $ROWS rows, RSS bound $RSS_MB MiB"
fi

fault_big_start
fault_log "source: inserting $ROWS rows in one transaction"
rt_start_bg load "$RT_TMP/load.log" "$RT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -d "$SOURCE_DSN" -c "$(fault_big_sql "$ROWS")"
t0="$(rt__now_ms)"
deadline=$((t0 + BIG_S * 1000))
committed=""
while :; do
    rt_hwm_sample pub replica1
    if [[ -z "$committed" ]] && ! rt_daemon_alive load; then
        rc=0
        wait "$LOAD_PID" || rc=$?
        ((rc == 0)) || { cat "$RT_TMP/load.log"; rt_fail "the big transaction failed ($rc)"; }
        committed=$((($(rt__now_ms) - t0) / 1000))
        fault_log "source: committed after ${committed}s"
    fi
    if [[ -n "$committed" ]] && [[ "$(fault__counter replica1)" == 1 ]]; then
        break
    fi
    (($(rt__now_ms) < deadline)) || rt_fail "the big transaction was not applied within ${BIG_S}s"
    fault_alive_or_fail pub replica1
    sleep 0.5
done
rt_hwm_sample pub replica1
secs=$((($(rt__now_ms) - t0) / 1000))
fault_log "replica1: applied after ${secs}s"
n="$(rt_psql replica1 -c 'SELECT count(*) FROM big')"
((n == ROWS)) || rt_fail "replica1 has $n rows of $ROWS"
fault_check 300 1 source replica1
for d in pub replica1; do
    fault_log "peak RSS (VmHWM) $d: $(fault_mib "${RT_HWM_KB[$d]:-0}") MiB (anonymous memory, sampled: $(fault_mib "${RT_ANON_KB[$d]:-0}") MiB)"
done
for d in pub replica1; do
    kb="${RT_HWM_KB[$d]:-0}"
    ((kb > 0)) || rt_fail "no RSS sample of $d"
    fault_asan || ((kb < RSS_MB * 1024)) || rt_fail "$d peak RSS $(fault_mib "$kb") MiB is not under $RSS_MB MiB"
done
fault_stop_all replica1 pub
echo "big_txn: ok ($ROWS rows in ${secs}s, peak RSS pub $(fault_mib "${RT_HWM_KB[pub]}") MiB, replica1 $(fault_mib "${RT_HWM_KB[replica1]}") MiB)"
