#!/usr/bin/env bash
# tests/integration/smoke_cluster.sh - the test cluster library itself: clusters, checksums, stop by pid.
set -euo pipefail

RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

# Ports are never handed out twice, even from subshells.
p1="$(rt_free_port)"
p2="$(rt_free_port)"
[[ "$p1" != "$p2" ]] || rt_fail "rt_free_port returned $p1 twice"
((p1 >= 20000 && p1 <= 60000)) || rt_fail "port $p1 out of range"

rt_pg_start one "max_connections = 50"
rt_pg_start two
[[ "$ONE_PORT" != "$TWO_PORT" ]] || rt_fail "both clusters on port $ONE_PORT"
[[ "$ONE_DSN" == "host=127.0.0.1 port=$ONE_PORT dbname=postgres user=postgres" ]] ||
    rt_fail "unexpected ONE_DSN: $ONE_DSN"
[[ -f "$ONE_DATA/PG_VERSION" ]] || rt_fail "ONE_DATA is not a data directory: $ONE_DATA"
[[ "$(rt_psql one -c 'SHOW wal_level')" == logical ]] || rt_fail "wal_level is not logical"
[[ "$(rt_psql one -c 'SHOW max_connections')" == 50 ]] || rt_fail "extra conf line not applied"
[[ "$(rt_psql two -c 'SHOW listen_addresses')" == 127.0.0.1 ]] || rt_fail "listens beyond loopback"

# Same tables on both: odd identifiers, a table without a key holding duplicate
# rows, an empty table, NULLs, a column named like the row alias.
schema_sql='
CREATE SCHEMA "Mixed Case";
CREATE TABLE "Mixed Case"."we;ird name" (id int PRIMARY KEY, "Value" text, r int);
CREATE TABLE public.nokey (a int, b text);
CREATE TABLE public.empty (x int);
CREATE TABLE public."quote""d" (t text);
'
rt_psql one -c "$schema_sql"
rt_psql two -c "$schema_sql"
# Insert in different orders on each side: the checksum must not depend on it.
rt_psql one -c "
INSERT INTO \"Mixed Case\".\"we;ird name\" VALUES (1, 'a', 1), (2, NULL, 2), (3, 'x;y''z', NULL);
INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (2, NULL);
INSERT INTO \"quote\"\"d\" VALUES ('one'), ('two');"
rt_psql two -c "
INSERT INTO \"Mixed Case\".\"we;ird name\" VALUES (3, 'x;y''z', NULL), (2, NULL, 2), (1, 'a', 1);
INSERT INTO nokey VALUES (2, NULL), (1, 'dup'), (1, 'dup');
INSERT INTO \"quote\"\"d\" VALUES ('two'), ('one');"

sums="$(rt_table_checksums one)"
echo "$sums"
[[ "$(wc -l <<<"$sums")" == 4 ]] || rt_fail "expected 4 tables, got: $sums"
grep -q '^"Mixed Case"\."we;ird name" [0-9a-f]\{32\}$' <<<"$sums" || rt_fail "odd name missing"
grep -q '^public\."quote""d" [0-9a-f]\{32\}$' <<<"$sums" || rt_fail "quoted name missing"
out="$(rt_assert_same one two)" || rt_fail "identical clusters compared different"
[[ "$out" == "checksums equal: 4 tables" ]] || rt_fail "unexpected output: $out"

# One duplicate row fewer on one side must be noticed (a set comparison would not).
rt_psql two -c "DELETE FROM nokey WHERE ctid = (SELECT min(ctid) FROM nokey WHERE a = 1)"
if rt_assert_same one two 2>"$RT_TMP/diff.txt"; then
    rt_fail "a missing duplicate row was not detected"
fi
grep -q '^[-+]public\.nokey ' "$RT_TMP/diff.txt" || rt_fail "diff does not name nokey: $(cat "$RT_TMP/diff.txt")"
rt_psql two -c "INSERT INTO nokey VALUES (1, 'dup')"
rt_assert_same one two

# One changed value in the odd table must be noticed, and only that table differs.
rt_psql one -c "UPDATE \"Mixed Case\".\"we;ird name\" SET \"Value\" = 'b' WHERE id = 1"
if rt_assert_same one two 2>"$RT_TMP/diff.txt"; then
    rt_fail "a changed row was not detected"
fi
cat "$RT_TMP/diff.txt"
[[ "$(grep -c '^[-+][^-+]' "$RT_TMP/diff.txt")" == 2 ]] || rt_fail "expected one differing table"

# rt_wait_converged: times out while different, succeeds once equal.
if rt_wait_converged 1 one two 2>/dev/null; then
    rt_fail "rt_wait_converged succeeded on different clusters"
fi
rt_psql two -c "UPDATE \"Mixed Case\".\"we;ird name\" SET \"Value\" = 'b' WHERE id = 1"
rt_wait_converged 10 one two

# rt_wait_until: bounded, both ways.
if rt_wait_until 1 "something false" false 2>/dev/null; then
    rt_fail "rt_wait_until succeeded on false"
fi
rt_wait_until 5 "true" true

# Daemons: ready line, death before ready, stop status, kill -9.
rt_start_daemon sleeper "$RT_TMP/sleeper.log" bash -c 'sleep 0.3; echo "x INFO: ready: test"; exec sleep 600'
rt_daemon_alive sleeper || rt_fail "sleeper not running"
[[ -n "$SLEEPER_PID" ]] || rt_fail "SLEEPER_PID not set"
rc=0
rt_stop_daemon sleeper || rc=$?
((rc == 128 + 15)) || rt_fail "expected status 143 from SIGTERM of sleep, got $rc"
rt_daemon_alive sleeper && rt_fail "sleeper still running"
if rt_start_daemon dier "$RT_TMP/dier.log" bash -c 'echo "no luck"; exit 3' 2>/dev/null; then
    rt_fail "rt_start_daemon succeeded for a process that died"
fi
if RT_READY_TIMEOUT=1 rt_start_daemon mute "$RT_TMP/mute.log" sleep 600 2>/dev/null; then
    rt_fail "rt_start_daemon succeeded without a ready line"
fi
rt_daemon_alive mute && rt_fail "a daemon that never got ready was left running"
rt_start_daemon trapper "$RT_TMP/trapper.log" bash -c 'trap "exit 0" TERM; echo "ready: x"; while :; do sleep 0.1; done'
rc=0
rt_stop_daemon trapper || rc=$?
((rc == 0)) || rt_fail "clean stop should return 0, got $rc"
rt_start_bg victim "$RT_TMP/victim.log" sleep 600
rt_kill9 victim
rt_daemon_alive victim && rt_fail "victim survived kill -9"

# Restart (crash and clean) keeps port and data.
rt_pg_restart one immediate
[[ "$(rt_psql one -c 'SELECT count(*) FROM nokey')" == 3 ]] || rt_fail "data lost by restart"
rt_pg_restart one
rt_assert_same one two

# Stop by pid leaves no process of the cluster behind.
pid="$(rt_pg_pid one)"
[[ -n "$pid" ]] || rt_fail "no postmaster pid for one"
[[ -n "$(rt__pids_in_dir "$ONE_DATA")" ]] || rt_fail "no process of one found running"
rt_pg_stop one
rt__alive "$pid" && rt_fail "postmaster $pid still running"
left="$(rt__pids_in_dir "$ONE_DATA")"
[[ -z "$left" ]] || rt_fail "processes of one left running: $left"
if rt_psql one -c 'SELECT 1' 2>/dev/null; then
    rt_fail "cluster one answers after stop"
fi
# A postmaster that ignores pg_ctl (stopped with SIGSTOP) is killed by pid.
pid2="$(rt_pg_pid two)"
kill -STOP "$pid2"
RT_STOP_T0=$SECONDS
RT_PG_STOP_TIMEOUT=2 rt_pg_stop two 2>/dev/null
left="$(rt__pids_in_dir "$TWO_DATA")"
[[ -z "$left" ]] || rt_fail "processes of two left running after SIGKILL: $left"
echo "stopped a hung postmaster in $((SECONDS - RT_STOP_T0)) s"

echo "smoke_cluster: all checks passed"
