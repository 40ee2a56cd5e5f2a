#!/usr/bin/env bash
# tests/integration/ctl_top.sh - rtctl top in a real 80x24 terminal (tmux) while a
# writer keeps the source busy: the frame lists both subscribers and a non-zero
# capture rate and fits 80x24; `p 1` pauses the first subscriber and `r 1` resumes it;
# `q` quits and SIGTERM stops it, both with the terminal's modes restored; --once
# prints one plain frame and exits 0.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v tmux >/dev/null || rt_fail "tmux is needed (Debian package tmux)"
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

for c in source r1 r2; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id bigserial PRIMARY KEY, v text)"
done
P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
CTL=("$RT_BIN/rtctl" --publisher "$ROUTER")
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
for r in r1 r2; do
    v="${r^^}_DSN"
    rt_start_daemon "$r" "$RT_TMP/$r.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "${!v}" --name "$r"
done
cat >"$RT_TMP/writer.sh" <<EOF
while :; do
    "$RT_PG_BIN/psql" -X -q -d "$SOURCE_DSN" -c "INSERT INTO t (v) SELECT 'x' FROM generate_series(1, 5)" || exit 1
    sleep 0.05
done
EOF
rt_start_bg writer "$RT_TMP/writer.log" bash "$RT_TMP/writer.sh"
sub_is() {
    [[ "$("${CTL[@]}" status --json | jq -r ".subscribers[] | select(.name == \"$1\") | .state")" == "$2" ]]
}
rt_wait_until 20 "r2 streaming" sub_is r2 streaming

echo "== --once"
"${CTL[@]}" top --once --interval 500 | tee "$RT_TMP/once.out"
grep -qE '^ 1  r1 ' "$RT_TMP/once.out" && grep -qE '^ 2  r2 ' "$RT_TMP/once.out" ||
    rt_fail "--once does not list both subscribers"
grep -q $'\033' "$RT_TMP/once.out" && rt_fail "--once printed escape sequences"

# A private tmux server; the command ends by itself (timeout) if the test dies early.
TMUX_SOCK="$RT_TMP/tmux.sock"
tm() { tmux -S "$TMUX_SOCK" "$@"; }
run_top() { # run_top SESSION: rtctl top in an 80x24 window; records its pid and tty modes after
    tm new-session -d -s "$1" -x 80 -y 24 \
        "echo \$\$ >'$RT_TMP/$1.pid'; timeout --foreground 120 '$RT_BIN/rtctl' --publisher '$ROUTER' top; \
         echo \$? >'$RT_TMP/$1.rc'; stty -a >'$RT_TMP/$1.stty'; sleep 1"
}
frame() { tm capture-pane -p -t "$1"; }
frame_ok() {
    frame top >"$RT_TMP/frame.txt" || return 1
    grep -qE '^ 1  r1 ' "$RT_TMP/frame.txt" && grep -qE '^ 2  r2 ' "$RT_TMP/frame.txt" &&
        grep -qE '^capture streaming +[0-9]*[1-9][0-9]*\.[0-9] txn/s' "$RT_TMP/frame.txt"
}

echo "== top in tmux"
run_top top
rt_wait_until 15 "a frame with both subscribers and a non-zero rate" frame_ok
cat "$RT_TMP/frame.txt"
(($(wc -l <"$RT_TMP/frame.txt") <= 24)) || rt_fail "the frame is taller than 24 lines"
awk 'length($0) > 80 { exit 1 }' "$RT_TMP/frame.txt" || rt_fail "a line is wider than 80 columns"
grep -q '^keys: p N pause' "$RT_TMP/frame.txt" || rt_fail "no key help line"

echo "== p 1 pauses r1, r 1 resumes it"
tm send-keys -t top p
tm send-keys -t top 1
rt_wait_until 10 "r1 paused from top" sub_is r1 paused
rt_wait_until 5 "the pause message" bash -c "tmux -S '$TMUX_SOCK' capture-pane -p -t top | grep -q '^paused r1 at acked seq'"
tm send-keys -t top r
tm send-keys -t top 1
rt_wait_until 10 "r1 resumed from top" sub_is r1 streaming

echo "== q quits and restores the terminal"
tm send-keys -t top q
rt_wait_until 10 "top to exit on q" test -s "$RT_TMP/top.rc"
[[ "$(cat "$RT_TMP/top.rc")" == 0 ]] || rt_fail "top exited with $(cat "$RT_TMP/top.rc") on q"
rt_wait_until 10 "the stty dump" test -s "$RT_TMP/top.stty"
grep -qw icanon "$RT_TMP/top.stty" && grep -qw echo "$RT_TMP/top.stty" ||
    rt_fail "terminal modes not restored after q: $(cat "$RT_TMP/top.stty")"

echo "== SIGTERM stops it and restores the terminal"
run_top top2
rt_wait_until 10 "the second top" bash -c "tmux -S '$TMUX_SOCK' capture-pane -p -t top2 | grep -q '^ 2  r2 '"
shell_pid="$(cat "$RT_TMP/top2.pid")"
top_pid="$(pgrep -P "$(pgrep -P "$shell_pid" -x timeout)" -x rtctl)"
[[ -n "$top_pid" ]] || rt_fail "cannot find the rtctl process of the second session"
kill -TERM "$top_pid"
rt_wait_until 10 "top to exit on SIGTERM" test -s "$RT_TMP/top2.rc"
[[ "$(cat "$RT_TMP/top2.rc")" == 0 ]] || rt_fail "top exited with $(cat "$RT_TMP/top2.rc") on SIGTERM"
rt_wait_until 10 "the stty dump" test -s "$RT_TMP/top2.stty"
grep -qw icanon "$RT_TMP/top2.stty" && grep -qw echo "$RT_TMP/top2.stty" ||
    rt_fail "terminal modes not restored after SIGTERM"

rt_stop_daemon writer || true
rt_wait_converged 60 source r1 r2
rt_stop_clean r1 r2 pub
echo "ctl top: ok"
