#!/usr/bin/env bash
# bench/copy.sh - a new replica of a populated source: the time until it is live, with rt
# (--init copy through the publisher) against PostgreSQL's native logical replication
# (CREATE SUBSCRIPTION ... WITH (copy_data = true), at the default
# max_sync_workers_per_subscription and at 4) and against pg_dump | psql, same machine,
# same run, each into a fresh replica with the tables created beforehand; and, into an
# empty database, rt --init copy --create-tables against pg_dump | psql of the schema and
# the rows (both build the indexes after the rows).
#
# Data: four tables of RT_BENCH_COPY_ROWS rows (default 1000000) and one of
# RT_BENCH_COPY_TOAST wide rows (default 5000, 20 kB each, TOASTed). RT_BENCH_ROUNDS
# rounds (default 2), each running every method once, rt and native alternating, odd
# rounds native first and even rounds rt first; each method starts after a sync. The
# builds and settings are bench/run.sh's (RT_BENCH_BUILD, RT_BENCH_NO_BUILD).
# Prints one table: the median seconds per method, how many times faster rt is than each
# (median of the per-round ratios, and their spread), the CPU seconds each side spent,
# and rt's daemons' peak RSS (VmHWM).
set -euo pipefail

# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
ROWS="${RT_BENCH_COPY_ROWS:-1000000}"
TOAST="${RT_BENCH_COPY_TOAST:-5000}"
JOBS="${RT_BENCH_COPY_JOBS:-4}"
ROUNDS="${RT_BENCH_ROUNDS:-2}"

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
# shellcheck source=bench/lib.sh
source "$RT_SRC/bench/lib.sh"

SCHEMA="
CREATE TABLE t1 (id bigint PRIMARY KEY, a int NOT NULL, b text, c timestamptz NOT NULL);
CREATE TABLE t2 (LIKE t1 INCLUDING ALL);
CREATE TABLE t3 (LIKE t1 INCLUDING ALL);
CREATE TABLE t4 (LIKE t1 INCLUDING ALL);
CREATE TABLE wide (id int PRIMARY KEY, doc text NOT NULL);
"
now_ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

echo "==> source: 4 tables of $ROWS rows, $TOAST wide rows"
rt_pg_start source
rt_psql source -c "$SCHEMA"
for t in t1 t2 t3 t4; do
    rt_psql source -c "INSERT INTO $t SELECT g, g % 1000, md5(g::text) || md5((-g)::text),
        '2026-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, $ROWS) g"
done
rt_psql source -c "INSERT INTO wide SELECT g, string_agg(md5((g * 1000 + k)::text), '')
    FROM generate_series(1, $TOAST) g, generate_series(1, 625) k GROUP BY g"
rt_psql source -c "VACUUM ANALYZE"
rt_psql source -c "SELECT pg_size_pretty(pg_database_size('postgres'))" | sed 's/^/    size: /'

# fresh NAME [SETTINGS...]: an empty replica with the tables.
fresh() {
    local name="$1"
    shift
    rt_pg_start "$name" "$@"
    rt_psql "$name" -c "$SCHEMA"
}

# dump_into NAME [PG_DUMP_OPTIONS...]: pg_dump of the source (without rt-publisher's schema
# rt) piped into psql on NAME. A schema dump still holds rt's DDL event triggers, whose
# functions are in rt: psql reports those two statements and goes on.
dump_into() {
    local name="$1" port
    shift
    port="$(rt__var "$name")_PORT"
    "$RT_PG_BIN/pg_dump" "$@" --exclude-schema=rt -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres postgres |
        "$RT_PG_BIN/psql" -X -q -h 127.0.0.1 -p "${!port}" -U postgres postgres >/dev/null
}

declare -A took=() cpu=()
# cpu_s PID: CPU seconds of a process, of the children it reaped and of those still
# running (for a postmaster: the whole cluster's work).
cpu_s() {
    local kids
    kids="$(grep -l "^[0-9]* ([^)]*) . $1 " /proc/[0-9]*/stat 2>/dev/null || true)"
    # shellcheck disable=SC2086
    awk -v t="$(getconf CLK_TCK)" -v me="/proc/$1/stat" '
        FILENAME == me { s += $14 + $15 + $16 + $17; next }
        { s += $14 + $15 }
        END { printf "%.1f", s / t }' "/proc/$1/stat" $kids
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
# start_clock: the page cache's dirty pages of the method before are written out first
# (sync), so that no method pays for another's writes; then the clock starts.
start_clock() {
    sync
    t0="$(now_ms)"
}

# dump KEY R PG_DUMP_OPTIONS...: pg_dump | psql, into a replica with the tables (KEY dump)
# or into an empty database (KEY dumpall).
dump() {
    local key="$1" r="$2"
    shift 2
    if [[ "$key" == dump ]]; then fresh "$key$r"; else rt_pg_start "$key$r"; fi
    start_clock
    dump_into "$key$r" "$@"
    took[$key#$r]="$(secs "$t0" "$(now_ms)")"
    rt_assert_same source "$key$r" >/dev/null
    rt_pg_stop "$key$r"
}

# native WORKERS R: time until every table of the subscription is ready.
native() {
    local workers="$1" r="$2" name="native$1r$2"
    fresh "$name" "max_sync_workers_per_subscription = $workers" "max_logical_replication_workers = 8"
    local src0 dst0
    src0="$(cpu_s "$(rt_pg_pid source)")"
    dst0="$(cpu_s "$(rt_pg_pid "$name")")"
    start_clock
    rt_psql "$name" -c "CREATE SUBSCRIPTION s_$name CONNECTION 'host=127.0.0.1 port=$SOURCE_PORT dbname=postgres user=postgres' PUBLICATION bench_pub WITH (copy_data = true)"
    ready() {
        [[ "$(rt_psql "$1" -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" == 0 ]]
    }
    rt_wait_until 3600 "native copy into $name" ready "$name"
    took[native$workers#$r]="$(secs "$t0" "$(now_ms)")"
    cpu[native$workers.source#$r]="$(minus "$(cpu_s "$(rt_pg_pid source)")" "$src0")"
    cpu[native$workers.replica#$r]="$(minus "$(cpu_s "$(rt_pg_pid "$name")")" "$dst0")"
    rt_assert_same source "$name" >/dev/null
    rt_psql "$name" -c "DROP SUBSCRIPTION s_$name"
    rt_pg_stop "$name"
}

hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
sub_kb=0
# rt_copy KEY R [SUBSCRIBER_OPTIONS...]: rt --init copy into a fresh replica (KEY rt: with the
# tables; rtc: an empty database, with --create-tables).
rt_copy() {
    local key="$1" r="$2" name="$1r$2" label
    shift 2
    if [[ "$key" == rt ]]; then fresh "$name"; else rt_pg_start "$name"; fi
    label="sub_$name"
    local src0 dst0 pub0 dsn kb
    src0="$(cpu_s "$(rt_pg_pid source)")"
    dst0="$(cpu_s "$(rt_pg_pid "$name")")"
    pub0="$(cpu_s "$PUB_PID")"
    dsn="$(rt__var "$name")_DSN"
    start_clock
    RT_READY_TIMEOUT=3600 rt_start_daemon "$label" "$RT_TMP/$label.log" "$RT_BIN/rt-subscriber" \
        --publisher "$ROUTER" --target "${!dsn}" --name "$name" --init copy --copy-jobs "$JOBS" "$@"
    took[$key#$r]="$(secs "$t0" "$(now_ms)")"
    local pid_var
    pid_var="$(rt__var "$label")_PID"
    cpu[$key.source#$r]="$(minus "$(cpu_s "$(rt_pg_pid source)")" "$src0")"
    cpu[$key.replica#$r]="$(minus "$(cpu_s "$(rt_pg_pid "$name")")" "$dst0")"
    cpu[$key.pub#$r]="$(minus "$(cpu_s "$PUB_PID")" "$pub0")"
    cpu[$key.sub#$r]="$(cpu_s "${!pid_var}")"
    rt_assert_same source "$name" >/dev/null
    kb="$(hwm "${!pid_var}")"
    ((kb > sub_kb)) && sub_kb="$kb"
    grep -E 'initial copy: [0-9]+ tables in ' "$RT_TMP/$label.log" | sed "s/^/    $key, round $r: /" || true
    rt_stop_daemon "$label"
    rt_pg_stop "$name"
}

# The publisher serves every round; its slot and schema rt are on the source from now on,
# so native's publication names the tables.
rt_psql source -c "CREATE PUBLICATION bench_pub FOR TABLE t1, t2, t3, t4, wide"
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"

# One round runs every method once, rt and native alternating; odd rounds begin with
# native, even ones with rt, so that neither always follows the other.
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        order=(native2 rt native4 rtc dump dumpall)
    else
        order=(rt native2 rtc native4 dumpall dump)
    fi
    for m in "${order[@]}"; do
        echo "==> round $r: $m"
        case "$m" in
        native2) native 2 "$r" ;;
        native4) native 4 "$r" ;;
        rt) rt_copy rt "$r" ;;
        rtc) rt_copy rtc "$r" --create-tables ;;
        dump) dump dump "$r" --data-only ;;
        dumpall) dump dumpall "$r" --no-publications ;;
        esac
    done
done
pub_kb="$(hwm "$PUB_PID")"

# figures KEY: the figures of each round of took[KEY#r], blank-separated.
figures() {
    local k out=""
    for ((k = 1; k <= ROUNDS; k++)); do out+="${took[$1#$k]:--} "; done
    printf '%s' "$out"
}
# cpu_med KEY: the median over the rounds of cpu[KEY#r].
cpu_med() {
    local k out=""
    for ((k = 1; k <= ROUNDS; k++)); do out+="${cpu[$1#$k]:--} "; done
    awk -v rt="$out" -v nat="$out" "$B__SUMMARY_AWK" | cut -d' ' -f1
}
echo
# row LABEL KEY: the median seconds, and how many times faster rt is than KEY (the
# median of the per-round ratios KEY/rt, their spread), with the tables there and with
# --create-tables.
row() {
    local sec by by_spread byc byc_spread
    read -r sec _ by by_spread <<<"$(awk -v rt="$(figures "$2")" -v nat="$(figures rt)" "$B__SUMMARY_AWK")"
    read -r _ _ byc byc_spread <<<"$(awk -v rt="$(figures "$2")" -v nat="$(figures rtc)" "$B__SUMMARY_AWK")"
    printf '%-50s %8s %7sx %-11s %7sx %-11s\n' "$1" "$sec" "$by" "$by_spread" "$byc" "$byc_spread"
}
echo "over $ROUNDS round(s): seconds = median; rt by = median of the per-round ratios, spread min..max"
printf '%-50s %8s %20s %20s\n' "method (time until the replica is live)" seconds "rt by (spread)" \
    "rt-create by (spread)"
printf '%s\n' "$(printf '%.0s-' {1..100})"
row "rt --init copy --copy-jobs $JOBS (tables there)" rt
row "rt ... --create-tables (empty database)" rtc
row "native copy_data, 2 sync workers (default)" native2
row "native copy_data, 4 sync workers" native4
row "pg_dump --data-only | psql (tables there)" dump
row "pg_dump | psql (empty database)" dumpall
echo "(rt by, rt-create by: how many times faster rt is, with the tables there and with"
echo " --create-tables; above 1 rt is faster)"
echo
echo "CPU seconds spent, medians (2 cores: at most twice the wall time):"
printf '  %-44s source PG %5s  replica PG %5s\n' "native copy_data, 4 sync workers" \
    "$(cpu_med native4.source)" "$(cpu_med native4.replica)"
for key in rt rtc; do
    label="rt (tables there)"
    [[ "$key" == rtc ]] && label="rt --create-tables"
    printf '  %-44s source PG %5s  replica PG %5s  rt-publisher %5s  rt-subscriber %5s\n' \
        "$label" "$(cpu_med "$key.source")" "$(cpu_med "$key.replica")" "$(cpu_med "$key.pub")" \
        "$(cpu_med "$key.sub")"
done
echo
echo "rt's peak RSS (VmHWM): publisher $((pub_kb / 1024)) MiB, subscriber $((sub_kb / 1024)) MiB"
echo "rows: 4 x $ROWS + $TOAST wide (20 kB); every replica checked equal to the source by checksums"
