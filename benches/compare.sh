#!/usr/bin/env bash
# Side-by-side load bench: the Outpost edge vs nginx (proxy_cache) vs Varnish (vs pingap, if
# installed), all on 127.0.0.1 in front of the same Outpost origin, under the same wrk load,
# interleaved (A, B, C, A, B, C...) so machine noise hits all alike. Prints req/s, MB/s, p50/p99
# latency and the ratio to nginx.
#
#   benches/compare.sh [--quick]       (quick: short runs, small objects only)
#
# Installs nothing. Needs: nginx (with secure_link), varnishd, wrk, curl, python3
# (Debian: apt-get install nginx-light varnish wrk curl python3). Uses target/release/outpost
# (built with `cargo build --release --bin outpost` if missing) or $OUTPOST_BIN.
# Optional: pingap 0.13.1 (pingora-based proxy with a cache plugin) from PATH or $PINGAP_BIN
# (cargo install pingap --version 0.13.1 --locked; needs protobuf-compiler); skipped if absent.
# Everything it starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1

missing=()
for t in nginx varnishd wrk curl python3; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
  echo "compare.sh needs: ${missing[*]}" >&2
  echo "On Debian: apt-get install nginx-light varnish wrk curl python3" >&2
  exit 2
fi

BIN="${OUTPOST_BIN:-target/release/outpost}"
if [[ ! -x "$BIN" ]]; then
  echo "building $BIN (release)..." >&2
  cargo build --release --bin outpost >&2
fi

WORK=$(mktemp -d /tmp/outpost-compare.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "not answering: $1" >&2
  cat "$WORK"/*.out "$WORK"/nginx/error.log 2>/dev/null | tail -20 >&2
  exit 1
}

SECRET="compare-internal-secret-0123456789"
TOKEN_SECRET="compare-token-secret-0123456789"
NGINX_LINK_SECRET="compare-nginx-secure-link"
ORIGIN_PORT=$(port); EDGE_PORT=$(port); NGINX_PORT=$(port); VARNISH_PORT=$(port); PINGAP_PORT=$(port)

# --- origin -----------------------------------------------------------------------------------
cat > "$WORK/origin.toml" <<EOF
listen = "127.0.0.1:$ORIGIN_PORT"
data_dir = "$WORK/origin"
internal_secret = "$SECRET"
[[auth.users]]
account = "bench"
user = "bench"
key = "bench-key"
EOF
OUTPOST_LOG=error "$BIN" origin --config "$WORK/origin.toml" > "$WORK/origin.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ORIGIN_PORT/healthz"
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
AUTH=$(curl -s -D - -o /dev/null -H 'X-Auth-User: bench:bench' -H 'X-Auth-Key: bench-key' "$ORIGIN/auth/v1.0")
TOK=$(echo "$AUTH" | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' | tr -d '\r')
STORE="$ORIGIN/v1/AUTH_bench"
curl -sf -X PUT -H "X-Auth-Token: $TOK" -H 'X-Container-Read: .r:*' "$STORE/public" -o /dev/null
curl -sf -X PUT -H "X-Auth-Token: $TOK" "$STORE/private" -o /dev/null
curl -sf -X POST -H "X-Auth-Token: $TOK" -H "X-Account-Outpost-Key-k1: $TOKEN_SECRET" "$STORE" -o /dev/null
mk() { # container name size
  head -c "$3" /dev/urandom > "$WORK/blob"
  curl -sf -X PUT -H "X-Auth-Token: $TOK" -H 'Content-Type: application/octet-stream' \
    -H 'Cache-Control: public, max-age=3600' --data-binary @"$WORK/blob" "$STORE/$1/$2" -o /dev/null
}
mk public 1k.bin 1024
mk public 64k.bin 65536
mk public 1m.bin 1048576
mk private 1k.bin 1024
BIG_MB=$([[ $QUICK == 1 ]] && echo 64 || echo 1024)
dd if=/dev/urandom of="$WORK/big" bs=1M count="$BIG_MB" status=none
curl -sf -H "X-Auth-Token: $TOK" -T "$WORK/big" "$STORE/public/big.bin" -o /dev/null  # -T streams; --data-binary would load 1 GiB into memory
rm -f "$WORK/big"
for i in $(seq 0 99); do mk public "mix-$i.bin" 1024; done

# --- outpost edge -----------------------------------------------------------------------------
cat > "$WORK/edge.toml" <<EOF
listen = "127.0.0.1:$EDGE_PORT"
base_domain = "localhost"
[origin]
address = "127.0.0.1:$ORIGIN_PORT"
internal_secret = "$SECRET"
[cache]
memory = "512 MiB"
disk_dir = "$WORK/edge-cache"
disk = "4 GiB"
EOF
OUTPOST_LOG=error "$BIN" edge --config "$WORK/edge.toml" > "$WORK/edge.out" 2>&1 &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
wait_http "http://127.0.0.1:$EDGE_PORT/healthz"
printf '%s' "$TOKEN_SECRET" > "$WORK/k1.secret"
# `sign url` prints the account-relative path; on the base domain the edge takes /v1 paths.
OP_URL="/v1/AUTH_bench$("$BIN" sign url --account bench --key-id k1 --secret-file "$WORK/k1.secret" \
  --path /private/1k.bin --expires-in 2h)"

# --- nginx ------------------------------------------------------------------------------------
mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
# As root, nginx workers would drop to "nobody" and lose access to the private temp dir.
NGINX_USER=""; if [[ $(id -u) == 0 ]]; then NGINX_USER="user root;"; fi
cat > "$WORK/nginx.conf" <<EOF
$NGINX_USER
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log error;
daemon off;
events { worker_connections 4096; }
http {
  # Every request logged, as the edge logs (and bills) every request; buffered as the edge's
  # log writer is (64 KiB, flushed every second). nginx's default is an unbuffered log.
  access_log $WORK/nginx/access.log combined buffer=64k flush=1s;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=c:64m max_size=4g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /v1/AUTH_bench/public/big.bin {
      slice 1m;
      proxy_cache c;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://origin;
    }
    location /v1/AUTH_bench/private/ {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 "\$secure_link_expires\$uri $NGINX_LINK_SECRET";
      if (\$secure_link = "") { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_cache c;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 1h;
      proxy_set_header X-Outpost-Internal $SECRET;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://origin;
    }
    location / {
      proxy_cache c;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 1h;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://origin;
    }
  }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/v1/AUTH_bench/public/1k.bin"
EXP=$(( $(date +%s) + 7200 ))
MD5=$(printf '%s' "$EXP/v1/AUTH_bench/private/1k.bin $NGINX_LINK_SECRET" | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=')
NGINX_SIGNED="/v1/AUTH_bench/private/1k.bin?md5=$MD5&expires=$EXP"

# --- varnish ----------------------------------------------------------------------------------
cat > "$WORK/default.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
sub vcl_backend_response { set beresp.ttl = 1h; }
EOF
varnishd -F -j none -a "127.0.0.1:$VARNISH_PORT" -f "$WORK/default.vcl" -s malloc,512m \
  -n "$WORK/varnish" -p thread_pools=2 > "$WORK/varnish.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$VARNISH_PORT/v1/AUTH_bench/public/1k.bin"

# --- pingap (optional) ------------------------------------------------------------------------
# One server, one location "/", one upstream (the origin), the cache plugin on its memory storage
# (512 MiB, like the others). pingap honours the origin's Cache-Control but, without one, caches
# for only 1 s (a hard-coded default), so a response_headers plugin in "upstream" mode adds
# `Cache-Control: max-age=3600` where the origin sent none (runs before the cache decision): the
# same 1 h default TTL nginx (proxy_cache_valid) and Varnish (beresp.ttl) get. Host is set to the
# origin's address; paths go upstream unchanged. Short grace periods: SIGTERM otherwise waits 5 min.
PINGAP_BIN="${PINGAP_BIN:-$(command -v pingap || true)}"
PINGAP=""; PINGAP_PID=""
if [[ -n "$PINGAP_BIN" && -x "$PINGAP_BIN" ]]; then
  cat > "$WORK/pingap.toml" <<EOF
[basic]
pid_file = "$WORK/pingap.pid"
upgrade_sock = "$WORK/pingap-upgrade.sock"
log_level = "error"
grace_period = "1s"
graceful_shutdown_timeout = "1s"

[upstreams.origin]
addrs = ["127.0.0.1:$ORIGIN_PORT"]

[locations.all]
path = "/"
upstream = "origin"
proxy_set_headers = ["Host:127.0.0.1:$ORIGIN_PORT"]
plugins = ["defaultTtl", "memCache"]

[plugins.defaultTtl]
category = "response_headers"
mode = "upstream"
set_headers_not_exists = ["Cache-Control:max-age=3600"]

[plugins.memCache]
category = "cache"
directory = "memory://?max_size=512MiB"
max_file_size = "16MiB"

[servers.bench]
addr = "127.0.0.1:$PINGAP_PORT"
locations = ["all"]
threads = 2
EOF
  "$PINGAP_BIN" -c "$WORK/pingap.toml" > "$WORK/pingap.out" 2>&1 &
  PINGAP_PID=$!
  PIDS+=("$PINGAP_PID")
  PINGAP="http://127.0.0.1:$PINGAP_PORT"
  wait_http "$PINGAP/v1/AUTH_bench/public/1k.bin"
  # Its second request for a URL must be a cache hit (pingap reports the pingora cache phase).
  u="$PINGAP/v1/AUTH_bench/public/64k.bin"
  curl -s -o /dev/null "$u"
  st=$(curl -s -D - -o /dev/null "$u" | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}' | tr -d '\r')
  [[ "$st" == hit ]] || { echo "pingap: second GET of $u is not a cache hit (x-cache-status: ${st:-none})" >&2; exit 1; }
else
  echo "pingap: not installed (cargo install pingap --version 0.13.1 --locked; needs protobuf-compiler) — skipped"
fi

# --- workloads --------------------------------------------------------------------------------
EDGE="http://127.0.0.1:$EDGE_PORT"; NGINX="http://127.0.0.1:$NGINX_PORT"; VARNISH="http://127.0.0.1:$VARNISH_PORT"
P=/v1/AUTH_bench/public
cat > "$WORK/range.lua" <<'EOF'
local size = tonumber(os.getenv("BIG_BYTES"))
request = function()
  local start = math.random(0, math.floor(size / 1048576) - 1) * 1048576
  return wrk.format("GET", nil, { ["Range"] = "bytes=" .. start .. "-" .. (start + 1048575) })
end
EOF
cat > "$WORK/mix.lua" <<'EOF'
local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("GET", "/v1/AUTH_bench/public/mix-miss-" .. n .. "-" .. math.random(1e9) .. ".bin")
  end
  return wrk.format("GET", "/v1/AUTH_bench/public/mix-" .. (n % 100) .. ".bin")
end
EOF

DUR=$([[ $QUICK == 1 ]] && echo 3 || echo 12)  # full: 17 runs (21 with pingap) x 3 rounds x 12 s, ~15 minutes with setup
ROUNDS=$([[ $QUICK == 1 ]] && echo 1 || echo 3)
CONNS=32

# name | outpost url | nginx url | varnish url | pingap url | lua script (optional)
PG=${PINGAP:+$PINGAP$P}  # empty without pingap
WORKLOADS=(
  "1 KiB hit|$EDGE$P/1k.bin|$NGINX$P/1k.bin|$VARNISH$P/1k.bin|${PG:+$PG/1k.bin}|"
  "64 KiB hit|$EDGE$P/64k.bin|$NGINX$P/64k.bin|$VARNISH$P/64k.bin|${PG:+$PG/64k.bin}|"
  "1 MiB hit|$EDGE$P/1m.bin|$NGINX$P/1m.bin|$VARNISH$P/1m.bin|${PG:+$PG/1m.bin}|"
  "1 KiB private, signed|$EDGE$OP_URL|$NGINX$NGINX_SIGNED|||"
  "1 MiB ranges of ${BIG_MB} MiB|$EDGE$P/big.bin|$NGINX$P/big.bin|$VARNISH$P/big.bin||range.lua"
  "90/10 hit/miss|$EDGE|$NGINX|$VARNISH|$PINGAP|mix.lua"
)
# Why a peer sits a workload out (printed as n/a in the table).
declare -A NA
if [[ -n "$PINGAP" ]]; then
  NA["1 KiB private, signed|pingap"]="no signed-URL check (combined_auth signs secret:timestamp, not path+expiry)"
  NA["1 MiB ranges of ${BIG_MB} MiB|pingap"]="no slice fill: a Range miss passes to the origin uncached; ranges hit only once cached whole"
fi

# Warm every cache (and check each answers 200/206).
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name a b c d script <<<"$w"
  for u in "$a" "$b" "$c" "$d"; do
    [[ -z "$u" || -n "$script" ]] && continue
    curl -s -o /dev/null "$u"; code=$(curl -s -o /dev/null -w '%{http_code}' "$u")
    [[ "$code" == 200 ]] || { echo "warm-up of $u answered $code" >&2; exit 1; }
  done
done

declare -A RPS MBS P50 P99
to_ms() { # wrk latency like 1.23ms / 850.00us / 1.02s
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); f={'us':0.001,'ms':1,'s':1000}[m.group(2)]; print(round(float(m.group(1))*f,3))" "$1"
}
to_mb() { # 12.34MB / 456.78KB / 1.2GB per second
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)([KMG]?B)',v); f={'B':1e-6,'KB':1e-3,'MB':1,'GB':1e3}[m.group(2)]; print(round(float(m.group(1))*f,2))" "$1"
}
run() { # key url script
  local key=$1 url=$2 script=$3 args=()
  [[ -n "$script" ]] && args=(-s "$WORK/$script")
  local out
  out=$(BIG_BYTES=$((BIG_MB * 1048576)) wrk -t2 -c$CONNS -d"${DUR}s" --latency "${args[@]}" "$url")
  local rps mb p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  mb=$(to_mb "$(echo "$out" | awk '/Transfer\/sec/{print $2}')")
  p50=$(to_ms "$(echo "$out" | awk '$1=="50%"{print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1=="99%"{print $2}')")
  RPS[$key]="${RPS[$key]:-} $rps"; MBS[$key]="${MBS[$key]:-} $mb"
  P50[$key]="${P50[$key]:-} $p50"; P99[$key]="${P99[$key]:-} $p99"
}
median() { # "v1 v2 ..."
  local v; read -ra v <<<"$1"
  python3 -c "import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),2) if v else 0)" "${v[@]}"
}

for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name a b c d script <<<"$w"
  for _ in $(seq 1 "$ROUNDS"); do
    run "$name|outpost" "$a" "$script"
    run "$name|nginx" "$b" "$script"
    [[ -n "$c" ]] && run "$name|varnish" "$c" "$script"
    [[ -n "$d" ]] && run "$name|pingap" "$d" "$script"
  done
done

echo
echo "Outpost edge vs nginx vs Varnish${PINGAP:+ vs pingap} — $(nproc) cores, $(date -u +%F), wrk -t2 -c$CONNS -d${DUR}s, median of $ROUNDS interleaved rounds"
printf '%-26s %-8s %12s %10s %9s %9s %9s\n' workload server 'req/s' 'MB/s' 'p50 ms' 'p99 ms' 'vs nginx'
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name a b c d script <<<"$w"
  base=$(median "${RPS[$name|nginx]}")
  for s in outpost nginx varnish pingap; do
    if [[ -n "${NA[$name|$s]:-}" ]]; then
      printf '%-26s %-8s %12s   (%s)\n' "$name" "$s" n/a "${NA[$name|$s]}"
      continue
    fi
    [[ -z "${RPS[$name|$s]:-}" ]] && continue
    rps=$(median "${RPS[$name|$s]}")
    ratio=$(python3 -c "print(round($rps/$base,2) if $base else 0)")
    printf '%-26s %-8s %12s %10s %9s %9s %8sx\n' "$name" "$s" "$rps" "$(median "${MBS[$name|$s]}")" \
      "$(median "${P50[$name|$s]}")" "$(median "${P99[$name|$s]}")" "$ratio"
  done
done
RSS=$(awk '/VmHWM/{print int($2/1024)}' /proc/$EDGE_PID/status)
echo "edge peak RSS: ${RSS} MiB (memory tier 512 MiB)"
if [[ -n "$PINGAP_PID" ]]; then
  echo "pingap peak RSS: $(awk '/VmHWM/{print int($2/1024)}' "/proc/$PINGAP_PID/status") MiB (memory cache 512 MiB; its TinyUFO is sized for max_size/32 entries at start)"
fi
