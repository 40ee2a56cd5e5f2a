# tests/fault/fault_lib.bash - the shared workload, daemons and checks of the fault scenarios.
#
# Sourced by tests/fault/<scenario>.sh after `set -euo pipefail`; sources
# tests/lib/cluster.sh and calls rt_setup. The workload is non-idempotent (see
# sql/schema.sql): any lost or doubled transaction shows in fault_check.
#
#   fault_clusters source replica1 ...   clusters with the counter schema
#   fault_tpcb source replica1 ...       optional pgbench tpcb-like tables (same data)
#   fault_curve NAME...                  key pairs: later daemons speak CURVE
#   fault_start_pub [FLAG...]            rt-publisher "pub" (ROUTER $ROUTER, PUB $PUBEP)
#   fault_start_sub NAME [FLAG...]       rt-subscriber NAME into cluster NAME
#   fault_load_start [RATE] [CLIENTS]    the workload in the background (label "load")
#   fault_load_stop                      ends it (bounded) and prints what it did
#   fault_check MIN source replica1 ...  converged, counters equal and consistent
#   fault_stop_all LABEL...              SIGTERM, each must exit 0
# Settings read: FAULT_HOST (address the publisher binds, default 127.0.0.1),
# FAULT_PAD (bytes of each log row, default 100), FAULT_TPCB (1: mix the tpcb-like
# transaction into the load; set by fault_tpcb), RT_FAULT_LOG_LEVEL (the daemons'
# --log-level, default info; debug to investigate a failure, with RT_KEEP=1).

# shellcheck source=../lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

FAULT_SQL="$RT_SRC/tests/fault/sql"
FAULT_T0="$(rt__now_ms)"
FAULT_HOST="${FAULT_HOST:-127.0.0.1}"
FAULT_PAD="${FAULT_PAD:-100}"
FAULT_TPCB="${FAULT_TPCB:-0}"
[[ -x "$RT_BIN/rt-publisher" && -x "$RT_BIN/rt-subscriber" ]] ||
    rt_fail "RT_BIN=$RT_BIN has no rt-publisher or rt-subscriber"

# fault_log MSG...
# Prints MSG with the seconds since the scenario began.
fault_log() {
    local ms=$(($(rt__now_ms) - FAULT_T0))
    printf -- '-- %4d.%01ds %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

# fault_asan
# True when RT_BIN is a sanitizer build (memory bounds are then relaxed).
fault_asan() {
    rt_sanitized
}

# fault_scale NORMAL SANITIZED
# Prints a scenario's default scale: NORMAL, or SANITIZED in a sanitizer build, where
# the same paths run again at a smaller scale to keep the suite's time bounded.
fault_scale() {
    if fault_asan; then echo "$2"; else echo "$1"; fi
}

# fault_clusters NAME... [-- CONF_LINE...]
# Starts each cluster with the CONF_LINEs and creates the counter schema in it; the
# first one is the source and also gets the log_id sequence.
fault_clusters() {
    local names=() conf=() c
    while (($#)) && [[ "$1" != "--" ]]; do
        names+=("$1")
        shift
    done
    (($#)) && shift
    conf=("$@")
    for c in "${names[@]}"; do
        rt_pg_start "$c" "${conf[@]}"
        rt_psql "$c" -f "$FAULT_SQL/schema.sql"
    done
    rt_psql "${names[0]}" -c "CREATE SEQUENCE log_id"
}

# fault_tpcb NAME...
# Creates pgbench's tpcb-like tables (scale 1) with the same rows in every cluster,
# before the publisher starts; the load then mixes in tpcb-like transactions.
fault_tpcb() {
    local c port
    for c in "$@"; do
        port="${RT__PG_PORT[$c]}"
        "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 -q -I dtGp postgres \
            >"$RT_TMP/pgbench-init.$c.log" 2>&1 ||
            { cat "$RT_TMP/pgbench-init.$c.log" >&2; rt_fail "pgbench -i on $c failed"; }
    done
    FAULT_TPCB=1
}

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"

# fault_endpoints
# Sets ROUTER and PUBEP (what the publisher binds, what subscribers connect to) from
# FAULT_HOST and the ports chosen above. FAULT_HOST='*' binds every interface; the
# subscribers then connect to 127.0.0.1.
fault_endpoints() {
    PUB_LISTEN="tcp://$FAULT_HOST:$P_ROUTER"
    PUBEP="tcp://$FAULT_HOST:$P_PUB"
    ROUTER="tcp://${FAULT_HOST/#\*/127.0.0.1}:$P_ROUTER"
}
fault_endpoints

# fault_curve NAME...
# Makes CURVE key pairs for the publisher ("pub"), for each subscriber NAME and for
# rtctl ("ops", an admin), allowed by the publisher (RT_TMP/keys): every later
# fault_start_pub, fault_start_sub and fault_ctl speaks CURVE.
fault_curve() {
    local k="$RT_TMP/keys" n
    mkdir -p "$k/allow" "$k/admin"
    for n in pub ops "$@"; do
        "$RT_BIN/rtctl" keygen "$n" --dir "$k" >/dev/null || rt_fail "rtctl keygen $n failed"
        [[ "$n" == pub ]] || cp "$k/$n.cert" "$k/allow/"
    done
    cp "$k/ops.cert" "$k/admin/"
    FAULT_KEYS="$k"
}

# fault_ctl ARGS...
# rtctl against the publisher (with the "ops" key after fault_curve).
fault_ctl() {
    if [[ -n "${FAULT_KEYS:-}" ]]; then
        "$RT_BIN/rtctl" --publisher "$ROUTER" --cert "$FAULT_KEYS/ops.cert_secret" \
            --publisher-key "$FAULT_KEYS/pub.cert" "$@"
    else
        "$RT_BIN/rtctl" --publisher "$ROUTER" "$@"
    fi
}

# fault_start_pub [FLAG...]
# Starts rt-publisher "pub" on the first cluster (source "src", outbox RT_TMP/outbox).
fault_start_pub() {
    local curve=()
    [[ -z "${FAULT_KEYS:-}" ]] ||
        curve=(--cert "$FAULT_KEYS/pub.cert_secret" --allow "$FAULT_KEYS/allow" --admin "$FAULT_KEYS/admin")
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$PUB_LISTEN" --pub "$PUBEP" --log-level "${RT_FAULT_LOG_LEVEL:-info}" "${curve[@]}" "$@"
}

# fault_start_sub NAME [FLAG...]
# Starts rt-subscriber NAME applying into cluster NAME (label and log RT_TMP/NAME.log).
# FLAGs are appended (e.g. --pub). Variables set for the call change the rest:
# SUB_ROUTER (the --publisher endpoint, default $ROUTER), SUB_TARGET (the replica DSN)
# and SUB_PREFIX (a command prefix, e.g. a namespace's nsenter, keeping the pid).
fault_start_sub() {
    local name="$1" dsn curve=()
    shift
    dsn="$(rt__var "$name")_DSN"
    [[ -z "${FAULT_KEYS:-}" ]] ||
        curve=(--cert "$FAULT_KEYS/$name.cert_secret" --publisher-key "$FAULT_KEYS/pub.cert")
    # shellcheck disable=SC2086
    rt_start_daemon "$name" "$RT_TMP/$name.log" ${SUB_PREFIX:-} "$RT_BIN/rt-subscriber" \
        --publisher "${SUB_ROUTER:-$ROUTER}" --target "${SUB_TARGET:-${!dsn}}" --name "$name" --log-level "${RT_FAULT_LOG_LEVEL:-info}" "${curve[@]}" "$@"
}

# fault_wait_caught_up TIMEOUT_S REPLICA...
# Waits until each REPLICA's counter reaches the source's counter as read now (the
# workload may go on meanwhile).
fault_wait_caught_up() {
    local timeout="$1" target r
    shift
    target="$(rt_psql source -c 'SELECT n FROM counter WHERE id = 1')"
    for r in "$@"; do
        rt_wait_until "$timeout" "$r to reach counter $target" fault__reached "$r" "$target" || {
            fault_report_daemons
            rt_fail "$r did not catch up (counter $(fault__counter "$r"), source had $target)"
        }
    done
}
# fault_report_daemons
# Prints to stderr which daemons run and which exited (with their status).
fault_report_daemons() {
    local label rc
    for label in "${RT__PROC_ORDER[@]}"; do
        if rt_daemon_alive "$label"; then
            echo "daemon $label: running" >&2
        else
            rc=0
            wait "${RT__PROC_PID[$label]}" 2>/dev/null || rc=$?
            echo "daemon $label: exited (status $rc)" >&2
        fi
    done
    if rt_daemon_alive pub; then
        echo "publisher status:" >&2
        fault_ctl --timeout 3000 status >&2 || true
    fi
}
fault__counter() {
    rt_psql "$1" -c 'SELECT n FROM counter WHERE id = 1' 2>/dev/null || echo "?"
}
fault__reached() {
    local v
    v="$(fault__counter "$1")"
    [[ "$v" =~ ^[0-9]+$ ]] && ((v >= $2))
}

# fault__load_loop RATE CLIENTS (internal; run in the background by fault_load_start)
# Runs pgbench in 2-second slices until RT_TMP/load.stop exists. A slice that fails
# (the source restarting) is retried: the source's committed rows are the truth.
fault__load_loop() {
    local rate="$1" clients="$2" args=()
    args=(-h 127.0.0.1 -p "$SOURCE_PORT" -U postgres -n -c "$clients" -j "$(((clients + 1) / 2))"
        -T 2 -D "pad=$FAULT_PAD")
    ((rate > 0)) && args+=(-R "$rate")
    if [[ "$FAULT_TPCB" == 1 ]]; then
        args+=(-f "$FAULT_SQL/tx.sql@3" -b tpcb-like@1)
    else
        args+=(-f "$FAULT_SQL/tx.sql")
    fi
    while [[ ! -e "$RT_TMP/load.stop" ]]; do
        if ! "$RT_PG_BIN/pgbench" "${args[@]}" postgres; then
            echo "load: pgbench slice failed"
            sleep 0.3
        fi
    done
    echo "load: stopped"
}

# fault_load_start [RATE] [CLIENTS]
# Starts the workload (RATE transactions/s in all, 0 = unlimited; default 300; CLIENTS
# default 4) in the background as label "load", log RT_TMP/load.log.
fault_load_start() {
    rm -f "$RT_TMP/load.stop"
    rt_start_bg load "$RT_TMP/load.log" fault__load_loop "${1:-300}" "${2:-4}"
}

# fault_gone LABEL
# True when the daemon or background job LABEL is not running.
fault_gone() {
    ! rt_daemon_alive "$1"
}

# fault_rand LO HI
# Prints a number in LO..HI from bash's RANDOM (seed it with RANDOM=SEED).
fault_rand() {
    echo $(($1 + RANDOM % ($2 - $1 + 1)))
}

# fault_alive_or_fail LABEL...
# Fails (with the daemon's log tail) if a daemon that should run has exited.
fault_alive_or_fail() {
    local d rc
    for d in "$@"; do
        if ! rt_daemon_alive "$d"; then
            rc=0
            wait "${RT__PROC_PID[$d]}" 2>/dev/null || rc=$?
            rt_fail "$d exited on its own (status $rc)"
        fi
    done
}

# fault_load_stop
# Asks the workload to stop and waits for it (at most 20 s, then SIGKILL); prints the
# number of transactions pgbench reported as processed and the slices that failed.
fault_load_stop() {
    touch "$RT_TMP/load.stop"
    rt_wait_until 20 "the workload to stop" fault_gone load || {
        rt_kill9 load
        rt_fail "the workload did not stop within 20 s"
    }
    wait "$LOAD_PID" 2>/dev/null || true
    local txns failed
    txns="$(awk '/actually processed:/ {split($NF, a, "/"); s += a[1]} END {print s + 0}' \
        "$RT_TMP/load.log")"
    failed="$(grep -c 'slice failed' "$RT_TMP/load.log" || true)"
    fault_log "workload stopped: $txns transactions reported by pgbench, $failed failed slices"
}

# fault_counters NAME
# Prints cluster NAME's counter invariant "n|count|distinct|max".
fault_counters() {
    rt_psql "$1" -f "$FAULT_SQL/check.sql"
}

# fault_check TIMEOUT_S MIN SOURCE REPLICA...
# Waits (at most TIMEOUT_S) for every replica's checksums to equal the source's, then
# checks the counter invariant on the source (n = count = distinct = max >= MIN) and
# that every replica has the same values; with tpcb tables, that the balances add up.
fault_check() {
    local timeout="$1" min="$2" src="$3" r s v n cnt distinct max a b t d h
    shift 3
    rt_wait_converged "$timeout" "$src" "$@" || {
        fault_report_daemons
        rt_fail "replicas did not converge"
    }
    s="$(fault_counters "$src")"
    IFS='|' read -r n cnt distinct max <<<"$s"
    [[ "$n" == "$cnt" && "$cnt" == "$distinct" && "$distinct" == "$max" ]] ||
        rt_fail "source counter/log inconsistent: $s"
    ((n >= min)) || rt_fail "only $n transactions on the source, expected at least $min"
    for r in "$@"; do
        v="$(fault_counters "$r")"
        [[ "$v" == "$s" ]] || rt_fail "$r: counter/log $v differ from the source's $s"
    done
    if [[ "$FAULT_TPCB" == 1 ]]; then
        local q="SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)"
        s="$(rt_psql "$src" -c "$q")"
        IFS='|' read -r a b t d h <<<"$s"
        [[ "$a" == "$b" && "$b" == "$t" && "$t" == "$d" ]] || rt_fail "source tpcb balances inconsistent: $s"
        for r in "$@"; do
            v="$(rt_psql "$r" -c "$q")"
            [[ "$v" == "$s" ]] || rt_fail "$r: tpcb balances $v differ from the source's $s"
        done
        fault_log "tpcb-like: $h history rows, balances add up ($a) on the source and every replica"
    fi
    fault_log "counter = log rows = $n on the source and on $* (no transaction lost or doubled)"
}

# fault_stop_all LABEL...
# Stops each daemon with SIGTERM; fails unless each exits with status 0.
fault_stop_all() {
    local d
    for d in "$@"; do
        rt_stop_daemon "$d" || rt_fail "$d exited non-zero on SIGTERM"
    done
}

# fault_mib KB
# Prints KB as MiB with one decimal.
fault_mib() {
    awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'
}

# fault_big_start
# Clusters source and replica1 (max_wal_size 4GB) with the counter schema and a table
# big (id bigint PRIMARY KEY, grp int, t text), the publisher and replica1's subscriber.
fault_big_start() {
    local c
    fault_clusters source replica1 -- "max_wal_size = 4GB"
    for c in source replica1; do
        rt_psql "$c" -c "CREATE TABLE big (id bigint PRIMARY KEY, grp int NOT NULL, t text NOT NULL)"
    done
    fault_start_pub
    fault_start_sub replica1
}

# fault_big_sql ROWS
# Prints one source transaction: +1 on the counter, a log row, and ROWS rows into big.
# The counter update is in the same transaction: applied twice or partly, it shows.
fault_big_sql() {
    echo "BEGIN;
UPDATE counter SET n = n + 1 WHERE id = 1;
INSERT INTO log SELECT nextval('log_id'), n, 'big' FROM counter WHERE id = 1;
INSERT INTO big SELECT g, g % 1000, md5(g::text) || repeat('t', g % 64) FROM generate_series(1, $1) g;
COMMIT;"
}

# fault_open_chunks
# True when the outbox holds records above head_seq: stored chunks of a transaction
# whose last chunk is not stored yet (rtctl status: records > head_seq - first_seq + 1).
fault_open_chunks() {
    local js first head records
    js="$(rt_status_json "$ROUTER" 2>/dev/null)" || return 1
    first="$(rt_json_num "$js" first_seq)" && head="$(rt_json_num "$js" head_seq)" &&
        records="$(rt_json_num "$js" records)" || return 1
    ((records > head - first + 1))
}

# fault_start_tpcb RATE [PUB_FLAG...]
# Clusters source, replica1 and replica2 with the counter and tpcb-like schemas, the
# publisher (PUB_FLAGs appended), both subscribers, and the workload at RATE
# transactions/s (4 clients).
fault_start_tpcb() {
    local rate="$1"
    shift
    fault_clusters source replica1 replica2
    fault_tpcb source replica1 replica2
    fault_start_pub "$@"
    fault_start_sub replica1
    fault_start_sub replica2
    fault_load_start "$rate" 4
}
