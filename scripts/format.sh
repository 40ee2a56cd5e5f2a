#!/usr/bin/env bash
# scripts/format.sh - the C sources against the committed .clang-format.
#
#   scripts/format.sh          reformat every tracked .c and .h file in place
#   scripts/format.sh --check  change nothing; list the files that differ and exit 1
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 ||
    { echo "format.sh: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h')
if [[ "${1:-}" == "--check" ]]; then
    bad=()
    for f in "${files[@]}"; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if ((${#bad[@]} > 0)); then
        echo "format.sh: not formatted as .clang-format says (run scripts/format.sh):" >&2
        printf '    %s\n' "${bad[@]}" >&2
        exit 1
    fi
    echo "format.sh: ${#files[@]} files formatted as .clang-format says"
else
    clang-format -i "${files[@]}"
fi
