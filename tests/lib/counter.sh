# tests/lib/counter.sh - a non-idempotent workload for kill tests (source after
# cluster.sh). Every transaction adds 1 to counter and logs the value it produced in
# log: a lost transaction leaves a gap, a doubled one breaks counter = count(log) or
# log's key.

# rt_counter_setup EXTRA_SQL CLUSTER...
# Starts each cluster and creates counter and log there, then runs EXTRA_SQL (more
# tables of the test); the first cluster, the source, also gets the sequence log_id.
rt_counter_setup() {
    local extra="$1" c
    shift
    for c in "$@"; do
        rt_pg_start "$c" || return 1
        rt_psql "$c" -c "
CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE log (id bigint PRIMARY KEY, n bigint NOT NULL, pad text);
INSERT INTO counter VALUES (1, 0);
$extra" || return 1
    done
    rt_psql "$1" -c "CREATE SEQUENCE log_id"
}

# The statements of one counter transaction, for a pgbench script.
RT_COUNTER_TX="UPDATE counter SET n = n + 1 WHERE id = 1;
INSERT INTO log SELECT nextval('log_id'), n, repeat('x', 100) FROM counter WHERE id = 1;"

# A keyless table for the events of rt_counter_script's transactions: a transaction
# applied twice leaves a second row there, which the checksums see (EXTRA_SQL of
# rt_counter_setup; rt_counter_check's extra column: RT_COUNTER_EVENTS_CHECK).
RT_COUNTER_EVENTS="CREATE TABLE events (n bigint NOT NULL, at timestamptz NOT NULL, pad text);
ALTER TABLE events REPLICA IDENTITY FULL;"
RT_COUNTER_EVENTS_CHECK="SELECT count(DISTINCT n) FROM events"

# rt_counter_script FILE
# Writes a pgbench script of counter transactions that also log to events; one in 20 is
# large enough (60 rows of 2 kB) to be cut into several records.
rt_counter_script() {
    cat >"$1" <<SQL
\\set big random(1, 20)
BEGIN;
$RT_COUNTER_TX
INSERT INTO events SELECT n, now(), repeat('e', CASE WHEN :big = 1 THEN 2000 ELSE 10 END)
    FROM counter, generate_series(1, CASE WHEN :big = 1 THEN 60 ELSE 1 END) WHERE id = 1;
COMMIT;
SQL
}

# rt_counter_check EXTRA_COLUMN SOURCE REPLICA...
# Fails the test unless every replica has the source's counter, log row count, distinct
# logged values, largest logged value and EXTRA_COLUMN (an SQL expression; "" for
# none), and on the source they are all the same number (the counter), above 1000.
rt_counter_check() {
    local extra="$1" src="$2" check s v r n
    shift 2
    check="SELECT (SELECT n FROM counter), (SELECT count(*) FROM log), (SELECT count(DISTINCT n) FROM log), (SELECT max(n) FROM log)${extra:+, ($extra)}"
    s="$(rt_psql "$src" -c "$check")"
    for r in "$@"; do
        v="$(rt_psql "$r" -c "$check")"
        [[ "$v" == "$s" ]] || rt_fail "$r: counter/log $v differ from the source's $s"
    done
    IFS='|' read -r n _ <<<"$s"
    local -a f
    IFS='|' read -r -a f <<<"$s"
    for v in "${f[@]}"; do
        [[ "$v" == "$n" ]] || rt_fail "source counter/log inconsistent: $s"
    done
    ((n > 1000)) || rt_fail "source counter/log: only $n transactions: $s"
    echo "counter = log rows = $n on the source and the replicas"
}
