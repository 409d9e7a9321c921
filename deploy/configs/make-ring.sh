#!/usr/bin/env bash
# Builds the ring files of the example topology: one ring per datacenter (each DC is its own
# cluster), 3 origin nodes per DC, one device each, 3 replicas, one zone per node.
#
#   deploy/configs/make-ring.sh [OUT_DIR]      # writes OUT_DIR/dc1.ring and OUT_DIR/dc2.ring
#
# Hosts default to the example addresses (10.<dc>.0.11-13); HOSTS_DC1 / HOSTS_DC2 override
# them (space-separated host names or IPs, one zone each), PORT the port (8080). On
# Kubernetes, the StatefulSet pods' DNS names:
#   HOSTS_DC1="outpost-origin-0.outpost-origin.outpost.svc.cluster.local ..." make-ring.sh out
#
# Each node's config names its ring file and its own device ([cluster] ring and node in
# dc1/origin-1.toml). Ship the files to the nodes of each DC; they re-read a changed ring
# without a restart. A build without `outpost ring` (before the origin cluster) makes this
# script stop with a clear message and status 3.
set -euo pipefail

OUTPOST=${OUTPOST:-outpost}
OUT=${1:-.}
PART_POWER=${PART_POWER:-10}  # 2^10 partitions: plenty for 3-12 devices
REPLICAS=3
PORT=${PORT:-8080}
HOSTS_DC1=${HOSTS_DC1:-10.1.0.11 10.1.0.12 10.1.0.13}
HOSTS_DC2=${HOSTS_DC2:-10.2.0.11 10.2.0.12 10.2.0.13}

if ! "$OUTPOST" ring --help >/dev/null 2>&1; then
  echo "make-ring.sh: \`$OUTPOST ring\` does not exist in this build (replicated cluster, issue 8)." >&2
  echo "make-ring.sh: nothing written; each origin node runs standalone until it lands." >&2
  exit 3
fi

mkdir -p "$OUT"
for dc in 1 2; do
  ring="$OUT/dc$dc.ring"
  if [[ -e $ring ]]; then
    echo "make-ring.sh: $ring exists; remove it to build a new ring (or use \`outpost ring add\`)" >&2
    exit 1
  fi
  "$OUTPOST" ring create "$ring" --part-power "$PART_POWER" --replicas "$REPLICAS"
  hosts_var=HOSTS_DC$dc
  zone=0
  for host in ${!hosts_var}; do
    zone=$((zone + 1))
    # Region = datacenter, zone = node: rebalance never puts two replicas of a partition in
    # one zone while another zone has room.
    "$OUTPOST" ring add "$ring" \
      --region "$dc" --zone "$zone" \
      --host "$host" --port "$PORT" \
      --device d1 --weight 100
  done
  "$OUTPOST" ring rebalance "$ring"
  "$OUTPOST" ring show "$ring"
done
