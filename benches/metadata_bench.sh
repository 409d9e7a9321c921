#!/usr/bin/env bash
# Metadata ceiling of a ring (every node keeps every object row): rows and database size per
# node, listing pages, an idle replication pass and the catch-up of a new node at N rows.
#   benches/metadata_bench.sh [--rows N] [--no-data] [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
args=()
for a in "$@"; do
  if [[ $a == --release ]]; then profile=(--release); else args+=("$a"); fi
done
cargo build "${profile[@]}" -q -p outpost --bin outpost
exec cargo run "${profile[@]}" -q -p outpost-benches --bin metadata_bench -- "${args[@]}"
