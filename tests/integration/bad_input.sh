#!/usr/bin/env bash
# tests/integration/bad_input.sh - bad flags, unreachable servers, a wrong wal_level,
# hostile frames, a table missing on a replica and a standby as the replica: a clear
# error naming the thing, the documented exit code, and no data lost or applied twice.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
PUB="$RT_BIN/rt-publisher"
SUB="$RT_BIN/rt-subscriber"

# expect_exit CODE PATTERN CMD... : CMD exits with CODE and its output matches PATTERN.
expect_exit() {
    local code="$1" pattern="$2" rc=0
    shift 2
    timeout 30 "$@" >"$RT_TMP/out" 2>&1 || rc=$?
    if [[ "$rc" != "$code" ]] || ! grep -qE -- "$pattern" "$RT_TMP/out"; then
        cat "$RT_TMP/out" >&2
        rt_fail "expected exit $code and /$pattern/ from: $*  (got exit $rc)"
    fi
    echo "ok: exit $rc, $(grep -m1 -E -- "$pattern" "$RT_TMP/out")"
}

echo "== flags"
expect_exit 2 "missing required option --source" "$PUB" --outbox "$RT_TMP/o"
expect_exit 2 "missing required option --outbox" "$PUB" --source "dbname=x"
expect_exit 2 'batch-bytes.*"12x"' "$PUB" --source x --outbox "$RT_TMP/o" --batch-bytes 12x
expect_exit 2 'unknown' "$PUB" --source x --outbox "$RT_TMP/o" --no-such-flag 1
expect_exit 0 "--source" "$PUB" --help
expect_exit 2 "missing required option --target" "$SUB" --publisher tcp://127.0.0.1:1
expect_exit 2 "missing required option --publisher" "$SUB" --target "dbname=x"
expect_exit 0 "--target" "$SUB" --help
printf 'source = x\nbogus_key = 1\n' >"$RT_TMP/bad.ini"
expect_exit 2 "bad.ini:2.*bogus_key" "$PUB" --config "$RT_TMP/bad.ini" --outbox "$RT_TMP/o"
expect_exit 2 'unknown command "frobnicate"' "$RT_BIN/rtctl" frobnicate
expect_exit 0 "status" "$RT_BIN/rtctl" --help
# --version: the release and the commit built (12 hex digits; "-modified" from a tree
# with uncommitted changes; "unknown" outside a git checkout), whatever else is on the
# command line.
VERSION_RE=" [0-9]+\.[0-9]+\.[0-9]+ \(git ([0-9a-f]{12}(-modified)?|unknown)\)$"
expect_exit 0 "^rt-publisher$VERSION_RE" "$PUB" --version
expect_exit 0 "^rt-subscriber$VERSION_RE" "$SUB" --target x --version
expect_exit 0 "^rtctl$VERSION_RE" "$RT_BIN/rtctl" --version

echo "== unreachable servers"
DEAD="$(rt_free_port)"
expect_exit 1 "cannot connect to the source" "$PUB" --outbox "$RT_TMP/o1" \
    --source "host=127.0.0.1 port=$DEAD dbname=postgres user=postgres connect_timeout=5"
expect_exit 1 "no answer from the publisher at tcp://127.0.0.1:$DEAD" "$RT_BIN/rtctl" \
    --timeout 500 --publisher "tcp://127.0.0.1:$DEAD" status

rt_pg_start plain "wal_level = replica"
expect_exit 1 "wal_level" "$PUB" --outbox "$RT_TMP/o2" --source "$PLAIN_DSN"

echo "== hostile frames to the publisher"
rt_pg_start source
rt_pg_start replica
rt_psql source -c "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE missing_on_replica (id int PRIMARY KEY)"
rt_psql replica -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
P_ROUTER="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
rt_start_daemon pub "$RT_TMP/pub.log" "$PUB" --source "$SOURCE_DSN" --outbox "$RT_TMP/outbox" \
    --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
# garbage, a msgpack bomb, deep nesting, a reserved byte, a wrong field type, an unknown
# type, an unknown version, trailing bytes, an empty frame, a HELLO under another name
"$RT_BIN/rt_rawpeer" "$ROUTER" 00112233 dd10000000 "$(printf '91%.0s' {1..100})01" c1 \
    94a5464554434801a17801 92a45748415401 92a450494e4702 92a450494e470100 - \
    94a548454c4c4f01a17800 >"$RT_TMP/raw.out" || { cat "$RT_TMP/raw.out"; rt_fail "a hostile frame got no reply"; }
cat "$RT_TMP/raw.out"
[[ "$(grep -c '^ERROR' "$RT_TMP/raw.out")" == 10 ]] || rt_fail "expected 10 ERROR replies"
# a message of three frames is dropped without an answer; the publisher keeps serving
"$RT_BIN/rt_rawpeer" "$ROUTER" 2:92a450494e4701:92a450494e4701 >/dev/null || true
"$RT_BIN/rtctl" ping "$ROUTER" || rt_fail "the publisher stopped serving after hostile frames"
rt_daemon_alive pub || rt_fail "the publisher died"

echo "== names and texts from peers never reach a terminal raw"
# A HELLO with a name that is not one, then a subscriber whose ACK carries an escape
# sequence as its error text: the name is refused, rtctl prints the text defused.
"$RT_BIN/rt_rawpeer" --id "$(printf 'bad\nname')" "$ROUTER" \
    "$(printf '94a548454c4c4f01a8')$(printf 'bad\nname' | od -An -tx1 | tr -d ' \n')00" \
    >"$RT_TMP/badname.out" || true
grep -q 'ERROR.*subscriber names are 1 to 63' "$RT_TMP/badname.out" ||
    { cat "$RT_TMP/badname.out"; rt_fail "a HELLO with a newline in its name was not refused"; }
"$RT_BIN/rt_rawpeer" --id esc "$ROUTER" 94a548454c4c4f01a365736300 \
    98a341434b010000000000a41b5b324a >/dev/null || true
"$RT_BIN/rtctl" --publisher "$ROUTER" status >"$RT_TMP/status-esc.txt"
grep -q 'last error: ?\[2J' "$RT_TMP/status-esc.txt" ||
    { cat -v "$RT_TMP/status-esc.txt"; rt_fail "the ACK's error text is not shown defused"; }
if grep -q $'\x1b' "$RT_TMP/status-esc.txt"; then
    rt_fail "rtctl status printed an escape sequence from a peer"
fi
"$RT_BIN/rtctl" --publisher "$ROUTER" forget esc --force >/dev/null

echo "== a second publisher on the same outbox"
rt_psql source -c "INSERT INTO t VALUES (100, 'before the second publisher')"
expect_exit 1 "outbox $RT_TMP/outbox is in use by another process \(pid $PUB_PID\)" \
    "$PUB" --source "$SOURCE_DSN" --outbox "$RT_TMP/outbox" --name src --slot rt_other \
    --listen "tcp://127.0.0.1:$(rt_free_port)" --pub "tcp://127.0.0.1:$(rt_free_port)"
[[ "$(rt_psql source -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'rt_other'")" == 0 ]] ||
    rt_fail "the refused publisher left a slot behind"
rt_daemon_alive pub || rt_fail "the first publisher died"
"$RT_BIN/rtctl" ping "$ROUTER" >/dev/null || rt_fail "the first publisher stopped serving"
rt_psql source -c "DELETE FROM t WHERE id = 100"

echo "== a publisher that writes system catalogs and rt's own schema"
rt_pg_start victim
rt_psql victim -c "CREATE TABLE items (id int PRIMARY KEY)"
before="$(rt_psql victim -c "SELECT md5(coalesce(rolpassword, '')) FROM pg_authid WHERE rolname = 'postgres'")"
F_ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_bg evil "$RT_TMP/evil.log" "$RT_BIN/fake_publisher" --listen "$F_ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --source evil --evil
rt_start_daemon victim_sub "$RT_TMP/victim.log" "$SUB" --publisher "$F_ROUTER" \
    --target "$VICTIM_DSN" --name victim
rt_wait_until 30 "the catalog write refused" \
    grep -q 'the record changes pg_catalog.pg_authid; rt never writes system catalogs' "$RT_TMP/victim.log"
grep -m1 'rt never writes' "$RT_TMP/victim.log"
after="$(rt_psql victim -c "SELECT md5(coalesce(rolpassword, '')) FROM pg_authid WHERE rolname = 'postgres'")"
[[ "$before" == "$after" ]] || rt_fail "the subscriber changed pg_authid"
[[ "$(rt_psql victim -c "SELECT count(*) FROM rt.conflicts")" == 0 ]] ||
    rt_fail "the subscriber wrote into rt.conflicts for a publisher"
rt_stop_daemon victim_sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon evil || true

echo "== a table missing on the replica"
rt_start_daemon sub "$RT_TMP/sub.log" "$SUB" --publisher "$ROUTER" --target "$REPLICA_DSN" --name replica
rt_psql source -c "INSERT INTO t VALUES (1, 'before')"
rt_psql source -c "INSERT INTO missing_on_replica VALUES (1)"
rt_psql source -c "INSERT INTO t VALUES (2, 'after')"
rt_wait_until 30 "an error naming the missing table" \
    grep -q 'missing_on_replica' "$RT_TMP/sub.log"
grep -m1 'missing_on_replica' "$RT_TMP/sub.log"
sleep 1
[[ "$(rt_psql replica -c 'SELECT count(*) FROM t')" == 1 ]] ||
    rt_fail "the subscriber applied past a transaction it could not apply"
rt_psql replica -c "CREATE TABLE missing_on_replica (id int PRIMARY KEY)"
rt_wait_converged 60 source replica
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"

echo "== a standby as the replica"
# A cluster of its own, its data directory replaced by a base backup of the replica.
rt_pg_start standby
rt_pg_stop standby
cp "$STANDBY_DATA/postgresql.conf" "$RT_TMP/standby.conf"
rm -rf "$STANDBY_DATA"
rt__as_pg "$RT_PG_BIN/pg_basebackup" -D "$STANDBY_DATA" -R -X stream -d "$REPLICA_DSN" ||
    rt_fail "pg_basebackup of the replica failed"
cp "$RT_TMP/standby.conf" "$STANDBY_DATA/postgresql.conf"
((EUID != 0)) || chown postgres:postgres "$STANDBY_DATA/postgresql.conf"
rt__pg_launch standby
[[ "$(rt_psql standby -c "SELECT pg_is_in_recovery()")" == t ]] || rt_fail "the standby is not in recovery"
# Not ready until it has a replica to apply to.
rt_start_bg sby "$RT_TMP/sby.log" "$SUB" --publisher "$ROUTER" --target "$STANDBY_DSN" \
    --name standby --conflict-policy apply_remote
rt_wait_until 30 "an error saying the replica is a standby" \
    grep -q 'is a standby in recovery, which takes no writes' "$RT_TMP/sby.log"
grep -m1 'is a standby in recovery' "$RT_TMP/sby.log"
rt_daemon_alive sby || rt_fail "the subscriber stopped on a standby; it should wait for a promotion"
rt__as_pg "$RT_PG_BIN/pg_ctl" -D "$STANDBY_DATA" -w promote >/dev/null
rt_wait_converged 60 source standby
rt_stop_daemon sby || rt_fail "the subscriber of the promoted standby did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "bad input: ok"
