#!/usr/bin/env bash
# Origin load bench (release build): PUT/GET req/s for 1 KiB objects (Swift API, then the S3
# API of the same node), MB/s for 64 MiB objects,
# and listing pages of 10,000 out of 1,000,000 objects. Arguments go to the bench binary:
#   benches/origin_bench.sh [--clients N] [--small N] [--large N] [--objects N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p outpost --bin outpost
exec cargo run --release -q -p outpost-benches --bin origin_bench -- "$@"
