#!/usr/bin/env bash
# Builds the ring files of the example topology: one ring per datacenter (each DC is its own
# cluster), 3 origin nodes per DC, one device each, 3 replicas, one zone per node.
#
#   deploy/configs/make-ring.sh [OUT_DIR]      # writes OUT_DIR/dc1.ring and OUT_DIR/dc2.ring
#
# PENDING (issue 8): the `outpost ring` command is being built. This script follows the
# interface issue 8 describes and the one in progress (`outpost ring create FILE --part-power P
# --replicas N`, `add FILE` with region, zone, host, port, device name and weight, `rebalance
# FILE`, `show FILE`); check it against `outpost ring --help` when it lands. With a build
# that has no `outpost ring` it stops with a clear message and status 3.
set -euo pipefail

OUTPOST=${OUTPOST:-outpost}
OUT=${1:-.}
PART_POWER=${PART_POWER:-10}  # 2^10 partitions: plenty for 3-12 devices
REPLICAS=3

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
  for node in 1 2 3; do
    # Region = datacenter, zone = node: rebalance never puts two replicas of a partition in
    # one zone while another zone has room.
    "$OUTPOST" ring add "$ring" \
      --region "$dc" --zone "$node" \
      --host "10.$dc.0.1$node" --port 8080 \
      --device d1 --weight 100
  done
  "$OUTPOST" ring rebalance "$ring"
  "$OUTPOST" ring show "$ring"
done
