#!/usr/bin/env bash
# tests/integration/package.sh - the Debian package: cpack builds it from this build, its
# Depends name the libraries the programs link, dpkg -i installs it (the rt user, /etc/rt,
# /var/lib/rt, units, man pages), a publisher and a subscriber run from the installed
# files as their units' command lines (user, umask, state directory) and replicate, then
# dpkg -r keeps configs and outboxes, dpkg --purge keeps only a directory holding KEEP,
# and a purge without it leaves none of the package's files behind.
#
# It installs a package on this machine: it needs root, and refuses to run where a
# package named rt is installed already.
set -euo pipefail
source "$RT_SRC/tests/lib/cluster.sh"

if ((EUID != 0)); then
    echo "SKIP: installing a package needs root"
    exit 77
fi
for tool in dpkg dpkg-deb dpkg-shlibdeps cpack setpriv; do
    command -v "$tool" >/dev/null || rt_fail "$tool is missing (scripts/deps.sh installs it)"
done
if [[ "$(dpkg-query -W -f='${db:Status-Status}' rt 2>/dev/null || true)" != "" &&
    "$(dpkg-query -W -f='${db:Status-Status}' rt 2>/dev/null)" != "not-installed" ]]; then
    rt_fail "a package named rt is on this machine ($(dpkg-query -W -f='${Status}' rt)): the test installs and purges its own; remove it first"
fi
rt_setup

UNITS=/usr/lib/systemd/system
INST=pkgtest
PUB_INI=/etc/rt/publisher-$INST.ini
SUB_INI=/etc/rt/subscriber-$INST.ini
WANTS=/etc/systemd/system/multi-user.target.wants

# Whatever happens, the machine ends without the package, its user and its directories.
s_purge_all() {
    local label
    for label in pub sub; do
        if [[ -n "${RT__PROC_PID[$label]:-}" ]] && rt_daemon_alive "$label"; then
            rt_stop_daemon "$label" KILL || true
        fi
    done
    rm -f /etc/rt/KEEP /var/lib/rt/KEEP
    dpkg --purge rt >/dev/null 2>&1 || true
    rm -f "$WANTS/rt-publisher@$INST.service"
}
rt_at_exit s_purge_all

echo "== cpack -G DEB"
cpack -G DEB --config "$RT_BIN/CPackConfig.cmake" -B "$RT_TMP/pkg" >"$RT_TMP/cpack.log" 2>&1 ||
    { tail -30 "$RT_TMP/cpack.log" >&2; rt_fail "cpack failed"; }
version="$(head -1 "$RT_SRC/VERSION")"
deb="$RT_TMP/pkg/rt_${version}_$(dpkg --print-architecture).deb"
[[ -f "$deb" ]] || rt_fail "cpack wrote no $deb: $(ls "$RT_TMP/pkg")"
dpkg-deb -I "$deb" >"$RT_TMP/control.txt"
dpkg-deb -c "$deb" | awk '{print substr($6, 2)}' | sed 's:/$::' | grep -v '^$' >"$RT_TMP/files.txt"
echo "package $(basename "$deb"): $(grep -c . "$RT_TMP/files.txt") paths"
cat "$RT_TMP/files.txt"

echo "== its Depends name the package of every library the programs link"
depends="$(dpkg-deb -f "$deb" Depends)"
echo "Depends: $depends"
for prog in rt-publisher rt-subscriber rt-relay rtctl; do
    while read -r lib; do
        path="$(ldd "$RT_BIN/$prog" | awk -v l="$lib" '$1 == l {print $3}')"
        [[ -n "$path" ]] || rt_fail "$prog: ldd does not resolve $lib"
        pkg="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)" ||
            pkg=""
        [[ -n "$pkg" ]] || pkg="$(dpkg -S "$path" | head -1 | cut -d: -f1)"
        grep -qE "(^|, )$pkg( |,|$)" <<<"$depends" ||
            rt_fail "$prog links $lib (package $pkg), which Depends does not name"
    done < <(readelf -d "$RT_BIN/$prog" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
for pkg in libpq5 libzmq5 libczmq4 libmsgpackc2 liblmdb0 libmicrohttpd12; do
    grep -q "$pkg" <<<"$depends" || rt_fail "Depends lacks $pkg"
done

for path in /usr/bin/rt-publisher /usr/bin/rt-subscriber /usr/bin/rt-relay /usr/bin/rtctl \
    "$UNITS/rt-publisher@.service" "$UNITS/rt-subscriber@.service" "$UNITS/rt-relay@.service" \
    /usr/share/man/man1/rt-publisher.1.gz /usr/share/man/man1/rt-subscriber.1.gz \
    /usr/share/man/man1/rt-relay.1.gz /usr/share/doc/rt/examples/relay.minimal.ini \
    /usr/share/man/man1/rtctl.1.gz /usr/share/doc/rt/README.md \
    /usr/share/doc/rt/examples/publisher.example.ini /usr/share/rt/monitoring/rt-alerts.yml \
    /usr/share/rt/monitoring/rt-dashboard.json; do
    grep -qxF "$path" "$RT_TMP/files.txt" || rt_fail "the package lacks $path"
done
if grep -vE '^/usr/(bin|lib|share)(/|$)|^/usr$' "$RT_TMP/files.txt"; then
    rt_fail "the package holds files outside /usr (above)"
fi

echo "== dpkg -i"
dpkg -i "$deb" >"$RT_TMP/dpkg-i.log" 2>&1 || { cat "$RT_TMP/dpkg-i.log" >&2; rt_fail "dpkg -i failed"; }
getent passwd rt >/dev/null || rt_fail "no user rt after install"
uid="$(id -u rt)"
((uid < 1000)) || rt_fail "user rt is not a system user (uid $uid)"
[[ "$(getent passwd rt | cut -d: -f7)" == /usr/sbin/nologin ]] || rt_fail "user rt has a login shell"
for dir in /etc/rt /etc/rt/keys /etc/rt/keys/allow /etc/rt/keys/admin; do
    [[ "$(stat -c '%a %U %G' "$dir")" == "750 root rt" ]] ||
        rt_fail "$dir is $(stat -c '%a %U %G' "$dir"), not 750 root rt"
done
[[ "$(stat -c '%a %U %G' /var/lib/rt)" == "750 rt rt" ]] ||
    rt_fail "/var/lib/rt is $(stat -c '%a %U %G' /var/lib/rt), not 750 rt rt"
for prog in rt-publisher rt-subscriber rt-relay rtctl; do
    out="$("/usr/bin/$prog" --version)"
    [[ "$out" == "$prog $version (git "* ]] || rt_fail "$prog --version printed: $out"
    grep -q '^\.SH OPTIONS' < <(zcat "/usr/share/man/man1/$prog.1.gz") ||
        rt_fail "the man page of $prog has no OPTIONS section"
done
grep -qF 'max\-outbox\-mb' < <(zcat /usr/share/man/man1/rt-publisher.1.gz) ||
    rt_fail "the man page of rt-publisher does not list its options"
# Nothing runs without a config: each unit is conditioned on its instance's file.
grep -qx "ConditionPathExists=$PUB_INI" <(sed "s/%i/$INST/g" "$UNITS/rt-publisher@.service") ||
    rt_fail "rt-publisher@.service does not require its config"
grep -qx "ConditionPathExists=$SUB_INI" <(sed "s/%i/$INST/g" "$UNITS/rt-subscriber@.service") ||
    rt_fail "rt-subscriber@.service does not require its config"
grep -qx "ConditionPathExists=/etc/rt/relay-$INST.ini" <(sed "s/%i/$INST/g" "$UNITS/rt-relay@.service") ||
    rt_fail "rt-relay@.service does not require its config"
if command -v systemd-analyze >/dev/null; then
    # The installed units, as instances, with the programs where they name them.
    mkdir "$RT_TMP/units"
    sed "s/%i/$INST/g" "$UNITS/rt-publisher@.service" >"$RT_TMP/units/rt-publisher@$INST.service"
    sed "s/%i/$INST/g" "$UNITS/rt-subscriber@.service" >"$RT_TMP/units/rt-subscriber@$INST.service"
    sed "s/%i/$INST/g" "$UNITS/rt-relay@.service" >"$RT_TMP/units/rt-relay@$INST.service"
    SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
        "$RT_TMP/units/rt-publisher@$INST.service" "$RT_TMP/units/rt-subscriber@$INST.service" \
        "$RT_TMP/units/rt-relay@$INST.service" \
        >"$RT_TMP/verify.log" 2>&1 || { cat "$RT_TMP/verify.log" >&2; rt_fail "systemd-analyze verify failed"; }
fi

# unit_cmd UNIT: the unit's ExecStart for instance INST, and its user (UNIT_USER) and
# umask (UNIT_UMASK).
unit_cmd() {
    local file="$UNITS/$1" line
    line="$(sed -n 's/^ExecStart=//p' "$file")"
    UNIT_USER="$(sed -n 's/^User=//p' "$file")"
    UNIT_UMASK="$(sed -n 's/^UMask=//p' "$file")"
    read -r -a UNIT_CMD <<<"${line//%i/$INST}"
    [[ -n "$UNIT_USER" && -n "$UNIT_UMASK" && -x "${UNIT_CMD[0]}" ]] ||
        rt_fail "$1: ExecStart '$line', User '$UNIT_USER', UMask '$UNIT_UMASK'"
    [[ "${UNIT_CMD[0]}" == /usr/bin/* ]] || rt_fail "$1 runs ${UNIT_CMD[0]}, not the installed program"
}
# run_as_unit LABEL UNIT: starts UNIT's command line as systemd would (its user and group,
# no capabilities, its umask), waiting for its ready line.
run_as_unit() {
    unit_cmd "$2"
    rt_start_daemon "$1" "$RT_TMP/$1.log" setpriv --reuid="$UNIT_USER" --regid="$UNIT_USER" \
        --init-groups --inh-caps=-all -- bash -c 'umask "$0"; exec "$@"' "$UNIT_UMASK" "${UNIT_CMD[@]}"
}

echo "== a publisher and a subscriber from the installed files"
rt_pg_start source
rt_pg_start replica
rt_psql source -c "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL DEFAULT 0)"
rt_psql source -c "INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 5000) g"
P_ROUTER="$(rt_free_port)"
P_PUB="$(rt_free_port)"
P_HTTP="$(rt_free_port)"
cat >"$PUB_INI" <<EOF
# written by tests/integration/package.sh
source = $SOURCE_DSN
outbox = /var/lib/rt/publisher-$INST
name = pkgsrc
listen = tcp://127.0.0.1:$P_ROUTER
pub = tcp://127.0.0.1:$P_PUB
http = 127.0.0.1:$P_HTTP
EOF
cat >"$SUB_INI" <<EOF
# written by tests/integration/package.sh
publisher = tcp://127.0.0.1:$P_ROUTER
target = $REPLICA_DSN
name = pkgreplica
init = copy
create_tables = true
EOF
chown root:rt "$PUB_INI" "$SUB_INI"
chmod 0640 "$PUB_INI" "$SUB_INI"
# What systemd makes for StateDirectory=rt/publisher-%i with StateDirectoryMode=0750.
grep -qx 'StateDirectory=rt/publisher-%i' "$UNITS/rt-publisher@.service" ||
    rt_fail "rt-publisher@.service has no state directory under /var/lib/rt"
install -d -o rt -g rt -m 0750 "/var/lib/rt/publisher-$INST"

run_as_unit pub rt-publisher@.service
run_as_unit sub rt-subscriber@.service
rt_psql source -c "UPDATE accounts SET balance = balance + 1 WHERE id % 7 = 0"
rt_psql source -c "INSERT INTO accounts SELECT g, 'late ' || g, g FROM generate_series(5001, 6000) g"
rt_psql source -c "DELETE FROM accounts WHERE id % 11 = 0"
rt_wait_converged 120 source replica
for label in pub sub; do
    pid="${RT__PROC_PID[$label]}"
    [[ "$(stat -c %U "/proc/$pid")" == rt ]] || rt_fail "$label does not run as rt"
done
status="$(/usr/bin/rtctl --publisher "tcp://127.0.0.1:$P_ROUTER" status)"
echo "$status"
grep -q pkgreplica <<<"$status" || rt_fail "rtctl status does not show the subscriber"
# grep reads the whole body: with -q it may leave before curl has written it all, and
# curl's failed write then fails the pipeline (pipefail).
curl -sf "http://127.0.0.1:$P_HTTP/metrics" | grep '^rt_publisher_head_seq ' >/dev/null ||
    rt_fail "the installed publisher's /metrics has no rt_publisher_head_seq"
outbox_files="$(find "/var/lib/rt/publisher-$INST" -type f)"
[[ -n "$outbox_files" ]] || rt_fail "no outbox in /var/lib/rt/publisher-$INST"
while read -r f; do
    [[ "$(stat -c '%U' "$f")" == rt ]] || rt_fail "$f is not owned by rt"
    (($(stat -c '%a' "$f") % 10 == 0)) || rt_fail "$f is readable by others ($(stat -c %a "$f"))"
done <<<"$outbox_files"
rc=0
rt_stop_daemon sub || rc=$?
((rc == 0)) || rt_fail "the subscriber exited with $rc on SIGTERM"
rt_stop_daemon pub || rc=$?
((rc == 0)) || rt_fail "the publisher exited with $rc on SIGTERM"

echo "== dpkg -r keeps configs, outboxes and the user"
dpkg -r rt >"$RT_TMP/dpkg-r.log" 2>&1 || { cat "$RT_TMP/dpkg-r.log" >&2; rt_fail "dpkg -r failed"; }
while read -r path; do
    if [[ -f "$path" || -L "$path" ]]; then
        rt_fail "dpkg -r left $path"
    fi
done <"$RT_TMP/files.txt"
[[ -f "$PUB_INI" && -f "$SUB_INI" ]] || rt_fail "dpkg -r removed the configs"
[[ -n "$(find "/var/lib/rt/publisher-$INST" -type f)" ]] || rt_fail "dpkg -r removed the outbox"
getent passwd rt >/dev/null || rt_fail "dpkg -r removed the user rt"

echo "== dpkg --purge keeps a directory holding KEEP, and the user that owns it"
touch /var/lib/rt/KEEP
dpkg --purge rt >"$RT_TMP/dpkg-purge.log" 2>&1 || { cat "$RT_TMP/dpkg-purge.log" >&2; rt_fail "dpkg --purge failed"; }
cat "$RT_TMP/dpkg-purge.log"
[[ ! -e /etc/rt ]] || rt_fail "purge left /etc/rt"
[[ -n "$(find "/var/lib/rt/publisher-$INST" -type f)" ]] || rt_fail "purge removed the outbox kept by KEEP"
getent passwd rt >/dev/null || rt_fail "purge removed the user that owns the kept outbox"

echo "== install again (the kept outbox stays), then purge everything"
dpkg -i "$deb" >"$RT_TMP/dpkg-i2.log" 2>&1 || { cat "$RT_TMP/dpkg-i2.log" >&2; rt_fail "second dpkg -i failed"; }
[[ -n "$(find "/var/lib/rt/publisher-$INST" -type f)" ]] || rt_fail "reinstalling removed the kept outbox"
[[ "$(stat -c '%a %U %G' /etc/rt)" == "750 root rt" ]] || rt_fail "/etc/rt not made again"
# What `systemctl enable rt-publisher@pkgtest` leaves: purge removes it.
mkdir -p "$WANTS"
ln -sf "$UNITS/rt-publisher@.service" "$WANTS/rt-publisher@$INST.service"
rm -f /var/lib/rt/KEEP
dpkg --purge rt >"$RT_TMP/dpkg-purge2.log" 2>&1 || { cat "$RT_TMP/dpkg-purge2.log" >&2; rt_fail "dpkg --purge failed"; }
left=()
while read -r path; do
    [[ -e "$path" || -L "$path" ]] || continue
    [[ -d "$path" && "$path" != */rt && "$path" != */rt/* ]] && continue # /usr, /usr/bin...
    left+=("$path")
done <"$RT_TMP/files.txt"
for path in /etc/rt /var/lib/rt "$WANTS/rt-publisher@$INST.service"; do
    if [[ -e "$path" || -L "$path" ]]; then
        left+=("$path")
    fi
done
((${#left[@]} == 0)) || rt_fail "purge left: ${left[*]}"
! getent passwd rt >/dev/null || rt_fail "purge left the user rt"
! getent group rt >/dev/null || rt_fail "purge left the group rt"
[[ "$(dpkg-query -W -f='${db:Status-Status}' rt 2>/dev/null || echo not-installed)" == not-installed ]] ||
    rt_fail "dpkg still knows rt after purge"
echo "package: installed, replicated from its units' command lines, removed, purged: ok"
