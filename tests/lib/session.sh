# tests/lib/session.sh - SQL sessions that stay open across a test's steps (source after
# cluster.sh): psql reading from a FIFO, one statement at a time, each tagged with a
# comment so that pg_stat_activity tells when it ran.

declare -A RT__SESS_FD=() RT__SESS_CLUSTER=()
RT__SESS_STEP=0

# rt_sess_open NAME CLUSTER
# Opens session NAME (its application_name) on CLUSTER; its output goes to
# $RT_TMP/psql_NAME.log.
rt_sess_open() {
    local fifo="$RT_TMP/$1.fifo" fd
    mkfifo "$fifo" || return 1
    exec {fd}<>"$fifo"
    RT__SESS_FD[$1]="$fd"
    RT__SESS_CLUSTER[$1]="$2"
    # psql itself, not a shell function around it, is the process registered: the
    # cleanup stops it by pid (it would not see end of input: the FIFO stays open in
    # every process started after it).
    local port="${RT__PG_PORT[$2]:-}"
    [[ -n "$port" ]] || rt__err "rt_sess_open: no cluster $2" || return 1
    export PGAPPNAME="$1"
    rt_start_bg "psql_$1" "$RT_TMP/psql_$1.log" "$RT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At \
        -d "host=127.0.0.1 port=$port dbname=postgres user=postgres" -f "$fifo"
    unset PGAPPNAME
}

# rt_sess_at NAME TAG STATE: the session ran the statement tagged TAG and is in STATE
# ("idle", "idle in transaction", "active").
rt_sess_at() {
    [[ "$(rt_psql "${RT__SESS_CLUSTER[$1]}" -c "SELECT count(*) FROM pg_stat_activity
          WHERE application_name = '$1' AND state = '$3' AND query LIKE '%/* $2 */%'")" == 1 ]]
}

# rt_sess_send NAME SQL
# Sends one statement (without its ';') and returns at once; its tag is in RT_SESS_TAG.
rt_sess_send() {
    RT_SESS_TAG="step$((++RT__SESS_STEP))"
    echo "$2 /* $RT_SESS_TAG */;" >&"${RT__SESS_FD[$1]}"
}

# rt_sess_wait NAME TAG STATE WHAT
# Waits (at most 60 s) until the statement tagged TAG ran and left the session in
# STATE; fails the test with the session's output otherwise. WHAT names it.
rt_sess_wait() {
    rt_wait_until 60 "session $1 to run: $4" rt_sess_at "$1" "$2" "$3" ||
        { cat "$RT_TMP/psql_$1.log" >&2; rt_fail "session $1 failed"; }
}

# rt_sess_run NAME SQL
# Runs one statement (without its ';') and waits for it: the session is then idle in
# its transaction, or idle after COMMIT or ROLLBACK.
rt_sess_run() {
    local state="idle in transaction"
    [[ "$2" =~ ^(COMMIT|ROLLBACK)$ ]] && state="idle"
    rt_sess_send "$1" "$2"
    rt_sess_wait "$1" "$RT_SESS_TAG" "$state" "$2"
}

# rt_sess_close NAME: ends the session's psql.
rt_sess_close() {
    echo '\q' >&"${RT__SESS_FD[$1]}"
}
