#!/usr/bin/env bash
# tests/integration/config_reload.sh - daemons configured from INI files; SIGHUP reloads what
# can change while running, and a broken file is refused with the running settings kept.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
rt_pg_start source
rt_pg_start replica
for c in source replica; do rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"; done

ROUTER="tcp://127.0.0.1:$(rt_free_port)"
cat >"$RT_TMP/pub.ini" <<INI
# publisher
[rt-publisher]
source = "$SOURCE_DSN"
outbox = $RT_TMP/outbox
name = src
listen = $ROUTER
pub = tcp://127.0.0.1:$(rt_free_port)
retention_seconds = 3600
INI
cat >"$RT_TMP/sub.ini" <<INI
publisher = $ROUTER
target = "$REPLICA_DSN"
name = replica
conflict-policy = error
INI
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --config "$RT_TMP/pub.ini"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --config "$RT_TMP/sub.ini"
rt_psql source -c "INSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 100) g"
rt_wait_converged 30 source replica

sed -i 's/^retention_seconds = 3600/retention_seconds = 0\nlog-level = debug/' "$RT_TMP/pub.ini"
kill -HUP "$PUB_PID"
rt_wait_until 10 "the publisher reloading its file" \
    grep -q 'reloaded .*pub.ini: log-level debug, retention-seconds 0' "$RT_TMP/pub.log"
# with retention 0 the acknowledged records are trimmed
rt_psql source -c "INSERT INTO t VALUES (1000, 'after reload')"
trimmed() { grep -q '"records":0,' <<<"$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)"; }
rt_wait_until 30 "the outbox trimmed after the reload" trimmed

sed -i 's/^conflict-policy = error/conflict-policy = apply_remote/' "$RT_TMP/sub.ini"
kill -HUP "$SUB_PID"
rt_wait_until 10 "the subscriber reloading its file" \
    grep -q 'reloaded .*sub.ini: log-level info, conflict-policy apply_remote' "$RT_TMP/sub.log"
# apply_remote now: a row the replica already has is overwritten, not a stop
rt_psql replica -c "INSERT INTO t VALUES (2000, 'replica only')"
rt_psql source -c "INSERT INTO t VALUES (2000, 'from the source')"
rt_wait_converged 30 source replica

echo "bogus = 1" >>"$RT_TMP/pub.ini"
kill -HUP "$PUB_PID"
rt_wait_until 10 "the broken file refused" grep -q 'pub.ini not reloaded' "$RT_TMP/pub.log"
grep -m1 'unknown key "bogus"' "$RT_TMP/pub.log"
rt_daemon_alive pub || rt_fail "the publisher died on a broken config file"
rt_psql source -c "INSERT INTO t VALUES (1001, 'still running')"
rt_wait_converged 30 source replica
rt_stop_daemon sub || rt_fail "subscriber exit status"
rt_stop_daemon pub || rt_fail "publisher exit status"
echo "config reload: ok"
