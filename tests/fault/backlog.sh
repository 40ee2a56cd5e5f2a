#!/usr/bin/env bash
# tests/fault/backlog.sh - a subscriber down while many small source transactions pile up
# in the outbox, then started: it catches up with bounded memory, and the outbox (trimmed
# at once: --retention-seconds 0) never drops a record it has not acknowledged, while
# another subscriber keeps up and acknowledges everything.
#
# RT_FAULT_TXNS transactions in the backlog (default 60000, 30000 in a sanitizer
# build; soak: 1000000);
# RT_FAULT_RSS_MB bound on the peak RSS of the publisher and the subscriber (default 256,
# doubled for a sanitizer build); RT_FAULT_CATCHUP_S bound on the catch-up (default 900).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

TXNS="${RT_FAULT_TXNS:-$(fault_scale 60000 30000)}"
RSS_MB="${RT_FAULT_RSS_MB:-256}"
! fault_asan || RSS_MB=$((RSS_MB * 2))
CATCHUP_S="${RT_FAULT_CATCHUP_S:-900}"
CLIENTS=4
echo "backlog: $TXNS transactions while replica1 is down, RSS bound $RSS_MB MiB"

# The source commits without waiting for its WAL flush: the workload is faster, what
# rt reads (decoded WAL) is the same.
FAULT_PAD=20
fault_clusters source replica1 replica2 -- "synchronous_commit = off"
fault_start_pub --retention-seconds 0
fault_start_sub replica1
fault_start_sub replica2
rt_wait_until 30 "both subscribers registered" bash -c \
    "s=\$(\"$RT_BIN/rtctl\" --publisher '$ROUTER' status --json) && [[ \$s == *'\"name\":\"replica1\"'* && \$s == *'\"name\":\"replica2\"'* ]]"
rt_stop_daemon replica1 || rt_fail "replica1 exited non-zero on SIGTERM"
acked_down="$(rt_json_sub_acked "$(rt_status_json "$ROUTER")" replica1)"
fault_log "replica1 stopped (acked seq $acked_down); loading $TXNS transactions"

# check_trim LABEL: the outbox still holds every record after replica1's acked seq.
check_trim() {
    local js first acked
    js="$(rt_status_json "$ROUTER")" || rt_fail "rtctl status failed ($1)"
    first="$(rt_json_num "$js" first_seq)" || rt_fail "no first_seq in: $js"
    acked="$(rt_json_sub_acked "$js" replica1)" || rt_fail "no replica1 in: $js"
    ((first <= acked + 1)) ||
        rt_fail "$1: the outbox starts at seq $first but replica1 acknowledged only $acked: records were trimmed before their ACK"
    LAST_FIRST="$first"
    LAST_ACKED="$acked"
    LAST_HEAD="$(rt_json_num "$js" head_seq)"
}

per_client=$(((TXNS + CLIENTS - 1) / CLIENTS))
rt_start_bg load "$RT_TMP/load.log" "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" \
    -U postgres -n -c "$CLIENTS" -j 2 -t "$per_client" -D pad=20 -f "$FAULT_SQL/tx.sql" postgres
t0="$(rt__now_ms)"
while rt_daemon_alive load; do
    check_trim "while loading"
    rt_hwm_sample pub replica2
    sleep 1
done
rc=0
wait "$LOAD_PID" || rc=$?
((rc == 0)) || { tail -20 "$RT_TMP/load.log"; rt_fail "pgbench failed ($rc)"; }
total=$((per_client * CLIENTS))
fault_log "loaded $total transactions in $((($(rt__now_ms) - t0) / 1000)) s"
rt_wait_until 300 "the publisher to store the backlog" bash -c \
    "[[ \$(\"$RT_BIN/rtctl\" --publisher '$ROUTER' status --json) =~ \\\"head_seq\\\":([0-9]+) ]] && ((BASH_REMATCH[1] >= $total))"
fault_wait_caught_up 120 replica2
check_trim "backlog stored"
fault_log "outbox: seqs $LAST_FIRST..$LAST_HEAD, replica1 acked $LAST_ACKED (replica2 caught up)"
((LAST_HEAD - LAST_FIRST + 1 >= total)) ||
    rt_fail "the outbox holds $((LAST_HEAD - LAST_FIRST + 1)) records, fewer than the $total replica1 has not applied"

fault_start_sub replica1
t0="$(rt__now_ms)"
target="$(fault__counter source)"
deadline=$((t0 + CATCHUP_S * 1000))
while ! fault__reached replica1 "$target"; do
    (($(rt__now_ms) < deadline)) || rt_fail "replica1 did not catch up within ${CATCHUP_S}s (counter $(fault__counter replica1) of $target)"
    fault_alive_or_fail pub replica1 replica2
    check_trim "while catching up"
    rt_hwm_sample pub replica1 replica2
    sleep 1
done
rt_hwm_sample pub replica1 replica2
secs=$((($(rt__now_ms) - t0) / 1000))
fault_log "replica1 caught up with $target transactions in ${secs}s"
# Trimming was held back only by replica1: once it acknowledged everything, it goes on.
rt_wait_until 30 "the outbox to be trimmed past the backlog" bash -c \
    "[[ \$(\"$RT_BIN/rtctl\" --publisher '$ROUTER' status --json) =~ \\\"first_seq\\\":([0-9]+) ]] && ((BASH_REMATCH[1] > $total / 2))"
check_trim "after catching up"
fault_log "outbox trimmed after the ACKs: now seqs $LAST_FIRST..$LAST_HEAD"
fault_check 120 "$total" source replica1 replica2
for d in pub replica1 replica2; do
    fault_log "peak RSS (VmHWM) $d: $(fault_mib "${RT_HWM_KB[$d]:-0}") MiB (anonymous memory, sampled: $(fault_mib "${RT_ANON_KB[$d]:-0}") MiB)"
done
for d in pub replica1 replica2; do
    kb="${RT_HWM_KB[$d]:-0}"
    ((kb > 0 && kb < RSS_MB * 1024)) || rt_fail "$d peak RSS $(fault_mib "$kb") MiB is not under $RSS_MB MiB"
done
fault_stop_all replica1 replica2 pub
echo "backlog: ok ($total transactions, catch-up ${secs}s, peak RSS pub $(fault_mib "${RT_HWM_KB[pub]}") MiB, replica1 $(fault_mib "${RT_HWM_KB[replica1]}") MiB)"
