#!/usr/bin/env bash
# bench/run.sh - rt against PostgreSQL's native logical replication, same machine, same run.
#
# One command: builds Release into build-bench (incremental), then runs the cases
# (bulk, small, backlog, tpcb, latency with one replica; fan-out bulk and small with
# three; fan-out small with ten; memory during bulk; scale: one source feeding
# RT_BENCH_SCALE_SUBS subscribers that acknowledge without a database, rt_simsub against
# pg_recvlogical) RT_BENCH_ROUNDS times. Each round starts fresh
# PostgreSQL clusters on loopback with the same settings for both replicators and
# runs every case once per replicator, alternated case by case (round 1 native then
# rt, round 2 rt then native, ...), recording the 1-minute load average at the start
# and end of each. Ends with a per-round table and one summary table: each
# replicator's median over the rounds, the median rt/native of the per-round ratios
# and their spread (min..max).
#
# Settings (environment): RT_BENCH_ROUNDS (default 2; 1 with RT_BENCH_QUICK=1),
# RT_BENCH_QUICK=1 (smaller workloads, for development), RT_BENCH_LOAD=1 (a fixed
# CPU and disk load beside the whole run), RT_BENCH_TIMEOUT (bound of the whole run
# after the build, seconds, default 900 per round), RT_BENCH_BUILD (build directory,
# default <repo>/build-bench), RT_BENCH_NO_BUILD=1 (use the binaries as they are),
# RT_BENCH_ONLY=rt|native (one replicator), RT_BENCH_CASES (the cases to run, out of
# "bulk small backlog tpcb latency fo_bulk fo_small fo10 scale"; default all but fo10 and scale),
# RT_BENCH_SCALE_SUBS (subscribers of the scale case, default 100; 20 with
# RT_BENCH_QUICK=1), RT_BENCH_SCALE_RELAYS (rt's scale case with its subscribers behind
# this many rt-relays, spread evenly; default 0: all on the publisher),
# RT_BENCH_NATIVE_STREAMING=on (native subscriptions with streaming = on; default
# off, PostgreSQL's default), RT_BENCH_PERF=1 (a system-wide perf profile of each
# case, summarised after it), RT_BENCH_POLL (replica poll interval, seconds, default
# 0.05), RT_BENCH_PUB_TCP=1 / RT_BENCH_SUB_TCP=1 (rt's publisher / subscribers connect
# to their server through TCP on loopback instead of its Unix socket), RT_KEEP=1 (keep
# the temporary directory with every log and profile).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RT_SRC="$(cd "$BENCH_DIR/.." && pwd)"
RT_BIN="${RT_BENCH_BUILD:-$RT_SRC/build-bench}"
export RT_SRC RT_BIN

QUICK="${RT_BENCH_QUICK:-0}"
ROUNDS="${RT_BENCH_ROUNDS:-$([[ "$QUICK" == 1 ]] && echo 1 || echo 2)}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: RT_BENCH_ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 1; }
RUN_TIMEOUT="${RT_BENCH_TIMEOUT:-$((900 * ROUNDS))}"
[[ "${RT_BENCH_ONLY:-rt}" == rt || "${RT_BENCH_ONLY:-}" == native ]] ||
    { echo "FAIL: RT_BENCH_ONLY must be rt or native, not '$RT_BENCH_ONLY'" >&2; exit 1; }

if [[ -z "${RT_BENCH_INNER:-}" ]]; then
    if [[ "${RT_BENCH_NO_BUILD:-0}" != 1 ]]; then
        echo "==> building Release into $RT_BIN"
        build() {
            timeout 60 cmake -S "$RT_SRC" -B "$RT_BIN" -DCMAKE_BUILD_TYPE=Release "$@" >"$RT_BIN/bench-build.log" 2>&1 &&
                timeout 900 cmake --build "$RT_BIN" -j"$(nproc)" --target rt-publisher rt-subscriber rtctl rt_simsub rt-relay rt_hoplat \
                    >>"$RT_BIN/bench-build.log" 2>&1
        }
        mkdir -p "$RT_BIN"
        export RT_BENCH_CFLAGS="-O3 -DNDEBUG (CMake Release)"
        if ! build -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG"; then
            grep -E 'error' "$RT_BIN/bench-build.log" | head -n 5 >&2 || true
            echo "NOTE: the Release build (-O3) failed (above); retrying with -O2 -DNDEBUG" >&2
            export RT_BENCH_CFLAGS="-O2 -DNDEBUG (Release failed at -O3)"
            if ! build -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG"; then
                tail -n 30 "$RT_BIN/bench-build.log" >&2
                echo "FAIL: build failed (log: $RT_BIN/bench-build.log)" >&2
                exit 1
            fi
        fi
    fi
    export RT_BENCH_INNER=1
    exec timeout --foreground "$RUN_TIMEOUT" bash "${BASH_SOURCE[0]}" "$@"
fi

progs=(rt-publisher rt-subscriber rtctl)
[[ " ${RT_BENCH_CASES:-} " != *" scale "* ]] || progs+=(rt_simsub rt-relay)
[[ -n "${RT_BENCH_CASES:-}" && " $RT_BENCH_CASES " != *" latency "* ]] || progs+=(rt_hoplat)
for prog in "${progs[@]}"; do
    [[ -x "$RT_BIN/$prog" ]] || { echo "FAIL: $RT_BIN/$prog is missing" >&2; exit 1; }
done

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
B_T_START="$(b_now_ms)"
SQL="$BENCH_DIR/sql"

# The workloads; RT_BENCH_QUICK=1 makes them smaller, for development.
if [[ "$QUICK" == 1 ]]; then
    BULK_ROWS=200000
    SMALL_TX=8000     # 4 clients x 2000
    BACKLOG_TX=20000  # 4 clients x 5000
    TPCB_SECONDS=5
    LAT_SECONDS=3
    SCALE_SUBS="${RT_BENCH_SCALE_SUBS:-20}"
    SCALE_TX=2000 # 4 clients x 500
else
    # Sized so that the default 2 rounds take under 15 minutes on a shared 2-core machine.
    BULK_ROWS=500000
    SMALL_TX=20000    # 4 clients x 5000
    BACKLOG_TX=100000 # 4 clients x 25000: a drain of many 50-ms polls
    TPCB_SECONDS=15
    LAT_SECONDS=10
    SCALE_SUBS="${RT_BENCH_SCALE_SUBS:-100}"
    SCALE_TX=10000 # 4 clients x 2500
fi
[[ "$SCALE_SUBS" =~ ^[1-9][0-9]*$ ]] ||
    { echo "FAIL: RT_BENCH_SCALE_SUBS must be a positive integer, not '$SCALE_SUBS'" >&2; exit 1; }
SCALE_RELAYS="${RT_BENCH_SCALE_RELAYS:-0}"
[[ "$SCALE_RELAYS" =~ ^[0-9]+$ ]] && ((SCALE_RELAYS <= SCALE_SUBS)) ||
    { echo "FAIL: RT_BENCH_SCALE_RELAYS must be 0..$SCALE_SUBS, not '$SCALE_RELAYS'" >&2; exit 1; }
LAT_RATE=500
SINGLE_CASES=(bulk small backlog tpcb latency)
FANOUT_CASES=(fo_bulk fo_small)
FO10_CASES=(fo10)
SCALE_CASES=(scale)

# The same settings for both replicators. Every cluster keeps the default
# durability (fsync on, synchronous_commit on). Both replicators' apply sessions
# commit with synchronous_commit off on their own: native apply workers by default
# (the subscription's synchronous_commit = off), rt's subscriber always (what it
# acknowledges is what it had the replica flush: schemas/protocol.md, ACK).
PG_COMMON=(
    "max_wal_senders = 10"
    "max_replication_slots = 10"
    "max_worker_processes = 16"
    "max_logical_replication_workers = 8"
    "wal_sender_timeout = 60s"
)
# More on the sources of the sets that need them (run_sets sets SRC_CONF): ten
# subscriptions for fo10; a slot, a WAL sender and a connection per subscriber for scale.
SRC_CONF=()

echo "==> rt vs native logical replication; working directory $RT_TMP (RT_KEEP=1 keeps it)"
echo "    machine: $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "$("$RT_PG_BIN/postgres" --version); rt build: ${RT_BENCH_CFLAGS:-as found} in $RT_BIN"
echo "    load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine make the figures noisy)"
echo "    sources: fsync = on, synchronous_commit = on (defaults); replicas: synchronous_commit = off" \
    "(postgresql.conf, both replicators); native: copy_data = false," \
    "streaming = ${RT_BENCH_NATIVE_STREAMING:-off} (defaults otherwise); rt's publisher: streaming (protocol 2);" \
    "rt's sockets: $([[ "${RT_BENCH_CURVE:-0}" == 1 ]] && echo CURVE || echo plaintext);" \
    "as deployed, rt-publisher reads the source $([[ "${RT_BENCH_PUB_TCP:-0}" == 1 ]] &&
        echo "through TCP on loopback (RT_BENCH_PUB_TCP=1)" || echo "through its Unix socket")," \
    "rt-subscriber writes to its replica $([[ "${RT_BENCH_SUB_TCP:-0}" == 1 ]] &&
        echo "through TCP on loopback (RT_BENCH_SUB_TCP=1)" || echo "through the replica's Unix socket");" \
    "native subscriptions through TCP"
echo "    $([[ "$QUICK" == 1 ]] && echo "quick mode (RT_BENCH_QUICK=1)" || echo "full size"):" \
    "bulk $BULK_ROWS rows; small $SMALL_TX transactions; backlog $BACKLOG_TX; tpcb $TPCB_SECONDS s;" \
    "latency $LAT_RATE tx/s for $LAT_SECONDS s; fo10 $SMALL_TX transactions to 10 replicas;" \
    "scale $SCALE_TX transactions to $SCALE_SUBS subscribers; run bounded by $RUN_TIMEOUT s"
echo "    $ROUNDS round(s), each with fresh clusters; the replicators alternate case by case," \
    "round 1 native first, round 2 rt first, and so on; figures: median over the rounds;" \
    "rt/native: median of the per-round ratios, spread min..max"
if [[ "${RT_BENCH_LOAD:-0}" == 1 ]]; then
    echo "    background load ON (RT_BENCH_LOAD=1) for the whole run: $(b_load_describe)"
else
    echo "    background load: off (RT_BENCH_LOAD=1 adds a fixed CPU and disk load)"
fi

# setup_clusters KIND SOURCE REPLICA...
# Fresh clusters with the benchmark's tables (empty), pgbench's tables on single-replica sets.
setup_clusters() {
    local kind="$1" src="$2" c
    shift 2
    rt_pg_start "$src" "${PG_COMMON[@]}" "${SRC_CONF[@]}"
    for c in "$@"; do
        rt_pg_start "$c" "${PG_COMMON[@]}"
    done
    for c in "$src" "$@"; do
        rt_psql "$c" -f "$SQL/schema.sql"
        if (($# == 1)); then
            # pgbench's tables with their keys and no rows; the source's rows come later, replicated.
            b_pgbench "$c" 60 -q -i -I dtp -s 1 >/dev/null 2>&1
        fi
    done
    for c in "$@"; do
        rt_psql "$c" -f "$SQL/replica.sql"
    done
}

stop_clusters() {
    local c
    for c in "$@"; do
        rt_pg_stop "$c" fast
    done
}

# case_bulk KIND KEY SOURCE REPLICA...
# One transaction of BULK_ROWS rows; end-to-end rows/s until every replica shows the
# row id = BULK_ROWS (each replicator applies the transaction atomically), and the
# CPU of the replication processes on each side, and of the whole machine (every
# process, the source's own backend included: on a machine of few cores what bounds
# the end-to-end time).
case_bulk() {
    local kind="$1" key="$2" src="$3" t0 tc t1 c0 c1 w0 w1 d0 d1 m0 m1
    local -a pids wss rpids
    shift 3
    mapfile -t pids < <(b_source_side_pids "$kind" "$src")
    mapfile -t wss < <(b_walsender_pids "$src")
    mapfile -t rpids < <(b_replica_side_pids "$kind" "$@")
    c0="$(b_cpu_ticks "${pids[@]}")"
    w0="$(b_cpu_ticks "${wss[@]}")"
    d0="$(b_cpu_ticks "${rpids[@]}")"
    m0="$(b_machine_busy_ticks)"
    t0="$(b_now_ms)"
    b_q "$src" "INSERT INTO bench_bulk SELECT g, md5(g::text) FROM generate_series(1, $BULK_ROWS) g"
    tc="$(b_now_ms)"
    # The last row is there once the transaction committed on the replica: one index
    # probe, one row to check, however much of the transaction is applied uncommitted.
    if ! b_poll_all 240 "SELECT count(*) FROM bench_bulk WHERE id = $BULK_ROWS" 1 "$@"; then
        b_fail "$kind $key: the replicas did not get the $BULK_ROWS rows"
        b_set "$key.$kind" "FAIL"
        return 0
    fi
    t1="$B_POLL_MS"
    c1="$(b_cpu_ticks "${pids[@]}")"
    w1="$(b_cpu_ticks "${wss[@]}")"
    d1="$(b_cpu_ticks "${rpids[@]}")"
    m1="$(b_machine_busy_ticks)"
    b_set "$key.$kind" "$(b_div "$BULK_ROWS" "$(b_div $((t1 - t0)) 1000 3)" 0)"
    b_set "$key.cpu.$kind" "$(b_div "$(((c1 - c0) * 1000000))" "$((B_CLK_TCK * BULK_ROWS))" 2)"
    b_set "$key.ws.$kind" "$(b_div "$(((w1 - w0) * 1000000))" "$((B_CLK_TCK * BULK_ROWS))" 2)"
    b_set "$key.rcpu.$kind" "$(b_div "$(((d1 - d0) * 1000000))" "$((B_CLK_TCK * BULK_ROWS * $#))" 2)"
    b_set "$key.mcpu.$kind" "$(b_ticks_to_s $((m1 - m0)))"
    echo "    $kind $key: source commit $((tc - t0)) ms, end to end $((t1 - t0)) ms," \
        "${B_RES[$key.$kind]} rows/s; source-side CPU $(b_ticks_to_s $((c1 - c0))) s" \
        "(pids ${pids[*]}) = ${B_RES[$key.cpu.$kind]} us/row, of which the walsender's" \
        "$(b_ticks_to_s $((w1 - w0))) s (pids ${wss[*]}) = ${B_RES[$key.ws.$kind]} us/row;" \
        "replica-side CPU $(b_ticks_to_s $((d1 - d0))) s (pids ${rpids[*]}) =" \
        "${B_RES[$key.rcpu.$kind]} us/row per replica; the machine's CPUs busy" \
        "${B_RES[$key.mcpu.$kind]} s in all ($(nproc) CPUs, $((t1 - t0)) ms)"
    b_check_same "$kind $key" bench_bulk t "$src" "$@" || b_set "$key.$kind" "FAIL"
}

# case_small KIND KEY SOURCE REPLICA...
# SMALL_TX single-row INSERT transactions from 4 pgbench clients; end-to-end tx/s
# until every replica has them all, and the CPU spent on each side per row (source:
# walsenders and rt-publisher; replica: native's apply workers, or rt-subscriber and
# the backend it applies through).
case_small() {
    local kind="$1" key="$2" src="$3" t0 t1 c0 c1 d0 d1 rc=0 log="$RT_TMP/r${B_ROUND}_pgbench_${2}_$1.log"
    local -a pids rpids
    shift 3
    mapfile -t pids < <(b_source_side_pids "$kind" "$src")
    mapfile -t rpids < <(b_replica_side_pids "$kind" "$@")
    c0="$(b_cpu_ticks "${pids[@]}")"
    d0="$(b_cpu_ticks "${rpids[@]}")"
    t0="$(b_now_ms)"
    b_pgbench_bg "pgbench_${key}_$kind" "$log" "$src" 180 -n -f "$SQL/small.sql" -c 4 -j 2 -t $((SMALL_TX / 4))
    local pv
    pv="$(rt__var "pgbench_${key}_$kind")_PID"
    if ! b_poll_all 180 "SELECT count(*) FROM bench_small" "$SMALL_TX" "$@"; then
        wait "${!pv}" || true
        b_fail "$kind $key: the replicas did not get the $SMALL_TX transactions"
        b_set "$key.$kind" "FAIL"
        return 0
    fi
    t1="$B_POLL_MS"
    c1="$(b_cpu_ticks "${pids[@]}")"
    d1="$(b_cpu_ticks "${rpids[@]}")"
    wait "${!pv}" || rc=$?
    ((rc == 0)) || b_fail "$kind $key: pgbench exited with status $rc"
    b_set "$key.$kind" "$(b_div "$SMALL_TX" "$(b_div $((t1 - t0)) 1000 3)" 0)"
    b_set "$key.cpu.$kind" "$(b_div "$(((c1 - c0) * 1000000))" "$((B_CLK_TCK * SMALL_TX))" 2)"
    b_set "$key.rcpu.$kind" "$(b_div "$(((d1 - d0) * 1000000))" "$((B_CLK_TCK * SMALL_TX * $#))" 2)"
    echo "    $kind $key: source pgbench $(awk '/^tps/ { print $3; exit }' "$log") tx/s;" \
        "end to end $((t1 - t0)) ms, ${B_RES[$key.$kind]} tx/s;" \
        "source-side CPU $(b_ticks_to_s $((c1 - c0))) s = ${B_RES[$key.cpu.$kind]} us/row;" \
        "replica-side CPU $(b_ticks_to_s $((d1 - d0))) s (pids ${rpids[*]}) =" \
        "${B_RES[$key.rcpu.$kind]} us/row per replica"
    b_check_same "$kind $key" bench_small t "$src" "$@" || b_set "$key.$kind" "FAIL"
}

# case_backlog KIND SOURCE REPLICA
# BACKLOG_TX transactions written while replication is paused; drain tx/s from the
# resume until the replica has them all. For rt the publisher keeps capturing into
# its outbox while the subscriber is stopped: the resume waits (bounded) until the
# slot confirmed everything written, so the drain is outbox -> replica.
case_backlog() {
    local kind="$1" src="$2" r="$3" t0 t1 lsn tw
    b_repl_pause "$kind" "$src" "$r"
    b_pgbench "$src" 180 -n -f "$SQL/backlog.sql" -c 4 -j 2 -t $((BACKLOG_TX / 4)) >"$RT_TMP/r${B_ROUND}_pgbench_backlog_$kind.log" 2>&1 ||
        b_fail "$kind backlog: pgbench failed"
    echo "    $kind backlog: written while paused, source pgbench" \
        "$(awk '/^tps/ { print $3; exit }' "$RT_TMP/r${B_ROUND}_pgbench_backlog_$kind.log") tx/s;" \
        "replica has $(b_q "$r" "SELECT count(*) FROM bench_backlog") rows"
    if [[ "$kind" == rt ]]; then
        lsn="$(b_q "$src" "SELECT pg_current_wal_lsn()")"
        tw="$(b_now_ms)"
        if b_poll 60 "$src" "SELECT bool_and(confirmed_flush_lsn >= '$lsn') FROM pg_replication_slots" t; then
            echo "    rt backlog: publisher had captured everything $((B_POLL_MS - tw)) ms after the writes ended"
        else
            echo "    rt backlog: the slot had not confirmed $lsn after 60 s (last: $B_POLL_LAST); resuming anyway"
        fi
    fi
    t0="$(b_now_ms)"
    b_repl_resume "$kind" "$src" "$r"
    if ! b_poll 180 "$r" "SELECT count(*) FROM bench_backlog" "$BACKLOG_TX"; then
        b_fail "$kind backlog: the replica did not get the $BACKLOG_TX transactions (last count $B_POLL_LAST)"
        b_set "backlog.$kind" "FAIL"
        return 0
    fi
    t1="$B_POLL_MS"
    b_set "backlog.$kind" "$(b_div "$BACKLOG_TX" "$(b_div $((t1 - t0)) 1000 3)" 0)"
    echo "    $kind backlog: drained in $((t1 - t0)) ms, ${B_RES[backlog.$kind]} tx/s"
    b_check_same "$kind backlog" bench_backlog t "$src" "$r" || b_set "backlog.$kind" "FAIL"
}

# case_tpcb KIND SOURCE REPLICA
# pgbench's rows loaded on the source (scale 1) and replicated, then tpcb-like for
# TPCB_SECONDS; source TPS, catch-up seconds after the run, balance sums compared.
case_tpcb() {
    local kind="$1" src="$2" r="$3" out tps t0 t1 sums s
    sums="SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '|' || (SELECT sum(bbalance) FROM pgbench_branches)
          || '|' || (SELECT sum(tbalance) FROM pgbench_tellers) || '|' || (SELECT count(*) FROM pgbench_history)"
    b_pgbench "$src" 120 -q -i -I g -s 1 >"$RT_TMP/r${B_ROUND}_pgbench_init_$kind.log" 2>&1 ||
        { cat "$RT_TMP/r${B_ROUND}_pgbench_init_$kind.log"; rt_fail "$kind tpcb: pgbench -i failed"; }
    if ! b_poll 120 "$r" "SELECT count(*) FROM pgbench_accounts" 100000; then
        b_fail "$kind tpcb: the 100000 pgbench accounts did not reach the replica"
        b_set "tpcb.$kind" "FAIL"
        return 0
    fi
    out="$(b_pgbench "$src" $((TPCB_SECONDS + 60)) -n -b tpcb-like -c 4 -j 2 -T "$TPCB_SECONDS" 2>&1)" ||
        { echo "$out"; b_fail "$kind tpcb: pgbench failed"; }
    t0="$(b_now_ms)"
    tps="$(awk '/^tps/ { print $3; exit }' <<<"$out")"
    s="$(b_q "$src" "$sums")"
    b_set "tpcb.$kind" "$(b_div "$tps" 1 0)"
    if b_poll 180 "$r" "$sums" "$s"; then
        t1="$B_POLL_MS"
        b_set "tpcb_catchup.$kind" "$(b_div $((t1 - t0)) 1000 2)"
        b_set "tpcb_sums.$kind" "equal"
    else
        b_set "tpcb_catchup.$kind" "FAIL"
        b_set "tpcb_sums.$kind" "DIFFERENT"
        b_fail "$kind tpcb: balance sums differ after 180 s: source $s, replica $B_POLL_LAST"
    fi
    echo "    $kind tpcb: source $tps TPS ($(grep -E '^number of transactions actually' <<<"$out" | awk '{ print $NF }') tx);" \
        "catch-up ${B_RES[tpcb_catchup.$kind]} s; balances ${B_RES[tpcb_sums.$kind]}" \
        "(accounts|branches|tellers sums|history rows: $s)"
}

# case_latency KIND SOURCE REPLICA
# LAT_RATE single-row transactions a second for LAT_SECONDS; each row carries its
# source write time (clock_timestamp()) and the replica fills its apply time.
case_latency() {
    local kind="$1" src="$2" r="$3" n st
    b_pgbench "$src" $((LAT_SECONDS + 60)) -n -f "$SQL/latency.sql" -c 4 -j 2 -R "$LAT_RATE" -T "$LAT_SECONDS" \
        >"$RT_TMP/r${B_ROUND}_pgbench_latency_$kind.log" 2>&1 || b_fail "$kind latency: pgbench failed"
    n="$(b_q "$src" "SELECT count(*) FROM bench_lat")"
    if ! b_poll 60 "$r" "SELECT count(*) FROM bench_lat" "$n"; then
        b_fail "$kind latency: the replica did not get the $n rows (last count $B_POLL_LAST)"
        b_set "lat_p50.$kind" "FAIL"
        return 0
    fi
    st="$(b_q "$r" "SELECT round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ' ||
                          round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ' ||
                          round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ' ||
                          round(max(ms)::numeric, 2)
                   FROM (SELECT extract(epoch FROM applied - written) * 1000 AS ms FROM bench_lat) s")"
    read -r "B_RES[lat_p50.$kind]" "B_RES[lat_p95.$kind]" "B_RES[lat_p99.$kind]" "B_RES[lat_max.$kind]" <<<"$st"
    echo "    $kind latency: $n rows at $LAT_RATE/s; apply - write ms: p50 ${B_RES[lat_p50.$kind]}" \
        "p95 ${B_RES[lat_p95.$kind]} p99 ${B_RES[lat_p99.$kind]} max ${B_RES[lat_max.$kind]}"
    # Visible: when the replica transaction holding the row committed (replica.sql).
    st="$(b_q "$r" "SELECT count(*) || ' ' || round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ' ||
                          round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2)
                   FROM (SELECT extract(epoch FROM v.visible - l.written) * 1000 AS ms
                         FROM bench_lat l JOIN bench_lat_vis v USING (id)) s")"
    local nvis
    read -r nvis "B_RES[vis_p50.$kind]" "B_RES[vis_p99.$kind]" <<<"$st"
    [[ "$nvis" == "$n" ]] || b_fail "$kind latency: $nvis rows stamped visible of $n"
    echo "    $kind latency: commit - write ms (visible): p50 ${B_RES[vis_p50.$kind]} p99 ${B_RES[vis_p99.$kind]}"
    b_check_same "$kind latency" bench_lat "row(t.id, t.written)" "$src" "$r" || b_set "lat_p50.$kind" "FAIL"
}

# case_scale KIND SOURCE
# One source feeding SCALE_SUBS subscribers that take every transaction and acknowledge
# it without a database: for rt, rt_simsub processes on rt-publisher (the subscriber's
# protocol, ACKs of what it would commit); for native, pg_recvlogical processes, each on a
# slot of its own (pgoutput, proto_version 1, the publication bench_pub, output to
# /dev/null). They start with the case, and once all of them stream, SCALE_TX single-row
# transactions from pgbench (sql/small.sql). Measured: the source's pgbench rate; the
# source-side CPU (rt: rt-publisher and its walsender; native: every walsender) per
# transaction per subscriber; their memory (rt: VmHWM of rt-publisher plus its walsender;
# native: the sum of the walsenders' VmHWM, and the same with RssAnon at the end); the
# catch-up from the end of the workload until the slowest subscriber has it all (rt: the
# publisher's status shows every subscriber's ACK of its head, once it confirmed the
# source's final LSN; native: every walsender's sent_lsn in pg_stat_replication reached
# that LSN); and for rt the largest p99 over the subscribers of commit -> acknowledgeable.
case_scale() {
    local kind="$1" src="$2" i name v port router t0 t_end t1 c0 c1 lsn pv rc=0 tps r0=0 r1=0
    local pubpid="" p0=0 p1=0
    local log="$RT_TMP/r${B_ROUND}_pgbench_scale_$kind.log"
    local -a labels=() pids relays=() rpids=() eps
    v="$(rt__var "$src")_PORT"
    port="${!v}"
    if [[ "$kind" == rt ]]; then
        router="B_ROUTER_$(rt__var "$src")"
        router="${!router}"
        eps=("$router")
        if ((SCALE_RELAYS > 0)); then
            # The subscribers behind relays, each a subscriber of the publisher.
            eps=()
            for ((i = 1; i <= SCALE_RELAYS; i++)); do
                name="${src}_relay$i"
                eps+=("tcp://127.0.0.1:$(rt_free_port)")
                rt_start_daemon "$name" "$RT_TMP/$name.log" "$RT_BIN/rt-relay" --publisher "$router" \
                    --name "relay$i" --outbox "$RT_TMP/${name}_outbox" --listen "${eps[i - 1]}" \
                    --pub "tcp://127.0.0.1:$(rt_free_port)" || b_fail "rt scale: relay$i did not start"
                relays+=("$name")
                v="$(rt__var "$name")_PID"
                rpids+=("${!v}")
            done
        fi
        for ((i = 1; i <= SCALE_SUBS; i++)); do
            printf -v name 'sim%03d' "$i"
            labels+=("${src}_$name")
            rt_start_bg "${src}_$name" "$RT_TMP/${src}_$name.log" "$RT_BIN/rt_simsub" \
                --name "$name" --seconds "$RUN_TIMEOUT" "${eps[(i - 1) % ${#eps[@]}]}"
        done
        if ! rt_wait_until 120 "$SCALE_SUBS rt_simsub processes to be ready" b_all_logged ' ready:' \
            "${labels[@]}"; then
            b_fail "rt scale: not every rt_simsub got WELCOME"
        fi
    else
        b_q "$src" "SELECT count(pg_create_logical_replication_slot('bench_sc_' || g, 'pgoutput'))
                    FROM generate_series(1, $SCALE_SUBS) g" >/dev/null
        for ((i = 1; i <= SCALE_SUBS; i++)); do
            labels+=("${src}_recv$i")
            rt_start_bg "${src}_recv$i" "$RT_TMP/${src}_recv$i.log" "$RT_PG_BIN/pg_recvlogical" \
                -h 127.0.0.1 -p "$port" -U postgres -d postgres --slot "bench_sc_$i" --start \
                -o proto_version=1 -o publication_names=bench_pub -f /dev/null -F 0 -s 1 --no-loop
        done
        rt_wait_until 120 "$SCALE_SUBS pg_recvlogical walsenders to stream" b__count_is "$src" \
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_recvlogical' AND state = 'streaming'" \
            "$SCALE_SUBS" || b_fail "native scale: not every pg_recvlogical streams"
    fi
    mapfile -t pids < <(b_source_side_pids "$kind" "$src")
    c0="$(b_cpu_ticks "${pids[@]}")"
    ((${#rpids[@]} == 0)) || r0="$(b_cpu_ticks "${rpids[@]}")"
    if [[ "$kind" == rt ]]; then
        v="$(rt__var "${src}_pub")_PID"
        pubpid="${!v}"
        p0="$(b_cpu_ticks "$pubpid")"
    fi
    t0="$(b_now_ms)"
    b_pgbench "$src" 300 -n -f "$SQL/small.sql" -c 4 -j 2 -t $((SCALE_TX / 4)) >"$log" 2>&1 ||
        b_fail "$kind scale: pgbench failed"
    t_end="$(b_now_ms)"
    tps="$(awk '/^tps/ { print $3; exit }' "$log")"
    lsn="$(b_q "$src" "SELECT pg_current_wal_lsn()")"
    if [[ "$kind" == rt ]] && ((SCALE_RELAYS > 0)); then
        b_poll_fn 300 b_rt_tree_acked "$router" "$lsn" "$SCALE_SUBS" "${eps[@]}" ||
            b_fail "rt scale: not every subscriber acknowledged the head after 300 s ($B_ACKED)"
    elif [[ "$kind" == rt ]]; then
        b_poll_fn 300 b_rt_all_acked "$router" "$lsn" "$SCALE_SUBS" ||
            b_fail "rt scale: not every subscriber acknowledged the head after 300 s ($B_ACKED)"
    else
        b_poll_fn 300 b__count_is "$src" \
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_recvlogical' AND sent_lsn >= '$lsn'" \
            "$SCALE_SUBS" || b_fail "native scale: not every walsender sent $lsn after 300 s"
    fi
    t1="$B_POLL_MS"
    c1="$(b_cpu_ticks "${pids[@]}")"
    ((${#rpids[@]} == 0)) || r1="$(b_cpu_ticks "${rpids[@]}")"
    [[ -z "$pubpid" ]] || p1="$(b_cpu_ticks "$pubpid")"
    local t_conf="$t1"
    if [[ "$kind" == native ]]; then
        # The correctness check: each consumer confirmed the final LSN.
        b_poll_fn 60 b__count_is "$src" \
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'bench\_sc\_%' AND confirmed_flush_lsn >= '$lsn'" \
            "$SCALE_SUBS" || b_fail "native scale: not every slot confirmed $lsn after 60 s"
        t_conf="$B_POLL_MS"
    fi
    local hwm=0 anon=0 pid kb
    for pid in "${pids[@]}"; do
        kb="$(b_status_kb "$pid" VmHWM)"
        hwm=$((hwm + ${kb:-0}))
        kb="$(b_status_kb "$pid" RssAnon)"
        anon=$((anon + ${kb:-0}))
    done
    b_set "scale_tps.$kind" "$(b_div "$tps" 1 0)"
    b_set "scale.cpu.$kind" "$(b_div "$(((c1 - c0) * 1000000))" "$((B_CLK_TCK * SCALE_TX * SCALE_SUBS))" 2)"
    b_set "scale_catchup.$kind" "$((t1 - t_end))"
    b_set "scale_mem.$kind" "$(b_div "$hwm" 1024 1)"
    b_set "scale_anon.$kind" "$(b_div "$anon" 1024 1)"
    echo "    $kind scale: $SCALE_SUBS subscribers; source pgbench $tps tx/s; catch-up after the workload" \
        "${B_RES[scale_catchup.$kind]} ms; source-side CPU $(b_ticks_to_s $((c1 - c0))) s" \
        "(${#pids[@]} processes) = ${B_RES[scale.cpu.$kind]} us per tx per subscriber;" \
        "VmHWM sum ${B_RES[scale_mem.$kind]} MiB, RssAnon sum ${B_RES[scale_anon.$kind]} MiB"
    [[ -z "$pubpid" ]] ||
        echo "    rt scale: rt-publisher alone $(b_ticks_to_s $((p1 - p0))) s =" \
            "$(b_div "$(((p1 - p0) * 1000000))" "$((B_CLK_TCK * SCALE_TX * SCALE_SUBS))" 2) us per tx per" \
            "subscriber, $(b_div "$(((p1 - p0) * 1000000))" "$((B_CLK_TCK * SCALE_TX))" 1) us per tx"
    if ((${#rpids[@]} > 0)); then
        local rh=0
        for pid in "${rpids[@]}"; do
            kb="$(b_status_kb "$pid" VmHWM)"
            ((${kb:-0} <= rh)) || rh="${kb:-0}"
        done
        echo "    rt scale: behind $SCALE_RELAYS relays; the relays' CPU $(b_ticks_to_s $((r1 - r0))) s =" \
            "$(b_div "$(((r1 - r0) * 1000000))" "$((B_CLK_TCK * SCALE_TX * SCALE_SUBS))" 2) us per tx per" \
            "subscriber; largest relay VmHWM $(b_div "$rh" 1024 1) MiB"
    fi
    # Stop the subscribers: SIGTERM to all, then each reaped (bounded).
    for name in "${labels[@]}"; do
        v="$(rt__var "$name")_PID"
        kill -TERM "${!v}" 2>/dev/null || true
    done
    local bad=0 p99max=0 line
    for name in "${labels[@]}"; do
        rc=0
        rt_stop_daemon "$name" TERM || rc=$?
        [[ "$kind" == rt ]] || continue
        line="$(grep '^simsub .* records=' "$RT_TMP/$name.log" || true)"
        if [[ "$rc" != 0 || -z "$line" ]] || ! grep -q ' gaps=0 dups=0 back=0 mismatch=0 order=0 errors=0 ' <<<"$line"; then
            bad=$((bad + 1))
            ((bad > 3)) || echo "    rt scale: $name exited with status $rc: ${line:-no report}"
            continue
        fi
        pv="$(sed -E 's/.* p99_ms=([0-9.]+) .*/\1/' <<<"$line")"
        if awk -v a="$pv" -v b="$p99max" 'BEGIN { exit !(a > b) }'; then
            p99max="$pv"
        fi
    done
    for name in "${relays[@]}"; do
        rc=0
        rt_stop_daemon "$name" TERM || rc=$?
        ((rc == 0)) || b_fail "rt scale: $name exited with status $rc on SIGTERM"
        rm -rf "$RT_TMP/${name}_outbox"
    done
    if [[ "$kind" == rt ]]; then
        ((bad == 0)) || b_fail "rt scale: $bad rt_simsub(s) reported errors or did not end cleanly"
        b_set "scale_p99.$kind" "$p99max"
        echo "    rt scale: every rt_simsub's report: $(grep -h '^simsub .* records=' "$RT_TMP/${src}"_sim*.log |
            awk '{ for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "records") r[kv[2]]++ } }
                 END { for (k in r) printf "%d with %s records; ", r[k], k }')largest p99 $p99max ms"
    else
        echo "    native scale: every pg_recvlogical had confirmed $lsn (its slot's confirmed_flush_lsn)" \
            "$((t_conf - t_end)) ms after the workload ended (it reports once a second)"
        rt_wait_until 30 "the pg_recvlogical walsenders to end" b__count_is "$src" \
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'bench\_sc\_%' AND active" 0 ||
            b_fail "native scale: walsenders still active"
        b_q "$src" "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name LIKE 'bench\_sc\_%'" >/dev/null
    fi
}

# mem_pids KIND SOURCE REPLICA
# Prints "source-side-pid replica-side-pid walsender-pid": rt-publisher and
# rt-subscriber for rt, the walsender and the apply worker for native.
mem_pids() {
    local kind="$1" src="$2" r="$3" ws v a b
    ws="$(b_walsender_pids "$src" | head -n 1)"
    if [[ "$kind" == rt ]]; then
        v="$(rt__var "${src}_pub")_PID"
        a="${!v}"
        v="$(rt__var "${r}_sub")_PID"
        b="${!v}"
    else
        a="$ws"
        b="$(b_q "$r" "SELECT pid FROM pg_stat_subscription WHERE subname = 'sub_$r' AND relid IS NULL")"
    fi
    echo "$a $b $ws"
}

# memory_after_bulk KIND SOURCE REPLICA
# Peak RSS (VmHWM) since start, read right after bulk (the first case), and the
# peak of RssAnon sampled during bulk.
memory_after_bulk() {
    local kind="$1" src="$2" r="$3" ppid spid ws out="$RT_TMP/r${B_ROUND}_mem_$1.txt"
    read -r ppid spid ws <<<"$(mem_pids "$kind" "$src" "$r")"
    b_set "mem_pub.$kind" "$(b_div "$(b_status_kb "$ppid" VmHWM)" 1024 1)"
    b_set "mem_sub.$kind" "$(b_div "$(b_status_kb "$spid" VmHWM)" 1024 1)"
    b_set "anon_pub.$kind" "$(b_mem_peak "$out" "$ppid")"
    b_set "anon_sub.$kind" "$(b_mem_peak "$out" "$spid")"
    echo "    $kind memory in bulk, MiB: source side (pid $ppid) VmHWM ${B_RES[mem_pub.$kind]}," \
        "RssAnon peak ${B_RES[anon_pub.$kind]}; replica side (pid $spid) VmHWM ${B_RES[mem_sub.$kind]}," \
        "RssAnon peak ${B_RES[anon_sub.$kind]}; source walsender (pid $ws) VmHWM" \
        "$(b_div "$(b_status_kb "$ws" VmHWM)" 1024 1), RssAnon peak $(b_mem_peak "$out" "$ws")"
}

# single_set KIND, fanout_set KIND
# Print the cluster names of replicator KIND in the round running: the source first,
# then the replicas (one, or three for fan-out).
single_set() {
    echo "${1}${B_ROUND}_src ${1}${B_ROUND}_r1"
}
fanout_set() {
    echo "${1}${B_ROUND}_fo_src ${1}${B_ROUND}_fo_r1 ${1}${B_ROUND}_fo_r2 ${1}${B_ROUND}_fo_r3"
}
fo10_set() {
    local i out="${1}${B_ROUND}_f10_src"
    for ((i = 1; i <= 10; i++)); do
        out+=" ${1}${B_ROUND}_f10_r$i"
    done
    echo "$out"
}
scale_set() {
    echo "${1}${B_ROUND}_sc_src"
}

# set_start KIND SOURCE REPLICA...
# Fresh clusters for KIND, replication started (warm-up row everywhere), then settled.
set_start() {
    local kind="$1"
    shift
    b_say "round $B_ROUND, $kind: fresh clusters $*"
    setup_clusters "$kind" "$@"
    b_repl_start "$kind" "$@"
    b_settle "$@"
}

# set_stop KIND SOURCE REPLICA...
# Stops KIND's replication and clusters; removes their data directories and rt's
# outbox (the server logs stay) unless RT_KEEP=1.
set_stop() {
    local kind="$1" src="$2" c v
    shift
    b_repl_stop "$kind" "$@"
    stop_clusters "${@:2}" "$src"
    [[ "${RT_KEEP:-0}" != 1 ]] || return 0
    for c in "$@"; do
        v="$(rt__var "$c")_DATA"
        rm -rf "${!v}"
    done
    rm -rf "$RT_TMP/${src}_outbox"
}

# case_title KEY
case_title() {
    case "$1" in
    bulk) echo "bulk, one transaction of $BULK_ROWS rows" ;;
    small) echo "small, $SMALL_TX single-row transactions from 4 clients" ;;
    backlog) echo "backlog, $BACKLOG_TX transactions written while paused, then resumed" ;;
    tpcb) echo "tpcb-like, 4 clients, $TPCB_SECONDS s" ;;
    latency) echo "latency, $LAT_RATE tx/s for $LAT_SECONDS s" ;;
    fo_bulk) echo "fan-out bulk, $BULK_ROWS rows to 3 replicas" ;;
    fo_small) echo "fan-out small, $SMALL_TX transactions to 3 replicas" ;;
    fo10) echo "fan-out small, $SMALL_TX transactions to 10 replicas" ;;
    scale) echo "scale, $SCALE_TX transactions to $SCALE_SUBS subscribers without a database" ;;
    esac
}

# run_case KEY KIND SOURCE REPLICA...
# One case run of replicator KIND (profiled with RT_BENCH_PERF=1; bulk with the
# memory sampler and the memory case), the 1-minute load average at its start and end
# and its seconds recorded (load0_KEY, load1_KEY, load_KEY: their mean, secs_KEY);
# then KIND's clusters are settled.
run_case() {
    local key="$1" kind="$2" src="$3" l0 l1 t0 t1
    local -a mp
    shift 2
    b_say "round $B_ROUND, $kind: $(case_title "$key")"
    if [[ "$key" == bulk ]]; then
        read -r -a mp <<<"$(mem_pids "$kind" "$@")"
        b_mem_sampler_start "memsampler_$kind" "$RT_TMP/r${B_ROUND}_mem_$kind.txt" "${mp[@]}"
    fi
    b_perf_start "${key}_r$B_ROUND" "$kind"
    l0="$(b_loadavg)"
    t0="$(b_now_ms)"
    case "$key" in
    bulk | fo_bulk) case_bulk "$kind" "$key" "$@" ;;
    small | fo_small | fo10) case_small "$kind" "$key" "$@" ;;
    scale) case_scale "$kind" "$@" ;;
    backlog) case_backlog "$kind" "$@" ;;
    tpcb) case_tpcb "$kind" "$@" ;;
    latency) case_latency "$kind" "$@" ;;
    esac
    t1="$(b_now_ms)"
    l1="$(b_loadavg)"
    b_perf_stop "${key}_r$B_ROUND" "$kind"
    if [[ "$key" == bulk ]]; then
        b_mem_sampler_stop "memsampler_$kind"
        memory_after_bulk "$kind" "$@"
    fi
    b_set "load0_$key.$kind" "$l0"
    b_set "load1_$key.$kind" "$l1"
    b_set "load_$key.$kind" "$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.2f", (a + b) / 2 }')"
    b_set "secs_$key.$kind" "$(b_div $((t1 - t0)) 1000 1)"
    echo "    $kind $key: ${B_RES[secs_$key.$kind]} s; load average (1 min) $l0 at the start, $l1 at the end"
    b_settle "$@"
}

# run_sets SET_FUNCTION CASE...
# For the wanted CASEs: fresh clusters for each replicator of ORDER (SET_FUNCTION
# names them), every case run by each replicator in ORDER, then everything stopped.
run_sets() {
    local setf="$1" key kind want=0
    local -a set
    shift
    for key in "$@"; do
        b_want "$key" && want=1
    done
    ((want == 1)) || return 0
    for kind in "${ORDER[@]}"; do
        read -r -a set <<<"$("$setf" "$kind")"
        set_start "$kind" "${set[@]}"
    done
    for key in "$@"; do
        b_want "$key" || continue
        for kind in "${ORDER[@]}"; do
            read -r -a set <<<"$("$setf" "$kind")"
            run_case "$key" "$kind" "${set[@]}"
        done
    done
    for kind in "${ORDER[@]}"; do
        read -r -a set <<<"$("$setf" "$kind")"
        set_stop "$kind" "${set[@]}"
    done
}

# round_order ROUND
# Prints the replicators in the order they run in ROUND: native first in odd rounds,
# rt first in even ones (or the one of RT_BENCH_ONLY).
round_order() {
    if [[ -n "${RT_BENCH_ONLY:-}" ]]; then
        echo "$RT_BENCH_ONLY"
    elif (($1 % 2 == 1)); then
        echo "native rt"
    else
        echo "rt native"
    fi
}

[[ "${RT_BENCH_LOAD:-0}" != 1 ]] || b_load_start "$RUN_TIMEOUT"
for ((B_ROUND = 1; B_ROUND <= ROUNDS; B_ROUND++)); do
    read -r -a ORDER <<<"$(round_order "$B_ROUND")"
    b_say "round $B_ROUND of $ROUNDS: ${ORDER[*]}, alternately, case by case"
    run_sets single_set "${SINGLE_CASES[@]}"
    run_sets fanout_set "${FANOUT_CASES[@]}"
    SRC_CONF=("max_wal_senders = 16" "max_replication_slots = 16")
    run_sets fo10_set "${FO10_CASES[@]}"
    SRC_CONF=("max_wal_senders = $((SCALE_SUBS + 10))" "max_replication_slots = $((SCALE_SUBS + 10))"
        "max_connections = $((SCALE_SUBS + 60))")
    run_sets scale_set "${SCALE_CASES[@]}"
    SRC_CONF=()
    b_round_save "$B_ROUND"
done
B_ROUND=""
# What one ZeroMQ hop costs here, under the same load: rt's path has one more than
# native's (publisher -> subscriber), each side's I/O thread handing a message over.
B_HOP=""
if b_want latency; then
    B_HOP="$("$RT_BIN/rt_hoplat" 2000 1000 2>&1)" || b_fail "rt_hoplat failed: $B_HOP"
fi
[[ "${RT_BENCH_LOAD:-0}" != 1 ]] || b_load_stop
B_T_END="$(b_now_ms)"

# The per-round table: for each round and case, which replicator went first, the
# 1-minute load average at the start and end of each replicator's run and its
# seconds, and the case's headline figure and ratio in that round.
headline() {
    case "$1" in
    bulk | fo_bulk) echo "$1 rows/s" ;;
    small | fo_small | fo10 | backlog) echo "$1 tx/s" ;;
    scale) echo "scale.cpu cpu-us" ;;
    tpcb) echo "tpcb TPS" ;;
    latency) echo "lat_p50 p50-ms" ;;
    esac
}
echo
b_say "done; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "per round: load average (1 min) at the start -> end of each case run, its seconds, and the case's main figure"
printf '%-5s %-9s %-6s  %-12s %6s  %-12s %6s  %-7s %10s %10s %9s\n' \
    round case first "native load" s "rt load" s figure rt native rt/native
printf '%s\n' "$(printf '%.0s-' {1..104})"
for ((r = 1; r <= ROUNDS; r++)); do
    read -r -a order <<<"$(round_order "$r")"
    for key in "${SINGLE_CASES[@]}" "${FANOUT_CASES[@]}" "${FO10_CASES[@]}" "${SCALE_CASES[@]}"; do
        b_want "$key" || continue
        read -r hk unit <<<"$(headline "$key")"
        cells=()
        for kind in native rt; do
            if [[ -n "${B_ALL[load0_$key.$kind#$r]:-}" ]]; then
                cells+=("${B_ALL[load0_$key.$kind#$r]}->${B_ALL[load1_$key.$kind#$r]}" "${B_ALL[secs_$key.$kind#$r]}")
            else
                cells+=(- -)
            fi
        done
        a="${B_ALL[$hk.rt#$r]:--}"
        b="${B_ALL[$hk.native#$r]:--}"
        printf '%-5s %-9s %-6s  %-12s %6s  %-12s %6s  %-7s %10s %10s %9s\n' "$r" "$key" "${order[0]}" \
            "${cells[@]}" "$unit" "$a" "$b" "$(awk -v rt="$a" -v nat="$b" "$B__SUMMARY_AWK" | cut -d' ' -f3)"
    done
done

# The summary table: case, metric, each replicator's median over the rounds, the
# median of the per-round ratios rt/native and their spread, which way is better.
# Rows of cases not run are left out.
row() {
    local case="$1" metric="$2" key="$3" better="$4" a b ratio spread
    read -r a b ratio spread <<<"$(b_summary "$ROUNDS" "$key")"
    printf '%-14s %-40s %12s %12s %10s %12s  %s\n' "$case" "$metric" "$a" "$b" "$ratio" "$spread" "$better"
}
load_row() {
    row "$1" "load avg 1 min during the case" "load_$2" "-"
}
echo
echo "summary over $ROUNDS round(s): medians; rt/native = median of the per-round ratios, spread = their min..max"
printf '%-14s %-40s %12s %12s %10s %12s  %s\n' case metric rt native rt/native spread better
printf '%s\n' "$(printf '%.0s-' {1..117})"
if b_want bulk; then
    row bulk "rows/s end to end, 1 replica" bulk higher
    row bulk "source CPU us per row" bulk.cpu lower
    row bulk "walsender CPU us per row" bulk.ws lower
    row bulk "replica-side CPU us per row" bulk.rcpu lower
    row bulk "machine CPU busy s, every process" bulk.mcpu lower
    load_row bulk bulk
fi
if b_want small; then
    row small "tx/s end to end (4 clients)" small higher
    row small "replica-side CPU us per row" small.rcpu lower
    load_row small small
fi
if b_want backlog; then
    row backlog "drain tx/s from resume" backlog higher
    load_row backlog backlog
fi
if b_want tpcb; then
    row tpcb "source TPS (4 clients, ${TPCB_SECONDS} s)" tpcb higher
    row tpcb "catch-up s after the run" tpcb_catchup lower
    row tpcb "balance sums source vs replica" tpcb_sums "-"
    load_row tpcb tpcb
fi
if b_want latency; then
    row latency "p50 ms (apply - write)" lat_p50 lower
    row latency "p95 ms" lat_p95 lower
    row latency "p99 ms" lat_p99 lower
    row latency "max ms" lat_max lower
    row latency "visible p50 ms (replica commit - write)" vis_p50 lower
    row latency "visible p99 ms" vis_p99 lower
    load_row latency latency
fi
if b_want fo_bulk; then
    row fan-out-bulk "rows/s until 3 replicas have it" fo_bulk higher
    row fan-out-bulk "source CPU us per source row" fo_bulk.cpu lower
    row fan-out-bulk "replica-side CPU us per row, each" fo_bulk.rcpu lower
    row fan-out-bulk "machine CPU busy s, every process" fo_bulk.mcpu lower
    load_row fan-out-bulk fo_bulk
fi
if b_want fo_small; then
    row fan-out-small "tx/s until 3 replicas have it" fo_small higher
    row fan-out-small "source CPU us per source row" fo_small.cpu lower
    row fan-out-small "replica-side CPU us per row, each" fo_small.rcpu lower
    load_row fan-out-small fo_small
fi
if b_want fo10; then
    row fan-out-10 "tx/s until 10 replicas have it" fo10 higher
    row fan-out-10 "source CPU us per source row" fo10.cpu lower
    row fan-out-10 "replica-side CPU us per row, each" fo10.rcpu lower
    load_row fan-out-10 fo10
fi
if b_want scale; then
    row scale "source tx/s ($SCALE_SUBS subscribers)" scale_tps higher
    row scale "source CPU us per tx per subscriber" scale.cpu lower
    row scale "catch-up ms after the workload, slowest" scale_catchup lower
    row scale "lag p99 ms at the slowest subscriber" scale_p99 lower
    row scale "source-side VmHWM MiB (sum)" scale_mem lower
    row scale "source-side RssAnon MiB (sum)" scale_anon lower
    load_row scale scale
fi
if b_want bulk; then
    row memory "source-side peak RSS (VmHWM) MiB, bulk" mem_pub lower
    row memory "replica-side peak RSS (VmHWM) MiB, bulk" mem_sub lower
    row memory "source-side peak RssAnon MiB, bulk" anon_pub lower
    row memory "replica-side peak RssAnon MiB, bulk" anon_sub lower
fi
echo
echo "load avg: the 1-minute load average (/proc/loadavg), mean of its values at the start and end of the case run."
echo "source CPU: utime+stime of the walsenders (and rt-publisher for rt) from /proc/<pid>/stat."
if b_want scale; then
    echo "scale: rt = rt-publisher + its walsender feeding $SCALE_SUBS rt_simsub processes (ACKs, no database);"
    ((SCALE_RELAYS == 0)) ||
        echo "       the rt_simsubs behind $SCALE_RELAYS rt-relays (their CPU not counted as source-side: printed per round);"
    echo "       native = $SCALE_SUBS walsenders feeding pg_recvlogical (pgoutput, own slot each, to /dev/null)."
    echo "       catch-up: rt until the publisher recorded every subscriber's ACK of its head; native until"
    echo "       every walsender's sent_lsn reached the final LSN (sent, not confirmed: pg_recvlogical"
    echo "       confirms once a second). lag p99: rt_simsub's commit -> acknowledgeable, rt only."
fi
echo "memory: rt-publisher / rt-subscriber for rt, the walsender / apply worker for native. VmHWM counts"
echo "        shared buffers a PostgreSQL process touched and LMDB pages rt maps; RssAnon (private memory,"
echo "        sampled every 0.1 s during bulk) does not. rt also runs a walsender on the source (see above)."
echo "every cluster at synchronous_commit = on; both replicators' apply sessions commit with it off."
if [[ -n "$B_HOP" ]]; then
    echo "one hop, 64-byte messages 1 ms apart between two processes on 127.0.0.1 (rt_hoplat):"
    sed 's/^/        /' <<<"$B_HOP"
fi
if [[ "${RT_BENCH_LOAD:-0}" == 1 ]]; then
    echo "background load: ON, $(b_load_describe);"
    echo "        $B_LOAD_REPORT."
else
    echo "background load: off."
fi
echo "run time: $(((B_T_END - B_T_START) / 1000)) s after the build ($ROUNDS round(s), bound $RUN_TIMEOUT s)."
if ((${#B_FAILS[@]} > 0)); then
    echo
    echo "FAIL: ${#B_FAILS[@]} check(s) failed:"
    printf '  %s\n' "${B_FAILS[@]}"
    exit 1
fi
echo "all correctness checks passed (each case's rows compared between source and replicas)"
