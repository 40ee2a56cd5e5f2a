#!/usr/bin/env bash
# tests/integration/http_dashboard.sh - the daemons' --http endpoint: /metrics moves with a
# workload, /api/status matches rtctl, errors and cross-site refusal, and the dashboard page,
# driven from outside in headless Chromium through WebDriver, lists the subscriber and
# pauses and resumes it with its buttons.
#
# RT_SCREENSHOT=/path/file.png also saves a 1200x800 screenshot of the publisher's page.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
source "$RT_SRC/tests/lib/webdriver.sh"
rt_setup

command -v curl >/dev/null 2>&1 || rt_fail "curl is not installed (apt-get install curl)"

for c in source replica1; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
H_PUB="$(rt_free_port)"
H_SUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
PUB_URL="http://127.0.0.1:$H_PUB"
SUB_URL="http://127.0.0.1:$H_SUB"
TOKEN="t0k3n-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$TOKEN" >"$RT_TMP/http.token"
chmod 600 "$RT_TMP/http.token"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB" \
    --http "127.0.0.1:$H_PUB" --http-token "$RT_TMP/http.token"
rt_start_daemon replica1 "$RT_TMP/replica1.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA1_DSN" --name replica1 --http "127.0.0.1:$H_SUB"

# fetch URL OUTFILE [CURL ARGS...]: prints "CODE CONTENT_TYPE", body in OUTFILE.
fetch() {
    local url="$1" out="$2"
    shift 2
    curl -sS --max-time 10 -o "$out" -w '%{http_code} %{content_type}' "$@" "$url"
}

# metric FILE NAME [LABELS]: prints the value of the sample NAME or NAME{LABELS}.
metric() {
    local sel="$2"
    [[ -z "${3:-}" ]] || sel="$2{$3}"
    awk -v s="$sel" '$1 == s { print $2; found = 1 } END { exit !found }' "$1" ||
        rt__err "no sample $sel in $1"
}

echo "== /metrics of both daemons"
r="$(fetch "$PUB_URL/metrics" "$RT_TMP/m0.txt")"
[[ "$r" == "200 text/plain; version=0.0.4; charset=utf-8" ]] || rt_fail "publisher /metrics: $r"
for m in rt_publisher_captured_transactions_total rt_publisher_captured_rows_total \
    rt_publisher_filtered_transactions_total rt_publisher_outbox_records \
    rt_publisher_outbox_bytes rt_publisher_head_seq rt_publisher_confirmed_lsn \
    rt_publisher_received_lsn rt_publisher_bad_frames_total rt_publisher_dropped_peers_total \
    rt_publisher_subscriber_acked_seq rt_publisher_outbox_limit_bytes \
    rt_publisher_slot_retained_wal_bytes rt_publisher_source_lag_bytes \
    rt_publisher_source_lag_seconds rt_publisher_subscriber_error \
    rt_publisher_subscriber_lag_seconds \
    rt_publisher_subscriber_lag_records rt_publisher_subscriber_up; do
    grep -qE "^# TYPE $m (counter|gauge)\$" "$RT_TMP/m0.txt" || rt_fail "publisher /metrics lacks $m"
done
r="$(fetch "$SUB_URL/metrics" "$RT_TMP/s0.txt")"
[[ "$r" == "200 text/plain; version=0.0.4; charset=utf-8" ]] || rt_fail "subscriber /metrics: $r"
for m in rt_subscriber_applied_seq rt_subscriber_applied_transactions_total rt_subscriber_error \
    rt_subscriber_applied_rows_total rt_subscriber_lag_records rt_subscriber_lag_seconds \
    rt_subscriber_conflicts_total rt_subscriber_reconnects_total rt_subscriber_bad_frames_total; do
    grep -qE "^# TYPE $m (counter|gauge)\$" "$RT_TMP/s0.txt" || rt_fail "subscriber /metrics lacks $m"
done
txns0="$(metric "$RT_TMP/m0.txt" rt_publisher_captured_transactions_total)"
rows0="$(metric "$RT_TMP/m0.txt" rt_publisher_captured_rows_total)"
head0="$(metric "$RT_TMP/m0.txt" rt_publisher_head_seq)"
lsn0="$(metric "$RT_TMP/m0.txt" rt_publisher_confirmed_lsn)"
applied0="$(metric "$RT_TMP/s0.txt" rt_subscriber_applied_transactions_total)"

echo "== a workload of 200 transactions moves them"
for i in $(seq 1 200); do
    echo "INSERT INTO t VALUES ($i, 'row $i'), ($((i + 100000)), 'twin $i');"
done | rt_psql source
rt_wait_converged 60 source replica1
caught_up() {
    fetch "$PUB_URL/metrics" "$RT_TMP/m1.txt" >/dev/null &&
        fetch "$SUB_URL/metrics" "$RT_TMP/s1.txt" >/dev/null || return 1
    local head acked
    head="$(metric "$RT_TMP/m1.txt" rt_publisher_head_seq)" || return 1
    acked="$(metric "$RT_TMP/m1.txt" rt_publisher_subscriber_acked_seq 'subscriber="replica1"')" ||
        return 1
    ((head >= head0 + 200 && acked == head)) &&
        [[ "$(metric "$RT_TMP/s1.txt" rt_subscriber_applied_seq)" == "$head" ]] &&
        [[ "$(metric "$RT_TMP/s1.txt" rt_subscriber_lag_records)" == 0 ]]
}
rt_wait_until 30 "replica1 acknowledged everything in /metrics" caught_up
txns1="$(metric "$RT_TMP/m1.txt" rt_publisher_captured_transactions_total)"
rows1="$(metric "$RT_TMP/m1.txt" rt_publisher_captured_rows_total)"
lsn1="$(metric "$RT_TMP/m1.txt" rt_publisher_confirmed_lsn)"
applied1="$(metric "$RT_TMP/s1.txt" rt_subscriber_applied_transactions_total)"
((txns1 >= txns0 + 200)) || rt_fail "captured transactions $txns0 -> $txns1"
((rows1 >= rows0 + 400)) || rt_fail "captured rows $rows0 -> $rows1"
((lsn1 > lsn0)) || rt_fail "confirmed LSN did not move: $lsn0 -> $lsn1"
((applied1 >= applied0 + 200)) || rt_fail "applied transactions $applied0 -> $applied1"
[[ "$(metric "$RT_TMP/m1.txt" rt_publisher_subscriber_up 'subscriber="replica1"')" == 1 ]] ||
    rt_fail "replica1 is not up in the publisher's /metrics"
echo "captured $txns0 -> $txns1 transactions, applied $applied0 -> $applied1"

echo "== /api/status, errors, ping"
r="$(fetch "$PUB_URL/api/status" "$RT_TMP/status.json")"
[[ "$r" == "200 application/json"* ]] || rt_fail "/api/status: $r"
"$RT_BIN/rtctl" --publisher "$ROUTER" status --json >"$RT_TMP/rtctl.json"
keys() { grep -o '"[a-z_]*":' "$1" | sort -u; }
diff <(keys "$RT_TMP/rtctl.json") <(keys "$RT_TMP/status.json") ||
    rt_fail "/api/status and rtctl status --json have different fields"
grep -q '"name":"replica1","state":"streaming"' "$RT_TMP/status.json" ||
    rt_fail "/api/status does not show replica1 streaming: $(cat "$RT_TMP/status.json")"
r="$(fetch "$SUB_URL/api/status" "$RT_TMP/sub-status.json")"
{ [[ "$r" == "200 application/json"* ]] && grep -q '"name":"replica1"' "$RT_TMP/sub-status.json"; } ||
    rt_fail "subscriber /api/status: $r $(cat "$RT_TMP/sub-status.json")"
[[ "$(fetch "$PUB_URL/nope" "$RT_TMP/x")" == 404* ]] || rt_fail "unknown path is not 404"
[[ "$(fetch "$PUB_URL/metrics" "$RT_TMP/x" -X POST)" == 405* ]] || rt_fail "POST /metrics is not 405"
[[ "$(fetch "$PUB_URL/api/pause?name=replica1" "$RT_TMP/x")" == 405* ]] ||
    rt_fail "GET /api/pause is not 405"
[[ "$(fetch "$PUB_URL/api/pause?name=replica1" "$RT_TMP/x" -X POST \
    -H 'Origin: http://evil.example' -H "Authorization: Bearer $TOKEN")" == 403* ]] ||
    rt_fail "a cross-site POST was not refused"
[[ "$(fetch "$PUB_URL/api/pause?name=replica1" "$RT_TMP/x" -X POST)" == 401* ]] ||
    rt_fail "a POST /api/pause without the token was not refused"
[[ "$(fetch "$PUB_URL/api/pause?name=replica1" "$RT_TMP/x" -X POST \
    -H "Authorization: Bearer wrong-$TOKEN")" == 401* ]] ||
    rt_fail "a POST /api/pause with a wrong token was not refused"
[[ "$(fetch "$PUB_URL/metrics" "$RT_TMP/x" -H 'Host: rebind.evil.example')" == 421* ]] ||
    rt_fail "a request for another Host (DNS rebinding) was not refused"
[[ "$(fetch "$SUB_URL/api/status" "$RT_TMP/x" -H "Host: localhost:$H_SUB")" == 200* ]] ||
    rt_fail "Host: localhost was refused"
r="$(fetch "$PUB_URL/api/ping" "$RT_TMP/ping.json" -X POST)"
{ [[ "$r" == 200* ]] && grep -q '"queued_us":' "$RT_TMP/ping.json"; } ||
    rt_fail "/api/ping: $r $(cat "$RT_TMP/ping.json")"
grep -q '"name":"replica1","state":"streaming"' <<<"$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)" ||
    rt_fail "a refused pause took effect"

echo "== the dashboard in headless Chromium, driven through WebDriver"
rt_webdriver_start
rt_webdriver_session
ROW='#subs tr[data-name="replica1"]'
rt_webdriver_open "$PUB_URL/"
rt_wait_until 15 "the publisher's page to list replica1" \
    rt_webdriver_has_text "$ROW td.name" replica1
rt_webdriver_has_text '#who' 'publisher src' ||
    rt_fail "the publisher's page does not name its source: $(rt_webdriver_text '#who')"
# The slot's figures, measured on the source every 2 s, once known.
card_matches() { [[ "$(rt_webdriver_text "$1")" =~ $2 ]]; }
rt_wait_until 15 "the publisher's page to show the WAL its slot retains" \
    card_matches '#card-retained-wal .v' '^[0-9.]+ (B|KiB|MiB|GiB)$'
rt_wait_until 15 "the publisher's page to show the source lag" \
    card_matches '#card-source-lag .v' '^[0-9.]+ (B|KiB|MiB|GiB), [0-9.]+ (ms|s|min)$'
if [[ -n "${RT_SCREENSHOT:-}" ]]; then
    rt_webdriver_screenshot "$RT_SCREENSHOT" 1200 800
    echo "screenshot: $RT_SCREENSHOT"
fi
rt_webdriver_open "$SUB_URL/"
rt_wait_until 15 "the subscriber's page to show its status" \
    rt_webdriver_has_text '#who' 'subscriber replica1 of src'

echo "== the page's pause button"
rt_webdriver_open "$PUB_URL/"
rt_wait_until 15 "replica1's pause button" rt_webdriver_exists "$ROW button[data-action=pause]"
# Without the token the page reports the refusal and nothing changes.
rt_webdriver_click "$ROW button[data-action=pause]"
rt_wait_until 15 "the page to report the refusal" rt_webdriver_has_text '#msg' 'needs the token'
rt_webdriver_type '#token' "$TOKEN"
rt_webdriver_click "$ROW button[data-action=pause]"
rt_wait_until 15 "the page to show replica1 paused" rt_webdriver_has_text "$ROW .badge" paused
rt_wait_until 15 "the page to report the pause" rt_webdriver_has_text '#msg' 'pause replica1: '
if rt_webdriver_exists '#msg.err'; then
    rt_fail "the page reports an error: $(rt_webdriver_text '#msg')"
fi
rt_webdriver_exists "$ROW button[data-action=resume]" ||
    rt_fail "the page offers no resume button for replica1"
grep -q '"name":"replica1","state":"paused"' <<<"$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)" ||
    rt_fail "rtctl does not show replica1 paused"
fetch "$PUB_URL/api/status" "$RT_TMP/status.json" >/dev/null
grep -q '"name":"replica1","state":"paused"' "$RT_TMP/status.json" ||
    rt_fail "/api/status does not show replica1 paused"
# While paused, new source rows stay away from the replica.
n_before="$(rt_psql replica1 -c 'SELECT count(*) FROM t')"
rt_psql source -c "INSERT INTO t SELECT g, 'paused' FROM generate_series(500001, 500050) g"
captured() {
    fetch "$PUB_URL/metrics" "$RT_TMP/m2.txt" >/dev/null &&
        (($(metric "$RT_TMP/m2.txt" rt_publisher_head_seq) > $(metric "$RT_TMP/m1.txt" rt_publisher_head_seq)))
}
rt_wait_until 30 "the publisher to capture the insert" captured
sleep 2
[[ "$(rt_psql replica1 -c 'SELECT count(*) FROM t')" == "$n_before" ]] ||
    rt_fail "replica1 applied changes while paused"

echo "== the page's resume button"
rt_webdriver_click "$ROW button[data-action=resume]"
rt_wait_until 15 "the page to report the resume" rt_webdriver_has_text '#msg' 'resume replica1: '
if rt_webdriver_exists '#msg.err'; then
    rt_fail "the page reports an error: $(rt_webdriver_text '#msg')"
fi
rt_wait_converged 60 source replica1
streaming() {
    grep -q '"name":"replica1","state":"streaming"' <<<"$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)"
}
rt_wait_until 30 "replica1 streaming again" streaming
rt_wait_until 15 "the page to show replica1 streaming" rt_webdriver_has_text "$ROW .badge" streaming
rt_webdriver_stop

rt_stop_clean replica1 pub
if grep -E 'ERROR|AddressSanitizer|runtime error' "$RT_TMP"/pub.log "$RT_TMP"/replica1.log; then
    rt_fail "errors in the daemon logs"
fi
echo "http dashboard: ok"
