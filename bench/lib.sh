# bench/lib.sh - helpers of bench/run.sh: timing, polling, checksums, /proc readings, results.
# shellcheck shell=bash disable=SC2034
#
# Sourced by bench/run.sh after tests/lib/cluster.sh and rt_setup. Every wait is
# bounded. The figures of the round running go into the associative array B_RES (key
# "<metric>.<replicator>"), and at the round's end into B_ALL (key
# "<metric>.<replicator>#<round>"); problems go into B_FAILS. run.sh prints them at
# the end.

declare -gA B_RES=()
declare -gA B_ALL=()
declare -ga B_FAILS=()
B_ROUND="" # the round running (run.sh sets it); failures name it
B_CLK_TCK="$(getconf CLK_TCK)"
B_POLL_SLEEP="${RT_BENCH_POLL:-0.05}"

# b_now_ms
# Prints the wall clock in milliseconds.
b_now_ms() {
    local t="${EPOCHREALTIME//[!0-9]/}"
    printf '%s' "$((10#${t} / 1000))"
}

# b_say MSG...
# Prints a progress line with the seconds since the run started.
b_say() {
    printf '[%6.1fs] %s\n' "$(awk -v a="$(b_now_ms)" -v b="$B_T_START" 'BEGIN { print (a - b) / 1000 }')" "$*"
}

# b_fail MSG...
# Records a failed check (printed as FAIL now and in the summary, with the round);
# does not stop the run.
b_fail() {
    local msg="${B_ROUND:+round $B_ROUND: }$*"
    echo "FAIL: $msg"
    B_FAILS+=("$msg")
}

# b_set KEY VALUE
b_set() {
    B_RES[$1]="$2"
}

# b_round_save ROUND
# Moves the round's figures from B_RES into B_ALL (key "<metric>.<replicator>#ROUND")
# and empties B_RES for the next round.
b_round_save() {
    local k
    for k in "${!B_RES[@]}"; do
        B_ALL["$k#$1"]="${B_RES[$k]}"
    done
    B_RES=()
}

# b_loadavg
# Prints the 1-minute load average (the first field of /proc/loadavg).
b_loadavg() {
    local a _
    read -r a _ </proc/loadavg
    printf '%s' "$a"
}

# b_div A B SCALE
# Prints A / B with SCALE decimals (empty when B is 0 or either is empty).
b_div() {
    awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.*f\n", s, a / b }'
}

# b_q CLUSTER SQL
# Runs one query and prints its unaligned result.
b_q() {
    PGOPTIONS="-c statement_timeout=${B_STMT_TIMEOUT_MS:-300000} -c client_min_messages=warning" rt_psql "$1" -c "$2"
}

# b_pgbench CLUSTER TIMEOUT_S ARGS...
# Runs pgbench against CLUSTER's postgres database as postgres, bounded by TIMEOUT_S.
b_pgbench() {
    local name="$1" to="$2" v
    shift 2
    v="$(rt__var "$name")_PORT"
    timeout -k 5 "$to" "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "${!v}" -U postgres "$@" postgres
}

# b_pgbench_bg LABEL LOG CLUSTER TIMEOUT_S ARGS...
# Starts pgbench in the background (registered with cluster.sh, so stopped at exit);
# sets <LABEL>_PID. Wait for it with `wait`.
b_pgbench_bg() {
    local label="$1" log="$2" name="$3" to="$4" v
    shift 4
    v="$(rt__var "$name")_PORT"
    rt_start_bg "$label" "$log" timeout -k 5 "$to" \
        "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "${!v}" -U postgres "$@" postgres
}

# b_poll TIMEOUT_S CLUSTER SQL EXPECTED
# Runs SQL on CLUSTER every B_POLL_SLEEP seconds until it prints EXPECTED; sets
# B_POLL_MS to the wall clock (ms) of the successful query's end. Returns 1 on
# timeout (B_POLL_LAST holds the last answer). A failing query counts as not yet.
b_poll() {
    B_POLL_LAST=""
    b_poll_fn "$1" b__poll_once "$2" "$3" "$4"
}

# b__poll_once CLUSTER SQL EXPECTED (b_poll's test)
b__poll_once() {
    B_POLL_LAST="$(PGOPTIONS='-c statement_timeout=10000' rt_psql "$1" -c "$2" 2>/dev/null || true)"
    [[ "$B_POLL_LAST" == "$3" ]]
}

# b_poll_all TIMEOUT_S SQL EXPECTED CLUSTER...
# b_poll on each cluster in turn (a replica's state only moves forward, so the end
# of the last poll is when all of them showed EXPECTED). Sets B_POLL_MS; returns 1
# naming the first cluster that timed out.
b_poll_all() {
    local to="$1" sql="$2" want="$3" c deadline left
    shift 3
    deadline=$(($(b_now_ms) + to * 1000))
    for c in "$@"; do
        left=$(((deadline - $(b_now_ms)) / 1000))
        ((left > 0)) || left=1
        if ! b_poll "$left" "$c" "$sql" "$want"; then
            echo "timed out after ${to}s waiting on $c for: $sql = $want (last answer: '$B_POLL_LAST')" >&2
            return 1
        fi
    done
}

# b_poll_fn TIMEOUT_S FUNCTION ARGS...
# Runs FUNCTION ARGS every B_POLL_SLEEP seconds until it succeeds; sets B_POLL_MS to the
# wall clock (ms) when it did. Returns 1 on timeout.
b_poll_fn() {
    local to="$1" deadline
    shift
    deadline=$(($(b_now_ms) + to * 1000))
    while :; do
        if "$@"; then
            B_POLL_MS="$(b_now_ms)"
            return 0
        fi
        (($(b_now_ms) < deadline)) || return 1
        sleep "$B_POLL_SLEEP"
    done
}

# b_lsn_num LSN
# Prints PostgreSQL's "X/Y" as one integer.
b_lsn_num() {
    local hi="${1%/*}" lo="${1#*/}"
    echo $(((16#$hi << 32) + 16#$lo))
}

# b_all_logged PATTERN LABEL...
# True when the log of every process LABEL (started with rt_start_bg) holds PATTERN.
b_all_logged() {
    local pat="$1" label
    shift
    for label in "$@"; do
        grep -q -- "$pat" "${RT__PROC_LOG[$label]}" 2>/dev/null || return 1
    done
}

# b_rt_all_acked ROUTER LSN N
# True when the rt publisher at ROUTER has confirmed the source up to LSN, lists N
# subscribers and each acknowledged its head seq (rtctl status --json). B_ACKED says
# where they were at the last try.
b_rt_all_acked() {
    local st head conf n min
    st="$("$RT_BIN/rtctl" --publisher "$1" --timeout 3000 status --json 2>/dev/null)" || return 1
    head="$(rt_json_num "$st" head_seq)" || return 1
    [[ "$st" =~ \"confirmed_lsn\":\"([0-9A-F]+/[0-9A-F]+)\" ]] || return 1
    conf="${BASH_REMATCH[1]}"
    read -r n min < <(grep -o '"acked_seq":[0-9]*' <<<"$st" | cut -d: -f2 |
        awk 'NR == 1 || $1 < m { m = $1 } END { print NR, m + 0 }')
    B_ACKED="head $head, confirmed $conf, $n subscribers, lowest ack $min"
    (($(b_lsn_num "$conf") >= $(b_lsn_num "$2") && n == $3 && min >= head))
}

# b_rt_tree_acked ROUTER LSN SUBS RELAY_ROUTER...
# b_rt_all_acked for a publisher whose subscribers are the relays RELAY_ROUTER..., then,
# at each relay, its head equal to the publisher's and acknowledged by all its
# subscribers: SUBS of them over the relays. B_ACKED says how far it got.
b_rt_tree_acked() {
    local router="$1" lsn="$2" subs="$3" st head rh n min total=0 r
    shift 3
    b_rt_all_acked "$router" "$lsn" "$#" || return 1
    head="$(rt_json_num "$("$RT_BIN/rtctl" --publisher "$router" --timeout 3000 status --json)" head_seq)" ||
        return 1
    for r in "$@"; do
        st="$("$RT_BIN/rtctl" --publisher "$r" --timeout 3000 status --json 2>/dev/null)" || return 1
        rh="$(rt_json_num "$st" head_seq)" || return 1
        read -r n min < <(grep -o '"acked_seq":[0-9]*' <<<"$st" | cut -d: -f2 |
            awk 'NR == 1 || $1 < m { m = $1 } END { print NR, m + 0 }')
        B_ACKED="head $head; relay $r: head $rh, $n subscribers, lowest ack $min"
        ((rh == head && min >= head)) || return 1
        total=$((total + n))
    done
    B_ACKED="head $head; $total subscribers over the relays"
    ((total == subs))
}

# b_fp CLUSTER TABLE [ROW_EXPR]
# Prints a cheap fingerprint of TABLE: "rows:sum of hashtext(row text)". ROW_EXPR
# (default t, the whole row) picks the columns, e.g. "row(t.id, t.written)".
b_fp() {
    local expr="${3:-t}"
    b_q "$1" "SET TimeZone = 'UTC'; SELECT count(*) || ':' || coalesce(sum(hashtext(($expr)::text)::bigint), 0) FROM $2 AS t"
}

# b_check_same LABEL TABLE ROW_EXPR SOURCE REPLICA...
# Compares b_fp of TABLE on SOURCE and each REPLICA; prints "ok" lines, or records
# a FAIL. Returns 1 when any differs.
b_check_same() {
    local label="$1" table="$2" expr="$3" src="$4" a b r ok=0
    shift 4
    a="$(b_fp "$src" "$table" "$expr")"
    for r in "$@"; do
        b="$(b_fp "$r" "$table" "$expr")"
        if [[ "$a" != "$b" ]]; then
            b_fail "$label: $table differs between $src ($a) and $r ($b)"
            ok=1
        fi
    done
    if ((ok == 0)); then
        echo "    check: $table equal on $src and $* (rows:hash $a)"
    fi
    return "$ok"
}

# b_cpu_ticks PID...
# Prints the sum of utime+stime (clock ticks) of the live PIDs (a gone pid counts 0).
b_cpu_ticks() {
    local pid stat sum=0
    local -a f
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        stat="${stat##*) }"
        read -r -a f <<<"$stat"
        # After "comm) " the fields start at field 3 (state): utime is 14, stime 15.
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

# b_ticks_to_s TICKS
b_ticks_to_s() {
    b_div "$1" "$B_CLK_TCK" 2
}

# b_status_kb PID FIELD
# Prints FIELD (VmHWM, VmRSS, RssAnon...) of /proc/PID/status in kB (empty if gone).
b_status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# The memory sampler, run as `bash -c "$B__SAMPLER" sampler OUT PID...`: every 0.1 s
# reads RssAnon (private memory, without shared buffers or mapped files) of each PID
# and rewrites OUT with one "pid peak_kB" line per PID.
# shellcheck disable=SC2016
B__SAMPLER='
out="$1"
shift
declare -A peak=()
while :; do
    for p in "$@"; do
        while read -r k v _; do
            if [[ "$k" == RssAnon: ]]; then
                ((v <= ${peak[$p]:-0})) || peak[$p]="$v"
                break
            fi
        done 2>/dev/null <"/proc/$p/status" || true
    done
    for p in "$@"; do
        echo "$p ${peak[$p]:-0}"
    done >"$out.tmp" && mv -f "$out.tmp" "$out"
    sleep 0.1
done
'

# b_mem_sampler_start LABEL OUT PID...
# Starts the RssAnon sampler of the PIDs in the background (stopped at exit, or by
# b_mem_sampler_stop LABEL).
b_mem_sampler_start() {
    local label="$1" out="$2"
    shift 2
    rt_start_bg "$label" "$RT_TMP/$label.log" bash -c "$B__SAMPLER" sampler "$out" "$@"
}

# b_mem_sampler_stop LABEL
b_mem_sampler_stop() {
    rt_stop_daemon "$1" TERM >/dev/null 2>&1 || true
}

# b_mem_peak OUT PID
# Prints the sampled RssAnon peak of PID in MiB (empty if not sampled).
b_mem_peak() {
    local kb
    kb="$(awk -v p="$2" '$1 == p { print $2 }' "$1" 2>/dev/null || true)"
    b_div "$kb" 1024 1
}

# b_walsender_pids SOURCE
# Prints the pids of SOURCE's walsenders (pg_stat_replication), one a line.
b_walsender_pids() {
    b_q "$1" "SELECT pid FROM pg_stat_replication ORDER BY pid"
}

# ---------------------------------------------------------------------------
# The two replicators behind one interface: start, pause, resume, stop.
# KIND is rt or native. Replica clusters are named; daemon labels derive from them.

# b_repl_start KIND SOURCE REPLICA...
# rt: starts rt-publisher on SOURCE (through its Unix socket unless RT_BENCH_PUB_TCP=1)
# and one rt-subscriber per REPLICA (through the replica's unless RT_BENCH_SUB_TCP=1) (each waits for its ready: line). native: CREATE PUBLICATION on SOURCE (FOR ALL TABLES) and one
# CREATE SUBSCRIPTION per REPLICA (copy_data = false: the tables are empty). Then
# waits until every replication connection streams and a warm-up row arrives everywhere.
b_repl_start() {
    local kind="$1" src="$2" r v nsub=$(($# - 2)) want
    shift 2
    v="$(rt__var "$src")_DSN"
    if [[ "$kind" == rt ]]; then
        local router pub curve=()
        router="tcp://127.0.0.1:$(rt_free_port)"
        pub="tcp://127.0.0.1:$(rt_free_port)"
        declare -g "B_ROUTER_$(rt__var "$src")=$router"
        if [[ "${RT_BENCH_CURVE:-0}" == 1 ]]; then
            b__curve_keys "$src" "$@"
            curve=(--cert "$RT_TMP/keys/$src.cert_secret" --allow "$RT_TMP/keys/allow")
        fi
        # As deployed: the publisher on the source's host, through its Unix socket
        # (RT_BENCH_PUB_TCP=1: through TCP on loopback, as a subscription connects).
        local source_dsn
        if [[ "${RT_BENCH_PUB_TCP:-0}" == 1 ]]; then
            source_dsn="${!v}"
        else
            source_dsn="$(rt_pg_socket_dsn "$src")"
        fi
        rt_start_daemon "${src}_pub" "$RT_TMP/${src}_pub.log" "$RT_BIN/rt-publisher" \
            --source "$source_dsn" --outbox "$RT_TMP/${src}_outbox" --name src \
            --listen "$router" --pub "$pub" "${curve[@]}"
        for r in "$@"; do
            b_sub_start "$src" "$r"
        done
        want=1
    else
        b_q "$src" "CREATE PUBLICATION bench_pub FOR ALL TABLES"
        for r in "$@"; do
            b_q "$r" "CREATE SUBSCRIPTION sub_$r CONNECTION '${!v}' PUBLICATION bench_pub WITH (copy_data = false, streaming = ${RT_BENCH_NATIVE_STREAMING:-off})"
        done
        want="$nsub"
    fi
    rt_wait_until 60 "$want streaming replication connection(s) on $src" \
        b__count_is "$src" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" "$want"
    b_q "$src" "INSERT INTO bench_warm VALUES (1)"
    b_poll_all 60 "SELECT count(*) FROM bench_warm" 1 "$@" ||
        rt_fail "$kind: the warm-up row did not reach every replica"
}

# b__curve_keys SOURCE REPLICA... (internal)
# RT_BENCH_CURVE=1: a key pair for SOURCE's publisher and for each REPLICA's subscriber
# (allowed by the publisher), made once in RT_TMP/keys.
b__curve_keys() {
    local n
    mkdir -p "$RT_TMP/keys/allow"
    for n in "$@"; do
        [[ -f "$RT_TMP/keys/$n.cert" ]] ||
            "$RT_BIN/rtctl" keygen "$n" --dir "$RT_TMP/keys" >/dev/null || rt_fail "rtctl keygen $n"
        [[ "$n" == "$1" ]] || cp "$RT_TMP/keys/$n.cert" "$RT_TMP/keys/allow/"
    done
}

# b__count_is CLUSTER SQL WANT (internal)
b__count_is() {
    [[ "$(b_q "$1" "$2" 2>/dev/null)" == "$3" ]]
}

# b_sub_start SOURCE REPLICA
# Starts (or restarts) the rt-subscriber of REPLICA, connected to SOURCE's publisher;
# as deployed, on the replica's host, through the replica's Unix socket
# (RT_BENCH_SUB_TCP=1: through TCP on loopback).
b_sub_start() {
    local src="$1" r="$2" rv router target
    rv="$(rt__var "$r")_DSN"
    router="B_ROUTER_$(rt__var "$src")"
    if [[ "${RT_BENCH_SUB_TCP:-0}" == 1 ]]; then
        target="${!rv}"
    else
        target="$(rt_pg_socket_dsn "$r")"
    fi
    local curve=()
    [[ "${RT_BENCH_CURVE:-0}" != 1 ]] ||
        curve=(--cert "$RT_TMP/keys/$r.cert_secret" --publisher-key "$RT_TMP/keys/$src.cert")
    rt_start_daemon "${r}_sub" "$RT_TMP/${r}_sub.log" "$RT_BIN/rt-subscriber" \
        --publisher "${!router}" --target "$target" --name "$r" "${curve[@]}"
}

# b_repl_pause KIND SOURCE REPLICA
# rt: stops REPLICA's subscriber with SIGTERM (it must exit 0). native: ALTER
# SUBSCRIPTION ... DISABLE, then waits until its walsender is gone.
b_repl_pause() {
    local kind="$1" src="$2" r="$3" rc=0
    if [[ "$kind" == rt ]]; then
        rt_stop_daemon "${r}_sub" TERM || rc=$?
        ((rc == 0)) || b_fail "rt: ${r}_sub exited with status $rc on SIGTERM"
    else
        b_q "$r" "ALTER SUBSCRIPTION sub_$r DISABLE"
        rt_wait_until 30 "the walsender of sub_$r to stop" \
            b__count_is "$src" "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'sub_$r'" 0
    fi
}

# b_repl_resume KIND SOURCE REPLICA
b_repl_resume() {
    local kind="$1" src="$2" r="$3"
    if [[ "$kind" == rt ]]; then
        b_sub_start "$src" "$r"
    else
        b_q "$r" "ALTER SUBSCRIPTION sub_$r ENABLE"
    fi
}

# b_repl_stop KIND SOURCE REPLICA...
# rt: stops the subscribers and the publisher with SIGTERM; each must exit 0 and
# log no ERROR. native: nothing (the clusters are stopped next).
b_repl_stop() {
    local kind="$1" src="$2" r rc label n
    shift 2
    [[ "$kind" == rt ]] || return 0
    for label in "${@/%/_sub}" "${src}_pub"; do
        rc=0
        rt_stop_daemon "$label" TERM || rc=$?
        ((rc == 0)) || b_fail "rt: $label exited with status $rc on SIGTERM"
        n="$(grep -c 'ERROR' "$RT_TMP/$label.log" || true)"
        ((n == 0)) || b_fail "rt: $n ERROR line(s) in the log of $label"
    done
}

# b_source_side_pids KIND SOURCE
# Prints the source-side replication processes: the walsenders, and rt-publisher for rt.
b_source_side_pids() {
    local kind="$1" src="$2" v
    b_walsender_pids "$src"
    if [[ "$kind" == rt ]]; then
        v="$(rt__var "${src}_pub")_PID"
        echo "${!v}"
    fi
}

# b_machine_busy_ticks
# Prints the clock ticks all CPUs of the machine spent busy so far (/proc/stat: user,
# nice, system, irq, softirq and steal; not idle or iowait), whatever the process.
b_machine_busy_ticks() {
    local -a f
    read -r -a f </proc/stat
    echo $((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]))
}

# b_replica_side_pids KIND REPLICA...
# Prints the replica-side replication processes of each REPLICA: native's apply
# workers; rt's rt-subscriber and the replica backend it applies through (the copy's
# connections are gone once a replica is live).
b_replica_side_pids() {
    local kind="$1" r v
    shift
    for r in "$@"; do
        if [[ "$kind" == rt ]]; then
            v="$(rt__var "${r}_sub")_PID"
            echo "${!v}"
            b_q "$r" "SELECT pid FROM pg_stat_activity WHERE application_name = 'rt-subscriber'" |
                sed '/^$/d'
        else
            b_q "$r" "SELECT pid FROM pg_stat_activity WHERE backend_type = 'logical replication worker'" |
                sed '/^$/d'
        fi
    done
}

# ---------------------------------------------------------------------------
# Case selection and profiles.

# The cases run when RT_BENCH_CASES is not set: all but fo10 and scale (22 clusters, and
# a hundred consumers), which run when named, so that the default run stays under 15
# minutes.
B_DEFAULT_CASES="bulk small backlog tpcb latency fo_bulk fo_small"

# b_want CASE
# True when CASE is in RT_BENCH_CASES (space-separated; default: B_DEFAULT_CASES).
b_want() {
    [[ " ${RT_BENCH_CASES:-$B_DEFAULT_CASES} " == *" $1 "* ]]
}

# b_perf_start KEY KIND
# With RT_BENCH_PERF=1, starts a system-wide `perf record -g` for the case KEY of
# replicator KIND (every process on the machine, so the walsenders, rt's daemons
# and the replicas' backends are all in it). Stopped by b_perf_stop.
b_perf_start() {
    [[ "${RT_BENCH_PERF:-0}" == 1 ]] || return 0
    command -v perf >/dev/null || { echo "    perf not found: no profile" >&2; return 0; }
    rt_start_bg "perf_$1_$2" "$RT_TMP/perf_$1_$2.log" \
        perf record -a -g -F 499 -o "$RT_TMP/perf_$1_$2.data"
    sleep 0.5
}

# b_perf_stop KEY KIND
# Stops the recording and prints where the machine's CPU went during the case: the
# share of each process name, then the top symbols of the busiest ones
# (`perf report` on RT_TMP/perf_KEY_KIND.data; RT_KEEP=1 keeps the file).
b_perf_stop() {
    [[ "${RT_BENCH_PERF:-0}" == 1 && -n "${RT__PROC_PID[perf_$1_$2]:-}" ]] || return 0
    rt_stop_daemon "perf_$1_$2" INT >/dev/null 2>&1 || true
    local data="$RT_TMP/perf_$1_$2.data"
    echo "    profile of $2 $1 (perf record -a -g, $data): CPU share by process (title now)"
    local line pct pid
    while read -r pct line; do
        pid="${line%%:*}"
        printf '      %8s  %-8s %s\n' "$pct" "$pid" "$(ps -o args= -p "$pid" 2>/dev/null | cut -c1-80 || true)"
    done < <(perf report -i "$data" --no-children --sort pid --stdio -g none 2>/dev/null |
        awk '/^ *[0-9.]+%/ && n < 10 { print $1, $2; n++ }' || true)
    echo "    top symbols (process, object, symbol)"
    perf report -i "$data" --no-children --sort pid,dso,sym --stdio -g none 2>/dev/null |
        awk '/^ *[0-9.]+%/ && n < 30 { print "      " $0; n++ }' || true
}

# ---------------------------------------------------------------------------
# Between cases: settle the clusters, so that what a case left behind is not done
# during the next one (which, with the replicators alternated, is the other's).

# b_settle CLUSTER...
# Runs VACUUM ANALYZE then CHECKPOINT on each CLUSTER (bounded by b_q's
# statement_timeout): the autovacuum work and the dirty buffers a case left are done
# now, between cases, rather than during the next case. Prints how long it took.
b_settle() {
    local c t0
    t0="$(b_now_ms)"
    for c in "$@"; do
        b_q "$c" "VACUUM ANALYZE" >/dev/null
        b_q "$c" "CHECKPOINT" >/dev/null
    done
    echo "    settled $* (VACUUM ANALYZE, CHECKPOINT) in $(($(b_now_ms) - t0)) ms"
}

# ---------------------------------------------------------------------------
# The loaded mode (RT_BENCH_LOAD=1): a fixed CPU and disk load beside the whole run.

B_LOAD_NICE=10        # nice level of the CPU burner
B_LOAD_BLOCK_KB=64    # the disk writer's block: each one written with O_DSYNC
B_LOAD_BLOCKS=64      # blocks per file (64 x 64 KiB = 4 MiB), deleted after each pass
B_LOAD_PAUSE=0.2      # seconds between two passes of the disk writer

# The CPU burner, run as `bash -c "$B__BURN" burn SECONDS`: a busy loop of shell
# arithmetic that ends by itself after SECONDS.
# shellcheck disable=SC2016
B__BURN='while ((SECONDS < $1)); do :; done'

# The disk writer, run as `bash -c "$B__WRITE" write DIR SECONDS BLOCK_KB BLOCKS PAUSE`:
# until SECONDS have passed, writes DIR/dsync.bin with dd (BLOCKS blocks of BLOCK_KB
# KiB, oflag=dsync: each block is on disk before the next is written), deletes it and
# pauses PAUSE seconds. On SIGTERM (or at the end) stops dd, deletes the file and
# prints the MiB it wrote.
# shellcheck disable=SC2016
B__WRITE='
dir="$1" end="$2" bs="$3" n="$4" pause="$5" f="$1/dsync.bin" d="" passes=0
finish() {
    [[ -z "$d" ]] || kill "$d" 2>/dev/null
    wait
    rm -f "$f"
    echo "disk writer: $passes passes, $((passes * bs * n / 1024)) MiB written with O_DSYNC"
    exit 0
}
trap finish TERM INT
while ((SECONDS < end)); do
    dd if=/dev/zero of="$f" bs="${bs}k" count="$n" oflag=dsync status=none &
    d=$!
    wait "$d"
    d=""
    rm -f "$f"
    passes=$((passes + 1))
    sleep "$pause" &
    wait $!
done
finish
'

# b_load_describe
# Prints what the loaded mode runs (for the header).
b_load_describe() {
    printf '%s' "one CPU burner (a bash busy loop at nice $B_LOAD_NICE) and one disk writer" \
        " (dd of $((B_LOAD_BLOCKS * B_LOAD_BLOCK_KB / 1024)) MiB in $B_LOAD_BLOCK_KB KiB O_DSYNC writes" \
        " into RT_TMP/load, the file deleted after each pass, ${B_LOAD_PAUSE} s between passes)"
}

# b_load_start SECONDS
# Starts the CPU burner and the disk writer in the background (labels load_cpu and
# load_disk, registered with cluster.sh, so stopped by pid at exit); each also ends by
# itself after SECONDS. Stopped by b_load_stop.
b_load_start() {
    mkdir -p "$RT_TMP/load"
    rt_start_bg load_cpu "$RT_TMP/load_cpu.log" nice -n "$B_LOAD_NICE" bash -c "$B__BURN" burn "$1"
    rt_start_bg load_disk "$RT_TMP/load_disk.log" bash -c "$B__WRITE" write "$RT_TMP/load" "$1" \
        "$B_LOAD_BLOCK_KB" "$B_LOAD_BLOCKS" "$B_LOAD_PAUSE"
    B_LOAD_T0="$(b_now_ms)"
}

# b_load_stop
# Stops the load by pid and prints what it did (also kept in B_LOAD_REPORT): the CPU
# seconds the burner got and the MiB the writer wrote, over the seconds they ran.
b_load_stop() {
    local ticks secs
    ticks="$(b_cpu_ticks "$LOAD_CPU_PID")"
    secs="$(b_div $(($(b_now_ms) - B_LOAD_T0)) 1000 0)"
    rt_stop_daemon load_cpu TERM >/dev/null 2>&1 || true
    rt_stop_daemon load_disk TERM >/dev/null 2>&1 || true
    B_LOAD_REPORT="the CPU burner got $(b_ticks_to_s "$ticks") CPU s in $secs s;"
    B_LOAD_REPORT+=" $(tail -n 1 "$RT_TMP/load_disk.log" 2>/dev/null || echo "disk writer: no report") in $secs s"
    echo "    load: $B_LOAD_REPORT"
}

# ---------------------------------------------------------------------------
# The summary over rounds.

# The summary of one metric, run as `awk -v rt="A1 A2..." -v nat="B1 B2..." -f-`
# (the figures of each round, "-" where there is none): prints "rt native ratio
# spread": each replicator's median over the rounds, the median of the per-round
# ratios rt/native (round r: rt's figure of round r over native's of round r) and
# their min..max ("-" with fewer than two). A median of an even count is the mean of
# the two middle values; figures keep the decimals they were measured with. Rounds
# without a figure ("-") are left out; a replicator that failed in some round shows
# FAIL, and words (equal, DIFFERENT) are shown as they are, distinct ones joined by "/".
B__SUMMARY_AWK='
function isnum(x) { return x ~ /^-?[0-9]+(\.[0-9]+)?$/ }
function decimals(x) { return index(x, ".") ? length(x) - index(x, ".") : 0 }
function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) {
        t = v[i]
        for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]
        v[j + 1] = t
    }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function figure(s,   f, n, i, v, m, d, out, seen, other) {
    n = split(s, f, " ")
    m = 0; d = 0; other = 0; out = ""
    for (i = 1; i <= n; i++) {
        if (f[i] == "FAIL") return "FAIL"
        if (f[i] == "-") continue
        if (isnum(f[i])) {
            v[++m] = f[i] + 0
            if (decimals(f[i]) > d) d = decimals(f[i])
        } else other = 1
        if (!(f[i] in seen)) { seen[f[i]] = 1; out = out (out == "" ? "" : "/") f[i] }
    }
    if (out == "") return "-"
    return other ? out : sprintf("%.*f", d, median(v, m))
}
BEGIN {
    n = split(rt, a, " "); split(nat, b, " ")
    k = 0
    for (i = 1; i <= n; i++) {
        if (isnum(a[i]) && isnum(b[i]) && b[i] + 0 > 0) {
            r[++k] = a[i] / b[i]
            if (k == 1 || r[k] < lo) lo = r[k]
            if (k == 1 || r[k] > hi) hi = r[k]
        }
    }
    ratio = k ? sprintf("%.2f", median(r, k)) : "-"
    spread = k > 1 ? sprintf("%.2f..%.2f", lo, hi) : "-"
    print figure(rt), figure(nat), ratio, spread
}
'

# b_summary ROUNDS KEY
# Prints "rt native ratio spread" of metric KEY over rounds 1..ROUNDS of B_ALL.
b_summary() {
    local rounds="$1" key="$2" i
    local -a a=() b=()
    for ((i = 1; i <= rounds; i++)); do
        a+=("${B_ALL[$key.rt#$i]:--}")
        b+=("${B_ALL[$key.native#$i]:--}")
    done
    awk -v rt="${a[*]}" -v nat="${b[*]}" "$B__SUMMARY_AWK"
}
