# Shared by the profile scripts (`source benches/lib.sh NAME TOOL...` from the repository
# root): checks the tools, makes $WORK, stops every PID in PIDS and removes $WORK on exit, and
# defines `port` (a free 127.0.0.1 port) and `wait_http URL` (until it answers, or exit 1).
# shellcheck shell=bash
lib_name=$1
shift
for t in "$@"; do
  command -v "$t" >/dev/null || { echo "$lib_name needs $t" >&2; exit 2; }
done
WORK=$(mktemp -d "/tmp/outpost-${lib_name%.sh}.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; exit 1; }
