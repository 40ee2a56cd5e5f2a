#!/usr/bin/env bash
# tests/integration/ctl_admin.sh - rtctl pause, resume, forget, status and outbox inspect
# against a real publisher and two subscribers.
#
# pause: the subscriber applies nothing (live PUB records included) while the other
# goes on, status says "paused", the pause survives a publisher restart (and the
# subscriber's reconnection), resume makes it catch up. With no retention window a
# paused subscriber does not hold back trimming. forget: refused for a connected,
# active subscriber without --force, accepted for a paused one; the forgotten
# subscriber's records are trimmed, so when it comes back it needs a resync (exit 3).
# Unknown names fail with exit 1 naming the known ones; usage errors exit 2. outbox
# inspect reads a live outbox and leaves a stopped one byte for byte unchanged.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

for c in source r1 r2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
CTL=("$RT_BIN/rtctl" --publisher "$ROUTER")
start_pub() {
    rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
        --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB" "$@"
}
start_sub() {
    rt_start_daemon "$1" "$RT_TMP/$1.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "$(eval echo "\$${1^^}_DSN")" --name "$1"
}
status_json() { "${CTL[@]}" status --json; }
sub_json() { status_json | jq -r --arg n "$1" ".subscribers[] | select(.name == \$n) | $2"; }
sub_is() { [[ "$(sub_json "$1" "$2")" == "$3" ]]; }
count() { rt_psql "$1" -c "SELECT count(*) FROM t"; }
count_is() { [[ "$(count "$1")" == "$2" ]]; }
next_id=1
write() { # write N: N one-row transactions
    local end=$((next_id + $1 - 1))
    for ((i = next_id; i <= end; i++)); do
        echo "INSERT INTO t VALUES ($i, 'row $i');"
    done | rt_psql source
    next_id=$((end + 1))
}

start_pub
start_sub r1
start_sub r2
write 20
rt_wait_converged 60 source r1 r2

echo "== usage errors and unknown names"
for args in "pause" "pause a b" "resume" "forget" "forget a --bogus" "replay" "status --bogus" "bogus"; do
    rc=0
    # shellcheck disable=SC2086
    "${CTL[@]}" $args >/dev/null 2>"$RT_TMP/usage.err" || rc=$?
    [[ "$rc" == 2 ]] || rt_fail "rtctl $args: exit $rc, expected 2"
    [[ -s "$RT_TMP/usage.err" ]] || rt_fail "rtctl $args: no error message"
done
for verb in pause resume forget; do
    rc=0
    "${CTL[@]}" "$verb" nosuch >/dev/null 2>"$RT_TMP/unknown.err" || rc=$?
    [[ "$rc" == 1 ]] || rt_fail "rtctl $verb nosuch: exit $rc, expected 1"
    grep -q 'no subscriber named "nosuch" (known: r1, r2)' "$RT_TMP/unknown.err" ||
        rt_fail "rtctl $verb nosuch: $(cat "$RT_TMP/unknown.err")"
done
grep -q '^Usage: rtctl .* pause NAME' <<<"$("${CTL[@]}" pause --help)" || rt_fail "pause --help"
grep -q '2  usage error' <<<"$("$RT_BIN/rtctl" --help)" || rt_fail "rtctl --help does not document exit codes"

echo "== pause r1: it applies nothing, r2 goes on"
rt_wait_until 10 "r1 acked 20" sub_is r1 .applied_seq 20
"${CTL[@]}" pause r1 | tee "$RT_TMP/pause.out"
grep -q '^paused r1 at acked seq 20' "$RT_TMP/pause.out" || rt_fail "pause output: $(cat "$RT_TMP/pause.out")"
grep -q 'already paused' <<<"$("${CTL[@]}" pause r1)" || rt_fail "a second pause does not say so"
rt_wait_until 10 "r1 shown paused" sub_is r1 .state paused
grep -q 'paused by the publisher' "$RT_TMP/r1.log" || rt_fail "r1 was not told it is paused"
write 30
rt_wait_converged 60 source r2
sleep 2
count_is r1 20 || rt_fail "paused r1 applied records: $(count r1) rows"
sub_is r1 .applied_seq 20 || rt_fail "paused r1 acked $(sub_json r1 .applied_seq)"
sub_is r1 .lag_records 30 || rt_fail "paused r1 lag $(sub_json r1 .lag_records)"
"${CTL[@]}" status | grep -E '^  r1 +paused +20 +30 ' || rt_fail "status text does not show r1 paused"

echo "== the pause survives a publisher restart"
rt_stop_daemon pub
start_pub
rt_wait_until 20 "r1 back and paused" sub_is r1 .state paused
rt_wait_until 20 "r2 back" sub_is r2 .state streaming
write 5
rt_wait_converged 60 source r2
sleep 2
count_is r1 20 || rt_fail "paused r1 applied records after the restart: $(count r1) rows"

echo "== resume r1: it catches up"
"${CTL[@]}" resume r1 | tee "$RT_TMP/resume.out"
grep -q '^resumed r1: it catches up from seq 21' "$RT_TMP/resume.out" || rt_fail "resume output"
rt_wait_converged 60 source r1 r2
rt_wait_until 10 "r1 streaming" sub_is r1 .state streaming

echo "== forget"
rc=0
"${CTL[@]}" forget r2 2>"$RT_TMP/forget.err" || rc=$?
[[ "$rc" == 1 ]] || rt_fail "forget of a connected subscriber: exit $rc"
grep -q 'connected and active' "$RT_TMP/forget.err" || rt_fail "forget refusal: $(cat "$RT_TMP/forget.err")"

echo "== a paused subscriber does not hold back trimming (no retention window)"
rt_stop_daemon pub
start_pub --retention-seconds 0
rt_wait_until 20 "r1 back" sub_is r1 .state streaming
"${CTL[@]}" pause r1 >/dev/null
R1_ACKED="$(sub_json r1 .applied_seq)"
write 20
rt_wait_converged 60 source r2
trimmed_past_r1() { (($(status_json | jq .first_seq) > R1_ACKED + 1)); }
rt_wait_until 20 "the outbox trimmed past paused r1 (acked $R1_ACKED)" trimmed_past_r1
echo "outbox first seq $(status_json | jq .first_seq), r1 acked $R1_ACKED"
grep -q '^forgot r1 (acked seq' <<<"$("${CTL[@]}" forget r1)" || rt_fail "forget of paused r1 refused"
status_json | jq -e '[.subscribers[].name] == ["r2"]' >/dev/null || rt_fail "r1 still listed"
rt_stop_daemon r1
# Back again, r1 is registered anew, but its records are gone: a resync (exit 3).
rc=0
timeout 30 "$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "$R1_DSN" --name r1 \
    >"$RT_TMP/r1.again.log" 2>&1 || rc=$?
[[ "$rc" == 3 ]] || rt_fail "forgotten r1 restarted: exit $rc, expected 3 (resync)"
grep -q 'resync' "$RT_TMP/r1.again.log" || rt_fail "no resync message"
grep -q '^forgot r2' <<<"$("${CTL[@]}" forget r2 --force)" || rt_fail "forget --force"

echo "== outbox inspect"
write 5 # with nobody registered nothing is trimmed: the outbox holds these
rt_wait_until 20 "records in the outbox" bash -c "\"\${0}\" --publisher $ROUTER status --json | jq -e '.records > 0' >/dev/null" "$RT_BIN/rtctl"
"$RT_BIN/rtctl" outbox inspect "$RT_TMP/outbox" | tee "$RT_TMP/inspect.out"
grep -q '^  records: [0-9]*, seqs [0-9]*\.\.[0-9]* (head seq' "$RT_TMP/inspect.out" || rt_fail "no record range"
grep -q '^  LSNs: commit [0-9A-F]*/[0-9A-F]*' "$RT_TMP/inspect.out" || rt_fail "no LSN range"
grep -q "^record seq $((next_id - 1)) " "$RT_TMP/inspect.out" || rt_fail "the newest record is not shown"
grep -q "INSERT public.t: id='$((next_id - 1))', v='row $((next_id - 1))'" "$RT_TMP/inspect.out" ||
    rt_fail "the newest record is not decoded"
rc=0
"$RT_BIN/rtctl" outbox inspect "$RT_TMP/outbox" --seq 1 >/dev/null 2>"$RT_TMP/inspect.err" || rc=$?
[[ "$rc" == 1 ]] && grep -q 'seq 1 is not in the outbox' "$RT_TMP/inspect.err" ||
    rt_fail "inspect of a trimmed seq: exit $rc, $(cat "$RT_TMP/inspect.err")"
rc=0
"$RT_BIN/rtctl" outbox inspect "$RT_TMP" >/dev/null 2>&1 || rc=$?
[[ "$rc" == 1 ]] || rt_fail "inspect of a directory that is no outbox: exit $rc"
rt_stop_daemon r2
rt_stop_daemon pub
before="$(md5sum <"$RT_TMP/outbox/data.mdb")"
grep -q "^record seq $((next_id - 2)) " <<<"$("$RT_BIN/rtctl" outbox inspect "$RT_TMP/outbox" --seq "$((next_id - 2))")" ||
    rt_fail "inspect --seq"
[[ "$(md5sum <"$RT_TMP/outbox/data.mdb")" == "$before" ]] || rt_fail "inspect modified data.mdb"

if grep -E 'AddressSanitizer|runtime error' "$RT_TMP"/*.log; then
    rt_fail "sanitizer errors in the daemon logs"
fi
echo "ctl admin: ok"
