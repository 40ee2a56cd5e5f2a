#!/usr/bin/env bash
# tests/integration/monitoring.sh - deploy/monitoring against promtool and live daemons: the alert
# rules pass `promtool check rules` and their unit tests, the Grafana dashboard is well formed
# (panels with targets whose PromQL parses, only its own variables), every rt_ metric the rules
# and the dashboard name is one a running publisher or subscriber exports (its `# TYPE` line in
# /metrics), and the live figures of a healthy pipeline, held for 30 minutes, fire no alert.
#
# promtool comes from scripts/promtool.sh (PATH, or Debian's prometheus package, unpacked into
# a cache without installing it).
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

MON="$RT_SRC/deploy/monitoring"
RULES="$MON/rt-alerts.yml"
RULE_TESTS="$MON/rt-alerts.test.yml"
DASH="$MON/rt-dashboard.json"
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || rt_fail "$tool is not installed (apt-get install $tool)"
done
for f in "$RULES" "$RULE_TESTS" "$DASH"; do
    [[ -s "$f" ]] || rt_fail "$f is missing or empty"
done

echo "== promtool check rules, promtool test rules"
PROMTOOL="$(timeout 300 "$RT_SRC/scripts/promtool.sh")" || rt_fail "no promtool: scripts/promtool.sh failed"
"$PROMTOOL" --version 2>&1 | head -n 1
timeout 60 "$PROMTOOL" check rules "$RULES" | tee "$RT_TMP/check-rules.txt" ||
    rt_fail "promtool check rules $RULES"
timeout 120 "$PROMTOOL" test rules "$RULE_TESTS" || rt_fail "promtool test rules $RULE_TESTS"

# rule_exprs FILE: prints the expr of every rule of a Prometheus rules file, a block scalar
# (`expr: |`) as its lines.
rule_exprs() {
    awk '
        inexpr {
            if ($0 ~ /^[[:space:]]*$/) next
            match($0, /^ */)
            if (RLENGTH > keyind) { print; next }
            inexpr = 0
        }
        match($0, /^ *(- )?expr:[[:space:]]*/) {
            keyind = index($0, "expr:") - 1
            rest = substr($0, RLENGTH + 1)
            if (rest ~ /^[|>][-+0-9]*[[:space:]]*$/) inexpr = 1
            else print rest
        }' "$1"
}
nrules="$(sed -nE 's/.*SUCCESS: ([0-9]+) rules found.*/\1/p' "$RT_TMP/check-rules.txt")"
nexprs="$(grep -cE '^ *(- )?expr:' "$RULES")"
[[ -n "$nrules" && "$nrules" == "$nexprs" ]] ||
    rt_fail "promtool found ${nrules:-no} rules in $RULES, this test reads $nexprs exprs"
mapfile -t ALERTS < <(sed -nE 's/^ *- alert: *([A-Za-z_][A-Za-z0-9_]*) *$/\1/p' "$RULES")
((${#ALERTS[@]} > 0)) || rt_fail "no alert rules read from $RULES"
echo "rules: $nrules, alerts: ${ALERTS[*]}"

echo "== the dashboard's structure"
jq empty "$DASH" || rt_fail "$DASH is not valid JSON"
# Each check is a jq expression that must be true; the message says what it requires.
dash_check() {
    jq -e "$1" "$DASH" >/dev/null || rt_fail "$DASH: $2"
}
dash_check '(.title | type == "string" and length > 0) and (.uid | type == "string" and length > 0)' \
    "needs a title and a uid"
dash_check '.schemaVersion >= 37' "schemaVersion $(jq .schemaVersion "$DASH") is below 37"
dash_check '[.templating.list[] | select(.name == "datasource" and .type == "datasource"
            and .query == "prometheus")] | length == 1' \
    "needs a template variable datasource of type datasource, query prometheus"
# shellcheck disable=SC2016 # ${datasource} is Grafana's, not the shell's
dash_check '[.templating.list[] | select(.name == "instance" and .type == "query"
            and .datasource.uid == "${datasource}")] | length == 1' \
    "needs a query variable instance on \${datasource}"
dash_check '[.panels[] | select(.type != "row")] | length >= 8' "has fewer than 8 panels"
dash_check '[.panels[] | .id] | (length == (unique | length)) and all(type == "number")' \
    "panel ids are missing or not unique"
dash_check 'all(.panels[]; .gridPos.w > 0 and .gridPos.h > 0 and .gridPos.x >= 0 and .gridPos.y >= 0
            and .gridPos.x + .gridPos.w <= 24)' "a panel lies outside the 24-column grid"
# shellcheck disable=SC2016
dash_check 'all(.panels[] | select(.type != "row");
            (.title | length > 0) and .datasource.type == "prometheus"
            and .datasource.uid == "${datasource}" and (.targets | length > 0)
            and ([.targets[].refId] | length == (unique | length))
            and all(.targets[]; (.expr | type == "string" and length > 0)
                and .datasource.uid == "${datasource}"))' \
    "every panel needs a title, the \${datasource} data source and targets with an expr and a unique refId"
# The variables the exprs use are the dashboard's own or Grafana's.
# shellcheck disable=SC2016 # deletes the characters $ and {
vars="$(jq -r '.panels[].targets[]?.expr' "$DASH" | grep -oE '\$\{?[A-Za-z_][A-Za-z0-9_]*' |
    tr -d '${' | sort -u)"
for v in $vars; do
    case "$v" in
    __rate_interval | __interval | __range) ;;
    *) jq -e --arg v "$v" '[.templating.list[].name] | index($v) != null' "$DASH" >/dev/null ||
        rt_fail "$DASH: an expr uses \$$v, which is not a template variable" ;;
    esac
done
# Every target's PromQL parses: each becomes a recording rule that promtool checks (with the
# variables as Grafana would expand them). JSON is YAML.
jq '{groups: [{name: "dashboard", rules: [.panels[] | select(.targets) | .id as $id
        | .targets[] | {record: "dashboard_panel_\($id)_\(.refId)",
          expr: (.expr | gsub("\\$__rate_interval|\\$__interval|\\$__range"; "5m")
                       | gsub("\\$\\{?instance\\}?"; ".*"))}]}]}' "$DASH" >"$RT_TMP/dashboard-rules.json"
timeout 60 "$PROMTOOL" check rules "$RT_TMP/dashboard-rules.json" >"$RT_TMP/dashboard-check.txt" 2>&1 || {
    cat "$RT_TMP/dashboard-check.txt" >&2
    rt_fail "a dashboard expr is not valid PromQL"
}
echo "panels: $(jq '[.panels[] | select(.type != "row")] | length' "$DASH")," \
    "targets: $(jq '[.panels[].targets[]?] | length' "$DASH"), all parse"

# metric_names: reads PromQL on stdin, prints the rt_ identifiers in it, sorted, once each.
metric_names() {
    grep -oE '(^|[^A-Za-z0-9_:])rt_[A-Za-z0-9_:]*' | sed -E 's/^[^r]//' | sort -u
}
rule_exprs "$RULES" | metric_names >"$RT_TMP/names.rules"
{
    jq -r '.panels[].targets[]?.expr' "$DASH"
    jq -r '.templating.list[] | select(.type == "query") | .query | if type == "object" then .query else . end' "$DASH"
} | metric_names >"$RT_TMP/names.dashboard"
[[ -s "$RT_TMP/names.rules" && -s "$RT_TMP/names.dashboard" ]] ||
    rt_fail "no rt_ metric names read from the rules or the dashboard"
echo "metric names used: $(wc -l <"$RT_TMP/names.rules") in the rules," \
    "$(wc -l <"$RT_TMP/names.dashboard") in the dashboard"

echo "== a live publisher and subscriber"
for c in source replica; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
H_PUB="$(rt_free_port)"
H_SUB="$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)" \
    --max-outbox-mb 64 --http "127.0.0.1:$H_PUB"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$REPLICA_DSN" --name replica --http "127.0.0.1:$H_SUB"
rt_psql source -c "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g"
rt_wait_converged 60 source replica

# sample FILE NAME [LABELS]: prints the value of the sample NAME or NAME{LABELS} in FILE.
sample() {
    local sel="$2"
    [[ -z "${3:-}" ]] || sel="$2{$3}"
    awk -v s="$sel" '$1 == s { print $2; found = 1 } END { exit !found }' "$1"
}
scrape() {
    curl -sS --max-time 10 -o "$RT_TMP/pub.metrics" "http://127.0.0.1:$H_PUB/metrics" &&
        curl -sS --max-time 10 -o "$RT_TMP/sub.metrics" "http://127.0.0.1:$H_SUB/metrics"
}
# Both scraped once the subscriber has applied everything and the publisher knows it.
caught_up() {
    scrape || return 1
    local head
    head="$(sample "$RT_TMP/pub.metrics" rt_publisher_head_seq)" || return 1
    ((head > 0)) &&
        [[ "$(sample "$RT_TMP/pub.metrics" rt_publisher_subscriber_acked_seq 'subscriber="replica"')" == "$head" ]] &&
        [[ "$(sample "$RT_TMP/sub.metrics" rt_subscriber_applied_seq)" == "$head" ]] &&
        [[ "$(sample "$RT_TMP/sub.metrics" rt_subscriber_lag_records)" == 0 ]]
}
rt_wait_until 30 "the subscriber caught up in both daemons' /metrics" caught_up

echo "== every metric the rules and the dashboard use is exported"
cat "$RT_TMP/pub.metrics" "$RT_TMP/sub.metrics" |
    awk '$1 == "#" && $2 == "TYPE" { print $3 }' | sort -u >"$RT_TMP/names.exported"
{ grep -q '^rt_publisher_' "$RT_TMP/names.exported" && grep -q '^rt_subscriber_' "$RT_TMP/names.exported"; } ||
    rt_fail "no # TYPE lines of rt_publisher_ and rt_subscriber_ metrics in the daemons' /metrics"
echo "exported: $(wc -l <"$RT_TMP/names.exported") metric families"
missing=0
for what in rules dashboard; do
    while read -r name; do
        if ! grep -qxF "$name" "$RT_TMP/names.exported"; then
            echo "MISSING: $name (used in the $what) is not exported by rt-publisher or rt-subscriber" >&2
            missing=$((missing + 1))
        fi
    done <"$RT_TMP/names.$what"
done

echo "== a healthy pipeline's live figures, held for 30 minutes, fire no alert"
# The scraped samples become promtool input series, constant over 31 minutes, with the job
# and instance labels Prometheus would add (jobs named as in rt-alerts.yml's header).
# series JOB INSTANCE FILE: prints the input_series entries for the samples in FILE.
series() {
    awk -v job="$1" -v inst="$2" '
        /^#/ || NF < 2 { next }
        {
            name = $1; v = $2
            if (v == "+Inf") v = "Inf"
            extra = "job=\"" job "\",instance=\"" inst "\""
            if (name ~ /}$/) sel = substr(name, 1, length(name) - 1) "," extra "}"
            else sel = name "{" extra "}"
            gsub(/'\''/, "'\'''\''", sel)
            printf "      - series: '\''%s'\''\n        values: '\''%s+0x31'\''\n", sel, v
        }' "$3"
    printf "      - series: 'up{job=\"%s\",instance=\"%s\"}'\n        values: '1+0x31'\n" "$1" "$2"
}
{
    echo "rule_files: [$(jq -n --arg f "$RULES" '$f')]"
    echo "evaluation_interval: 1m"
    echo "tests:"
    echo "  - interval: 1m"
    echo "    input_series:"
    series rt-publisher "127.0.0.1:$H_PUB" "$RT_TMP/pub.metrics"
    series rt-subscriber "127.0.0.1:$H_SUB" "$RT_TMP/sub.metrics"
    echo "    alert_rule_test:"
    for a in "${ALERTS[@]}"; do
        printf '      - eval_time: 30m\n        alertname: %s\n        exp_alerts: []\n' "$a"
    done
} >"$RT_TMP/live.test.yml"
timeout 120 "$PROMTOOL" test rules "$RT_TMP/live.test.yml" ||
    rt_fail "an alert fires on the live figures of a healthy pipeline ($RT_TMP/live.test.yml, RT_KEEP=1 keeps it)"
limit="$(sample "$RT_TMP/pub.metrics" rt_publisher_outbox_limit_bytes || true)"
[[ -z "$limit" || "$limit" == $((64 << 20)) ]] ||
    rt_fail "rt_publisher_outbox_limit_bytes is $limit with --max-outbox-mb 64, not $((64 << 20))"

rt_stop_clean sub pub
((missing == 0)) || rt_fail "$missing metric name(s) used in deploy/monitoring are not exported"
echo "monitoring: ok"
