#!/usr/bin/env bash
# tests/integration/scale_subs.sh - one publisher and RT_SCALE_SUBS (default 20) simulated
# subscribers (rt_simsub: the subscriber's protocol, acknowledging without a database)
# while 3,000 multi-row transactions on two tables run, and 3 more started halfway
# through, which catch up through FETCH. Every one must acknowledge the publisher's last
# seq with no gap, duplicate, disorder or error, and the publisher's status must list
# each at that seq. Prints the publisher's CPU per record per subscriber, its peak
# memory and the lag (commit on the source to acknowledgeable) at the slowest subscriber.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

N="${RT_SCALE_SUBS:-20}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || rt_fail "RT_SCALE_SUBS must be a positive integer, not '$N'"
LATE=3
TX=3000 # in two halves; the late subscribers start between them

rt_pg_start source
rt_psql source -c "CREATE TABLE a (id bigint PRIMARY KEY, v text)" \
    -c "CREATE TABLE b (id bigint PRIMARY KEY, a_id bigint, n int)"
# Explicit keys (no sequence): the records are the transactions' alone, so the head stays
# where the workload left it.
cat >"$RT_TMP/tx.sql" <<'EOF'
\set k random(1, 4000000000000000000)
BEGIN;
INSERT INTO a VALUES (:k, md5(:k::text)), (:k + 1, 'one'), (:k + 2, 'two');
INSERT INTO b VALUES (:k, :k, 1), (:k + 1, :k, 2);
UPDATE a SET v = 'updated' WHERE id = :k + 1;
END;
EOF
workload() { # TRANSACTIONS
    "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -f "$RT_TMP/tx.sql" \
        -c 2 -j 2 -t $(($1 / 2)) postgres
}

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP"

names=()
start_sims() { # FIRST LAST
    local i name
    for ((i = $1; i <= $2; i++)); do
        printf -v name 'sim%03d' "$i"
        names+=("$name")
        rt_start_bg "$name" "$RT_TMP/$name.log" "$RT_BIN/rt_simsub" --name "$name" --seconds 600 \
            "$ROUTER"
    done
}
ready_count() { # NAME...: how many logged their ready: line
    local n=0 name
    for name in "$@"; do
        grep -q ' ready:' "$RT_TMP/$name.log" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}
all_ready() {
    [[ "$(ready_count "${names[@]}")" == "${#names[@]}" ]]
}

echo "== $N simulated subscribers"
start_sims 1 "$N"
rt_wait_until 120 "$N simulated subscribers to be ready" all_ready
pub_cpu() { # utime+stime of the publisher, in clock ticks
    local s
    s="$(cat "/proc/$PUB_PID/stat")"
    s="${s##*) }"
    read -r -a f <<<"$s"
    echo $((f[11] + f[12]))
}
cpu0="$(pub_cpu)"

echo "== $TX transactions (3 inserts into a, 2 into b, an update each); $LATE subscribers join halfway"
workload $((TX / 2)) | grep -E '^(tps|number of transactions actually)'
start_sims $((N + 1)) $((N + LATE))
workload $((TX / 2)) | grep -E '^(tps|number of transactions actually)'
t_end="$(rt__now_ms)"
lsn="$(rt_psql source -c 'SELECT pg_current_wal_lsn()')"
stored() { # the publisher stored (and confirmed) everything written
    [[ "$(rt_psql source -c "SELECT confirmed_flush_lsn >= '$lsn' FROM pg_replication_slots WHERE slot_name = 'rt_src'")" == t ]]
}
rt_wait_until 60 "the publisher to store every transaction" stored

# The publisher's view: every subscriber listed at the head.
STATUS=""
HEAD=""
all_acked() {
    local name acked
    STATUS="$(rt_status_json "$ROUTER" 2>/dev/null)" || return 1
    HEAD="$(rt_json_num "$STATUS" head_seq)" || return 1
    ((HEAD > 0)) || return 1
    for name in "${names[@]}"; do
        acked="$(rt_json_sub_acked "$STATUS" "$name")" || return 1
        [[ "$acked" == "$HEAD" ]] || return 1
    done
}
acked=1
rt_wait_until 120 "every subscriber to acknowledge the head in the publisher's status" all_acked || acked=0
t_acked="$(rt__now_ms)"
cpu1="$(pub_cpu)"
hwm="$(rt_vmhwm_kb pub)"
if ((acked == 1)); then
    echo "publisher head seq $HEAD; every subscriber acknowledged it $((t_acked - t_end)) ms after the workload ended"
else
    for name in "${names[@]}"; do
        echo "$name acked $(rt_json_sub_acked "$STATUS" "$name" || echo '(not listed)') of head ${HEAD:-?}" >&2
    done
fi

# Each simulated subscriber's own account, after SIGTERM (also when the wait failed).
fails=0
max_p99=0
max_p99_name=""
for name in "${names[@]}"; do
    rc=0
    rt_stop_daemon "$name" || rc=$?
    line="$(grep "^simsub $name records=" "$RT_TMP/$name.log" || true)"
    echo "$line (exit $rc)"
    if [[ -z "$line" || "$rc" != 0 ]]; then
        echo "FAIL: $name exited with status $rc" >&2
        fails=$((fails + 1))
        continue
    fi
    declare -A v=()
    for kv in ${line#simsub "$name" }; do
        v[${kv%%=*}]="${kv#*=}"
    done
    for k in gaps dups back mismatch order errors; do
        [[ "${v[$k]}" == 0 ]] || { echo "FAIL: $name $k=${v[$k]}" >&2; fails=$((fails + 1)); }
    done
    if [[ "${v[last_seq]}" != "$HEAD" || "${v[first_seq]}" != 1 || "${v[records]}" != "$HEAD" ]]; then
        echo "FAIL: $name acknowledged ${v[first_seq]}..${v[last_seq]} (${v[records]} records), not 1..$HEAD" >&2
        fails=$((fails + 1))
    fi
    if [[ "$name" > "$(printf 'sim%03d' "$N")" ]]; then
        ((v[fetches] > 0)) || { echo "FAIL: $name joined late but sent no FETCH" >&2; fails=$((fails + 1)); }
    elif awk -v a="${v[p99_ms]}" -v b="$max_p99" 'BEGIN { exit !(a > b) }'; then
        max_p99="${v[p99_ms]}"
        max_p99_name="$name"
    fi
    unset v
done
((acked == 1)) || rt_fail "not every subscriber acknowledged the publisher's head"
((fails == 0)) || rt_fail "$fails check(s) of the simulated subscribers failed"

# The publisher's view once they stopped: the same head, each at it.
all_acked || rt_fail "after the subscribers stopped, the publisher's status disagrees (head ${HEAD:-?})"
subs=$((N + LATE))
echo "publisher: $(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }') CPU s" \
    "for $HEAD records to $subs subscribers =" \
    "$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v r="$HEAD" -v s="$subs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r / s }')" \
    "us per record per subscriber; peak RSS (VmHWM) $hwm kB"
echo "slowest of the $N subscribers present from the start: p99 lag $max_p99 ms ($max_p99_name)"
rt_stop_clean pub
if grep -E 'ERROR|AddressSanitizer|runtime error' "$RT_TMP"/*.log; then
    rt_fail "errors in the logs"
fi
echo "scale subs: ok"
