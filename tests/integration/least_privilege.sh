#!/usr/bin/env bash
# tests/integration/least_privilege.sh - rt with the least it needs, over TLS:
# the publisher as a REPLICATION role (not a superuser) with a publication created
# beforehand, refused DDL capture until a superuser's publisher installed it once; the subscriber as a plain role with only the GRANTs the README lists and
# a schema rt made for it; both connections with sslmode=verify-full against a
# self-signed CA, the server certificate's name checked. Inserts, updates, deletes and
# a TRUNCATE converge; pg_stat_ssl shows both sessions encrypted.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
command -v openssl >/dev/null 2>&1 || rt_fail "openssl is not installed (apt-get install openssl)"

TLS="$RT_TMP/tls"
mkdir -p "$TLS"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rt test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$TLS/san.ext"
openssl x509 -req -days 2 -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
    -CAcreateserial -extfile "$TLS/san.ext" -out "$TLS/server.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=another CA" \
    -keyout "$TLS/other.key" -out "$TLS/other.crt" 2>/dev/null
chmod 600 "$TLS/server.key"
((EUID != 0)) || chown -R postgres:postgres "$TLS"
SSL=("ssl = on" "ssl_cert_file = '$TLS/server.crt'" "ssl_key_file = '$TLS/server.key'")

for c in source replica; do
    rt_pg_start "$c" "${SSL[@]}"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE u (k text PRIMARY KEY, n int)"
    data="$(rt__var "$c")_DATA"
    # rt's roles only over TLS.
    sed -i "1i hostnossl all rt_pub,rt_apply all reject\nhostssl all rt_pub,rt_apply 127.0.0.1/32 trust" \
        "${!data}/pg_hba.conf"
    rt_psql "$c" -c "SELECT pg_reload_conf()" >/dev/null
done
rt_psql source -c "CREATE ROLE rt_pub LOGIN REPLICATION; CREATE PUBLICATION rt_pre FOR TABLE t, u"
rt_psql replica <<'SQL'
CREATE ROLE rt_apply LOGIN;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO rt_apply;
GRANT EXECUTE ON FUNCTION pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO rt_apply;
GRANT EXECUTE ON FUNCTION pg_replication_origin_progress(text, bool) TO rt_apply;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_reset() TO rt_apply;
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text) TO rt_apply;
GRANT EXECUTE ON FUNCTION pg_replication_origin_oid(text) TO rt_apply;
GRANT SET ON PARAMETER session_replication_role TO rt_apply;
GRANT INSERT, UPDATE, DELETE, SELECT, TRUNCATE ON t, u TO rt_apply;
CREATE SCHEMA rt AUTHORIZATION rt_apply;
SQL
[[ "$(rt_psql replica -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_apply'")" == f ]]
[[ "$(rt_psql source -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_pub'")" == f ]]
tls_dsn() { # CLUSTER ROLE [ROOTCERT]
    local port="$(rt__var "$1")_PORT"
    echo "host=localhost hostaddr=127.0.0.1 port=${!port} dbname=postgres user=$2" \
        "sslmode=verify-full sslrootcert=${3:-$TLS/ca.crt}"
}

echo "== a server certificate from another CA is refused"
rc=0
timeout 30 "$RT_BIN/rt-publisher" --source "$(tls_dsn source rt_pub "$TLS/other.crt")" \
    --outbox "$RT_TMP/o0" --name src --publication rt_pre >"$RT_TMP/badca.out" 2>&1 || rc=$?
[[ "$rc" == 1 ]] && grep -q 'certificate verify failed' "$RT_TMP/badca.out" ||
    { cat "$RT_TMP/badca.out"; rt_fail "a source with an untrusted certificate was accepted ($rc)"; }

echo "== DDL capture: installed once by a superuser, then used by the publisher's role"
rc=0
timeout 30 "$RT_BIN/rt-publisher" --source "$(tls_dsn source rt_pub)" \
    --outbox "$RT_TMP/o1" --name src --publication rt_pre >"$RT_TMP/noddl.out" 2>&1 || rc=$?
[[ "$rc" != 0 ]] && grep -q 'creating event triggers needs a superuser' "$RT_TMP/noddl.out" ||
    { cat "$RT_TMP/noddl.out"; rt_fail "a publisher that cannot install its DDL capture did not stop saying so ($rc)"; }
# What README says: start the publisher once with a superuser's connection string.
rt_start_daemon setup "$RT_TMP/setup.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/o2" --name setup --publication rt_pre \
    --listen "tcp://127.0.0.1:$(rt_free_port)" --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_stop_daemon setup
rt_psql source -c "SELECT pg_drop_replication_slot('rt_setup')" >/dev/null
grep -q "installed rt's DDL capture" "$RT_TMP/setup.log" || rt_fail "the superuser's publisher did not install the DDL capture"
grep -q "added rt.ddl_log to publication rt_pre" "$RT_TMP/setup.log" ||
    rt_fail "the superuser's publisher did not add rt.ddl_log to the publication"

echo "== least privilege over verify-full"
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$(tls_dsn source rt_pub)" \
    --outbox "$RT_TMP/outbox" --name src --publication rt_pre --listen "$ROUTER" \
    --pub "tcp://127.0.0.1:$(rt_free_port)"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$(tls_dsn replica rt_apply)" --name replica
rt_psql source <<'SQL'
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;
INSERT INTO u VALUES ('a', 1), ('b', 2);
UPDATE t SET v = 'updated' WHERE id % 7 = 0;
DELETE FROM t WHERE id % 11 = 0;
TRUNCATE u;
INSERT INTO u VALUES ('c', 3);
SQL
rt_wait_converged 60 source replica
ssl_of() { # CLUSTER ROLE: "t" when every session of ROLE is encrypted
    rt_psql "$1" -c "SELECT coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s
                     JOIN pg_stat_activity a USING (pid) WHERE a.usename = '$2'"
}
[[ "$(ssl_of source rt_pub)" == t ]] || rt_fail "the publisher's sessions are not all TLS"
[[ "$(ssl_of replica rt_apply)" == t ]] || rt_fail "the subscriber's session is not TLS"
# Without pg_read_all_stats the role sees its slot but not its WAL sender's lag: the bytes
# are measured, the seconds stay unknown, and the log says why once.
slot_figures() {
    local j
    j="$("$RT_BIN/rtctl" --publisher "$ROUTER" status --json)" || return 1
    rt_json_num "$j" retained_wal_bytes >/dev/null && rt_json_num "$j" source_lag_bytes >/dev/null &&
        [[ "$j" == *'"source_lag_ms":-1,'* ]]
}
rt_wait_until 20 "the slot's figures without the WAL sender's lag" slot_figures
rt_wait_until 10 "the log to say why the lag in seconds is unknown" \
    grep -q 'may not read the lag of its WAL sender' "$RT_TMP/pub.log"
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "least privilege: ok"
