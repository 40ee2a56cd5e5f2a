#!/usr/bin/env bash
# tests/integration/ctl_conflicts.sh - the subscriber's conflict policies against real
# replicas: one replica under `error`, one under `apply_remote`, each with a row the
# source does not have (INSERT of an existing key), a row missing (UPDATE of it) and
# another missing (DELETE of it). apply_remote converges at once and records three
# resolved conflicts in rt.conflicts; error stops at the first, says which change and
# why, records it once however often it retries, keeps the other subscriber going, and
# converges once the replica is repaired and `rtctl replay` retries it. Then an UPDATE
# of a missing row whose new row is incomplete (unchanged TOAST) stops apply_remote too.
# apply_remote also resolves several conflicts within one transaction (two identical
# rows of a REPLICA IDENTITY FULL table updated while missing; two existing keys
# inserted) and applies the rest of it. A third replica under `skip` meets the same
# conflicts and leaves each conflicting change out, recorded, applying the rest; a
# fourth under `keep_local` keeps its own version, also of a row it changed since the
# source wrote it (update_origin_differs, both versions recorded).
# Counters and last errors are checked in `rtctl status --json`.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v jq >/dev/null || rt_fail "jq is needed (Debian package jq)"

for c in source rerr rrem rskip rkeep; do
    conf=()
    [[ "$c" != rkeep ]] || conf=("track_commit_timestamp = on")
    rt_pg_start "$c" "${conf[@]}"
    rt_psql "$c" <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v text);
CREATE TABLE docs (id int PRIMARY KEY, body text, n int);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE f (a int, b text);
ALTER TABLE f REPLICA IDENTITY FULL;
SQL
done

P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
ROUTER="tcp://127.0.0.1:$P_ROUTER"
CTL=("$RT_BIN/rtctl" --publisher "$ROUTER")
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$P_PUB"
rt_start_daemon rerr "$RT_TMP/rerr.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RERR_DSN" --name rerr
rt_start_daemon rrem "$RT_TMP/rrem.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RREM_DSN" --name rrem --conflict-policy apply_remote
rt_start_daemon rskip "$RT_TMP/rskip.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RSKIP_DSN" --name rskip --conflict-policy skip
rt_start_daemon rkeep "$RT_TMP/rkeep.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$RKEEP_DSN" --name rkeep --conflict-policy keep_local
grep -q 'conflict policy apply_remote' "$RT_TMP/rrem.log" || rt_fail "rrem does not say its policy"

# A bad policy is a usage error naming the flag.
rc=0
"$RT_BIN/rt-subscriber" --publisher "$ROUTER" --target "$RERR_DSN" --conflict-policy maybe \
    2>"$RT_TMP/badpolicy.err" || rc=$?
[[ "$rc" == 2 ]] || rt_fail "--conflict-policy maybe: exit $rc, expected 2"
grep -q 'conflict-policy' "$RT_TMP/badpolicy.err" || rt_fail "bad policy error does not name the flag"

sub_json() { "${CTL[@]}" status --json | jq -r --arg n "$1" ".subscribers[] | select(.name == \$n) | $2"; }
sub_is() { [[ "$(sub_json "$1" "$2")" == "$3" ]]; }
conflicts_rows() { rt_psql "$1" -c "SELECT string_agg(kind || ':' || resolution, ',' ORDER BY id) FROM rt.conflicts"; }

echo "== baseline"
rt_psql source -c "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g"
rt_wait_converged 60 source rerr rrem rskip rkeep
[[ "$(conflicts_rows rrem)" == "" ]] || rt_fail "rt.conflicts not empty at start"

echo "== replicas diverge: an extra row 100, rows 2 and 3 missing"
for r in rerr rrem rskip rkeep; do
    rt_psql "$r" -c "INSERT INTO t VALUES (100, 'replica only')" \
        -c "DELETE FROM t WHERE id IN (2, 3)"
done
# keep_local also keeps a row changed on the replica since the source wrote it.
rt_psql rkeep -c "UPDATE t SET v = 'changed on rkeep' WHERE id = 5"
rt_psql source -c "UPDATE t SET v = 'changed on the source' WHERE id IN (5, 6)"
rt_psql source -c "INSERT INTO t VALUES (100, 'from source')"
rt_psql source -c "UPDATE t SET v = 'updated' WHERE id = 2"
rt_psql source -c "DELETE FROM t WHERE id = 3"
rt_psql source -c "INSERT INTO t VALUES (11, 'after the conflicts')"

echo "== apply_remote converges and records every conflict"
rt_wait_converged 60 source rrem
[[ "$(conflicts_rows rrem)" == "insert_exists:applied_remote,update_missing:applied_remote,delete_missing:skipped" ]] ||
    rt_fail "rrem rt.conflicts: $(conflicts_rows rrem)"
row="$(rt_psql rrem -c "SELECT source, relation, op, seq > 0, detail LIKE '%(id)=(100)%' FROM rt.conflicts WHERE kind = 'insert_exists'")"
[[ "$row" == 'src|"public"."t"|INSERT|t|t' ]] || rt_fail "insert_exists row: $row"
rt_wait_until 10 "rrem reporting 3 conflicts" sub_is rrem .conflicts 3
rt_wait_until 10 "rrem streaming" sub_is rrem .state streaming

echo "== apply_remote resolves several conflicts in one transaction and goes on"
# Two identical rows of a REPLICA IDENTITY FULL table, both missing on rrem: one
# UPDATE changes both (two update_missing in one record).
rt_psql source -c "INSERT INTO f VALUES (1, 'x'), (1, 'x')"
rt_wait_until 30 "f on rrem and rskip" bash -c "[[ \$('$RT_PG_BIN/psql' -X -qAt -d '$RREM_DSN' -c 'SELECT count(*) FROM f') == 2 && \$('$RT_PG_BIN/psql' -X -qAt -d '$RSKIP_DSN' -c 'SELECT count(*) FROM f') == 2 ]]"
rt_psql rrem -c "DELETE FROM f"
rt_psql rskip -c "DELETE FROM f"
rt_psql source -c "UPDATE f SET b = 'y' WHERE a = 1"
# Two inserts of keys rrem has, then changes that do not conflict, in one transaction.
for r in rrem rskip; do
    rt_psql "$r" -c "INSERT INTO t VALUES (200, 'replica only'), (201, 'replica only')"
done
rt_psql source <<'SQL'
BEGIN;
INSERT INTO t VALUES (200, 'from source'), (201, 'from source'), (202, 'from source');
UPDATE t SET v = 'after two conflicts' WHERE id = 1;
COMMIT;
SQL
rt_wait_converged 60 source rrem
[[ "$(conflicts_rows rrem)" == "insert_exists:applied_remote,update_missing:applied_remote,delete_missing:skipped,update_missing:applied_remote,update_missing:applied_remote,insert_exists:applied_remote,insert_exists:applied_remote" ]] ||
    rt_fail "rrem rt.conflicts: $(conflicts_rows rrem)"
rt_wait_until 10 "rrem reporting 7 conflicts" sub_is rrem .conflicts 7
rt_wait_until 10 "rrem streaming" sub_is rrem .state streaming
if grep -q 'lost connection to the replica' "$RT_TMP/rrem.log"; then
    rt_fail "rrem lost its replica connection while resolving"
fi

echo "== skip leaves every conflicting change out and applies the rest"
SKIPPED=skipped,skipped,skipped,skipped,skipped,skipped,skipped
skip_resolutions() { rt_psql rskip -c "SELECT string_agg(resolution, ',' ORDER BY id) FROM rt.conflicts"; }
rt_wait_until 30 "rskip recording 7 skipped conflicts" bash -c "[[ \$('$RT_PG_BIN/psql' -X -qAt -d '$RSKIP_DSN' -c \"SELECT string_agg(resolution, ',' ORDER BY id) FROM rt.conflicts\") == $SKIPPED ]]"
[[ "$(rt_psql rskip -c "SELECT string_agg(kind, ',' ORDER BY id) FROM rt.conflicts")" == "insert_exists,update_missing,delete_missing,update_missing,update_missing,insert_exists,insert_exists" ]] ||
    rt_fail "rskip rt.conflicts kinds: $(rt_psql rskip -c "SELECT string_agg(kind, ',' ORDER BY id) FROM rt.conflicts")"
# rskip equals the source but for the rows the skipped changes would have written.
rest_sql="SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t WHERE id NOT IN (2, 3, 100, 200, 201)"
skip_converged() {
    [[ "$(rt_psql rskip -c "$rest_sql")" == "$(rt_psql source -c "$rest_sql")" ]] &&
        [[ "$(rt_psql rskip -c "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t WHERE id IN (2, 3, 100, 200, 201)")" == "100:replica only,200:replica only,201:replica only" ]] &&
        [[ "$(rt_psql rskip -c "SELECT count(*) FROM f")" == 0 ]]
}
rt_wait_until 30 "rskip equal but for the skipped changes" skip_converged
rt_wait_until 10 "rskip reporting 7 conflicts" sub_is rskip .conflicts 7
rt_wait_until 10 "rskip streaming" sub_is rskip .state streaming
grep -q 'conflict at seq [0-9]* (insert_exists on "public"."t") skipped: INSERT of (id)=(100): the row already exists on the replica' "$RT_TMP/rskip.log" ||
    rt_fail "rskip does not log the skipped insert"

echo "== keep_local keeps the replica's version, also of a row it changed since"
keep_kinds() { rt_psql rkeep -c "SELECT string_agg(kind || ':' || resolution, ',' ORDER BY id) FROM rt.conflicts"; }
KEPT="update_origin_differs:kept_local,insert_exists:kept_local,update_missing:kept_local,delete_missing:kept_local"
rt_wait_until 30 "rkeep recording 4 conflicts" bash -c "[[ \$('$RT_PG_BIN/psql' -X -qAt -d '$RKEEP_DSN' -c \"SELECT count(*) FROM rt.conflicts\") -ge 4 ]]"
[[ "$(keep_kinds)" == "$KEPT" ]] || rt_fail "rkeep rt.conflicts: $(keep_kinds)"
row="$(rt_psql rkeep -c "SELECT local_node, local_time IS NOT NULL, remote_node, remote_time IS NOT NULL FROM rt.conflicts WHERE kind = 'update_origin_differs'")"
[[ "$row" == "rkeep|t|src|t" ]] || rt_fail "rkeep's update_origin_differs versions: $row"
keep_sql="SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t WHERE id IN (2, 3, 5, 6, 100)"
keep_converged() {
    [[ "$(rt_psql rkeep -c "$keep_rest_sql")" == "$(rt_psql source -c "$keep_rest_sql")" ]] &&
        [[ "$(rt_psql rkeep -c "$keep_sql")" == "5:changed on rkeep,6:changed on the source,100:replica only" ]]
}
keep_rest_sql="SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t WHERE id NOT IN (2, 3, 5, 100)"
rt_wait_until 30 "rkeep equal but for the kept rows" keep_converged
rt_wait_until 10 "rkeep streaming" sub_is rkeep .state streaming

echo "== error stops at the first conflict, retries, and the others go on"
rt_wait_until 30 "rerr in error" sub_is rerr .state error
grep -q 'conflict at seq [0-9]* (change 1): INSERT into "public"."t": the row already exists on the replica' \
    "$RT_TMP/rerr.log" || rt_fail "the stop does not say which change conflicted and why"
grep -q 'conflict at seq' <<<"$(sub_json rerr .error)" || rt_fail "status has no last error for rerr"
rt_wait_until 10 "rerr reporting 1 conflict" sub_is rerr .conflicts 1
[[ "$(conflicts_rows rerr)" == "insert_exists:stopped" ]] || rt_fail "rerr rt.conflicts: $(conflicts_rows rerr)"
[[ "$(rt_psql rerr -c "SELECT v FROM t WHERE id = 100")" == "replica only" ]] ||
    rt_fail "rerr applied past the conflict"
rt_wait_until 20 "a second retry" bash -c "[[ \$(grep -c 'applying stopped' '$RT_TMP/rerr.log') -ge 2 ]]"
[[ "$(conflicts_rows rerr)" == "insert_exists:stopped" ]] || rt_fail "a retry was recorded again: $(conflicts_rows rerr)"
rt_psql source -c "INSERT INTO t VALUES (12, 'while rerr is stopped')"
rt_wait_converged 30 source rrem
"${CTL[@]}" status

echo "== repairing the replica lets error converge"
rt_psql rerr -c "DELETE FROM t WHERE id = 100" -c "INSERT INTO t VALUES (2, 'v2'), (3, 'v3')"
"${CTL[@]}" replay rerr | tee "$RT_TMP/replay.out"
grep -q '^replay to rerr of seqs' "$RT_TMP/replay.out" || rt_fail "replay printed no summary"
rt_wait_converged 30 source rerr rrem
rt_wait_until 10 "rerr streaming again" sub_is rerr .state streaming
rt_wait_until 10 "rerr's last error cleared" sub_is rerr .error ""
[[ "$(sub_json rerr .conflicts)" == 1 ]] || rt_fail "rerr conflicts: $(sub_json rerr .conflicts)"

echo "== apply_remote cannot insert an incomplete row: it stops"
rt_psql source -c "INSERT INTO docs SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 2000) g"
rt_wait_converged 30 source rerr rrem
rt_psql rrem -c "DELETE FROM docs WHERE id = 1"
rt_psql source -c "UPDATE docs SET n = 1 WHERE id = 1"
rt_wait_until 30 "rrem in error" sub_is rrem .state error
grep -q 'the remote row is incomplete' "$RT_TMP/rrem.log" || rt_fail "the incomplete row is not explained"
[[ "$(conflicts_rows rrem)" == "insert_exists:applied_remote,update_missing:applied_remote,delete_missing:skipped,update_missing:applied_remote,update_missing:applied_remote,insert_exists:applied_remote,insert_exists:applied_remote,update_missing:stopped" ]] ||
    rt_fail "rrem rt.conflicts: $(conflicts_rows rrem)"
rt_wait_until 10 "rrem reporting 8 conflicts" sub_is rrem .conflicts 8
rt_wait_converged 30 source rerr
rt_psql rrem -c "INSERT INTO docs VALUES (1, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 2000) g), NULL)"
"${CTL[@]}" replay rrem >/dev/null
rt_wait_converged 30 source rerr rrem

echo "== error stops at an UPDATE, then at a DELETE, of a missing row (a transaction each)"
# A transaction of one row change commits in the pipeline segment of its changes: the
# UPDATE or DELETE fails there unless it touched one row, and the record is applied
# again the usual way, which tells the conflict.
rt_psql rerr -c "DELETE FROM t WHERE id IN (7, 8)"
rt_psql source -c "UPDATE t SET v = 'updated while missing on rerr' WHERE id = 7"
rt_wait_until 30 "rerr stopped at the UPDATE" grep -q \
    'UPDATE of "public"."t" matched 0 rows on the replica instead of 1 (the row is missing): key' \
    "$RT_TMP/rerr.log"
rt_wait_until 10 "rerr in error" sub_is rerr .state error
[[ "$(conflicts_rows rerr)" == "insert_exists:stopped,update_missing:stopped" ]] ||
    rt_fail "rerr rt.conflicts after the UPDATE: $(conflicts_rows rerr)"
# The replica's progress stops right before the UPDATE (nothing of it committed).
upd_seq="$(sed -n 's/.*conflict at seq \([0-9]*\) (change 1): UPDATE of "public"."t" matched 0 rows.*/\1/p' "$RT_TMP/rerr.log" | head -1)"
rerr_progress="$(rt_psql rerr -c "SELECT (pg_replication_origin_progress('rt_src', true) - '0/0'::pg_lsn)::bigint")"
[[ "$rerr_progress" == $((upd_seq - 1)) ]] ||
    rt_fail "rerr's origin stands at seq $rerr_progress after stopping at the UPDATE at seq $upd_seq"
[[ "$(rt_psql rerr -c "SELECT count(*) FROM t WHERE id = 7")" == 0 ]] || rt_fail "rerr committed past the UPDATE"
rt_psql rerr -c "INSERT INTO t VALUES (7, 'v7')"
"${CTL[@]}" replay rerr >/dev/null
row7_updated() { [[ "$(rt_psql rerr -c "SELECT v FROM t WHERE id = 7")" == "updated while missing on rerr" ]]; }
rt_wait_until 30 "rerr applying the UPDATE once its row is back" row7_updated
rt_psql source -c "DELETE FROM t WHERE id = 8"
rt_wait_until 30 "rerr stopped at the DELETE" grep -q \
    'DELETE of "public"."t" matched 0 rows on the replica instead of 1 (the row is missing): key' \
    "$RT_TMP/rerr.log"
[[ "$(conflicts_rows rerr)" == "insert_exists:stopped,update_missing:stopped,delete_missing:stopped" ]] ||
    rt_fail "rerr rt.conflicts after the DELETE: $(conflicts_rows rerr)"
rt_psql rerr -c "INSERT INTO t VALUES (8, 'v8')"
"${CTL[@]}" replay rerr >/dev/null
rt_wait_converged 30 source rerr rrem
rt_wait_until 10 "rerr streaming again" sub_is rerr .state streaming

rt_wait_until 30 "rskip still equal but for the skipped changes" skip_converged
[[ "$(skip_resolutions)" == "$SKIPPED" ]] || rt_fail "rskip rt.conflicts: $(skip_resolutions)"
rt_wait_until 30 "rkeep still equal but for the kept rows" keep_converged
[[ "$(keep_kinds)" == "$KEPT" ]] || rt_fail "rkeep rt.conflicts at the end: $(keep_kinds)"
rt_stop_clean rerr rrem rskip rkeep pub
echo "ctl conflicts: ok"
