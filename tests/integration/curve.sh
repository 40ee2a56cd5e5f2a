#!/usr/bin/env bash
# tests/integration/curve.sh - every socket under CURVE, identity bound to keys.
#
# Each attack that worked against a plaintext publisher now fails for the attacker:
# a peer with no key or an unknown key gets no answer; the wire holds no plaintext row
# (relayed bytes searched for a marker, which the same check finds in plaintext); a
# forged ACK or FETCH under another subscriber's name is refused and trims nothing; a
# non-admin key cannot pause; a fake publisher gets nothing applied; a non-loopback
# endpoint without CURVE refuses to start. Also: rtctl keygen, admin verbs logged with
# the key's name, and --allow re-read on SIGHUP.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
CTL="$RT_BIN/rtctl"
K="$RT_TMP/keys"
mkdir -p "$K/allow" "$K/admin"

echo "== rtctl keygen"
for n in pub replica1 replica2 ops viewer stranger fake; do
    "$CTL" keygen "$n" --dir "$K" >/dev/null
done
[[ "$(stat -c %a "$K/replica1.cert_secret")" == 600 ]] || rt_fail "a secret certificate is not 0600"
grep -q 'name = "replica1"' "$K/replica1.cert" || rt_fail "no name in replica1.cert"
grep -q 'secret-key' "$K/replica1.cert" && rt_fail "the public certificate holds the secret key"
rc=0
"$CTL" keygen replica1 --dir "$K" 2>"$RT_TMP/keygen.err" || rc=$?
[[ "$rc" == 2 ]] && grep -q 'exists already' "$RT_TMP/keygen.err" ||
    rt_fail "keygen overwrote a key pair (exit $rc)"
for n in replica1 replica2 ops viewer; do cp "$K/$n.cert" "$K/allow/"; done
cp "$K/ops.cert" "$K/admin/"

echo "== a non-loopback endpoint needs CURVE or --insecure"
rc=0
timeout 20 "$RT_BIN/rt-publisher" --source "dbname=x" --outbox "$RT_TMP/o0" \
    --listen "tcp://0.0.0.0:$(rt_free_port)" >"$RT_TMP/open.out" 2>&1 || rc=$?
[[ "$rc" == 2 ]] && grep -q 'reachable from other hosts' "$RT_TMP/open.out" ||
    { cat "$RT_TMP/open.out"; rt_fail "a plaintext publisher on 0.0.0.0 started (exit $rc)"; }
rc=0
timeout 20 "$RT_BIN/rt-subscriber" --publisher "tcp://192.0.2.1:7470" --target "dbname=x" \
    >"$RT_TMP/open.out" 2>&1 || rc=$?
[[ "$rc" == 2 ]] && grep -q 'is on another host' "$RT_TMP/open.out" ||
    { cat "$RT_TMP/open.out"; rt_fail "a plaintext subscriber to another host started (exit $rc)"; }

for c in source replica1 replica2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done
P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
R_ROUTER="$(rt_free_port)"
R_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
MARKER="plaintext-marker-4f1c9e"
# Subscribers reach the publisher through a relay that keeps every byte it carries.
RT_PROXY_DUMP="$RT_TMP/wire.bin" rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt_tcpproxy" \
    "$R_ROUTER:$P_ROUTER" "$R_PUB:$P_PUB"
CURVE_PUB=(--cert "$K/pub.cert_secret" --allow "$K/allow" --admin "$K/admin")
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB" \
    "${CURVE_PUB[@]}"
grep -q 'CURVE (4 certificates allowed, 1 admin)' "$RT_TMP/pub.log" ||
    rt_fail "the ready line does not say CURVE"
start_sub() { # NAME [KEY NAME]
    rt_start_daemon "$1" "$RT_TMP/$1.log" "$RT_BIN/rt-subscriber" \
        --publisher "tcp://127.0.0.1:$R_ROUTER" --pub "tcp://127.0.0.1:$R_PUB" \
        --target "$(v="$(rt__var "$1")_DSN"; echo "${!v}")" --name "$1" \
        --cert "$K/${2:-$1}.cert_secret" --publisher-key "$K/pub.cert"
}
start_sub replica1
start_sub replica2
rt_psql source -c "INSERT INTO t SELECT g, '$MARKER' FROM generate_series(1, 200) g"
rt_wait_converged 60 source replica1
rt_wait_converged 60 source replica2

echo "== no plaintext on the wire"
[[ -s "$RT_TMP/wire.bin" ]] || rt_fail "the relay carried nothing"
if grep -q -a "$MARKER" "$RT_TMP/wire.bin"; then
    rt_fail "a replicated value crossed the wire in plaintext"
fi
echo "ok: $(stat -c %s "$RT_TMP/wire.bin") bytes relayed, no marker in them"

ctl() { # KEY ARGS...: rtctl as the holder of KEY ("" for no key)
    local key="$1"
    shift
    if [[ -n "$key" ]]; then
        "$CTL" --publisher "$ROUTER" --timeout 2000 --cert "$K/$key.cert_secret" \
            --publisher-key "$K/pub.cert" "$@"
    else
        "$CTL" --publisher "$ROUTER" --timeout 2000 "$@"
    fi
}
expect_fail() { # PATTERN CMD...: CMD exits 1 saying PATTERN
    local pattern="$1" rc=0
    shift
    "$@" >"$RT_TMP/out" 2>&1 || rc=$?
    [[ "$rc" == 1 ]] && grep -qE -- "$pattern" "$RT_TMP/out" ||
        { cat "$RT_TMP/out"; rt_fail "expected exit 1 and /$pattern/ from: $* (got $rc)"; }
    echo "ok: refused: $(grep -m1 -E -- "$pattern" "$RT_TMP/out")"
}

echo "== no key, an unknown key, a non-admin key"
expect_fail "no answer" ctl "" status
expect_fail "no answer" ctl stranger status
expect_fail "no reply" "$RT_BIN/rt_rawpeer" --cert "$K/stranger.cert_secret" \
    --server-key "$K/pub.cert" "$ROUTER" 92a450494e4701
ctl viewer status >"$RT_TMP/viewer-status.txt" || rt_fail "an allowed key could not read status"
grep -q 'sockets curve' "$RT_TMP/viewer-status.txt" || rt_fail "status does not say CURVE"
expect_fail "needs an admin key" ctl viewer pause replica1
grep -q 'admin: PAUSE replica1 refused: viewer is not an admin key' "$RT_TMP/pub.log" ||
    rt_fail "the refused PAUSE is not logged with the key's name"
ctl ops pause replica1 >/dev/null || rt_fail "the admin key could not pause"
grep -q 'admin: PAUSE replica1 by ops' "$RT_TMP/pub.log" || rt_fail "PAUSE not logged with ops"
ctl ops resume replica1 >/dev/null || rt_fail "the admin key could not resume"

echo "== another subscriber's name"
# ACK seq 0 for replica2, FETCH from seq 1, and HELLO, all with replica1's key: while
# replica2 is connected its routing id cannot be taken over (no answer at all); while it
# is down the publisher refuses each of them by key, and replica2's position stays.
forge() {
    local frame
    for frame in 98a341434b010000000000a0 94a5464554434801010a 94a548454c4c4f01a87265706c6963613200; do
        "$RT_BIN/rt_rawpeer" --id replica2 --cert "$K/replica1.cert_secret" \
            --server-key "$K/pub.cert" "$ROUTER" "$frame" || true
    done
}
forge >"$RT_TMP/forged-live.out" 2>&1
[[ "$(grep -c '^no reply' "$RT_TMP/forged-live.out")" == 3 ]] ||
    { cat "$RT_TMP/forged-live.out"; rt_fail "a peer took over a connected subscriber's routing id"; }
rt_stop_daemon replica2 || rt_fail "replica2 did not stop cleanly"
acked_before="$(rt_json_sub_acked "$(ctl ops status --json)" replica2)"
forge >"$RT_TMP/forged.out" 2>&1
cat "$RT_TMP/forged.out"
[[ "$(grep -c 'refused: it comes from the key of replica1' "$RT_TMP/forged.out")" == 3 ]] ||
    rt_fail "a message under another subscriber's name was not refused"
acked_after="$(rt_json_sub_acked "$(ctl ops status --json)" replica2)"
[[ "$acked_after" == "$acked_before" ]] ||
    rt_fail "a forged message moved replica2 ($acked_before -> $acked_after)"
start_sub replica2
rt_psql source -c "INSERT INTO t VALUES (1000, 'after the forgeries')"
rt_wait_converged 60 source replica2

echo "== a fake publisher with its own key"
rt_stop_daemon replica2 || rt_fail "replica2 did not stop cleanly"
F_ROUTER="$(rt_free_port)"
rt_start_bg fake "$RT_TMP/fake.log" "$RT_BIN/fake_publisher" --listen "tcp://127.0.0.1:$F_ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)" --source src --cert "$K/fake.cert_secret"
rt_start_bg replica2 "$RT_TMP/replica2-fake.log" "$RT_BIN/rt-subscriber" \
    --publisher "tcp://127.0.0.1:$F_ROUTER" --target "$REPLICA2_DSN" --name replica2 \
    --cert "$K/replica2.cert_secret" --publisher-key "$K/pub.cert"
sleep 4
grep -q '^hello' "$RT_TMP/fake.log" && rt_fail "the fake publisher heard the subscriber"
[[ "$(rt_psql replica2 -c "SELECT count(*) FROM pg_tables WHERE tablename = 'items'")" == 0 ]] ||
    rt_fail "something from the fake publisher reached the replica"
rt_stop_daemon replica2 || true
rt_stop_daemon fake || true
start_sub replica2

echo "== --allow is re-read on SIGHUP"
cp "$K/stranger.cert" "$K/allow/"
kill -HUP "$PUB_PID"
rt_wait_until 10 "the certificates reloaded" grep -q 'reloaded the certificates: 5 allowed' "$RT_TMP/pub.log"
ctl stranger status >/dev/null || rt_fail "a certificate added to --allow was refused after SIGHUP"
rm "$K/allow/stranger.cert"
kill -HUP "$PUB_PID"
rt_wait_until 10 "the certificates reloaded" grep -q 'reloaded the certificates: 4 allowed' "$RT_TMP/pub.log"
expect_fail "no answer" ctl stranger status

rt_psql source -c "INSERT INTO t VALUES (1001, 'last')"
rt_wait_converged 60 source replica1
rt_wait_converged 60 source replica2
for d in replica1 replica2 pub; do rt_stop_daemon "$d" || rt_fail "$d did not stop cleanly"; done

echo "== the same wire check finds the marker in plaintext (--insecure, said in status)"
rt_start_daemon pub "$RT_TMP/pub-plain.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "tcp://0.0.0.0:$P_ROUTER" \
    --pub "tcp://0.0.0.0:$P_PUB" --insecure
grep -q 'INSECURE: tcp://0.0.0.0' "$RT_TMP/pub-plain.log" || rt_fail "no INSECURE warning at start"
"$CTL" --publisher "$ROUTER" status >"$RT_TMP/insecure-status.txt"
grep -q 'sockets insecure' "$RT_TMP/insecure-status.txt" &&
    grep -q 'WARNING: the publisher serves other hosts in plaintext' "$RT_TMP/insecure-status.txt" ||
    { cat "$RT_TMP/insecure-status.txt"; rt_fail "status does not warn about --insecure"; }
grep -q '"security":"insecure"' <<<"$("$CTL" --publisher "$ROUTER" status --json)" ||
    rt_fail "status --json does not say insecure"
rt_start_daemon replica1 "$RT_TMP/replica1-plain.log" "$RT_BIN/rt-subscriber" \
    --publisher "tcp://127.0.0.1:$R_ROUTER" --pub "tcp://127.0.0.1:$R_PUB" \
    --target "$REPLICA1_DSN" --name replica1
rt_psql source -c "INSERT INTO t VALUES (1002, 'plain-$MARKER')"
rt_wait_converged 60 source replica1
grep -q -a "plain-$MARKER" "$RT_TMP/wire.bin" || rt_fail "the wire check cannot see plaintext"
for d in replica1 pub relay; do rt_stop_daemon "$d" || rt_fail "$d did not stop cleanly"; done
echo "curve: ok"
