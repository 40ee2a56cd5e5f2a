#!/usr/bin/env bash
# tests/integration/password_hidden.sh - passwords in connection strings are printed
# nowhere: not when the publisher or the subscriber is refused at start, not when the
# publisher's password stops working while it runs and it reconnects, not in rtctl
# status, /api/status or /metrics.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

GOOD="Right-Pass-8631"
WRONG="Wrong-Pass-4417"
for c in source replica; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE ROLE rt_pw LOGIN SUPERUSER REPLICATION PASSWORD '$GOOD'"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
    data="$(rt__var "$c")_DATA"
    # Password authentication for rt_pw over TCP, before initdb's trust lines.
    sed -i "1i host all rt_pw 127.0.0.1/32 scram-sha-256" "${!data}/pg_hba.conf"
    rt_psql "$c" -c "SELECT pg_reload_conf()" >/dev/null
done
dsn() { # CLUSTER PASSWORD
    local port="$(rt__var "$1")_PORT"
    echo "host=127.0.0.1 port=${!port} dbname=postgres user=rt_pw password=$2"
}
# no_secret FILE...: none of the files holds either password.
no_secret() {
    local f
    for f in "$@"; do
        if grep -n -e "$GOOD" -e "$WRONG" -e "Changed-Pass" "$f"; then
            rt_fail "a password is printed in $f"
        fi
    done
}

echo "== refused at start"
rc=0
timeout 30 "$RT_BIN/rt-publisher" --source "$(dsn source "$WRONG")" --outbox "$RT_TMP/o1" \
    --name src >"$RT_TMP/refused.out" 2>&1 || rc=$?
cat "$RT_TMP/refused.out"
[[ "$rc" == 1 ]] || rt_fail "expected exit 1 from a publisher with a wrong password, got $rc"
grep -q 'cannot connect to the source (user=rt_pw dbname=postgres host=127.0.0.1' \
    "$RT_TMP/refused.out" || rt_fail "the error does not name the source"
grep -q 'password authentication failed' "$RT_TMP/refused.out" ||
    rt_fail "the error does not say why"
no_secret "$RT_TMP/refused.out"

echo "== a running publisher whose password stops working"
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
HTTP="127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$(dsn source "$GOOD")" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --http "$HTTP"
# The subscriber first with a wrong password: it retries, saying why.
rt_start_bg sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$(dsn replica "$WRONG")" --name replica
rt_wait_until 30 "the subscriber refused by the replica" \
    grep -q 'cannot connect to the replica (user=rt_pw' "$RT_TMP/sub.log"
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$(dsn replica "$GOOD")" --name replica
rt_psql source -c "INSERT INTO t VALUES (1, 'before')"
rt_wait_converged 60 source replica

rt_psql source -c "ALTER ROLE rt_pw PASSWORD 'Changed-Pass-2290'"
rt_psql source -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication
                   WHERE application_name = 'rt-publisher'" >/dev/null
rt_wait_until 30 "the publisher refused at its reconnect" \
    grep -q 'password authentication failed' "$RT_TMP/pub.log"
rt_status_json "$ROUTER" >"$RT_TMP/status.json"
curl -sS --max-time 10 "http://$HTTP/api/status" >"$RT_TMP/api_status.json"
curl -sS --max-time 10 "http://$HTTP/metrics" >"$RT_TMP/metrics.txt"
"$RT_BIN/rtctl" --publisher "$ROUTER" status >"$RT_TMP/status.txt"
rt_psql source -c "ALTER ROLE rt_pw PASSWORD '$GOOD'"
rt_psql source -c "INSERT INTO t VALUES (2, 'after')"
rt_wait_converged 60 source replica
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
no_secret "$RT_TMP/pub.log" "$RT_TMP/sub.log" "$RT_TMP/status.json" "$RT_TMP/api_status.json" \
    "$RT_TMP/metrics.txt" "$RT_TMP/status.txt"
echo "password hidden: ok"
