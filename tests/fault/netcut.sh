#!/usr/bin/env bash
# tests/fault/netcut.sh - network cuts between the publisher and its subscribers during
# a workload: longer than the subscriber's 5 s silence timeout and shorter, connections
# reset, and (where the kernel has netem) delay and loss. The subscribers reconnect and
# converge with no transaction lost or doubled.
#
# replica1 reaches the publisher through tests/tools/rt_tcpproxy (black hole: SIGUSR1,
# reset: SIGUSR2, forward again: SIGHUP). replica2's subscriber runs in its own network
# namespace behind a veth pair whose link the test takes down (a black hole); where
# namespaces are not permitted it runs on the host, uncut, and the test says so.
#
# RT_FAULT_ROUNDS (default 1; soak: 20) rounds of: long cut, short cut, resets, netem.
# RT_FAULT_CUT_LONG (default 8) and RT_FAULT_CUT_SHORT (default 2) seconds.
set -euo pipefail
FAULT_HOST='*'
source "$RT_SRC/tests/fault/fault_lib.bash"
# The publisher serves every interface, so across the (namespace) network: CURVE.
fault_curve replica1 replica2

ROUNDS="${RT_FAULT_ROUNDS:-1}"
CUT_LONG="${RT_FAULT_CUT_LONG:-8}"
CUT_SHORT="${RT_FAULT_CUT_SHORT:-2}"
echo "netcut: $ROUNDS round(s), cuts of ${CUT_LONG}s and ${CUT_SHORT}s"

fault_clusters source replica1 replica2

NETNS=0
if rt_netns_new ns2 2>"$RT_TMP/netns.err"; then
    NETNS=1
    echo "netcut: replica2's subscriber runs in a network namespace ($NS2_NS_IP, publisher at $NS2_HOST_IP via $NS2_VETH)"
else
    echo "netcut: NOTE: network namespaces not usable here ($(tr '\n' ' ' <"$RT_TMP/netns.err")); replica2 runs uncut on the host"
fi
NETEM=0
if ((NETNS)); then
    if tc qdisc add dev "$NS2_VETH" root netem delay 1ms >"$RT_TMP/netem.err" 2>&1; then
        tc qdisc del dev "$NS2_VETH" root
        NETEM=1
    else
        echo "netcut: NOTE: tc netem not available ($(tr '\n' ' ' <"$RT_TMP/netem.err")); delay and loss are skipped"
    fi
fi

R_ROUTER="$(rt_free_port)"
R_PUB="$(rt_free_port)"
rt_start_daemon relay "$RT_TMP/relay.log" "$RT_BIN/rt_tcpproxy" "$R_ROUTER:$P_ROUTER" "$R_PUB:$P_PUB"
fault_start_pub
SUB_ROUTER="tcp://127.0.0.1:$R_ROUTER" fault_start_sub replica1 --pub "tcp://127.0.0.1:$R_PUB"
if ((NETNS)); then
    SUB_PREFIX="$NS2_NSENTER" SUB_ROUTER="tcp://$NS2_HOST_IP:$P_ROUTER" \
        SUB_TARGET="$(rt_pg_socket_dsn replica2)" fault_start_sub replica2
else
    fault_start_sub replica2
fi
fault_load_start 300 4

count() { grep -c "$2" "$RT_TMP/$1.log" || true; }
cut() {
    kill -USR1 "$RELAY_PID"
    ((NETNS == 0)) || rt_netns_link ns2 down
}
heal() {
    kill -HUP "$RELAY_PID"
    ((NETNS == 0)) || rt_netns_link ns2 up
}

for ((round = 1; round <= ROUNDS; round++)); do
    sleep 3
    fault_alive_or_fail pub replica1 replica2 relay load
    lost1="$(count replica1 'reconnecting to')"
    lost2="$(count replica2 'reconnecting to')"
    fault_log "round $round/$ROUNDS: cut for ${CUT_LONG}s (longer than the 5 s silence timeout)"
    cut
    sleep "$CUT_LONG"
    heal
    fault_log "healed"
    (($(count replica1 'reconnecting to') > lost1)) ||
        rt_fail "replica1 did not notice the ${CUT_LONG}s cut"
    if ((NETNS)); then
        (($(count replica2 'reconnecting to') > lost2)) ||
            rt_fail "replica2 did not notice the ${CUT_LONG}s cut"
    fi
    fault_wait_caught_up 60 replica1 replica2
    fault_log "both replicas caught up"

    fault_log "round $round/$ROUNDS: cut for ${CUT_SHORT}s"
    cut
    sleep "$CUT_SHORT"
    heal
    fault_wait_caught_up 60 replica1 replica2
    fault_log "both replicas caught up"

    fault_log "round $round/$ROUNDS: relay resets replica1's connections, twice"
    kill -USR2 "$RELAY_PID"
    sleep 1
    kill -USR2 "$RELAY_PID"
    fault_wait_caught_up 60 replica1
    fault_log "replica1 caught up"

    if ((NETEM)); then
        fault_log "round $round/$ROUNDS: netem delay 40ms +-20ms, loss 5% on replica2's link for 6s"
        tc qdisc add dev "$NS2_VETH" root netem delay 40ms 20ms loss 5%
        nsenter --net="/proc/$NS2_PID/ns/net" -- tc qdisc add dev "rtn$NS2_PID" root netem delay 40ms 20ms loss 5%
        sleep 6
        fault_wait_caught_up 60 replica2
        tc qdisc del dev "$NS2_VETH" root
        nsenter --net="/proc/$NS2_PID/ns/net" -- tc qdisc del dev "rtn$NS2_PID" root
        fault_log "replica2 caught up under delay and loss"
    fi
done
sleep 1
fault_alive_or_fail pub replica1 replica2 relay load
fault_load_stop
fault_check 120 100 source replica1 replica2
echo "netcut: replica1 reconnected $(count replica1 'reconnecting to') time(s), replica2 $(count replica2 'reconnecting to') time(s); relay: $(grep -c 'reset' "$RT_TMP/relay.log" || true) reset(s)"
fault_stop_all replica1 replica2 pub relay
echo "netcut: ok ($ROUNDS round(s), netns $NETNS, netem $NETEM)"
