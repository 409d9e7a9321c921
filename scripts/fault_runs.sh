#!/usr/bin/env bash
# Runs the randomized fault test (tests/tests/cluster_faults.rs) for several seeds and writes
# the record to docs/fault-runs.md. Usage: scripts/fault_runs.sh [runs=10] [seconds=40] [first seed=1]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
secs=${2:-40}
first=${3:-1}
out=docs/fault-runs.md
cargo build -q -p outpost --bin outpost
cargo test -q -p outpost-tests --test cluster_faults --no-run
rows=()
failed=0
for ((i = 0; i < runs; i++)); do
  seed=$((first + i))
  log=$(mktemp)
  if FAULT_SEED=$seed FAULT_SECS=$secs cargo test -q -p outpost-tests --test cluster_faults -- --nocapture >"$log" 2>&1; then
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
