#!/usr/bin/env bash
# Builds and runs the outpost-auth fuzz targets (auth/fuzz, cargo-fuzz + libFuzzer), each for a
# bounded time, and exits non-zero if any target crashes, times out or fails to build.
#
#   scripts/fuzz.sh                 # every target, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh token path
#   FUZZ_SANITIZER=address scripts/fuzz.sh
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 30)
#   FUZZ_SANITIZER  `none` (default) or `address`. `none` builds on stable Rust as is: the
#                   coverage instrumentation cargo-fuzz uses (-Cpasses=sancov-module,
#                   -Cllvm-args=...) is stable. AddressSanitizer needs `-Zsanitizer`, which
#                   stable rustc accepts only with RUSTC_BOOTSTRAP=1; this script sets it for
#                   that build only. outpost-auth forbids unsafe code, so `none` finds the
#                   same panics; `address` is there for the dependencies' unsafe code.
#   FUZZ_JOBS       libFuzzer worker processes per target (default 1)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Not run in CI. New corpus entries go to
# auth/fuzz/corpus/<target>/ and crashes to auth/fuzz/artifacts/<target>/ (both ignored by
# git); auth/fuzz/seeds/<target>/ and auth/fuzz/dicts/<target>.dict are committed.
set -euo pipefail

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
fuzz_dir="$(cd "$(dirname "$0")/../auth/fuzz" && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 2
fi
case "$sanitizer" in
none) ;;
address)
    export RUSTC_BOOTSTRAP=1
    # Cargo caches rustc's answers per set of flags; a probe that failed on stable without
    # RUSTC_BOOTSTRAP would be replayed from the cache. Make it ask again.
    rm -f "$fuzz_dir/target/.rustc_info.json"
    ;;
*)
    echo "fuzz.sh: FUZZ_SANITIZER must be none or address, not '$sanitizer'" >&2
    exit 2
    ;;
esac

cd "$fuzz_dir"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz.sh: building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=9000
        -print_final_stats=1)
    if [ -f "dicts/$t.dict" ]; then
        args+=(-dict="dicts/$t.dict")
    fi
    if [ "$jobs" -gt 1 ]; then
        args+=(-jobs="$jobs" -workers="$jobs")
    fi
    echo "fuzz.sh: running $t for ${seconds}s"
    log="$(mktemp)"
    # The first corpus dir receives new inputs; the seeds are only read.
    if cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" \
        >"$log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$log" |
            sed "s/^/fuzz.sh: $t: /" || true
        echo "fuzz.sh: $t: ok ($(find "corpus/$t" -type f | wc -l) corpus entries)"
    else
        tail -n 60 "$log" >&2
        echo "fuzz.sh: $t: FAILED (artifacts in $fuzz_dir/artifacts/$t/)" >&2
        failed+=("$t")
    fi
    rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${seconds}s without a crash"
