#!/usr/bin/env bash
# perf profile of the edge answering cached 1 KiB hits (origin mode, public object): starts an
# Outpost origin and edge on 127.0.0.1, warms the object, runs wrk against the edge and records
# the edge with `perf record -g` meanwhile, then prints the top of `perf report`.
#
#   benches/profile_hit.sh [seconds] [extra edge [cache] line, e.g. 'hot_path = false']
#   (PERF_OUT=file keeps the perf.data for `perf report -i file`; SIGNED=1 profiles a private
#   object read with an Outpost signed URL instead of a public one; MISS=1 profiles misses:
#   every request a different missing object, each answered 404 by the origin)
#
# Needs perf (Debian: linux-perf), wrk, curl, python3, and target/release/outpost (or
# $OUTPOST_BIN). Everything it starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
EXTRA=${2:-}
BIN="${OUTPOST_BIN:-target/release/outpost}"
# shellcheck source=benches/lib.sh
source benches/lib.sh profile_hit.sh perf wrk curl python3
SECRET="profile-internal-secret-0123456789"
OP=$(port); EP=$(port)
cat > "$WORK/origin.toml" <<EOT
listen = "127.0.0.1:$OP"
data_dir = "$WORK/origin"
internal_secret = "$SECRET"
[[auth.users]]
account = "bench"
user = "bench"
key = "bench-key"
EOT
OUTPOST_LOG=error "$BIN" origin --config "$WORK/origin.toml" > "$WORK/origin.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OP/healthz"
TOK=$(curl -s -D - -o /dev/null -H 'X-Auth-User: bench:bench' -H 'X-Auth-Key: bench-key' \
  "http://127.0.0.1:$OP/auth/v1.0" | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' | tr -d '\r')
STORE="http://127.0.0.1:$OP/v1/AUTH_bench"
curl -sf -X PUT -H "X-Auth-Token: $TOK" -H 'X-Container-Read: .r:*' "$STORE/public" -o /dev/null
head -c 1024 /dev/urandom > "$WORK/blob"
curl -sf -X PUT -H "X-Auth-Token: $TOK" -H 'Cache-Control: public, max-age=3600' \
  --data-binary @"$WORK/blob" "$STORE/public/1k.bin" -o /dev/null
TOKEN_SECRET="profile-token-secret-0123456789"
curl -sf -X PUT -H "X-Auth-Token: $TOK" "$STORE/private" -o /dev/null
curl -sf -X POST -H "X-Auth-Token: $TOK" -H "X-Account-Outpost-Key-k1: $TOKEN_SECRET" "$STORE" -o /dev/null
curl -sf -X PUT -H "X-Auth-Token: $TOK" --data-binary @"$WORK/blob" "$STORE/private/1k.bin" -o /dev/null
printf '%s' "$TOKEN_SECRET" > "$WORK/k1.secret"
cat > "$WORK/edge.toml" <<EOT
listen = "127.0.0.1:$EP"
base_domain = "localhost"
[origin]
address = "127.0.0.1:$OP"
internal_secret = "$SECRET"
[cache]
memory = "256 MiB"
disk_dir = "$WORK/edge-cache"
$EXTRA
EOT
OUTPOST_LOG=error "$BIN" edge --config "$WORK/edge.toml" > "$WORK/edge.out" 2>&1 &
EDGE=$!
PIDS+=("$EDGE")
wait_http "http://127.0.0.1:$EP/healthz"
URL="http://127.0.0.1:$EP/v1/AUTH_bench/public/1k.bin"
if [[ -n "${SIGNED:-}" ]]; then
  URL="http://127.0.0.1:$EP/v1/AUTH_bench$("$BIN" sign url --account bench --key-id k1 \
    --secret-file "$WORK/k1.secret" --path /private/1k.bin --expires-in 2h)"
fi
for _ in 1 2 3; do curl -sf -o /dev/null "$URL"; done
LUA=()
if [[ -n "${MISS:-}" ]]; then
  cat > "$WORK/miss.lua" <<'EOT'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/AUTH_bench/public/miss-" .. tostring(math.random(1, 1e9)) .. "-" .. n)
end
EOT
  LUA=(-s "$WORK/miss.lua")
fi
wrk -t1 -c32 -d$((SECS + 2))s "${LUA[@]}" "$URL" > "$WORK/wrk.out" &
WRK=$!
PIDS+=("$WRK")
sleep 1
perf record -F "${PERF_FREQ:-1999}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$EDGE" -o "$WORK/perf.data" -- sleep "$SECS" 2> /dev/null
wait "$WRK" || true
grep -E "Requests/sec|Latency" "$WORK/wrk.out"
[[ -n "${PERF_OUT:-}" ]] && cp "$WORK/perf.data" "$PERF_OUT"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9]+\.[0-9]+%' | head -40
