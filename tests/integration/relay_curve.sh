#!/usr/bin/env bash
# tests/integration/relay_curve.sh - an rt-relay across an untrusted network: CURVE on
# both of its sides with one key pair, its own --allow and --admin, and what it refuses.
#
# The publisher allows only the relay's key; the relay pins the publisher's key and
# allows only replica1's (and the operator's). replica1 follows the relay and converges
# with the source; a key the relay does not allow gets no answer; a relay whose
# certificate names another relay, or without the publisher's key, does not start; an
# initial copy asked of the relay is refused with a message naming the publisher; admin
# verbs at the relay need its admin keys; replica1 moves to the publisher and back to
# the relay with nothing but its --publisher (the same seqs).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
CTL="$RT_BIN/rtctl"
K="$RT_TMP/keys"
mkdir -p "$K/pub_allow" "$K/relay_allow" "$K/relay_admin"
for n in pub edge replica1 replica2 ops stranger; do
    "$CTL" keygen "$n" --dir "$K" >/dev/null
done
cp "$K/edge.cert" "$K/replica1.cert" "$K/ops.cert" "$K/pub_allow/"
cp "$K/replica1.cert" "$K/replica2.cert" "$K/ops.cert" "$K/relay_allow/"
cp "$K/ops.cert" "$K/relay_admin/"

for c in source replica1 replica2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
R1="tcp://127.0.0.1:$(rt_free_port)"
R1_PUB="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --cert "$K/pub.cert_secret" --allow "$K/pub_allow" \
    --admin "$K/pub_allow"

echo "== a relay that cannot be what it says does not start"
rc=0
timeout 20 "$RT_BIN/rt-relay" --publisher "$ROUTER" --outbox "$RT_TMP/bad" --name other \
    --listen "$R1" --pub "$R1_PUB" --cert "$K/edge.cert_secret" --publisher-key "$K/pub.cert" \
    --allow "$K/relay_allow" >"$RT_TMP/bad.out" 2>&1 || rc=$?
[[ "$rc" == 2 ]] && grep -q 'is the certificate of "edge"' "$RT_TMP/bad.out" ||
    { cat "$RT_TMP/bad.out"; rt_fail "a relay with another relay's certificate started (exit $rc)"; }
rc=0
timeout 20 "$RT_BIN/rt-relay" --publisher "$ROUTER" --outbox "$RT_TMP/bad" --name edge \
    --listen "$R1" --pub "$R1_PUB" --cert "$K/edge.cert_secret" --allow "$K/relay_allow" \
    >"$RT_TMP/bad.out" 2>&1 || rc=$?
[[ "$rc" == 2 ]] && grep -q 'needs --publisher-key' "$RT_TMP/bad.out" ||
    { cat "$RT_TMP/bad.out"; rt_fail "a relay without the publisher's key started (exit $rc)"; }
rc=0
timeout 20 "$RT_BIN/rt-relay" --publisher "$ROUTER" --outbox "$RT_TMP/bad" --name edge \
    --listen "tcp://0.0.0.0:$(rt_free_port)" --pub "$R1_PUB" >"$RT_TMP/bad.out" 2>&1 || rc=$?
[[ "$rc" == 2 ]] && grep -q 'reachable from other hosts' "$RT_TMP/bad.out" ||
    { cat "$RT_TMP/bad.out"; rt_fail "a plaintext relay on 0.0.0.0 started (exit $rc)"; }

echo "== replica1 follows the relay under CURVE"
rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt-relay" --publisher "$ROUTER" \
    --outbox "$RT_TMP/relay" --name edge --listen "$R1" --pub "$R1_PUB" \
    --cert "$K/edge.cert_secret" --publisher-key "$K/pub.cert" --allow "$K/relay_allow" \
    --admin "$K/relay_admin"
rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" --publisher "$R1" \
    --target "$REPLICA1_DSN" --name replica1 --cert "$K/replica1.cert_secret" \
    --publisher-key "$K/edge.cert"
for i in $(seq 1 50); do
    rt_psql source -c "INSERT INTO t VALUES ($i, 'row $i')" >/dev/null
done
rt_psql source -c "UPDATE t SET v = v || ' updated' WHERE id % 3 = 0"
rt_wait_converged 60 source replica1

echo "== a key the relay does not allow gets no answer"
rc=0
"$CTL" --publisher "$R1" --timeout 2000 --cert "$K/stranger.cert_secret" \
    --publisher-key "$K/edge.cert" status >"$RT_TMP/stranger.out" 2>&1 || rc=$?
((rc != 0)) || { cat "$RT_TMP/stranger.out"; rt_fail "the relay answered a key it does not allow"; }
# replica1's key is allowed but no admin key: it may read, not pause.
rc=0
"$CTL" --publisher "$R1" --cert "$K/replica1.cert_secret" --publisher-key "$K/edge.cert" \
    pause replica1 >"$RT_TMP/pause.out" 2>&1 || rc=$?
((rc != 0)) && grep -q 'admin' "$RT_TMP/pause.out" ||
    { cat "$RT_TMP/pause.out"; rt_fail "a non-admin key paused a subscriber at the relay"; }
"$CTL" --publisher "$R1" --cert "$K/ops.cert_secret" --publisher-key "$K/edge.cert" \
    status >"$RT_TMP/status.out"
grep -E '^ *replica1 ' "$RT_TMP/status.out" || { cat "$RT_TMP/status.out"; rt_fail "no replica1 in the relay's status"; }
"$CTL" --publisher "$R1" --cert "$K/ops.cert_secret" --publisher-key "$K/edge.cert" \
    pause replica1 >/dev/null
rt_psql source -c "INSERT INTO t VALUES (1000, 'while paused')"
sleep 2
[[ "$(rt_psql replica1 -c "SELECT count(*) FROM t WHERE id = 1000")" == 0 ]] ||
    rt_fail "replica1 applied while paused at the relay"
"$CTL" --publisher "$R1" --cert "$K/ops.cert_secret" --publisher-key "$K/edge.cert" \
    resume replica1 >/dev/null
rt_wait_converged 60 source replica1

echo "== replica1 moves to the publisher, and back to the relay"
start_replica1() {
    rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" --publisher "$1" \
        --target "$REPLICA1_DSN" --name replica1 --cert "$K/replica1.cert_secret" \
        --publisher-key "$K/$2.cert"
}
rt_stop_daemon replica1
rt_psql source -c "INSERT INTO t SELECT g, 'moving ' || g FROM generate_series(2000, 2100) g"
start_replica1 "$ROUTER" pub
rt_psql source -c "UPDATE t SET v = v || ' at the publisher' WHERE id BETWEEN 2000 AND 2050"
rt_wait_converged 60 source replica1
rt_stop_daemon replica1
# Where it left, it would hold back trimming: forget it there.
"$CTL" --publisher "$ROUTER" --cert "$K/ops.cert_secret" --publisher-key "$K/pub.cert" \
    forget replica1 --force >/dev/null
rt_psql source -c "DELETE FROM t WHERE id BETWEEN 2040 AND 2060"
start_replica1 "$R1" edge
rt_wait_converged 60 source replica1
grep -q 'subscriber replica1 connected at seq' "$RT_TMP/pub.log" ||
    rt_fail "replica1 never followed the publisher itself"

echo "== an initial copy is the publisher's"
rt_psql replica2 -c "DROP TABLE t"
rc=0
timeout 60 "$RT_BIN/rt-subscriber" --publisher "$R1" --target "$REPLICA2_DSN" --name replica2 \
    --cert "$K/replica2.cert_secret" --publisher-key "$K/edge.cert" --init copy \
    --create-tables >"$RT_TMP/replica2.log" 2>&1 || rc=$?
((rc != 0 && rc != 124)) && grep -q 'no source to copy from' "$RT_TMP/replica2.log" ||
    { cat "$RT_TMP/replica2.log"; rt_fail "an initial copy through the relay was not refused (exit $rc)"; }

rt_stop_clean replica1 relay pub
echo "relay under CURVE: ok"
