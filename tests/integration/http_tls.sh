#!/usr/bin/env bash
# tests/integration/http_tls.sh - --http-cert and --http-key: with a self-signed
# certificate made by openssl, both daemons serve --http as HTTPS only (curl --cacert
# reads /api/status, /metrics and the dashboard; plain HTTP to the same port gets no
# answer; a client that does not trust the certificate refuses it), and a certificate
# without its key, a file that cannot be read or holds the wrong PEM stops a daemon at
# start with exit 2, naming the flag and the file.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"
rt_setup
for tool in curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || rt_fail "$tool is not installed (scripts/deps.sh)"
done

C="$RT_TMP/tls"
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$C/key.pem" -out "$C/cert.pem" 2>/dev/null
chmod 600 "$C/key.pem"

echo "== a certificate without its key, or a bad file, is exit 2"
# usage WHAT PATTERN CMD...: CMD exits with 2, saying PATTERN.
usage() {
    local what="$1" pattern="$2" rc=0
    shift 2
    timeout 20 "$@" >"$RT_TMP/usage.out" 2>&1 || rc=$?
    if [[ "$rc" != 2 ]] || ! grep -qF -- "$pattern" "$RT_TMP/usage.out"; then
        cat "$RT_TMP/usage.out"
        rt_fail "$what: exit $rc, expected 2 and \"$pattern\""
    fi
}
PUB_CMD=("$RT_BIN/rt-publisher" --source "dbname=x" --outbox "$RT_TMP/o0"
    --http "127.0.0.1:$(rt_free_port)")
SUB_CMD=("$RT_BIN/rt-subscriber" --publisher "tcp://127.0.0.1:$(rt_free_port)"
    --target "dbname=x" --http "127.0.0.1:$(rt_free_port)")
usage "publisher, certificate alone" "--http-cert FILE and --http-key FILE go together" \
    "${PUB_CMD[@]}" --http-cert "$C/cert.pem"
usage "subscriber, key alone" "--http-cert FILE and --http-key FILE go together" \
    "${SUB_CMD[@]}" --http-key "$C/key.pem"
usage "publisher, no such certificate" "cannot read --http-cert $C/none.pem" \
    "${PUB_CMD[@]}" --http-cert "$C/none.pem" --http-key "$C/key.pem"
usage "subscriber, a key for a certificate" "--http-cert $C/key.pem holds no PEM certificate" \
    "${SUB_CMD[@]}" --http-cert "$C/key.pem" --http-key "$C/key.pem"
usage "publisher, a certificate for a key" "--http-key $C/cert.pem holds no PEM private key" \
    "${PUB_CMD[@]}" --http-cert "$C/cert.pem" --http-key "$C/cert.pem"
[[ ! -e "$RT_TMP/o0" ]] || rt_fail "the publisher made its outbox before checking --http-cert"

echo "== both daemons over HTTPS"
for c in source replica; do
    rt_pg_start "$c"
    rt_psql "$c" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
done
ROUTER="tcp://127.0.0.1:$(rt_free_port)"
H_PUB="$(rt_free_port)"
H_SUB="$(rt_free_port)"
TLS=(--http-cert "$C/cert.pem" --http-key "$C/key.pem")
rt_start_daemon pub "$RT_TMP/pub.log" "$RT_BIN/rt-publisher" --source "$SOURCE_DSN" \
    --outbox "$RT_TMP/outbox" --name src --listen "$ROUTER" --pub "tcp://127.0.0.1:$(rt_free_port)" \
    --http "127.0.0.1:$H_PUB" "${TLS[@]}"
rt_start_daemon sub "$RT_TMP/sub.log" "$RT_BIN/rt-subscriber" --publisher "$ROUTER" \
    --target "$REPLICA_DSN" --name replica --http "127.0.0.1:$H_SUB" \
    "${TLS[@]}"
rt_psql source -c "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g"
rt_wait_converged 60 source replica

# get URL OUTFILE [CURL ARGS...]: prints "CODE CONTENT_TYPE", body in OUTFILE.
get() {
    local url="$1" out="$2"
    shift 2
    curl -sS --max-time 10 -o "$out" -w '%{http_code} %{content_type}' "$@" "$url"
}
for port in "$H_PUB" "$H_SUB"; do
    r="$(get "https://127.0.0.1:$port/api/status" "$RT_TMP/status.json" --cacert "$C/cert.pem")"
    { [[ "$r" == "200 application/json"* ]] && jq -e . "$RT_TMP/status.json" >/dev/null; } ||
        rt_fail "GET /api/status over HTTPS on port $port: $r $(cat "$RT_TMP/status.json")"
    grep -q '"name":"replica"' "$RT_TMP/status.json" ||
        rt_fail "/api/status over HTTPS on port $port does not show the subscriber"
    [[ "$(get "https://localhost:$port/" "$RT_TMP/page.html" --cacert "$C/cert.pem")" == \
        "200 text/html"* ]] || rt_fail "the dashboard over HTTPS on port $port"
    rc=0
    get "http://127.0.0.1:$port/api/status" "$RT_TMP/plain.out" >/dev/null 2>"$RT_TMP/plain.err" ||
        rc=$?
    ((rc != 0)) || rt_fail "plain HTTP to the HTTPS port $port was answered: $(cat "$RT_TMP/plain.out")"
    echo "port $port: HTTPS answered, plain HTTP failed (curl exit $rc: $(head -c 120 "$RT_TMP/plain.err"))"
    rc=0
    get "https://127.0.0.1:$port/api/status" "$RT_TMP/untrusted.out" >/dev/null 2>&1 || rc=$?
    ((rc == 60)) || rt_fail "curl without --cacert did not refuse the certificate (exit $rc)"
done
r="$(get "https://127.0.0.1:$H_PUB/metrics" "$RT_TMP/metrics.txt" --cacert "$C/cert.pem")"
{ [[ "$r" == 200* ]] && grep -q '^rt_publisher_head_seq ' "$RT_TMP/metrics.txt"; } ||
    rt_fail "/metrics over HTTPS: $r"
rt_stop_daemon sub || rt_fail "the subscriber did not stop cleanly"
rt_stop_daemon pub || rt_fail "the publisher did not stop cleanly"
echo "http tls: ok"
