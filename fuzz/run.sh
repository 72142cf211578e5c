#!/usr/bin/env bash
# fuzz/run.sh [--seconds N] [--seed S] - builds the libFuzzer targets of fuzz/ with
# clang (ASan + UBSan) into build-fuzz/, writes the seed corpora from real
# traffic (make_corpus), replays the seeds, the corpus kept from earlier
# runs and every input in fuzz/regressions/TARGET/, then fuzzes each target
# for N seconds (default 60; as many at once as there are CPUs).  Exits
# non-zero if any target crashed, leaked, hit undefined behaviour or timed
# out.  What it finds stays in build-fuzz/crashes/TARGET/; logs are in
# build-fuzz/logs/.  Installs clang and libclang-rt-14-dev when missing
# (as root).  Runs from any directory.  --seed S makes each target's
# mutations the same from run to run (CI uses it, so a run that passed
# here passes there; without it libFuzzer picks a new seed each time).
set -euo pipefail

usage() {
    echo "usage: fuzz/run.sh [--seconds N] [--seed S]" >&2
    exit 2
}

seconds=60
seed=
while [ $# -gt 0 ]; do
    case "$1" in
    --seed)
        [ $# -ge 2 ] || usage
        seed="$2"
        shift 2
        ;;
    --seconds)
        [ $# -ge 2 ] || usage
        seconds="$2"
        shift 2
        ;;
    --seconds=*)
        seconds="${1#--seconds=}"
        shift
        ;;
    -h | --help) usage ;;
    *)
        echo "fuzz/run.sh: unknown argument '$1'" >&2
        usage
        ;;
    esac
done
case "$seed" in
*[!0-9]*)
    echo "fuzz/run.sh: --seed takes a whole number, not '$seed'" >&2
    exit 2
    ;;
esac
case "$seconds" in
'' | *[!0-9]*)
    echo "fuzz/run.sh: --seconds takes a whole number, not '$seconds'" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/build-fuzz"
targets=(fuzz_frames fuzz_session fuzz_parsers fuzz_control)

# clang that can link a libFuzzer program.
clang_can_fuzz() {
    command -v clang >/dev/null || return 1
    local probe
    probe=$(mktemp -d)
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { (void)data; (void)size; return 0; }' \
        >"$probe/probe.c"
    local result=0
    clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" 2>/dev/null || result=1
    rm -rf "$probe"
    return "$result"
}

if ! clang_can_fuzz; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "fuzz/run.sh: clang with libFuzzer is missing; as root: apt-get install clang libclang-rt-14-dev" >&2
        exit 1
    fi
    echo "installing: clang libclang-rt-14-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    clang_can_fuzz || { echo "fuzz/run.sh: clang still cannot build a fuzzer" >&2; exit 1; }
fi

jobs=$(nproc 2>/dev/null || echo 2)
echo "== fuzz: build (clang, libFuzzer + ASan + UBSan) in build-fuzz/"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DUSOCK_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzz -j"$jobs" >"$build/build.log" 2>&1 || {
    cat "$build/build.log" >&2
    exit 1
}

echo "== fuzz: seed corpora from real traffic"
rm -rf "$build/seeds"
"$build/fuzz/make_corpus" "$build/seeds"
mkdir -p "$build/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0

# The directories a target's inputs live in: its corpus (kept between
# runs, grown by fuzzing), the fresh seeds, and the regressions if any
# (fuzz/regressions/TARGET/, each a bug once found, must pass).
input_directories() {
    local target="$1"
    mkdir -p "$build/corpus/$target" "$build/crashes/$target"
    echo "$build/corpus/$target" "$build/seeds/$target"
    if [ -n "$(ls -A "$root/fuzz/regressions/$target" 2>/dev/null)" ]; then
        echo "$root/fuzz/regressions/$target"
    fi
}

echo "== fuzz: replay of seeds, corpora and fuzz/regressions"
for target in "${targets[@]}"; do
    # shellcheck disable=SC2046
    if "$build/fuzz/$target" -runs=0 -timeout=30 -artifact_prefix="$build/crashes/$target/" \
        $(input_directories "$target") >"$build/logs/$target.replay.log" 2>&1; then
        echo "$target: replayed $(grep -o 'INITED.*corp: [0-9]*' "$build/logs/$target.replay.log" | grep -o '[0-9]*$') inputs of $(grep -h -o '[0-9]* files found' "$build/logs/$target.replay.log" | awk '{n += $1} END {print n}') files, no failure"
    else
        echo "$target: FAILED on replay (build-fuzz/logs/$target.replay.log):" >&2
        grep -E "ERROR|SUMMARY|fuzz_|fuzz:|Test unit written" "$build/logs/$target.replay.log" | head -20 >&2 || true
        status=1
    fi
done

if [ "$seconds" -gt 0 ]; then
    echo "== fuzz: $seconds s per target, $jobs at once"
    pids=()
    names=()
    for target in "${targets[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
            sleep 1
        done
        # shellcheck disable=SC2046
        "$build/fuzz/$target" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
            ${seed:+-seed="$seed"} \
            -artifact_prefix="$build/crashes/$target/" $(input_directories "$target") \
            >"$build/logs/$target.fuzz.log" 2>&1 &
        pids+=($!)
        names+=("$target")
    done
    for i in "${!pids[@]}"; do
        target="${names[$i]}"
        log="$build/logs/$target.fuzz.log"
        if wait "${pids[$i]}"; then
            result="ok"
        else
            result="FAILED"
            status=1
        fi
        last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
        coverage=$(echo "$last" | grep -o 'cov: [0-9]*' || true)
        features=$(echo "$last" | grep -o 'ft: [0-9]*' || true)
        corpus=$(echo "$last" | grep -o 'corp: [0-9]*' || true)
        rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        echo "$target: $result, ${runs:-?} runs, ${rate:-?} exec/s, $coverage, $features, $corpus"
        if [ "$result" != ok ]; then
            grep -E "ERROR|SUMMARY|fuzz_|fuzz:|Test unit written" "$log" | head -20 >&2 || true
        fi
    done
fi

found=$(find "$build/crashes" -type f 2>/dev/null | sort)
if [ -n "$found" ]; then
    echo "== fuzz: inputs that failed (copy each into fuzz/regressions/TARGET/ once understood):"
    echo "$found"
fi
if [ "$status" -eq 0 ]; then
    echo "fuzzing: no failures"
else
    echo "fuzzing: FAILED" >&2
fi
exit "$status"
