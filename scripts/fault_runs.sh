#!/usr/bin/env bash
# Runs the randomized fault test (tests/tests/cluster_faults.rs) for several seeds and writes
# the record to docs/fault-runs.md. Usage: scripts/fault_runs.sh [runs=10] [seconds=40] [first seed=1]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
secs=${2:-40}
first=${3:-1}
out=docs/fault-runs.md
# Build once and run copies, so edits and builds during the runs change nothing.
cargo build -q -p outpost --bin outpost
test_exe=$(cargo test -q -p outpost-tests --test cluster_faults --no-run --message-format=json |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cluster_faults":
        print(m["executable"])')
target=${CARGO_TARGET_DIR:-target}
bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
cp "$target/debug/outpost" "$bin_dir/outpost"
cp "$test_exe" "$bin_dir/cluster_faults"
export OUTPOST_BIN=$bin_dir/outpost
rows=()
failed=0
for ((i = 0; i < runs; i++)); do
  seed=$((first + i))
  log=$(mktemp)
  if FAULT_SEED=$seed FAULT_SECS=$secs "$bin_dir/cluster_faults" --include-ignored \
    faults_with_a_skewed_clock --nocapture >"$log" 2>&1; then
    status=pass
  else
    status=FAIL
    failed=$((failed + 1))
  fi
  row=$(grep -m1 '^FAULT-RUN ' "$log" | sed 's/^FAULT-RUN //')
  [[ -n $row ]] || row="| $seed | (no record: the run did not finish, see the log) | | | | | | | | | |"
  rows+=("$row $status |")
  echo "seed $seed: $status"
  grep -E '^  [a-z]' "$log" | head -20
  rm -f "$log"
done
{
  echo "# Fault runs"
  echo
  echo "Recorded by \`scripts/fault_runs.sh $runs $secs $first\` on $(date -u +%Y-%m-%d) ($(nproc) cores, debug build)."
  echo "Each run: 4 nodes, 3 replicas, forwarders between nodes, node 3's clock 30 s behind, 4 clients"
  echo "on 24 keys through random nodes for $secs s while the nemesis kills/restarts, pauses/resumes"
  echo "nodes and cuts/heals links one at a time; then heal, replicate, check (see \`tests/src/faults.rs\`)."
  echo
  echo "| seed | ops | acked | unknown | faults | lost | resurrected | diverged | rounds | check s | total s | result |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$((runs - failed)) of $runs runs clean."
} >"$out"
echo "wrote $out"
exit $((failed > 0))
