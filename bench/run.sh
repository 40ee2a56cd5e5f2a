#!/usr/bin/env bash
# bench/run.sh - rt against PostgreSQL's native logical replication, same machine, same run.
#
# One command: builds Release into build-bench (incremental), then for each
# replicator (rt, then native) starts fresh PostgreSQL clusters on loopback with
# the same settings and runs the cases: bulk, small, backlog, tpcb, latency (one
# replica), fan-out bulk and small (three replicas), memory (during bulk). Ends
# with one table: rt's figure, native's figure, rt/native.
#
# Settings (environment): RT_BENCH_TIMEOUT (bound of the whole run after the
# build, seconds, default 600), RT_BENCH_BUILD (build directory, default
# <repo>/build-bench), RT_BENCH_NO_BUILD=1 (use the binaries as they are),
# RT_BENCH_ONLY=rt|native (one replicator), RT_BENCH_CASES (the cases to run, out of
# "bulk small backlog tpcb latency fo_bulk fo_small"; default all),
# RT_BENCH_NATIVE_STREAMING=on (native subscriptions with streaming = on; default
# off, PostgreSQL's default), RT_BENCH_PERF=1
# (a system-wide perf profile of each case, summarised after it), RT_BENCH_POLL
# (replica poll interval, seconds, default 0.05), RT_KEEP=1 (keep the temporary
# directory with every log and profile).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RT_SRC="$(cd "$BENCH_DIR/.." && pwd)"
RT_BIN="${RT_BENCH_BUILD:-$RT_SRC/build-bench}"
export RT_SRC RT_BIN

if [[ -z "${RT_BENCH_INNER:-}" ]]; then
    if [[ "${RT_BENCH_NO_BUILD:-0}" != 1 ]]; then
        echo "==> building Release into $RT_BIN"
        build() {
            timeout 60 cmake -S "$RT_SRC" -B "$RT_BIN" -DCMAKE_BUILD_TYPE=Release "$@" >"$RT_BIN/bench-build.log" 2>&1 &&
                timeout 900 cmake --build "$RT_BIN" -j"$(nproc)" --target rt-publisher rt-subscriber rtctl \
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
    exec timeout --foreground "${RT_BENCH_TIMEOUT:-600}" bash "${BASH_SOURCE[0]}" "$@"
fi

for prog in rt-publisher rt-subscriber; do
    [[ -x "$RT_BIN/$prog" ]] || { echo "FAIL: $RT_BIN/$prog is missing" >&2; exit 1; }
done

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
B_T_START="$(b_now_ms)"
SQL="$BENCH_DIR/sql"

BULK_ROWS=1000000
SMALL_TX=50000 # 4 clients x 12500
TPCB_SECONDS=20
LAT_RATE=500
LAT_SECONDS=10

# The same settings for both replicators. Sources keep the default durability
# (fsync on, synchronous_commit on). Replicas commit their apply with
# synchronous_commit off: native apply workers do so by default (the
# subscription's synchronous_commit = off), and rt's subscriber gets it from the
# replica's postgresql.conf.
PG_COMMON=(
    "max_wal_senders = 10"
    "max_replication_slots = 10"
    "max_worker_processes = 16"
    "max_logical_replication_workers = 8"
    "wal_sender_timeout = 60s"
)
PG_REPLICA=("synchronous_commit = off")

echo "==> rt vs native logical replication; working directory $RT_TMP (RT_KEEP=1 keeps it)"
echo "    machine: $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "$("$RT_PG_BIN/postgres" --version); rt build: ${RT_BENCH_CFLAGS:-as found} in $RT_BIN"
echo "    load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine make the figures noisy)"
echo "    sources: fsync = on, synchronous_commit = on (defaults); replicas: synchronous_commit = off" \
    "(postgresql.conf, both replicators); native: copy_data = false," \
    "streaming = ${RT_BENCH_NATIVE_STREAMING:-off} (defaults otherwise); rt's publisher: streaming (protocol 2);" \
    "rt's sockets: $([[ "${RT_BENCH_CURVE:-0}" == 1 ]] && echo CURVE || echo plaintext)"

# setup_clusters KIND SOURCE REPLICA...
# Fresh clusters with the benchmark's tables (empty), pgbench's tables on single-replica sets.
setup_clusters() {
    local kind="$1" src="$2" c
    shift 2
    rt_pg_start "$src" "${PG_COMMON[@]}"
    for c in "$@"; do
        rt_pg_start "$c" "${PG_COMMON[@]}" "${PG_REPLICA[@]}"
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
# One transaction of BULK_ROWS rows; end-to-end rows/s until every replica shows
# max(id) = BULK_ROWS (each replicator applies the transaction atomically), and the
# source-side CPU of the replication processes.
case_bulk() {
    local kind="$1" key="$2" src="$3" t0 tc t1 c0 c1
    local -a pids
    shift 3
    mapfile -t pids < <(b_source_side_pids "$kind" "$src")
    c0="$(b_cpu_ticks "${pids[@]}")"
    t0="$(b_now_ms)"
    b_q "$src" "INSERT INTO bench_bulk SELECT g, md5(g::text) FROM generate_series(1, $BULK_ROWS) g"
    tc="$(b_now_ms)"
    if ! b_poll_all 240 "SELECT coalesce(max(id), 0) FROM bench_bulk" "$BULK_ROWS" "$@"; then
        b_fail "$kind $key: the replicas did not get the $BULK_ROWS rows"
        b_set "$key.$kind" "FAIL"
        return 0
    fi
    t1="$B_POLL_MS"
    c1="$(b_cpu_ticks "${pids[@]}")"
    b_set "$key.$kind" "$(b_div "$BULK_ROWS" "$(b_div $((t1 - t0)) 1000 3)" 0)"
    b_set "$key.cpu.$kind" "$(b_div "$(((c1 - c0) * 1000000))" "$((B_CLK_TCK * BULK_ROWS))" 2)"
    echo "    $kind $key: source commit $((tc - t0)) ms, end to end $((t1 - t0)) ms," \
        "${B_RES[$key.$kind]} rows/s; source-side CPU $(b_ticks_to_s $((c1 - c0))) s" \
        "(pids ${pids[*]}) = ${B_RES[$key.cpu.$kind]} us/row"
    b_check_same "$kind $key" bench_bulk t "$src" "$@" || b_set "$key.$kind" "FAIL"
}

# case_small KIND KEY SOURCE REPLICA...
# SMALL_TX single-row INSERT transactions from 4 pgbench clients; end-to-end tx/s
# until every replica has them all.
case_small() {
    local kind="$1" key="$2" src="$3" t0 t1 c0 c1 rc=0 log="$RT_TMP/pgbench_${2}_$1.log"
    local -a pids
    shift 3
    mapfile -t pids < <(b_source_side_pids "$kind" "$src")
    c0="$(b_cpu_ticks "${pids[@]}")"
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
    wait "${!pv}" || rc=$?
    ((rc == 0)) || b_fail "$kind $key: pgbench exited with status $rc"
    b_set "$key.$kind" "$(b_div "$SMALL_TX" "$(b_div $((t1 - t0)) 1000 3)" 0)"
    b_set "$key.cpu.$kind" "$(b_div "$(((c1 - c0) * 1000000))" "$((B_CLK_TCK * SMALL_TX))" 2)"
    echo "    $kind $key: source pgbench $(awk '/^tps/ { print $3; exit }' "$log") tx/s;" \
        "end to end $((t1 - t0)) ms, ${B_RES[$key.$kind]} tx/s;" \
        "source-side CPU $(b_ticks_to_s $((c1 - c0))) s = ${B_RES[$key.cpu.$kind]} us/row"
    b_check_same "$kind $key" bench_small t "$src" "$@" || b_set "$key.$kind" "FAIL"
}

# case_backlog KIND SOURCE REPLICA
# SMALL_TX transactions written while replication is paused; drain tx/s from the
# resume until the replica has them all. For rt the publisher keeps capturing into
# its outbox while the subscriber is stopped: the resume waits (bounded) until the
# slot confirmed everything written, so the drain is outbox -> replica.
case_backlog() {
    local kind="$1" src="$2" r="$3" t0 t1 lsn tw
    b_repl_pause "$kind" "$src" "$r"
    b_pgbench "$src" 180 -n -f "$SQL/backlog.sql" -c 4 -j 2 -t $((SMALL_TX / 4)) >"$RT_TMP/pgbench_backlog_$kind.log" 2>&1 ||
        b_fail "$kind backlog: pgbench failed"
    echo "    $kind backlog: written while paused, source pgbench" \
        "$(awk '/^tps/ { print $3; exit }' "$RT_TMP/pgbench_backlog_$kind.log") tx/s;" \
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
    if ! b_poll 180 "$r" "SELECT count(*) FROM bench_backlog" "$SMALL_TX"; then
        b_fail "$kind backlog: the replica did not get the $SMALL_TX transactions (last count $B_POLL_LAST)"
        b_set "backlog.$kind" "FAIL"
        return 0
    fi
    t1="$B_POLL_MS"
    b_set "backlog.$kind" "$(b_div "$SMALL_TX" "$(b_div $((t1 - t0)) 1000 3)" 0)"
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
    b_pgbench "$src" 120 -q -i -I g -s 1 >"$RT_TMP/pgbench_init_$kind.log" 2>&1 ||
        { cat "$RT_TMP/pgbench_init_$kind.log"; rt_fail "$kind tpcb: pgbench -i failed"; }
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
        >"$RT_TMP/pgbench_latency_$kind.log" 2>&1 || b_fail "$kind latency: pgbench failed"
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
    b_check_same "$kind latency" bench_lat "row(t.id, t.written)" "$src" "$r" || b_set "lat_p50.$kind" "FAIL"
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
    local kind="$1" src="$2" r="$3" ppid spid ws out="$RT_TMP/mem_$1.txt"
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

# run_single KIND: source and one replica, cases bulk (with memory), small, backlog, tpcb, latency.
run_single() {
    local kind="$1" src="${1}_src" r="${1}_r1"
    b_say "$kind: fresh clusters $src, $r"
    setup_clusters "$kind" "$src" "$r"
    b_repl_start "$kind" "$src" "$r"
    local -a mp
    read -r -a mp <<<"$(mem_pids "$kind" "$src" "$r")"
    b_mem_sampler_start "memsampler_$kind" "$RT_TMP/mem_$kind.txt" "${mp[@]}"
    if b_want bulk; then
        b_say "$kind: bulk, one transaction of $BULK_ROWS rows"
        b_case bulk "$kind" case_bulk "$kind" bulk "$src" "$r"
    fi
    b_mem_sampler_stop "memsampler_$kind"
    if b_want bulk; then memory_after_bulk "$kind" "$src" "$r"; fi
    if b_want small; then
        b_say "$kind: small, $SMALL_TX single-row transactions from 4 clients"
        b_case small "$kind" case_small "$kind" small "$src" "$r"
    fi
    if b_want backlog; then
        b_say "$kind: backlog, $SMALL_TX transactions written while paused, then resumed"
        b_case backlog "$kind" case_backlog "$kind" "$src" "$r"
    fi
    if b_want tpcb; then
        b_say "$kind: tpcb-like, 4 clients, $TPCB_SECONDS s"
        b_case tpcb "$kind" case_tpcb "$kind" "$src" "$r"
    fi
    if b_want latency; then
        b_say "$kind: latency, $LAT_RATE tx/s for $LAT_SECONDS s"
        b_case latency "$kind" case_latency "$kind" "$src" "$r"
    fi
    b_repl_stop "$kind" "$src" "$r"
    stop_clusters "$r" "$src"
}

# run_fanout KIND: source and three replicas, cases bulk and small.
run_fanout() {
    local kind="$1" src="${1}_fo_src"
    local -a reps=("${1}_fo_r1" "${1}_fo_r2" "${1}_fo_r3")
    b_say "$kind: fresh clusters $src, ${reps[*]}"
    setup_clusters "$kind" "$src" "${reps[@]}"
    b_repl_start "$kind" "$src" "${reps[@]}"
    if b_want fo_bulk; then
        b_say "$kind: fan-out bulk, $BULK_ROWS rows to 3 replicas"
        b_case fo_bulk "$kind" case_bulk "$kind" fo_bulk "$src" "${reps[@]}"
    fi
    if b_want fo_small; then
        b_say "$kind: fan-out small, $SMALL_TX transactions to 3 replicas"
        b_case fo_small "$kind" case_small "$kind" fo_small "$src" "${reps[@]}"
    fi
    b_repl_stop "$kind" "$src" "${reps[@]}"
    stop_clusters "${reps[@]}" "$src"
}

KINDS=(rt native)
if [[ -n "${RT_BENCH_ONLY:-}" ]]; then
    KINDS=("$RT_BENCH_ONLY")
fi
# b_case KEY KIND FUNCTION ARGS...: one case, profiled with RT_BENCH_PERF=1.
b_case() {
    local key="$1" kind="$2"
    shift 2
    b_perf_start "$key" "$kind"
    "$@"
    b_perf_stop "$key" "$kind"
}

for kind in "${KINDS[@]}"; do
    if b_want bulk || b_want small || b_want backlog || b_want tpcb || b_want latency; then
        run_single "$kind"
    fi
done
for kind in "${KINDS[@]}"; do
    if b_want fo_bulk || b_want fo_small; then
        run_fanout "$kind"
    fi
done

# The table: case, metric, rt, native, rt/native, which way is better.
row() {
    local case="$1" metric="$2" key="$3" better="$4" a b ratio
    a="${B_RES[$key.rt]:--}"
    b="${B_RES[$key.native]:--}"
    ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else print "-" }')"
    printf '%-14s %-40s %12s %12s %10s  %s\n' "$case" "$metric" "$a" "$b" "$ratio" "$better"
}
echo
b_say "done; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-14s %-40s %12s %12s %10s  %s\n' case metric rt native rt/native better
printf '%s\n' "$(printf '%.0s-' {1..104})"
row bulk "rows/s end to end, 1 replica" bulk higher
row small "tx/s end to end (4 clients)" small higher
row backlog "drain tx/s from resume" backlog higher
row tpcb "source TPS (4 clients, ${TPCB_SECONDS} s)" tpcb higher
row tpcb "catch-up s after the run" tpcb_catchup lower
row tpcb "balance sums source vs replica" tpcb_sums "-"
row latency "p50 ms (apply - write)" lat_p50 lower
row latency "p95 ms" lat_p95 lower
row latency "p99 ms" lat_p99 lower
row latency "max ms" lat_max lower
row fan-out-bulk "rows/s until 3 replicas have it" fo_bulk higher
row fan-out-bulk "source CPU us per source row" fo_bulk.cpu lower
row fan-out-small "tx/s until 3 replicas have it" fo_small higher
row fan-out-small "source CPU us per source row" fo_small.cpu lower
row memory "source-side peak RSS (VmHWM) MiB, bulk" mem_pub lower
row memory "replica-side peak RSS (VmHWM) MiB, bulk" mem_sub lower
row memory "source-side peak RssAnon MiB, bulk" anon_pub lower
row memory "replica-side peak RssAnon MiB, bulk" anon_sub lower
echo
echo "source CPU: utime+stime of the walsenders (and rt-publisher for rt) from /proc/<pid>/stat."
echo "memory: rt-publisher / rt-subscriber for rt, the walsender / apply worker for native. VmHWM counts"
echo "        shared buffers a PostgreSQL process touched and LMDB pages rt maps; RssAnon (private memory,"
echo "        sampled every 0.1 s during bulk) does not. rt also runs a walsender on the source (see above)."
echo "replicas applied with synchronous_commit = off (postgresql.conf) for both replicators."
if ((${#B_FAILS[@]} > 0)); then
    echo
    echo "FAIL: ${#B_FAILS[@]} check(s) failed:"
    printf '  %s\n' "${B_FAILS[@]}"
    exit 1
fi
echo "all correctness checks passed (each case's rows compared between source and replicas)"
