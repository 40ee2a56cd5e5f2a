#!/usr/bin/env bash
# tests/fault/kill9_rounds.sh - kill -9 of the publisher, of a subscriber, or of both at
# random moments of a running workload, round after round: the replicas converge with no
# transaction lost or doubled.
#
# RT_FAULT_ROUNDS (default 8, 4 in a sanitizer build; soak: 100) rounds; RT_FAULT_SEED
# replays a run (the seed is printed); RT_FAULT_RATE transactions/s (default 300).
set -euo pipefail
source "$RT_SRC/tests/fault/fault_lib.bash"

ROUNDS="${RT_FAULT_ROUNDS:-$(fault_scale 8 4)}"
SEED="${RT_FAULT_SEED:-$(($(date +%s%N) / 1000 % 1000000))}"
RATE="${RT_FAULT_RATE:-300}"
echo "kill9_rounds: $ROUNDS rounds, seed $SEED (replay with RT_FAULT_SEED=$SEED)"

fault_start_tpcb "$RATE"
RANDOM=$SEED

subs=(replica1 replica2)
for ((round = 1; round <= ROUNDS; round++)); do
    sleep "$(fault_rand 5 30 | sed 's/.$/.&/')"
    fault_alive_or_fail pub replica1 replica2 load
    victims=()
    case "$(fault_rand 0 2)" in
    0) victims=(pub) ;;
    1) victims=("${subs[$(fault_rand 0 1)]}") ;;
    2) victims=(pub "${subs[$(fault_rand 0 1)]}") ;;
    esac
    down="$(fault_rand 0 20 | sed 's/^.$/0&/; s/.$/.&/')"
    fault_log "round $round/$ROUNDS: kill -9 ${victims[*]}, down ${down}s"
    for v in "${victims[@]}"; do
        rt_kill9 "$v"
    done
    sleep "$down"
    for v in "${victims[@]}"; do
        if [[ "$v" == pub ]]; then fault_start_pub; else fault_start_sub "$v"; fi
    done
done
sleep 2
fault_alive_or_fail pub replica1 replica2 load
fault_load_stop
fault_check 180 100 source replica1 replica2
fault_stop_all replica1 replica2 pub
echo "kill9_rounds: ok ($ROUNDS rounds, seed $SEED)"
