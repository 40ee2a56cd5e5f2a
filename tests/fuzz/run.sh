#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer targets and runs each on a copy of its seed corpus.
#
#   tests/fuzz/run.sh [SECONDS]    (default 30 per target)
#
# The build goes to ${RT_FUZZ_BUILD:-build-fuzz} (relative to the repository root unless
# absolute). The corpora and any crash inputs stay in a scratch directory outside the
# tree; it is removed when every target ran clean, and kept (and named) otherwise.
# Exits non-zero if any target crashed, leaked, timed out or ran out of memory.
set -u

secs=${1:-30}
case $secs in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${RT_FUZZ_BUILD:-build-fuzz}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
targets="fuzz_pgoutput fuzz_wire fuzz_config"

work=$(mktemp -d "${TMPDIR:-/tmp}/rt-fuzz.XXXXXX")

echo "building fuzz targets in $build"
if ! cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_C_COMPILER=clang >"$work/build.log" 2>&1 ||
    ! cmake --build "$build" -j"$(nproc)" >>"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    echo "building the fuzz targets failed" >&2
    rm -rf "$work"
    exit 2
fi
failed=0

for t in $targets; do
    dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -R "$root/tests/fuzz/corpus/$t/." "$dir/corpus/"
    start=$(date +%s.%N)
    (cd "$dir" && "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" corpus >"$dir/log" 2>&1)
    rc=$?
    end=$(date +%s.%N)
    elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    runs=$(awk '/^stat::number_of_executed_units:/ { n = $2 } END { print n + 0 }' "$dir/log")
    rate=$(awk '/^stat::average_exec_per_sec:/ { n = $2 } END { print n + 0 }' "$dir/log")
    artifacts=$(find "$dir/artifacts" -type f | sort)
    if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then
        line="$t: $runs runs in $elapsed s, no crash ($rate runs/s)"
    else
        failed=1
        echo "---- $t: end of $dir/log"
        grep -v '^#[0-9]' "$dir/log" | tail -n 40
        line="$t: CRASH (exit $rc) after $runs runs in $elapsed s"
        for a in $artifacts; do
            line="$line
  crash input: $a"
        done
    fi
    echo "$line"
done

if [ "$failed" -eq 0 ]; then
    rm -rf "$work"
    exit 0
fi
echo "crash inputs and logs kept in $work (reproduce: $build/<target> <input>)" >&2
exit 1
