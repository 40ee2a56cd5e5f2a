#!/usr/bin/env bash
# scripts/promtool.sh - print the path of a promtool binary, fetching it if needed.
#
#   promtool="$(scripts/promtool.sh)" && "$promtool" check rules deploy/monitoring/rt-alerts.yml
#
# Uses `promtool` from PATH when there is one. Otherwise takes it from Debian's
# prometheus package without installing it (no service is created or started):
# `apt-get download prometheus` into a cache directory, `dpkg-deb -x` there, and
# only the binary (and its copyright file) is kept, as <cache>/prometheus/usr/bin/promtool.
# `apt-get update` is run only when the download fails (as root, through sudo otherwise).
#
# The cache is RT_TOOLS_CACHE if set, /var/cache/rt-tools as root, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/rt-tools. Once it holds promtool, the script
# only checks that the binary runs. Prints the path alone on stdout; everything
# else goes to stderr. Exits 1, saying why, when promtool cannot be had.
set -euo pipefail

say() { echo "promtool.sh: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# usable FILE: FILE is an executable promtool that runs.
usable() {
    [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1
}

if p="$(command -v promtool 2>/dev/null)" && usable "$p"; then
    echo "$p"
    exit 0
fi

if [[ -n "${RT_TOOLS_CACHE:-}" ]]; then
    cache="$RT_TOOLS_CACHE"
elif ((EUID == 0)); then
    cache=/var/cache/rt-tools
else
    cache="${XDG_CACHE_HOME:-${HOME:?neither RT_TOOLS_CACHE nor HOME is set}/.cache}/rt-tools"
fi
bin="$cache/prometheus/usr/bin/promtool"
if usable "$bin"; then
    echo "$bin"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "promtool is not on PATH and $tool is missing: install Prometheus' promtool by hand"
done
mkdir -p "$cache" || die "cannot create the cache directory $cache"
work="$(mktemp -d "$cache/fetch.XXXXXXXX")" || die "cannot create a directory under $cache"
trap 'rm -rf "$work"' EXIT
# apt-get download, run as root, hands the file to the _apt user: let it write here.
chmod 755 "$work"
if ((EUID == 0)) && id _apt >/dev/null 2>&1; then
    chown _apt "$work" 2>/dev/null || true
fi

download() {
    (cd "$work" && apt-get download -q prometheus) >&2
}

say "promtool is not on PATH: fetching Debian's prometheus package into $cache"
if ! download; then
    say "apt-get download failed; running apt-get update and trying again"
    if ((EUID == 0)); then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        die "apt-get update needs root, and sudo is not available"
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
        die "apt-get update failed"
    download || die "apt-get download prometheus failed (is Debian's package registry reachable?)"
fi

shopt -s nullglob
debs=("$work"/prometheus_*.deb)
((${#debs[@]} == 1)) || die "apt-get download left no single prometheus_*.deb in $work"
dpkg-deb -x "${debs[0]}" "$work/deb" || die "dpkg-deb -x ${debs[0]} failed"
usable "$work/deb/usr/bin/promtool" ||
    die "the package ${debs[0]##*/} has no working usr/bin/promtool"
# Keep promtool and its licence, not the server and its web assets (about 95 MB).
mkdir -p "$work/prometheus/usr/bin"
mv "$work/deb/usr/bin/promtool" "$work/prometheus/usr/bin/"
if [[ -e "$work/deb/usr/share/doc/prometheus/copyright" ]]; then
    mkdir -p "$work/prometheus/usr/share/doc/prometheus"
    mv "$work/deb/usr/share/doc/prometheus/copyright" "$work/prometheus/usr/share/doc/prometheus/"
fi

# Put it in place whole; another run that got there first wins.
if [[ ! -e "$cache/prometheus" ]]; then
    mv -T "$work/prometheus" "$cache/prometheus" 2>/dev/null || true
fi
usable "$bin" || die "$bin does not run after extracting ${debs[0]##*/}"
say "promtool from ${debs[0]##*/}: $bin"
echo "$bin"
