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
# RT_BENCH_COPY_TOAST wide rows (default 5000, 20 kB each, TOASTed). The builds and
# settings are bench/run.sh's (RT_BENCH_BUILD, RT_BENCH_NO_BUILD).
# Prints one table: seconds per method, rt's ratio against each, and rt's daemons' peak
# RSS (VmHWM).
set -euo pipefail

# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
ROWS="${RT_BENCH_COPY_ROWS:-1000000}"
TOAST="${RT_BENCH_COPY_TOAST:-5000}"
JOBS="${RT_BENCH_COPY_JOBS:-4}"

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

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

# dump_into NAME [PG_DUMP_OPTIONS...]: pg_dump of the source piped into psql on NAME.
dump_into() {
    local name="$1" port
    shift
    port="$(rt__var "$name")_PORT"
    "$RT_PG_BIN/pg_dump" "$@" -h 127.0.0.1 -p "$SOURCE_PORT" -U postgres postgres |
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

echo "==> pg_dump --data-only | psql"
fresh dump
t0="$(now_ms)"
dump_into dump --data-only
took[dump]="$(secs "$t0" "$(now_ms)")"
rt_assert_same source dump >/dev/null
rt_pg_stop dump

echo "==> pg_dump | psql, schema and rows, into an empty database"
rt_pg_start dumpall
t0="$(now_ms)"
dump_into dumpall --no-publications
took[dumpall]="$(secs "$t0" "$(now_ms)")"
rt_assert_same source dumpall >/dev/null
rt_pg_stop dumpall

# native NAME WORKERS: time until every table of the subscription is ready.
native() {
    local name="$1" workers="$2" port
    fresh "$name" "max_sync_workers_per_subscription = $workers" "max_logical_replication_workers = 8"
    port="$(rt__var "$name")_PORT"
    local src0 dst0
    src0="$(cpu_s "$(rt_pg_pid source)")"
    dst0="$(cpu_s "$(rt_pg_pid "$name")")"
    t0="$(now_ms)"
    rt_psql "$name" -c "CREATE SUBSCRIPTION s_$name CONNECTION 'host=127.0.0.1 port=$SOURCE_PORT dbname=postgres user=postgres' PUBLICATION bench_pub WITH (copy_data = true)"
    ready() {
        [[ "$(rt_psql "$1" -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" == 0 ]]
    }
    rt_wait_until 3600 "native copy into $name" ready "$name"
    took[$name]="$(secs "$t0" "$(now_ms)")"
    cpu[$name.source]="$(minus "$(cpu_s "$(rt_pg_pid source)")" "$src0")"
    cpu[$name.replica]="$(minus "$(cpu_s "$(rt_pg_pid "$name")")" "$dst0")"
    rt_assert_same source "$name" >/dev/null
    rt_psql "$name" -c "DROP SUBSCRIPTION s_$name"
    rt_pg_stop "$name"
}
rt_psql source -c "CREATE PUBLICATION bench_pub FOR ALL TABLES"
echo "==> native, max_sync_workers_per_subscription = 2 (default)"
native native2 2
echo "==> native, max_sync_workers_per_subscription = 4"
native native4 4

echo "==> rt, --init copy --copy-jobs $JOBS"
fresh replica
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)"
t0="$(now_ms)"
RT_READY_TIMEOUT=3600 rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA_DSN" --name replica --init copy --copy-jobs "$JOBS"
took[rt]="$(secs "$t0" "$(now_ms)")"
rt_assert_same source replica >/dev/null
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
sub_kb="$(hwm "$SUB_PID")"
grep -E 'initial copy: [0-9]+ tables in ' "$RT_TMP/sub.log" | sed 's/^/    /' || true
rt_stop_daemon sub
rt_pg_stop replica

echo "==> rt, --init copy --create-tables --copy-jobs $JOBS, into an empty database"
rt_pg_start replica2
src0="$(cpu_s "$(rt_pg_pid source)")"
dst0="$(cpu_s "$(rt_pg_pid replica2)")"
pub0="$(cpu_s "$PUB_PID")"
t0="$(now_ms)"
RT_READY_TIMEOUT=3600 rt_start_daemon sub2 "$RT_TMP/sub2.log" "$RT_BIN/rt-subscriber" \
    --publisher "$ROUTER" --target "$REPLICA2_DSN" --name replica2 --init copy \
    --create-tables --copy-jobs "$JOBS"
took[rtc]="$(secs "$t0" "$(now_ms)")"
cpu[rtc.source]="$(minus "$(cpu_s "$(rt_pg_pid source)")" "$src0")"
cpu[rtc.replica]="$(minus "$(cpu_s "$(rt_pg_pid replica2)")" "$dst0")"
cpu[rtc.pub]="$(minus "$(cpu_s "$PUB_PID")" "$pub0")"
cpu[rtc.sub]="$(cpu_s "$SUB2_PID")"
rt_assert_same source replica2 >/dev/null
pub_kb="$(hwm "$PUB_PID")"
sub2_kb="$(hwm "$SUB2_PID")"
((sub2_kb > sub_kb)) && sub_kb="$sub2_kb"
grep -E 'initial copy: [0-9]+ tables in |keys, indexes and constraints of|keys and indexes built' "$RT_TMP/sub2.log" |
    sed 's/^/    /' || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 && a > 0) ? b / a : 0 }'; }
echo
row() { # LABEL KEY
    printf '%-50s %8s %12s %12s\n' "$1" "${took[$2]}" "$(ratio "${took[rt]}" "${took[$2]}")x" \
        "$(ratio "${took[rtc]}" "${took[$2]}")x"
}
printf '%-50s %8s %12s %12s\n' "method (time until the replica is live)" seconds "rt by" \
    "rt-create by"
printf '%s\n' "$(printf '%.0s-' {1..84})"
row "rt --init copy --copy-jobs $JOBS (tables there)" rt
row "rt ... --create-tables (empty database)" rtc
row "native copy_data, 2 sync workers (default)" native2
row "native copy_data, 4 sync workers" native4
row "pg_dump --data-only | psql (tables there)" dump
row "pg_dump | psql (empty database)" dumpall
echo "(rt by, rt-create by: how many times faster rt is, with the tables there and with"
echo " --create-tables; above 1 rt is faster)"
echo
echo "CPU seconds spent (2 cores: at most twice the wall time):"
printf '  %-44s source PG %5s  replica PG %5s\n' "native copy_data, 4 sync workers" \
    "${cpu[native4.source]}" "${cpu[native4.replica]}"
printf '  %-44s source PG %5s  replica PG %5s  rt-publisher %5s  rt-subscriber %5s\n' \
    "rt --create-tables" "${cpu[rtc.source]}" "${cpu[rtc.replica]}" "${cpu[rtc.pub]}" \
    "${cpu[rtc.sub]}"
echo
echo "rt's peak RSS (VmHWM): publisher $((pub_kb / 1024)) MiB, subscriber $((sub_kb / 1024)) MiB"
echo "rows: 4 x $ROWS + $TOAST wide (20 kB); every replica checked equal to the source by checksums"
