#!/usr/bin/env bash
# perf profile of the origin answering 1 KiB GETs: starts an origin (with `[s3]`) on
# 127.0.0.1, stores one object, runs wrk against it and records the origin with
# `perf record` meanwhile, then prints the top of `perf report` and the origin's CPU time per
# request (user+system, from /proc, over the wrk run).
#
#   benches/profile_origin.sh [seconds]
#   (API=s3 profiles a presigned S3 GET of the same object instead of a Swift GET with an
#   auth token; NOPERF=1 measures CPU per request without perf; PERF_OUT=file keeps perf.data)
#
# Needs perf (Debian: linux-perf), wrk, curl, python3, the aws CLI for API=s3, and
# target/release/outpost (or $OUTPOST_BIN). Everything it starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
BIN="${OUTPOST_BIN:-target/release/outpost}"
# shellcheck source=benches/lib.sh
source benches/lib.sh profile_origin.sh wrk curl python3
OP=$(port); SP=$(port)
AK="AKIAPROFILEORIGIN001"; SK="profile-s3-secret-0123456789abcdef"
cat > "$WORK/origin.toml" <<EOT
listen = "127.0.0.1:$OP"
data_dir = "$WORK/origin"
internal_secret = "profile-internal-secret-0123456789"
[[auth.users]]
account = "bench"
user = "bench"
key = "bench-key"
[s3]
listen = "127.0.0.1:$SP"
[[s3.keys]]
access_key = "$AK"
secret_key = "$SK"
account = "bench"
user = "bench"
EOT
OUTPOST_LOG=error "$BIN" origin --config "$WORK/origin.toml" > "$WORK/origin.out" 2>&1 &
ORIGIN=$!
PIDS+=("$ORIGIN")
wait_http "http://127.0.0.1:$OP/healthz"
TOK=$(curl -s -D - -o /dev/null -H 'X-Auth-User: bench:bench' -H 'X-Auth-Key: bench-key' \
  "http://127.0.0.1:$OP/auth/v1.0" | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' | tr -d '\r')
STORE="http://127.0.0.1:$OP/v1/AUTH_bench"
curl -sf -X PUT -H "X-Auth-Token: $TOK" "$STORE/bench" -o /dev/null
head -c 1024 /dev/urandom > "$WORK/blob"
curl -sf -X PUT -H "X-Auth-Token: $TOK" --data-binary @"$WORK/blob" "$STORE/bench/1k.bin" -o /dev/null
HDR=(-H "X-Auth-Token: $TOK")
URL="$STORE/bench/1k.bin"
if [[ "${API:-swift}" == s3 ]]; then
  URL=$(AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "http://127.0.0.1:$SP" s3 presign s3://bench/1k.bin --expires-in 7200)
  HDR=()
fi
curl -sf -o /dev/null "${HDR[@]}" "$URL"
ticks() { awk '{print $14 + $15}' "/proc/$ORIGIN/stat"; }
wrk -t1 -c16 -d$((SECS + 2))s "${HDR[@]}" "$URL" > "$WORK/wrk.out" &
WRK=$!
PIDS+=("$WRK")
sleep 1
T0=$(ticks)
if [[ -n "${NOPERF:-}" ]]; then
  sleep "$SECS"
else
  perf record -F "${PERF_FREQ:-1999}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$ORIGIN" \
    -o "$WORK/perf.data" -- sleep "$SECS" 2> /dev/null
fi
T1=$(ticks)
wait "$WRK" || true
grep -E "Requests/sec|Latency|Non-2xx" "$WORK/wrk.out"
RPS=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.out")
HZ=$(getconf CLK_TCK)
python3 -c "print(f'origin CPU per request: {($T1-$T0)/$HZ/($SECS*$RPS)*1e6:.1f} us')"
if [[ -z "${NOPERF:-}" ]]; then
  [[ -n "${PERF_OUT:-}" ]] && cp "$WORK/perf.data" "$PERF_OUT"
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]+\.[0-9]+%' | head -40
fi
