#!/usr/bin/env bash
# scripts/deps.sh - install the Debian packages rt needs to build, test and run its demo.
#
# Installs only what is missing (checked with dpkg-query); runs `apt-get update`
# once, and only when something has to be installed. Runs apt-get directly as
# root, through sudo otherwise. A no-op, printing nothing, when all are present.
set -euo pipefail

RT_PACKAGES=(
    build-essential cmake pkg-config clang-format
    libpq-dev postgresql postgresql-contrib
    libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev libcmocka-dev
    libmicrohttpd-dev clang libclang-rt-14-dev tmux curl jq openssl chromium chromium-driver
    help2man dpkg-dev file
)

missing=()
for pkg in "${RT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "deps.sh: missing packages (${missing[*]}) and not root, and sudo is not available" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q "${missing[@]}"
echo "deps.sh: installed ${missing[*]}"
