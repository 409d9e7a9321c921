#!/usr/bin/env bash
# Starts a one-replica Swift all-in-one (proxy with tempauth, account, container and object
# servers, memcached) on 127.0.0.1 for recording the reference answers of
# tests/fixtures/swift/. Needs `pip install swift` (2.38) and memcached.
#
#   tests/swift_reference/run.sh DIR     # prints PROXY_URL=http://127.0.0.1:<port>; PIDs in DIR/pids
#   kill $(cat DIR/pids)                 # stop it
#
# DIR must be on a file system with user xattrs (ext4, XFS, tmpfs on Linux >= 6.6).
set -euo pipefail
dir=$(realpath -m "${1:?usage: run.sh DIR}")
mkdir -p "$dir"/{etc,srv/sdb1,run,log}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy=$(free_port); acct=$(free_port); cont=$(free_port); obj=$(free_port); mc=$(free_port)
etc=$dir/etc
cat > "$etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = outpost-reference
swift_hash_path_prefix = outpost-reference
[storage-policy:0]
name = gold
default = yes
[swift-constraints]
CONF
common="[DEFAULT]
devices = $dir/srv
mount_check = false
bind_ip = 127.0.0.1
workers = 0
swift_dir = $etc
log_name = swift
log_facility = LOG_LOCAL0
log_address = /dev/null
"
printf '%sbind_port = %s\n[pipeline:main]\npipeline = account-server\n[app:account-server]\nuse = egg:swift#account\n[account-replicator]\n[account-auditor]\n[account-reaper]\n' "$common" "$acct" > "$etc/account-server.conf"
printf '%sbind_port = %s\n[pipeline:main]\npipeline = container-server\n[app:container-server]\nuse = egg:swift#container\n[container-replicator]\n[container-updater]\n[container-auditor]\n[container-sync]\n' "$common" "$cont" > "$etc/container-server.conf"
printf '%sbind_port = %s\n[pipeline:main]\npipeline = object-server\n[app:object-server]\nuse = egg:swift#object\n[object-replicator]\n[object-updater]\n[object-auditor]\n' "$common" "$obj" > "$etc/object-server.conf"
cat > "$etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy
workers = 0
swift_dir = $etc
log_address = /dev/null
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl ratelimit crossdomain tempauth staticweb copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test_tester3 = testing3
user_test2_tester2 = testing2 .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:ratelimit]
use = egg:swift#ratelimit
[filter:crossdomain]
use = egg:swift#crossdomain
[filter:staticweb]
use = egg:swift#staticweb
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
CONF
cd "$etc"
for kind in account:$acct container:$cont object:$obj; do
  name=${kind%%:*}; port=${kind##*:}
  swift-ring-builder "$name.builder" create 10 1 1 >/dev/null
  swift-ring-builder "$name.builder" add r1z1-127.0.0.1:"$port"/sdb1 1 >/dev/null
  swift-ring-builder "$name.builder" rebalance >/dev/null || true
done
: > "$dir/pids"
memcached -u root -l 127.0.0.1 -p "$mc" -U 0 >"$dir/log/memcached.log" 2>&1 & echo $! >> "$dir/pids"
for s in account container object proxy; do
  "swift-$s-server" "$etc/$s-server.conf" >"$dir/log/$s.log" 2>&1 & echo $! >> "$dir/pids"
done
for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$proxy/healthcheck" >/dev/null; then
    echo "PROXY_URL=http://127.0.0.1:$proxy"
    exit 0
  fi
  sleep 0.1
done
echo "swift did not start; see $dir/log" >&2
exit 1
