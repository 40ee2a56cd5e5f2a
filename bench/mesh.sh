#!/usr/bin/env bash
# bench/mesh.sh - three nodes that all take writes (rt, --conflict-policy
# last_write_wins, each node a publisher and a subscriber per other node) against one-way
# replication of the same workload, rt's and PostgreSQL's native logical replication
# (PostgreSQL 15 cannot run native replication both ways: its subscriptions have no
# origin filter before 16, so changes would loop).
#
# Two measurements per setup, on the table mlat (node, id, written, applied):
#  - latency: each writing node inserts RT_BENCH_MESH_RATE single-row transactions a
#    second (pgbench -R, default 200) for RT_BENCH_MESH_SECONDS (default 20); each row
#    carries its write time, and a receiving node stamps its apply time (a BEFORE
#    INSERT trigger, ENABLE ALWAYS, that fires in replication sessions only): p50, p99
#    of apply - write over every row every receiver got;
#  - throughput: each writing node runs single-row transactions as fast as it can (4
#    clients) for RT_BENCH_MESH_SECONDS; source tx/s is their sum, replicated tx/s the
#    rows applied on receivers per second from the start until every receiver has
#    them all.
# Every node is checked to hold the same rows at the end.
# The builds are bench/run.sh's (RT_BENCH_BUILD, RT_BENCH_NO_BUILD).
set -euo pipefail

# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
RATE="${RT_BENCH_MESH_RATE:-200}"
SECS="${RT_BENCH_MESH_SECONDS:-20}"

# shellcheck source=tests/lib/cluster.sh
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup

SCHEMA="
CREATE TABLE mlat (node text NOT NULL, id bigint NOT NULL, written timestamptz NOT NULL,
                   applied timestamptz, PRIMARY KEY (node, id));
CREATE SEQUENCE mlat_id;
CREATE FUNCTION mlat_applied() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF current_setting('session_replication_role') = 'replica' THEN
        NEW.applied := clock_timestamp();
    END IF;
    RETURN NEW;
END\$\$;
CREATE TRIGGER mlat_applied BEFORE INSERT ON mlat FOR EACH ROW EXECUTE FUNCTION mlat_applied();
ALTER TABLE mlat ENABLE ALWAYS TRIGGER mlat_applied;
"
printf '%s\n' "INSERT INTO mlat (node, id, written) VALUES (:node, nextval('mlat_id'), clock_timestamp());" \
    >"$RT_TMP/mlat.sql"

now_ms() { date +%s%3N; }
q() { rt_psql "$1" -c "$2"; }
count_is() { [[ "$(q "$1" "SELECT count(*) FROM mlat")" == "$2" ]]; }

declare -A res=()

# same NAME...: mlat's rows equal on every node (the applied stamp aside, which each
# receiver fills itself).
same() {
    local sql="SET TimeZone = 'UTC'; SELECT count(*) || ':' || md5(string_agg(node || ' ' || id || ' ' || written, ',' ORDER BY node, id)) FROM mlat"
    local first n a b
    first="$1"
    a="$(q "$first" "$sql")"
    for n in "${@:2}"; do
        b="$(q "$n" "$sql")"
        [[ "$a" == "$b" ]] || { echo "FAIL: mlat differs between $first ($a) and $n ($b)"; exit 1; }
    done
    echo "    check: mlat equal on $* (${a%%:*} rows)"
}

# nodes NAME...: fresh clusters with the schema (track_commit_timestamp for
# last_write_wins; the same settings for every setup). Every cluster commits with
# synchronous_commit = on (RT_BENCH_MESH_SYNC): a mesh node is a source, and logical
# decoding sends a commit only once its WAL is flushed, so with off every latency is
# the WAL writer's delay (~200 ms). Both replicators' apply sessions commit with
# synchronous_commit = off whatever the cluster says: native's by the subscription's
# default, rt's always (it acknowledges what it had the replica flush).
nodes() {
    local n
    for n in "$@"; do
        rt_pg_start "$n" "track_commit_timestamp = on" "max_logical_replication_workers = 8" \
            "synchronous_commit = ${RT_BENCH_MESH_SYNC:-on}"
        q "$n" "$SCHEMA" >/dev/null
    done
}

# rt_publisher NODE, rt_subscriber NODE FROM POLICY: NODE's publisher, NODE's
# subscriber of FROM's publisher.
declare -A ROUTER=()
rt_publisher() {
    local n="$1"
    ROUTER[$n]="tcp://127.0.0.1:$(rt_free_port)"
    rt_start_daemon "pub_$n" "$RT_TMP/pub_$n.log" "$RT_BIN/rt-publisher" --source "$(rt_dsn "$n")" \
        --outbox "$RT_TMP/outbox_$n" --name "$n" --listen "${ROUTER[$n]}" \
        --pub "tcp://127.0.0.1:$(rt_free_port)"
}
rt_subscriber() { # NODE FROM POLICY
    rt_start_daemon "sub_$1_$2" "$RT_TMP/sub_$1_$2.log" "$RT_BIN/rt-subscriber" \
        --publisher "${ROUTER[$2]}" --target "$(rt_dsn "$1")" --name "$1" --conflict-policy "$3"
}

# measure SETUP WRITERS RECEIVERS: the latency, then the throughput phase. Each writer
# writes its own rows; each receiver gets every other writer's rows.
measure() {
    local setup="$1" writers="$2" receivers="$3" w r total t0 t1 pids=()
    echo "==> $setup: latency, $RATE tx/s per writing node for $SECS s"
    for w in $writers; do
        timeout -k 5 $((SECS + 60)) "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$(rt_port "$w")" -U postgres \
            -n -f "$RT_TMP/mlat.sql" -D node="'$w'" -c 2 -j 1 -R "$RATE" -T "$SECS" postgres \
            >"$RT_TMP/lat_${setup}_$w.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    total=0
    for w in $writers; do total=$((total + $(q "$w" "SELECT count(*) FROM mlat WHERE node = '$w'"))); done
    for r in $receivers; do
        rt_wait_until 120 "$r to have the $total rows" count_is "$r" "$total"
    done
    local stats="" sql
    sql="SELECT extract(epoch FROM applied - written) * 1000 AS ms FROM mlat WHERE applied IS NOT NULL"
    stats="$(for r in $receivers; do q "$r" "COPY ($sql) TO STDOUT"; done |
        sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.2f %.2f %.2f %d", a[int(NR * 0.5) + 1], a[int(NR * 0.99) + 1], a[NR], NR }')"
    read -r "res[$setup.p50]" "res[$setup.p99]" "res[$setup.max]" "res[$setup.nlat]" <<<"$stats"
    echo "    apply - write ms over ${res[$setup.nlat]} row applies: p50 ${res[$setup.p50]}" \
        "p99 ${res[$setup.p99]} max ${res[$setup.max]}"

    echo "==> $setup: throughput, each writing node as fast as it can for $SECS s"
    # Rows a receiver got by replication: the other nodes' rows.
    remote_rows() {
        local r n=0
        for r in $receivers; do n=$((n + $(q "$r" "SELECT count(*) FROM mlat WHERE node <> '$r'"))); done
        echo "$n"
    }
    local before after tps=0
    before="$(remote_rows)"
    pids=()
    t0="$(now_ms)"
    for w in $writers; do
        timeout -k 5 $((SECS + 60)) "$RT_PG_BIN/pgbench" -h 127.0.0.1 -p "$(rt_port "$w")" -U postgres \
            -n -f "$RT_TMP/mlat.sql" -D node="'$w'" -c 4 -j 2 -T "$SECS" postgres \
            >"$RT_TMP/tput_${setup}_$w.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    total=0
    for w in $writers; do
        total=$((total + $(q "$w" "SELECT count(*) FROM mlat WHERE node = '$w'")))
        tps="$(awk -v a="$tps" -v b="$(grep -E '^tps' "$RT_TMP/tput_${setup}_$w.log" | head -n 1 | awk '{ print $3 }')" 'BEGIN { print a + b }')"
    done
    for r in $receivers; do
        rt_wait_until 600 "$r to have all $total rows" count_is "$r" "$total"
    done
    t1="$(now_ms)"
    after="$(remote_rows)"
    res[$setup.src_tps]="$(printf '%.0f' "$tps")"
    res[$setup.repl_tps]="$(awk -v n="$after" -v b="$before" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", (n - b) / (ms / 1000) }')"
    res[$setup.secs]="$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')"
    echo "    source tx/s ${res[$setup.src_tps]}; replicated tx/s ${res[$setup.repl_tps]}" \
        "(every receiver had every row ${res[$setup.secs]} s after the start)"
}

echo "==> one-way, native logical replication: s1 -> r1"
nodes s1 r1
q s1 "CREATE PUBLICATION mp FOR ALL TABLES" >/dev/null
q r1 "CREATE SUBSCRIPTION ms CONNECTION '$(rt_dsn s1)' PUBLICATION mp WITH (copy_data = false)" >/dev/null
rt_wait_until 60 "the native subscription streaming" bash -c \
    "[[ \$('$RT_PG_BIN/psql' -X -qAt -d '$(rt_dsn s1)' -c \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\") == 1 ]]"
measure native s1 r1
same s1 r1
q r1 "DROP SUBSCRIPTION ms" >/dev/null
rt_pg_stop r1
rt_pg_stop s1

echo "==> one-way, rt: s2 -> r2 (default conflict policy)"
nodes s2 r2
rt_publisher s2
rt_subscriber r2 s2 error
measure oneway s2 r2
same s2 r2
rt_stop_clean sub_r2_s2 pub_s2
rt_pg_stop r2
rt_pg_stop s2

echo "==> mesh, rt, last_write_wins: a, b, c all writing"
nodes a b c
for n in a b c; do rt_publisher "$n"; done
for n in a b c; do
    for o in a b c; do
        [[ "$n" == "$o" ]] || rt_subscriber "$n" "$o" last_write_wins
    done
done
measure mesh "a b c" "a b c"
same a b c
rt_stop_clean sub_a_b sub_a_c sub_b_a sub_b_c sub_c_a sub_c_b pub_a pub_b pub_c

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 && b > 0) ? a / b : 0 }'; }
echo
printf '%-34s %14s %14s %14s %12s %12s\n' "metric" "native 1-way" "rt 1-way" "rt mesh (3)" \
    "mesh/rt1" "mesh/native"
printf '%s\n' "$(printf '%.0s-' {1..104})"
line() { # LABEL KEY
    printf '%-34s %14s %14s %14s %12s %12s\n' "$1" "${res[native.$2]}" "${res[oneway.$2]}" \
        "${res[mesh.$2]}" "$(ratio "${res[mesh.$2]}" "${res[oneway.$2]}")" \
        "$(ratio "${res[mesh.$2]}" "${res[native.$2]}")"
}
line "latency p50 ms (apply - write)" p50
line "latency p99 ms" p99
line "latency max ms" max
line "source tx/s (sum of writers)" src_tps
line "replicated tx/s (row applies/s)" repl_tps
echo "(every cluster: synchronous_commit = ${RT_BENCH_MESH_SYNC:-on}, track_commit_timestamp = on; native's"
echo " and rt's apply sessions commit with synchronous_commit = off)"
echo "(latency: $RATE tx/s per writing node; the mesh has three writers, each row applied"
echo " on two nodes. Lower is better for latency, higher for tx/s. Every setup checked"
echo " to hold the same rows on all its nodes.)"
