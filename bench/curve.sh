#!/usr/bin/env bash
# bench/curve.sh - what CURVE costs rt: the bulk, small and latency cases of bench/run.sh,
# rt only, with plaintext sockets and with CURVE on every socket (RT_BENCH_CURVE=1),
# run alternately (off, on, RT_BENCH_CURVE_ROUNDS times, default 1) in one invocation,
# and one table: each metric off and on, and on/off.
#
# Environment: RT_BENCH_CURVE_ROUNDS, and what bench/run.sh reads (RT_BENCH_CASES
# defaults to "bulk small latency" here, RT_BENCH_ROUNDS to 1: each run.sh is one round).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d /tmp/rt-bench-curve.XXXXXX)"
trap 'rm -rf "$out"' EXIT
rounds="${RT_BENCH_CURVE_ROUNDS:-1}"
export RT_BENCH_ONLY=rt RT_BENCH_CASES="${RT_BENCH_CASES:-bulk small latency}" RT_BENCH_ROUNDS="${RT_BENCH_ROUNDS:-1}"
built=0
for ((i = 1; i <= rounds; i++)); do
    for curve in 0 1; do
        echo "==> round $i, CURVE $([[ $curve == 1 ]] && echo on || echo off)"
        ((built == 0)) || export RT_BENCH_NO_BUILD=1
        RT_BENCH_CURVE="$curve" "$here/run.sh" | tee "$out/$i.$curve.txt"
        built=1
    done
done
# Rows of run.sh's summary table (the lines after its header "case metric rt ..."):
# case, metric (words), rt, native, ratio, spread, better. The rt value is the 5th
# field from the end; the metric is what lies between the case and it.
echo
printf '%-14s %-40s %12s %12s %8s  %s\n' case metric "CURVE off" "CURVE on" on/off better
printf '%s\n' "$(printf '%.0s-' {1..100})"
for ((i = 1; i <= rounds; i++)); do
    awk -v off="$out/$i.0.txt" -v on="$out/$i.1.txt" '
        function rows(file, dst,   line, n, f, key, k) {
            intable = 0
            while ((getline line < file) > 0) {
                if (line ~ /^case +metric +rt +native/) { intable = 1; continue }
                n = split(line, f, /[ ]+/)
                if (!intable || n < 7 || f[n - 4] !~ /^[0-9.]+$/) continue
                key = f[1]; for (k = 2; k <= n - 5; k++) key = key " " f[k]
                dst[key] = f[n - 4]; better[key] = f[n]; order[++norder] = key
            }
        }
        BEGIN {
            rows(off, a); norder_off = norder; norder = 0; rows(on, b)
            for (j = 1; j <= norder; j++) {
                key = order[j]; if (!(key in a)) continue
                split(key, w, " "); c = w[1]; m = substr(key, length(c) + 2)
                r = (a[key] + 0 > 0) ? sprintf("%.2f", b[key] / a[key]) : "-"
                printf "%-14s %-40s %12s %12s %8s  %s\n", c, m, a[key], b[key], r, better[key]
            }
        }'
done
echo
echo "on/off: CURVE on divided by CURVE off (rt only, same machine, runs alternated)."
