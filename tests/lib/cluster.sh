# tests/lib/cluster.sh - throwaway PostgreSQL clusters and rt daemons for tests and the demo.
#
# Source it from a bash script that runs with `set -euo pipefail`, then call
# rt_setup once:
#
#     source "$RT_SRC/tests/lib/cluster.sh"
#     rt_setup
#     rt_pg_start source
#     rt_psql source -c 'CREATE TABLE t (id int PRIMARY KEY)'
#
# Every function returns non-zero on failure after printing why to stderr (under
# `set -e` that ends the script; inside `if` it can be tested). Every wait is
# bounded. Everything started here is stopped by pid when the script exits, and
# the temporary directory (under RT_TMPDIR, default /tmp) is removed unless RT_KEEP=1. The script must not
# replace the EXIT trap, and must start clusters and daemons from its main shell
# (not inside $(...)), or they are not recorded for it.
#
# Variables it sets: RT_TMP (the private temporary directory), RT_PG_BIN (the
# PostgreSQL programs), and per cluster or daemon the exported <NAME>_PORT,
# <NAME>_DSN, <NAME>_DATA and <LABEL>_PID (NAME upper-cased, other characters
# than letters and digits written as '_').

if [[ -n "${RT_CLUSTER_SH_LOADED:-}" ]]; then
    return 0
fi
RT_CLUSTER_SH_LOADED=1

RT_PG_BIN="$(pg_config --bindir 2>/dev/null || true)"
if [[ -z "$RT_PG_BIN" || ! -x "$RT_PG_BIN/initdb" ]]; then
    RT_PG_BIN=/usr/lib/postgresql/15/bin
fi

declare -g RT_TMP=""
declare -gA RT__PG_DIR=()   # cluster name -> its directory (data/, socket, log)
declare -gA RT__PG_PORT=()  # cluster name -> TCP port
declare -gA RT__PG_PID=()   # cluster name -> postmaster pid, empty when stopped
declare -gA RT__PROC_PID=() # daemon label -> pid
declare -gA RT__PROC_LOG=() # daemon label -> log file
declare -gA RT__PROC_SHOWN=() # daemon label -> 1 once its log tail was printed
declare -ga RT__PG_ORDER=()   # cluster names in start order
declare -ga RT__PROC_ORDER=() # daemon labels in start order
declare -ga RT__AT_EXIT=()    # functions the EXIT trap runs first, in registration order

# rt_fail MSG...
# Prints MSG to stderr and exits the script with status 1 (the EXIT trap cleans up).
rt_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# rt__err MSG... (internal)
# Prints MSG to stderr; returns 1, for `return` from a failing function.
rt__err() {
    echo "ERROR: $*" >&2
    return 1
}

# rt__var NAME (internal)
# Prints NAME as a shell variable prefix: upper case, other characters than
# letters and digits replaced by '_'.
rt__var() {
    local v="${1^^}"
    printf '%s' "${v//[^A-Z0-9]/_}"
}

# rt__now_ms (internal)
# Prints the wall clock in milliseconds.
rt__now_ms() {
    local t="${EPOCHREALTIME//[!0-9]/}"
    printf '%s' "$((10#${t} / 1000))"
}

# rt__alive PID (internal)
# True when PID exists and is not a zombie.
rt__alive() {
    local pid="$1" stat
    [[ -n "$pid" && -e "/proc/$pid" ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ -n "$stat" && "${stat:0:1}" != "Z" && "${stat:0:1}" != "X" ]]
}

# rt__pids_in_dir DIR (internal)
# Prints the pids of live processes whose working directory is DIR or below it.
# A PostgreSQL server and all its children run with the data directory as their
# working directory, so this finds every process of a cluster, even orphans.
rt__pids_in_dir() {
    local dir="$1" p cwd pid
    for p in /proc/[0-9]*; do
        cwd="$(readlink "$p/cwd" 2>/dev/null)" || continue
        if [[ "$cwd" == "$dir" || "$cwd" == "$dir"/* ]]; then
            pid="${p#/proc/}"
            rt__alive "$pid" && echo "$pid"
        fi
    done
    return 0
}

# rt__as_pg CMD ARGS... (internal)
# Runs a PostgreSQL server program: as the postgres user (runuser) when running
# as root, since the server refuses root; directly otherwise. Runs from RT_TMP so
# the postgres user never starts in a directory it cannot read.
rt__as_pg() {
    if ((EUID == 0)); then
        (cd "$RT_TMP" && runuser -u postgres -- "$@")
    else
        (cd "$RT_TMP" && "$@")
    fi
}

# rt_setup
# Creates the private temporary directory RT_TMP (under /tmp, mode 755 so the
# postgres user can traverse it; short, so unix socket paths stay short) and
# installs the EXIT trap (and INT/TERM/HUP traps that exit through it) that stops
# everything started by this library and removes RT_TMP unless RT_KEEP=1.
rt_setup() {
    if [[ -n "$RT_TMP" ]]; then
        return 0
    fi
    RT_TMP="$(mktemp -d "${RT_TMPDIR:-/tmp}/rt.XXXXXXXX")" || rt__err "mktemp failed" || return 1
    chmod 755 "$RT_TMP"
    : >"$RT_TMP/ports"
    export RT_TMP
    trap 'rt__cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# rt_at_exit FUNCTION
# Registers FUNCTION (a name; called without arguments, its output discarded) for the
# EXIT trap, which runs the registered functions, newest first, before it stops the
# daemons and clusters: for what a daemon started and does not stop by itself (the
# browser of a WebDriver session). Each must be bounded. Registering twice is a no-op.
rt_at_exit() {
    local f
    for f in "${RT__AT_EXIT[@]}"; do
        [[ "$f" != "$1" ]] || return 0
    done
    RT__AT_EXIT+=("$1")
}

# rt__cleanup (internal, the EXIT trap)
# Runs the functions registered with rt_at_exit, then stops every daemon (SIGTERM,
# SIGKILL after 10 s) and every cluster (pg_ctl stop -m fast, then SIGKILL by pid),
# newest first. On a failing exit first prints the tail of every log. Removes RT_TMP
# unless RT_KEEP=1. Keeps the script's exit status.
rt__cleanup() {
    local rc=$? i label name
    trap - EXIT INT TERM HUP
    set +e
    if ((rc != 0)); then
        for label in "${RT__PROC_ORDER[@]}"; do
            [[ -z "${RT__PROC_SHOWN[$label]:-}" ]] || continue
            rt__log_tail "$label ($(rt__var "$label")_PID)" "${RT__PROC_LOG[$label]}" 30
        done
        for name in "${RT__PG_ORDER[@]}"; do
            rt__log_tail "PostgreSQL $name" "${RT__PG_DIR[$name]}/postgresql.log" 15
        done
    fi
    for ((i = ${#RT__AT_EXIT[@]} - 1; i >= 0; i--)); do
        "${RT__AT_EXIT[$i]}" >/dev/null 2>&1
    done
    for ((i = ${#RT__PROC_ORDER[@]} - 1; i >= 0; i--)); do
        label="${RT__PROC_ORDER[$i]}"
        if rt__alive "${RT__PROC_PID[$label]}"; then
            rt_stop_daemon "$label" TERM >/dev/null 2>&1
        fi
    done
    for ((i = ${#RT__PG_ORDER[@]} - 1; i >= 0; i--)); do
        rt_pg_stop "${RT__PG_ORDER[$i]}" fast >/dev/null
    done
    if [[ -n "$RT_TMP" && -d "$RT_TMP" ]]; then
        if [[ "${RT_KEEP:-0}" == 1 ]]; then
            echo "RT_KEEP=1: kept $RT_TMP" >&2
        else
            rm -rf "$RT_TMP"
        fi
    fi
    exit "$rc"
}

# rt__log_tail TITLE FILE LINES (internal)
# Prints the last LINES lines of FILE to stderr under a title, if it exists.
rt__log_tail() {
    [[ -s "$2" ]] || return 0
    {
        echo "----- $1: last $3 lines of $2"
        tail -n "$3" "$2"
        echo "-----"
    } >&2
}

# rt_free_port
# Prints a TCP port on 127.0.0.1 that nothing uses (no socket in any state, as
# `ss` shows it, and nothing accepts a connection on it), never the same twice in
# one script (recorded in RT_TMP/ports, so it also works from $(...) subshells).
# The port is outside the kernel's ephemeral range (ip_local_port_range): any
# outgoing connection, a daemon's own libpq connection included, may take a port
# in that range as its local port at any moment, and a listener bound to it
# later then fails with "Address already in use". Needs rt_setup.
rt_free_port() {
    [[ -n "$RT_TMP" ]] || rt__err "rt_free_port: call rt_setup first" || return 1
    local tries port eph_lo=32768 eph_hi=60999 lo hi
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
    fi
    if ((eph_lo - 1 - 20000 >= 2000)); then
        lo=20000 hi=$((eph_lo - 1))
    elif ((65000 - eph_hi - 1 >= 2000)); then
        lo=$((eph_hi + 1)) hi=65000
    else
        lo=20000 hi=60000
    fi
    for ((tries = 0; tries < 200; tries++)); do
        port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        if grep -qx "$port" "$RT_TMP/ports"; then
            continue
        fi
        if command -v ss >/dev/null 2>&1; then
            if [[ -n "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]]; then
                continue
            fi
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            continue
        fi
        echo "$port" >>"$RT_TMP/ports"
        echo "$port"
        return 0
    done
    rt__err "rt_free_port: no free port found after 200 tries"
}

# rt_pg_start NAME [CONF_LINE...]
# Creates and starts a cluster named NAME under RT_TMP: initdb (trust auth,
# superuser postgres, UTF8, no locale), a postgresql.conf for logical
# replication (listen on 127.0.0.1 only, a free port, socket in the cluster's
# directory, wal_level=logical, 10 slots and senders, 16 workers, fsync on,
# 128MB shared buffers) plus the CONF_LINEs given (later lines win), then
# `pg_ctl -w -t 60 start` with the server log in <dir>/postgresql.log. Retries
# with another port if the chosen one was taken meanwhile. Exports
# <NAME>_PORT, <NAME>_DSN ("host=127.0.0.1 port=P dbname=postgres user=postgres")
# and <NAME>_DATA.
rt_pg_start() {
    local name="$1"
    shift
    [[ -n "$RT_TMP" ]] || rt__err "rt_pg_start: call rt_setup first" || return 1
    [[ -z "${RT__PG_DIR[$name]:-}" ]] || rt__err "rt_pg_start: cluster $name already exists" || return 1
    local dir="$RT_TMP/pg-$name" v line port attempt
    v="$(rt__var "$name")"
    mkdir -p "$dir" || return 1
    if ((EUID == 0)); then
        chown postgres:postgres "$dir" || return 1
    fi
    if ! rt__as_pg "$RT_PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres \
        --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
        rt__log_tail "initdb $name" "$dir/initdb.log" 30
        rt__err "rt_pg_start: initdb of $name failed"
        return 1
    fi
    RT__PG_DIR[$name]="$dir"
    RT__PG_PID[$name]=""
    RT__PG_ORDER+=("$name")
    cp "$dir/data/postgresql.conf" "$dir/postgresql.conf.initdb"
    for ((attempt = 1; attempt <= 3; attempt++)); do
        port="$(rt_free_port)" || return 1
        {
            cat "$dir/postgresql.conf.initdb"
            echo "# rt test settings"
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '$dir'"
            echo "wal_level = logical"
            echo "max_replication_slots = 10"
            echo "max_wal_senders = 10"
            echo "max_worker_processes = 16"
            echo "fsync = on"
            echo "shared_buffers = 128MB"
            echo "logging_collector = off"
            echo "log_line_prefix = '%m [%p] %q%u@%d '"
            echo "timezone = 'UTC'"
            for line in "$@"; do
                echo "$line"
            done
        } >"$dir/data/postgresql.conf"
        RT__PG_PORT[$name]="$port"
        if rt__pg_launch "$name"; then
            break
        fi
        if ((attempt < 3)) && grep -q "already in use" "$dir/postgresql.log" 2>/dev/null; then
            echo "rt_pg_start: port $port of $name was taken, trying another" >&2
            continue
        fi
        return 1
    done
    printf -v "${v}_PORT" '%s' "$port"
    printf -v "${v}_DSN" '%s' "host=127.0.0.1 port=$port dbname=postgres user=postgres"
    printf -v "${v}_DATA" '%s' "$dir/data"
    export "${v}_PORT" "${v}_DSN" "${v}_DATA"
}

# rt__pg_launch NAME (internal)
# Starts the existing cluster NAME with pg_ctl (waiting up to 60 s) and records
# the postmaster pid from postmaster.pid.
rt__pg_launch() {
    local name="$1" dir="${RT__PG_DIR[$1]}" pid
    if ! rt__as_pg "$RT_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" \
        -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
        rt__log_tail "pg_ctl start $name" "$dir/pg_ctl.log" 10
        rt__log_tail "PostgreSQL $name" "$dir/postgresql.log" 20
        # pg_ctl may give up while a server is still coming up: stop it by pid.
        pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
        RT__PG_PID[$name]="$pid"
        rt_pg_stop "$name" immediate >/dev/null 2>&1
        rt__err "rt_pg_start: cluster $name did not start"
        return 1
    fi
    pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || rt__err "rt_pg_start: no pid in $dir/data/postmaster.pid" || return 1
    RT__PG_PID[$name]="$pid"
}

# rt_pg_stop NAME [MODE]
# Stops cluster NAME: `pg_ctl stop -m MODE` (smart, fast (default) or immediate,
# waiting up to RT_PG_STOP_TIMEOUT seconds, default 30), then SIGKILL of the postmaster by its pid if it is still
# there, then SIGKILL of any process left with the data directory as working
# directory (children of a killed postmaster). Waits (bounded) until none is left.
# A no-op for a cluster already stopped.
rt_pg_stop() {
    local name="$1" mode="${2:-fast}"
    local dir="${RT__PG_DIR[$name]:-}" pid i left
    [[ -n "$dir" ]] || rt__err "rt_pg_stop: no cluster $name" || return 1
    pid="${RT__PG_PID[$name]:-}"
    if [[ -z "$pid" ]]; then
        pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    fi
    if rt__alive "$pid"; then
        rt__as_pg "$RT_PG_BIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t "${RT_PG_STOP_TIMEOUT:-30}" stop \
            >>"$dir/pg_ctl.log" 2>&1 || true
        for ((i = 0; i < 25; i++)); do
            rt__alive "$pid" || break
            sleep 0.2
        done
        if rt__alive "$pid"; then
            echo "rt_pg_stop: $name (pid $pid) still running, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for ((i = 0; i < 100; i++)); do
        left="$(rt__pids_in_dir "$dir/data")"
        [[ -n "$left" ]] || break
        if ((i == 25)); then
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        fi
        sleep 0.2
    done
    RT__PG_PID[$name]=""
    if [[ -n "$left" ]]; then
        rt__err "rt_pg_stop: processes of $name still running: $left"
        return 1
    fi
    return 0
}

# rt_pg_restart NAME [MODE]
# Stops cluster NAME with MODE (default fast; `immediate` simulates a crash) and
# starts it again on the same port with the same settings.
rt_pg_restart() {
    local name="$1" mode="${2:-fast}"
    rt_pg_stop "$name" "$mode" || return 1
    rt__pg_launch "$name"
}

# rt_dsn NAME, rt_port NAME
# Print cluster NAME's <NAME>_DSN and <NAME>_PORT (set by rt_pg_start).
rt_dsn() {
    local v
    v="$(rt__var "$1")_DSN"
    printf '%s\n' "${!v}"
}
rt_port() {
    local v
    v="$(rt__var "$1")_PORT"
    printf '%s\n' "${!v}"
}

# rt_pg_pid NAME
# Prints the postmaster pid of cluster NAME (empty when it is stopped).
rt_pg_pid() {
    echo "${RT__PG_PID[$1]:-}"
}

# rt_psql NAME ARGS...
# Runs psql against cluster NAME as postgres on database postgres, without
# psqlrc, quietly, stopping at the first error, unaligned tuples-only output
# (psql -X -q -v ON_ERROR_STOP=1 -At). Connecting waits at most 10 s.
rt_psql() {
    local name="$1"
    shift
    local port="${RT__PG_PORT[$name]:-}"
    [[ -n "$port" ]] || rt__err "rt_psql: no cluster $name" || return 1
    PGCONNECT_TIMEOUT=10 "$RT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At \
        -d "host=127.0.0.1 port=$port dbname=postgres user=postgres" "$@"
}

# rt_start_bg LABEL LOGFILE CMD ARGS...
# Starts CMD in the background with stdout and stderr appended to LOGFILE and
# registers it for the EXIT trap; exports <LABEL>_PID. Does not wait for anything.
rt_start_bg() {
    local label="$1" log="$2" v pid
    shift 2
    [[ -n "$RT_TMP" ]] || rt__err "rt_start_bg: call rt_setup first" || return 1
    (($# > 0)) || rt__err "rt_start_bg: no command for $label" || return 1
    v="$(rt__var "$label")"
    "$@" >>"$log" 2>&1 &
    pid=$!
    [[ -n "${RT__PROC_PID[$label]:-}" ]] || RT__PROC_ORDER+=("$label")
    RT__PROC_PID[$label]="$pid"
    RT__PROC_LOG[$label]="$log"
    RT__PROC_SHOWN[$label]=""
    printf -v "${v}_PID" '%s' "$pid"
    export "${v}_PID"
}

# rt_start_daemon LABEL LOGFILE CMD ARGS...
# Starts an rt daemon like rt_start_bg, then waits until LOGFILE has its
# " ready:" line (at most RT_READY_TIMEOUT seconds, default 30). If the process
# dies or the time runs out, prints the log's tail and returns 1 (a process that
# is still running is then stopped).
rt_start_daemon() {
    local label="$1" log="$2" timeout="${RT_READY_TIMEOUT:-30}" pid deadline
    : >>"$log"
    local start_size
    start_size="$(wc -c <"$log")"
    rt_start_bg "$@" || return 1
    pid="${RT__PROC_PID[$label]}"
    deadline=$(($(rt__now_ms) + timeout * 1000))
    while :; do
        if grep -qE '(^|[[:space:]])ready:' <<<"$(tail -c "+$((start_size + 1))" "$log")"; then
            return 0
        fi
        if ! rt__alive "$pid"; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            rt__log_tail "$label" "$log" 30
            RT__PROC_SHOWN[$label]=1
            rt__err "rt_start_daemon: $label (pid $pid) exited with status $rc before it was ready"
            return 1
        fi
        if (($(rt__now_ms) > deadline)); then
            rt__log_tail "$label" "$log" 30
            RT__PROC_SHOWN[$label]=1
            rt__err "rt_start_daemon: $label (pid $pid) not ready after ${timeout}s"
            rt_stop_daemon "$label" TERM >/dev/null 2>&1
            return 1
        fi
        sleep 0.1
    done
}

# rt_stop_daemon LABEL [SIGNAL]
# Sends SIGNAL (default TERM) to the daemon LABEL, waits up to 10 s for it to
# exit, then sends SIGKILL. Returns its exit status (128+N when killed by signal
# N; 0 for a clean stop). Use `rc=0; rt_stop_daemon x || rc=$?` to inspect a
# non-zero status under `set -e`.
rt_stop_daemon() {
    local label="$1" sig="${2:-TERM}" pid i rc=0
    pid="${RT__PROC_PID[$label]:-}"
    [[ -n "$pid" ]] || rt__err "rt_stop_daemon: no daemon $label" || return 1
    if rt__alive "$pid"; then
        kill -s "$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            rt__alive "$pid" || break
            sleep 0.1
        done
        if rt__alive "$pid"; then
            echo "rt_stop_daemon: $label (pid $pid) still running 10s after SIG$sig, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                rt__alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# rt_kill9 LABEL
# Kills the daemon LABEL with SIGKILL (a crash) and reaps it. Returns 0.
rt_kill9() {
    local label="$1" pid i
    pid="${RT__PROC_PID[$label]:-}"
    [[ -n "$pid" ]] || rt__err "rt_kill9: no daemon $label" || return 1
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        rt__alive "$pid" || break
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
    return 0
}

# rt_stop_clean NAME...
# Stops each named daemon (rt_stop_daemon) and fails the test if one does not exit 0
# on SIGTERM; then fails if a log under RT_TMP holds a sanitizer report.
rt_stop_clean() {
    local d rc
    for d in "$@"; do
        rc=0
        rt_stop_daemon "$d" || rc=$?
        [[ "$rc" == 0 ]] || rt_fail "$d exited with status $rc on SIGTERM"
    done
    if grep -E 'AddressSanitizer|runtime error' "$RT_TMP"/*.log; then
        rt_fail "sanitizer reports in the daemon logs"
    fi
}

# rt_daemon_alive LABEL
# True while the daemon LABEL runs.
rt_daemon_alive() {
    rt__alive "${RT__PROC_PID[$1]:-}"
}

# rt_wait_until TIMEOUT_S DESCRIPTION CMD ARGS...
# Runs CMD every 0.2 s until it succeeds; after TIMEOUT_S seconds prints
# "timed out after TIMEOUT_S s waiting for DESCRIPTION" and returns 1.
rt_wait_until() {
    local timeout="$1" desc="$2" deadline
    shift 2
    deadline=$(($(rt__now_ms) + timeout * 1000))
    while :; do
        if "$@"; then
            return 0
        fi
        if (($(rt__now_ms) >= deadline)); then
            rt__err "timed out after ${timeout}s waiting for $desc"
            return 1
        fi
        sleep 0.2
    done
}

# The query that makes one checksum query per user table, run with \gexec.
# Each table's line is "schema.table md5", the identifiers quoted as needed;
# the md5 is over the md5 of each row's text form, in the order of that text
# (so tables without keys and duplicate rows are handled). Settings that change
# the text form of values are fixed for the session.
RT__CHECKSUM_SQL="
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SELECT format(
    'SELECT %L || '' '' || coalesce(md5(string_agg(md5((r.*)::text), '''' ORDER BY (r.*)::text COLLATE \"C\")), md5('''')) FROM %I.%I AS r',
    format('%I.%I', n.nspname, c.relname), n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rt')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND n.nspname NOT LIKE 'rt\\_%'
ORDER BY format('%I.%I', n.nspname, c.relname) COLLATE \"C\"
\\gexec
"

# rt_table_checksums NAME
# Prints one line per user table of cluster NAME's postgres database,
# "schema.table <md5 of all rows>", sorted by table name. Schemas pg_catalog,
# information_schema, pg_toast, temporary ones, rt and rt_* are left out.
rt_table_checksums() {
    rt_psql "$1" <<<"$RT__CHECKSUM_SQL"
}

# rt__compare_checksums QUIET NAME... (internal)
# Compares the checksum lists of the named clusters with the first one's. Prints
# a diff per differing cluster unless QUIET=1; prints "checksums equal: N
# tables" when all are equal. Returns 1 if any differs or cannot be read.
rt__compare_checksums() {
    local quiet="$1" first="$2" name n ok=0
    shift 2
    local a="$RT_TMP/checksums.$first" b
    if ! rt_table_checksums "$first" >"$a" 2>"$a.err"; then
        [[ "$quiet" == 1 ]] || { cat "$a.err" >&2; rt__err "could not read checksums of $first"; }
        return 1
    fi
    for name in "$@"; do
        b="$RT_TMP/checksums.$name"
        if ! rt_table_checksums "$name" >"$b" 2>"$b.err"; then
            [[ "$quiet" == 1 ]] || { cat "$b.err" >&2; rt__err "could not read checksums of $name"; }
            ok=1
            continue
        fi
        if ! cmp -s "$a" "$b"; then
            if [[ "$quiet" != 1 ]]; then
                echo "checksums differ between $first and $name:" >&2
                diff -u --label "$first" --label "$name" "$a" "$b" >&2
            fi
            ok=1
        fi
    done
    if ((ok == 0)); then
        n="$(wc -l <"$a")"
        echo "checksums equal: $((n)) tables"
    fi
    return "$ok"
}

# rt_assert_same NAME1 NAME2...
# Compares the table checksums of all named clusters. If they differ, prints a
# diff to stderr and returns 1; if equal prints "checksums equal: N tables".
rt_assert_same() {
    (($# >= 2)) || rt__err "rt_assert_same: needs at least two clusters" || return 1
    rt__compare_checksums 0 "$@"
}

# rt_wait_converged TIMEOUT_S NAME1 NAME2...
# Polls (every 0.5 s, at most TIMEOUT_S seconds) until all named clusters have
# equal table checksums, then prints "checksums equal: N tables". On timeout
# prints the last diff and returns 1.
rt_wait_converged() {
    local timeout="$1" deadline
    shift
    (($# >= 2)) || rt__err "rt_wait_converged: needs at least two clusters" || return 1
    deadline=$(($(rt__now_ms) + timeout * 1000))
    while (($(rt__now_ms) < deadline)); do
        if rt__compare_checksums 1 "$@"; then
            return 0
        fi
        sleep 0.5
    done
    if rt__compare_checksums 0 "$@"; then
        return 0
    fi
    rt__err "not converged after ${timeout}s: $*"
}

# ---------------------------------------------------------------------------------
# Fault tests: memory peaks, publisher status, unix-socket DSNs, network namespaces.

declare -gA RT_HWM_KB=() # daemon label -> highest VmHWM seen by rt_hwm_sample, in kB

# rt_pair_start
# The smallest pipeline: clusters "source" and "replica", each with the table
# t (id int PRIMARY KEY, v text), then rt_pair_daemons. Sets ROUTER and PUB_EP, the
# publisher's endpoints on free loopback ports.
rt_pair_start() {
    local c
    for c in source replica; do
        rt_pg_start "$c" || return 1
        rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" || return 1
    done
    ROUTER="tcp://127.0.0.1:$(rt_free_port)"
    PUB_EP="tcp://127.0.0.1:$(rt_free_port)"
    rt_pair_daemons
}

# rt_pair_daemons [--curve KEYDIR] [--via ENDPOINT]
# Starts the publisher "pub" of cluster source (source name src, outbox RT_TMP/outbox,
# on ROUTER and PUB_EP), then the subscriber "sub" named replica into cluster replica,
# which connects to ENDPOINT (e.g. a relay's) instead of ROUTER when --via is given.
# With --curve, both run under CURVE with the key pairs pub and replica of KEYDIR (made
# by rtctl keygen when missing); KEYDIR/allow, where replica.cert is put, is the
# publisher's --allow (a test may put more certificates there).
rt_pair_daemons() {
    local keys="" via="$ROUTER" n
    local -a pub_curve=() sub_curve=()
    while (($# > 0)); do
        case "$1" in
        --curve) keys="$2" ;;
        --via) via="$2" ;;
        *) rt__err "rt_pair_daemons: unknown option $1" || return 1 ;;
        esac
        shift 2
    done
    if [[ -n "$keys" ]]; then
        mkdir -p "$keys/allow"
        for n in pub replica; do
            [[ -e "$keys/$n.cert" ]] || "$RT_BIN/rtctl" keygen "$n" --dir "$keys" >/dev/null ||
                return 1
        done
        cp "$keys/replica.cert" "$keys/allow/"
        pub_curve=(--cert "$keys/pub.cert_secret" --allow "$keys/allow")
        sub_curve=(--cert "$keys/replica.cert_secret" --publisher-key "$keys/pub.cert")
    fi
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "$PUB_EP" \
        "${pub_curve[@]}" || return 1
    rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$via" \
        --target "$REPLICA_DSN" --name replica "${sub_curve[@]}"
}

# rt_start_sub LABEL [ARGS...]
# Starts the subscriber named LABEL into the cluster LABEL, with the publisher at ROUTER,
# as daemon LABEL logging to RT_TMP/LABEL.log (rt_start_daemon: waits for it to be
# ready); ARGS are more flags.
rt_start_sub() {
    local label="$1" dsn
    dsn="$(rt__var "$label")_DSN"
    shift
    rt_start_daemon "$label" "$RT_TMP/$label.log" "$RT_BIN/rt-subscriber" \
        --publisher "$ROUTER" --target "${!dsn}" --name "$label" "$@"
}

# rt_sub_fg LABEL CLUSTER ARGS...
# Runs a subscriber named LABEL into cluster CLUSTER, with the publisher at ROUTER, in the
# foreground (at most 60 s), its output appended to RT_TMP/LABEL.log; returns its exit
# status.
rt_sub_fg() {
    local label="$1" dsn
    dsn="$(rt__var "$2")_DSN"
    shift 2
    timeout 60 "$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "${!dsn}" \
        --name "$label" "$@" >>"$RT_TMP/$label.log" 2>&1
}

declare -gA RT__WRITER_PID=() # writer label -> pid of its loop

# rt_writer_start LABEL CLUSTER SQLFN [PAUSE_S]
# Starts a background loop that runs on cluster CLUSTER the SQL that function SQLFN
# prints for I = 1, 2, 3... (its first argument), PAUSE_S seconds apart (default 0.05);
# failures are ignored (a workload beside a test). Stopped by rt_writer_stop LABEL, or
# at exit.
rt_writer_start() {
    local label="$1" cluster="$2" fn="$3" pause="${4:-0.05}"
    (
        i=0
        while :; do
            i=$((i + 1))
            "$fn" "$i" | rt_psql "$cluster" -q >/dev/null 2>&1 || true
            sleep "$pause"
        done
    ) &
    RT__WRITER_PID[$label]=$!
    rt_at_exit rt__writers_stop
}

# rt_writer_stop LABEL
# Stops the loop rt_writer_start started (no-op when it is not running).
rt_writer_stop() {
    local pid="${RT__WRITER_PID[$1]:-}"
    [[ -n "$pid" ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "RT__WRITER_PID[$1]"
}

rt__writers_stop() {
    local l
    for l in "${!RT__WRITER_PID[@]}"; do
        rt_writer_stop "$l"
    done
}

# rt_sanitized
# True when RT_BIN is a sanitizer build (ASan's quarantine of freed memory and its
# shadow make resident-memory figures measure the sanitizer more than rt).
rt_sanitized() {
    grep -qs '^RT_SANITIZE:BOOL=ON' "$RT_BIN/CMakeCache.txt"
}

# rt_vmhwm_kb LABEL
# Prints the peak resident set size (VmHWM, kB) of the running daemon LABEL; returns 1
# if it is not running.
rt_vmhwm_kb() {
    rt__status_kb "$1" VmHWM
}

# rt_vmhwm_reset LABEL
# Resets the peak resident set size (VmHWM) of the running daemon LABEL to its present
# size (Linux: 5 written to /proc/<pid>/clear_refs), so that rt_vmhwm_kb then gives the
# peak of what follows, however short. Returns 1 if it is not running or cannot be reset.
rt_vmhwm_reset() {
    local pid="${RT__PROC_PID[$1]:-}"
    rt__alive "$pid" || rt__err "rt_vmhwm_reset: $1 is not running" || return 1
    echo 5 >"/proc/$pid/clear_refs" || rt__err "rt_vmhwm_reset: cannot reset $1's VmHWM"
}

# rt__status_kb LABEL FIELD
# Prints FIELD (kB) of /proc/<pid>/status of the running daemon LABEL; returns 1 if it
# is not running or has no such field.
rt__status_kb() {
    local pid="${RT__PROC_PID[$1]:-}" v
    rt__alive "$pid" || return 1
    v="$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [[ -n "$v" ]] || return 1
    echo "$v"
}

# rt_hwm_sample LABEL...
# Records in RT_HWM_KB[LABEL] the highest VmHWM seen so far of each running daemon
# LABEL (across restarts of the same label), and in RT_ANON_KB[LABEL] the highest
# RssAnon sampled (the part of it that is not mapped files). Call it from the main shell, often enough
# to sample each process before it stops (VmHWM already holds the peak of a process).
rt_hwm_sample() {
    local label v
    for label in "$@"; do
        v="$(rt_vmhwm_kb "$label")" || continue
        if ((v > ${RT_HWM_KB[$label]:-0})); then
            RT_HWM_KB[$label]="$v"
        fi
        v="$(rt_rss_anon_kb "$label")" || continue
        if ((v > ${RT_ANON_KB[$label]:-0})); then
            RT_ANON_KB[$label]="$v"
        fi
    done
    return 0
}

# rt_rss_anon_kb LABEL
# Prints the anonymous resident memory (RssAnon, kB: heap and stacks, not mapped files
# such as an LMDB map) of the running daemon LABEL; returns 1 if it is not running.
rt_rss_anon_kb() {
    rt__status_kb "$1" RssAnon
}

declare -gA RT_ANON_KB=() # daemon label -> highest RssAnon seen by rt_hwm_sample, in kB

# rt_pg_socket_dsn NAME
# Prints a DSN of cluster NAME through its unix socket (reachable from another network
# namespace, unlike 127.0.0.1).
rt_pg_socket_dsn() {
    local dir="${RT__PG_DIR[$1]:-}"
    [[ -n "$dir" ]] || rt__err "rt_pg_socket_dsn: no cluster $1" || return 1
    echo "host=$dir port=${RT__PG_PORT[$1]} dbname=postgres user=postgres"
}

# rt_status_json ENDPOINT
# Prints `rtctl status --json` of the publisher whose ROUTER is ENDPOINT (3 s timeout).
rt_status_json() {
    "$RT_BIN/rtctl" --publisher "$1" --timeout 3000 status --json
}

# rt_json_num JSON KEY
# Prints the first number written as "KEY":N in JSON; returns 1 if there is none.
rt_json_num() {
    local re="\"$2\":([0-9]+)"
    [[ "$1" =~ $re ]] || return 1
    echo "${BASH_REMATCH[1]}"
}

# rt_json_sub_acked JSON NAME
# Prints the acked_seq of subscriber NAME in an rtctl status JSON; returns 1 if absent.
rt_json_sub_acked() {
    local re="\\{\"name\":\"$2\",[^}]*\"acked_seq\":([0-9]+)"
    [[ "$1" =~ $re ]] || return 1
    echo "${BASH_REMATCH[1]}"
}

# rt_netns_new LABEL
# Creates a network namespace held by a background process registered as daemon LABEL
# (so the EXIT trap ends it; the namespace and its veth pair vanish with the last
# process in it), with lo up and a veth pair to the host: host side <LABEL>_VETH with
# address <LABEL>_HOST_IP, namespace side with <LABEL>_NS_IP (a random 10.x.y.z/30).
# Exports those and <LABEL>_NSENTER, a command prefix that runs a program inside the
# namespace with the same pid (usable with rt_start_daemon). Returns 1, printing why,
# where namespaces or veth are not permitted.
rt_netns_new() {
    local label="$1" v pid i a b c veth peer
    v="$(rt__var "$label")"
    command -v unshare >/dev/null && command -v nsenter >/dev/null && command -v ip >/dev/null ||
        rt__err "rt_netns_new: unshare, nsenter or ip missing" || return 1
    rt_start_bg "$label" "$RT_TMP/$label.log" unshare --net -- sleep 1000000 || return 1
    pid="${RT__PROC_PID[$label]}"
    for ((i = 0; i < 50; i++)); do
        [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ]] && break
        rt__alive "$pid" || break
        sleep 0.1
    done
    if ! rt__alive "$pid" || [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" == "$(readlink /proc/self/ns/net)" ]]; then
        rt_stop_daemon "$label" KILL >/dev/null 2>&1
        rt__log_tail "$label" "$RT_TMP/$label.log" 5
        rt__err "rt_netns_new: cannot create a network namespace"
        return 1
    fi
    veth="rth$pid"
    peer="rtn$pid"
    a=$((RANDOM % 200 + 20)) b=$((RANDOM % 256)) c=$(((RANDOM % 64) * 4))
    if ! {
        ip link add "$veth" type veth peer name "$peer" &&
            ip link set "$peer" netns "$pid" &&
            ip addr add "10.$a.$b.$((c + 1))/30" dev "$veth" &&
            ip link set "$veth" up &&
            nsenter --net="/proc/$pid/ns/net" -- ip link set lo up &&
            nsenter --net="/proc/$pid/ns/net" -- ip addr add "10.$a.$b.$((c + 2))/30" dev "$peer" &&
            nsenter --net="/proc/$pid/ns/net" -- ip link set "$peer" up
    } >"$RT_TMP/$label.setup" 2>&1; then
        cat "$RT_TMP/$label.setup" >&2
        ip link del "$veth" >/dev/null 2>&1
        rt_stop_daemon "$label" KILL >/dev/null 2>&1
        rt__err "rt_netns_new: cannot set up a veth pair"
        return 1
    fi
    printf -v "${v}_VETH" '%s' "$veth"
    printf -v "${v}_HOST_IP" '%s' "10.$a.$b.$((c + 1))"
    printf -v "${v}_NS_IP" '%s' "10.$a.$b.$((c + 2))"
    printf -v "${v}_NSENTER" '%s' "nsenter --net=/proc/$pid/ns/net --"
    export "${v}_VETH" "${v}_HOST_IP" "${v}_NS_IP" "${v}_NSENTER"
}

# rt_netns_link LABEL up|down
# Sets the host side of namespace LABEL's veth pair up or down: down is a black hole
# for every connection through it (they stay open, packets are lost), up restores it.
rt_netns_link() {
    local v
    v="$(rt__var "$1")_VETH"
    [[ -n "${!v:-}" ]] || rt__err "rt_netns_link: no namespace $1" || return 1
    ip link set "${!v}" "$2"
}
