#!/usr/bin/env bash
# Build every fuzz target and run each for N seconds (default 60), one after the other.
#
#   fuzz/run.sh [seconds]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Targets are built
# with AddressSanitizer and debug assertions (so integer overflow panics). Each run starts
# from the checked-in seeds in fuzz/corpus/<target>/ and writes what it discovers to
# fuzz/target/corpus/<target>/ (kept between runs, never checked in). A crash, a hang
# (an input taking more than 10 s) or an allocation of 64 MiB or more (every input is at
# most 4 KiB, so that would be a claimed length believed) stops the target and leaves the
# input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run -a <target> fuzz/artifacts/<target>/<file>
# Prints one line per target (executions, crash or not) and exits non-zero on a crash.
set -uo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
targets=(envelope codec control keys)

cargo +nightly fuzz build -a || exit 2

status=0
summary=()
for t in "${targets[@]}"; do
    work="target/corpus/$t"
    log="target/$t.log"
    mkdir -p "$work"
    echo "== $t: ${seconds}s"
    cargo +nightly fuzz run -a "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=64 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$execs" ]; then
        # libFuzzer prints no final stats when it stops on a crash: take the last status line.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*')
    if [ "$rc" -eq 0 ]; then
        result="no crash"
    else
        status=1
        artifact=$(grep -oE 'artifacts/[^ ]+' "$log" | tail -1)
        result="CRASH (exit $rc) ${artifact:-see fuzz/$log}"
        grep -m1 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" | sed 's/^/    /'
    fi
    line=$(printf '%-9s %12s execs %6ss  coverage %-6s %s' "$t" "${execs:-?}" "$seconds" \
        "${cov:-?}" "$result")
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
