#!/usr/bin/env bash
# tests/integration/slot_stats.sh - what an operator watches on the publisher's slot, checked
# against what PostgreSQL itself says. A publisher with a 1 MiB outbox and two subscribers:
# r2 stops on a conflict (state error: rt_publisher_subscriber_error and its own
# rt_subscriber_error are 1, r1's 0) and so holds back trimming; a writer fills the outbox,
# the capture blocks, and the WAL the slot retains grows in `rtctl status --json`
# (retained_wal_bytes) and /metrics (rt_publisher_slot_retained_wal_bytes), each within a
# bounded tolerance of pg_current_wal_lsn() - restart_lsn computed by psql at the same
# moment (as is the source lag against confirmed_flush_lsn). Once r2 is stopped and
# forgotten the capture resumes and the retained WAL falls. With the source stopped the
# figures are unknown (-1, "-", no sample), and they come back once it runs again.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v curl >/dev/null 2>&1 || rt_fail "curl is not installed (apt-get install curl)"
command -v jq >/dev/null 2>&1 || rt_fail "jq is needed (Debian package jq)"

for c in source r1 r2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" \
        -c "CREATE TABLE w (id bigserial PRIMARY KEY, pad text)"
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
H_PUB="$(rt_free_port)"
H_R1="$(rt_free_port)"
H_R2="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
CTL=("$RT_BIN/rtctl" --publisher "$ROUTER" --timeout 3000)
LIMIT=$((1024 * 1024))
TOL=$((64 * 1024)) # bytes: what the source may write between two readings of an idle slot
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB" \
    --max-outbox-mb 1 --retention-seconds 0 --http "127.0.0.1:$H_PUB"
for r in r1 r2; do
    v="${r^^}_DSN"
    h="H_${r^^}"
    rt_start_daemon "$r" "$RT_TMP/$r.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "${!v}" --name "$r" --http "127.0.0.1:${!h}"
done

# js KEY: a top-level field of `rtctl status --json`.
js() { "${CTL[@]}" status --json | jq -r ".$1"; }
# sub_js NAME KEY: a field of subscriber NAME there.
sub_js() { "${CTL[@]}" status --json | jq -r --arg n "$1" ".subscribers[] | select(.name == \$n) | .$2"; }
# metric PORT NAME [LABELS]: a sample of the /metrics served on PORT; fails when absent.
metric() {
    local sel="$2"
    [[ -z "${3:-}" ]] || sel="$2{$3}"
    curl -sS --max-time 10 "http://127.0.0.1:$1/metrics" >"$RT_TMP/metrics.txt" || return 1
    awk -v s="$sel" '$1 == s { print $2; found = 1 } END { exit !found }' "$RT_TMP/metrics.txt"
}
# metric_is VALUE PORT NAME [LABELS]
metric_is() {
    local want="$1"
    shift
    [[ "$(metric "$@" 2>/dev/null)" == "$want" ]]
}
state_is() { [[ "$(sub_js "$1" state)" == "$2" ]]; }
capture_is() { [[ "$(js capture_state)" == "$1" ]]; }
# What PostgreSQL says of the slot, now: retained WAL, lag behind confirmed_flush_lsn.
pg_retained() {
    rt_psql source -c "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = 'rt_src'"
}
pg_lag() {
    rt_psql source -c "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'rt_src'"
}
known() { (($(js retained_wal_bytes) >= 0 && $(js source_lag_bytes) >= 0 && $(js source_lag_ms) >= 0)); }

echo "== the figures are measured, the limit is reported"
rt_wait_until 20 "the slot's figures in rtctl status --json" known
[[ "$(js outbox_limit_bytes)" == "$LIMIT" ]] || rt_fail "outbox_limit_bytes: $(js outbox_limit_bytes)"
[[ "$(metric "$H_PUB" rt_publisher_outbox_limit_bytes)" == "$LIMIT" ]] ||
    rt_fail "rt_publisher_outbox_limit_bytes: $(metric "$H_PUB" rt_publisher_outbox_limit_bytes)"
for m in rt_publisher_slot_retained_wal_bytes rt_publisher_source_lag_bytes \
    rt_publisher_source_lag_seconds; do
    v="$(metric "$H_PUB" "$m")" || rt_fail "no sample $m in the publisher's /metrics"
    [[ "$v" =~ ^[0-9.e+]+$ ]] || rt_fail "$m is $v"
done
"${CTL[@]}" status | tee "$RT_TMP/status0.txt"
grep -qE '^  slot: retained WAL [0-9.]+ (B|KiB|MiB|GiB), source lag [0-9.]+ (B|KiB|MiB|GiB), [0-9.]+ (s|h)$' \
    "$RT_TMP/status0.txt" || rt_fail "rtctl status has no slot line with figures"
grep -q '^  outbox: .*(limit 1.0 MiB)' "$RT_TMP/status0.txt" || rt_fail "rtctl status shows no limit"
"${CTL[@]}" top --once --interval 200 >"$RT_TMP/top.txt"
grep -qE '^slot    retained WAL [0-9.]+ ' "$RT_TMP/top.txt" || rt_fail "rtctl top has no slot line"
for r in r1 r2; do
    [[ "$(metric "$H_PUB" rt_publisher_subscriber_error "subscriber=\"$r\"")" == 0 ]] ||
        rt_fail "rt_publisher_subscriber_error of $r is not 0 at start"
done
[[ "$(metric "$H_R2" rt_subscriber_error)" == 0 ]] || rt_fail "rt_subscriber_error of r2 is not 0 at start"

echo "== r2 stops on a conflict: error 1 for r2, 0 for r1"
rt_psql source -c "INSERT INTO t VALUES (1, 'one')"
rt_wait_converged 30 source r1 r2
rt_psql r2 -c "INSERT INTO t VALUES (2, 'r2 only')"
rt_psql source -c "INSERT INTO t VALUES (2, 'from the source')"
rt_wait_until 30 "r2 in state error" state_is r2 error
rt_wait_until 15 "rt_publisher_subscriber_error of r2 at 1" \
    metric_is 1 "$H_PUB" rt_publisher_subscriber_error 'subscriber="r2"'
rt_wait_until 15 "rt_subscriber_error of r2 at 1" metric_is 1 "$H_R2" rt_subscriber_error
[[ "$(metric "$H_PUB" rt_publisher_subscriber_error 'subscriber="r1"')" == 0 ]] ||
    rt_fail "rt_publisher_subscriber_error of r1 is not 0"
[[ "$(metric "$H_R1" rt_subscriber_error)" == 0 ]] || rt_fail "rt_subscriber_error of r1 is not 0"
rt_wait_converged 30 source r1

echo "== a writer fills the outbox r2 holds back: the capture blocks"
pad_sql() { echo "INSERT INTO w (pad) SELECT (SELECT string_agg(md5(random()::text || g::text || s), '') FROM generate_series(1, 60) s) FROM generate_series(1, 20) g;"; }
rt_writer_start pad source pad_sql 0.05
rt_wait_until 60 "the capture to block on the full outbox" capture_is 'blocked (outbox full)'
lag_s="$(metric "$H_PUB" rt_publisher_subscriber_lag_seconds 'subscriber="r2"')"
awk -v v="$lag_s" 'BEGIN { exit !(v > 0) }' || rt_fail "r2's lag in seconds is $lag_s while it is stuck"

echo "== while blocked, the retained WAL grows, as psql sees it"
# f, read between two psql readings p0 and p1 taken more than a measurement interval apart,
# was measured between them: p0 - TOL <= f <= p1 + TOL (the WAL only grows meanwhile).
bracketed() { # bracketed JSON_KEY PSQL_FN
    local p0 f p1
    p0="$($2)"
    sleep 2.5
    f="$(js "$1")"
    p1="$($2)"
    echo "$1: psql $p0 .. $p1, rtctl $f"
    ((f >= p0 - TOL && f <= p1 + TOL))
}
rt_wait_until 30 "retained_wal_bytes within psql's readings" bracketed retained_wal_bytes pg_retained
r0="$(js retained_wal_bytes)"
m0="$(metric "$H_PUB" rt_publisher_slot_retained_wal_bytes)"
grows() {
    (($(js retained_wal_bytes) > r0 + 256 * 1024)) &&
        (($(metric "$H_PUB" rt_publisher_slot_retained_wal_bytes) > m0 + 256 * 1024))
}
rt_wait_until 30 "the retained WAL to grow by 256 KiB in status and /metrics" grows
[[ "$(js capture_state)" == 'blocked (outbox full)' ]] || rt_fail "the capture is no longer blocked"
rt_wait_until 30 "source_lag_bytes within psql's readings" bracketed source_lag_bytes pg_lag
rt_writer_stop pad
# With the writer stopped the WAL stands still: the figures match psql's.
close() { # close JSON_KEY PSQL_FN
    local f p
    f="$(js "$1")"
    p="$($2)"
    echo "$1: rtctl $f, psql $p"
    ((f > 0 && f - p <= TOL && p - f <= TOL))
}
rt_wait_until 30 "retained_wal_bytes to match psql" close retained_wal_bytes pg_retained
rt_wait_until 30 "source_lag_bytes to match psql" close source_lag_bytes pg_lag
peak="$(js retained_wal_bytes)"
((peak > LIMIT)) || rt_fail "the slot retains only $peak bytes of WAL with a full outbox"
metric_close() {
    local f p
    f="$(metric "$H_PUB" rt_publisher_slot_retained_wal_bytes)"
    p="$(pg_retained)"
    ((f - p <= TOL && p - f <= TOL))
}
rt_wait_until 30 "rt_publisher_slot_retained_wal_bytes to match psql" metric_close
(($(js source_lag_bytes) <= $(js retained_wal_bytes) + TOL)) ||
    rt_fail "source lag $(js source_lag_bytes) above retained WAL $(js retained_wal_bytes)"
"${CTL[@]}" status | grep '^  slot: '
echo "peak retained WAL: $peak bytes"

echo "== r2 stopped and forgotten: the capture resumes and the retained WAL falls"
rt_stop_daemon r2 || rt_fail "r2 exited non-zero on SIGTERM"
"${CTL[@]}" forget r2 --force
rt_wait_until 60 "the capture streaming again" capture_is streaming
rt_wait_converged 60 source r1
# A logical slot's restart_lsn moves at the source's next running-transactions record,
# which a checkpoint writes.
rt_psql source -c "CHECKPOINT" -c "INSERT INTO t VALUES (3, 'after the block')"
falls() {
    local f
    f="$(js retained_wal_bytes)"
    ((f >= 0 && f < peak / 2)) && (($(metric "$H_PUB" rt_publisher_slot_retained_wal_bytes) < peak / 2))
}
rt_wait_until 60 "the retained WAL to fall below half its peak" falls
rt_wait_until 30 "retained_wal_bytes to match psql" close retained_wal_bytes pg_retained
echo "retained WAL after the block: $(js retained_wal_bytes) bytes"

echo "== the source stopped: unknown; started again: measured again"
rt_pg_stop source
unknown() {
    (($(js retained_wal_bytes) == -1 && $(js source_lag_bytes) == -1 && $(js source_lag_ms) == -1))
}
rt_wait_until 30 "the figures unknown in rtctl status --json" unknown
"${CTL[@]}" status >"$RT_TMP/status-down.txt"
grep -qx '  slot: retained WAL -, source lag -, -' "$RT_TMP/status-down.txt" ||
    rt_fail "rtctl status with the source down: $(grep slot: "$RT_TMP/status-down.txt")"
metric "$H_PUB" rt_publisher_outbox_limit_bytes >/dev/null || rt_fail "no /metrics with the source down"
grep -q '^# TYPE rt_publisher_slot_retained_wal_bytes gauge$' "$RT_TMP/metrics.txt" ||
    rt_fail "rt_publisher_slot_retained_wal_bytes is not declared with the source down"
if grep -qE '^rt_publisher_(slot_retained_wal_bytes|source_lag_bytes|source_lag_seconds) ' "$RT_TMP/metrics.txt"; then
    rt_fail "/metrics has samples of unknown figures: $(grep -E '^rt_publisher_(slot|source_lag)' "$RT_TMP/metrics.txt")"
fi
rt_pg_restart source
rt_wait_until 60 "the figures measured again" known
rt_psql source -c "INSERT INTO t VALUES (4, 'after the restart')"
rt_wait_converged 60 source r1

rt_stop_clean r1 pub
echo "slot stats: ok"
