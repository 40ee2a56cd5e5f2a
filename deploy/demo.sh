#!/usr/bin/env bash
# deploy/demo.sh - rt's main job on one machine: a source, two replicas, a publisher, two subscribers, a workload.
#
# Run through `./rtdev demo` (which installs and builds first), or directly with
# RT_BIN (the build directory) and RT_SRC (the source tree) set.
# Settings: RT_DEMO_SECONDS (workload length, default 20), RT_DEMO_RATE
# (workload transactions per second, default 200; 0 = as fast as it goes),
# RT_DEMO_HTTP_PORT (the publisher's dashboard port, default: a free one),
# RT_DEMO_HOLD (seconds to keep everything running after the checks, to look at the
# dashboards, default 0), RT_KEEP=1 (keep the temporary directory with every log and
# data directory).
set -euo pipefail

RT_SRC="${RT_SRC:-$(cd "$(dirname "$0")/.." && pwd)}"
RT_BIN="${RT_BIN:-$RT_SRC/build}"
DURATION="${RT_DEMO_SECONDS:-20}"
RATE="${RT_DEMO_RATE:-200}"
ACCOUNTS=1000

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"

for prog in rt-publisher rt-subscriber; do
    [[ -x "$RT_BIN/$prog" ]] || rt_fail "$RT_BIN/$prog is missing: build first (./rtdev build)"
done
RTCTL=""
if [[ -x "$RT_BIN/rtctl" ]]; then
    RTCTL="$RT_BIN/rtctl"
fi

rt_setup
echo "==> working directory $RT_TMP (logs, data; RT_KEEP=1 keeps it)"

echo "==> starting PostgreSQL clusters: source, replica1, replica2 (127.0.0.1)"
rt_pg_start source
rt_pg_start replica1
rt_pg_start replica2
# The publisher runs on the source's host and reads it through its Unix socket; each
# subscriber runs on its replica's host and writes through the replica's (below).
PUB_SOURCE_DSN="$(rt_pg_socket_dsn source)"
echo "    source   $SOURCE_DSN (the publisher: $PUB_SOURCE_DSN)"
echo "    replica1 $REPLICA1_DSN"
echo "    replica2 $REPLICA2_DSN"

# The source's tables. The replicas are empty databases: their subscribers create the
# tables from the source's definitions (--create-tables).
SCHEMA_SQL="
CREATE TABLE accounts (
    id         int PRIMARY KEY,
    owner      text NOT NULL,
    balance    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    account_id int NOT NULL,
    kind       text NOT NULL,
    amount     bigint NOT NULL,
    note       text,
    at         timestamptz NOT NULL DEFAULT now()
);
"
rt_psql source -c "$SCHEMA_SQL"
echo "==> created tables accounts and events on the source; the replicas are empty databases"

ROUTER_PORT="$(rt_free_port)"
PUB_PORT="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$ROUTER_PORT"
HTTP_PORT="${RT_DEMO_HTTP_PORT:-$(rt_free_port)}"
HOLD="${RT_DEMO_HOLD:-0}"
mkdir -p "$RT_TMP/outbox"

# The source is populated before rt starts, as a real one is: the replicas join it
# with --init copy while the workload runs.
rt_psql source -c "INSERT INTO accounts (id, owner, balance)
                   SELECT i, 'owner ' || i, 1000 FROM generate_series(1, $ACCOUNTS) i;
                   INSERT INTO events (account_id, kind, amount, note)
                   SELECT 1 + i % $ACCOUNTS, 'opening', 1000, md5(i::text)
                   FROM generate_series(1, $((ACCOUNTS * 200))) i"
echo "==> the source holds $ACCOUNTS accounts and $((ACCOUNTS * 200)) events before rt starts"

echo "==> starting rt-publisher (control $ROUTER, stream tcp://127.0.0.1:$PUB_PORT)"
rt_start_daemon publisher "$RT_TMP/publisher.log" \
    "$RT_BIN/rt-publisher" --source "$PUB_SOURCE_DSN" --outbox "$RT_TMP/outbox" --name demo \
    --listen "$ROUTER" --pub "tcp://127.0.0.1:$PUB_PORT" --http "127.0.0.1:$HTTP_PORT"
grep -m1 -E '(^|[[:space:]])ready:' "$RT_TMP/publisher.log" | sed 's/^/    /'
curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/" ||
    rt_fail "the publisher's dashboard does not answer at http://127.0.0.1:$HTTP_PORT/"
echo "==> dashboard: http://127.0.0.1:$HTTP_PORT/  (metrics: /metrics, JSON: /api/status)"

# The workload: transfers (two updates and an insert in one transaction),
# accounts opened and closed, old events deleted.
cat >"$RT_TMP/transfer.sql" <<EOF
\\set from random(1, $ACCOUNTS)
\\set amount random(1, 100)
BEGIN;
UPDATE accounts SET balance = balance - :amount, updated_at = now() WHERE id = :from;
INSERT INTO events (account_id, kind, amount, note) VALUES (:from, 'transfer', :amount, md5(random()::text));
END;
EOF
cat >"$RT_TMP/churn.sql" <<EOF
\\set id random($((ACCOUNTS + 1)), $((ACCOUNTS * 2)))
INSERT INTO accounts (id, owner) VALUES (:id, 'new ' || :id)
    ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1, updated_at = now();
DELETE FROM accounts WHERE id = :id + 1;
EOF
cat >"$RT_TMP/trim.sql" <<EOF
\\set a random(1, $ACCOUNTS)
DELETE FROM events WHERE id IN (SELECT id FROM events WHERE account_id = :a ORDER BY id LIMIT 2);
EOF

rate_args=()
if ((RATE > 0)); then
    rate_args=(-R "$RATE")
fi
echo "==> workload: pgbench, 2 clients, ${DURATION}s, rate ${RATE}/s (0 = unlimited)"
rt_start_bg workload "$RT_TMP/pgbench.log" \
    "$RT_PG_BIN/pgbench" -n -c 2 -j 2 -T "$DURATION" "${rate_args[@]}" \
    -f "$RT_TMP/transfer.sql@6" -f "$RT_TMP/churn.sql@2" -f "$RT_TMP/trim.sql@1" \
    -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres postgres

# The replicas are empty databases: each subscriber creates the tables from the source's
# definitions, copies the source through the publisher (one snapshot, tables in
# parallel), builds the keys and indexes, then applies exactly what committed after that
# snapshot.
declare -A SUB_HTTP=()
for r in replica1 replica2; do
    SUB_HTTP[$r]="$(rt_free_port)"
    echo "==> starting rt-subscriber $r --init copy --create-tables (empty database, the workload running)"
    rt_start_bg "$r" "$RT_TMP/$r.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
        --target "$(rt_pg_socket_dsn "$r")" --name "$r" --init copy --create-tables \
        --http "127.0.0.1:${SUB_HTTP[$r]}"
    echo "    $r dashboard: http://127.0.0.1:${SUB_HTTP[$r]}/"
done

# rows NAME: total rows of the demo tables on cluster NAME (empty if unreachable).
rows() {
    rt_psql "$1" -c "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM events)" 2>/dev/null || true
}

# check_daemons: fails loudly if a daemon died.
check_daemons() {
    local d
    for d in publisher replica1 replica2; do
        rt_daemon_alive "$d" || rt_fail "$d died (log: $RT_TMP/$d.log)"
    done
}

declare -A prev=()
prev_ms="$(rt__now_ms)"
start_ms="$prev_ms"
for r in replica1 replica2; do
    prev[$r]="$(rows "$r")"
done

# live_line: one line of progress, then the publisher's status if rtctl exists.
live_line() {
    local now_ms src r cur rate line elapsed
    now_ms="$(rt__now_ms)"
    elapsed=$((now_ms - prev_ms))
    ((elapsed > 0)) || elapsed=1
    src="$(rows source)"
    line="$(printf '%4ds  source %6s rows' $(((now_ms - start_ms) / 1000)) "$src")"
    for r in replica1 replica2; do
        cur="$(rows "$r")"
        if [[ -n "$cur" && -n "${prev[$r]}" ]]; then
            rate="$(printf '%+d' $(((cur - prev[$r]) * 1000 / elapsed)))"
        else
            rate="?"
        fi
        line+="$(printf ' | %s %6s rows %6s rows/s' "$r" "$cur" "$rate")"
        prev[$r]="$cur"
    done
    prev_ms="$now_ms"
    echo "$line"
    if [[ -n "$RTCTL" ]]; then
        timeout 3 "$RTCTL" --publisher "$ROUTER" status 2>&1 | sed 's/^/        rtctl: /' || true
    fi
}

# copy_lines: the subscribers' new copy and ready lines.
declare -A shown=([replica1]=0 [replica2]=0)
copy_lines() {
    local r n
    for r in replica1 replica2; do
        n="$(wc -l <"$RT_TMP/$r.log")"
        if ((n > shown[$r])); then
            tail -n "+$((shown[$r] + 1))" "$RT_TMP/$r.log" | head -n "$((n - shown[$r]))" |
                grep -E 'initial copy|ready:' | sed "s/^/    $r: /" || true
            shown[$r]="$n"
        fi
    done
}

while rt_daemon_alive workload; do
    sleep 1
    check_daemons
    copy_lines
    live_line
done
rc=0
rt_stop_daemon workload || rc=$?
grep -E '^(number of transactions actually processed|number of failed transactions|tps =)' \
    "$RT_TMP/pgbench.log" | sed 's/^/    pgbench: /' || true
((rc == 0)) || rt_fail "pgbench exited with status $rc (log: $RT_TMP/pgbench.log)"

echo "==> workload done; waiting for the replicas to catch up (at most 120 s)"
converged=0
deadline=$(($(rt__now_ms) + 120000))
while (($(rt__now_ms) < deadline)); do
    if rt_wait_converged 1 source replica1 replica2 >/dev/null 2>&1; then
        converged=1
        break
    fi
    check_daemons
    copy_lines
    live_line
done
copy_lines
live_line
if ((converged == 0)); then
    rt_assert_same source replica1 replica2 || true
    rt_fail "the replicas did not converge to the source within 120 s"
fi
out="$(rt_assert_same source replica1 replica2)" || rt_fail "the replicas differ from the source"
ntables="${out##*: }"
ntables="${ntables%% *}"
echo "==> replicas match the source: $ntables tables, checksums equal"

if ((HOLD > 0)); then
    echo "==> holding ${HOLD}s: dashboard http://127.0.0.1:$HTTP_PORT/ (Ctrl-C ends the demo)"
    hold_end=$(($(rt__now_ms) + HOLD * 1000))
    while (($(rt__now_ms) < hold_end)); do
        check_daemons
        sleep 1
    done
fi

echo "==> stopping the subscribers and the publisher (SIGTERM)"
stop_failed=0
for d in replica1 replica2 publisher; do
    rc=0
    rt_stop_daemon "$d" || rc=$?
    echo "    $d exited with status $rc"
    ((rc == 0)) || stop_failed=1
done
for c in replica2 replica1 source; do
    rt_pg_stop "$c"
done
((stop_failed == 0)) || rt_fail "a daemon did not stop cleanly (logs in $RT_TMP, keep them with RT_KEEP=1)"
echo "==> demo finished"
