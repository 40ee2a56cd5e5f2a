# bench/build.sh - sourced by bench/copy.sh and bench/mesh.sh: sets RT_SRC and RT_BIN
# (RT_BENCH_BUILD, default <repo>/build-bench) and builds rt-publisher, rt-subscriber
# and rtctl in Release there, incrementally, unless RT_BENCH_NO_BUILD=1.
# shellcheck shell=bash
RT_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RT_BIN="${RT_BENCH_BUILD:-$RT_SRC/build-bench}"
export RT_SRC RT_BIN
if [[ "${RT_BENCH_NO_BUILD:-0}" != 1 ]]; then
    echo "==> building Release into $RT_BIN"
    mkdir -p "$RT_BIN"
    cmake -S "$RT_SRC" -B "$RT_BIN" -DCMAKE_BUILD_TYPE=Release >"$RT_BIN/bench-build.log" 2>&1
    cmake --build "$RT_BIN" -j"$(nproc)" --target rt-publisher rt-subscriber rtctl \
        >>"$RT_BIN/bench-build.log" 2>&1 || { tail -n 30 "$RT_BIN/bench-build.log"; exit 1; }
fi
