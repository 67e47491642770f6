#!/usr/bin/env bash
# Connection capacity of one box: GATEWAYS gateway processes share one port
# (gateway.reuse_port, SO_REUSEPORT; each under the 20,000 open files a
# process may hold), and `switchboard loadtest idle` opens CONNS
# authenticated, idle, keep-alive WebSocket connections to them from worker
# processes bound to many loopback source addresses, holds them HOLD, and
# reports RSS per connection (summed over the gateways), kernel memory and
# CPU. Everything runs on this box and stops by itself.
#
# Usage, from the repository root:
#   scripts/capacity.sh [CONNS (250000)] [GATEWAYS (16)] [HOLD (60s)]
# Output: the report on stdout; JSON and HTML in $OUT (default /tmp/switchboard-capacity).
set -eu
CONNS=${1:-250000}
GATEWAYS=${2:-16}
HOLD=${3:-60s}
OUT=${OUT:-/tmp/switchboard-capacity}
PORT=${PORT:-18800}
BIN=$OUT/switchboard
rm -rf "$OUT"; mkdir -p "$OUT"
go build -o "$BIN" ./cmd/switchboard

# Every gateway has its own data directory (the embedded store is one
# process's) and the same token secret.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$BIN" token --user warmup --data-dir "$OUT/gw0" >/dev/null # creates gw0/secret.key
for i in $(seq 0 $((GATEWAYS-1))); do
  SWITCHBOARD_GATEWAY_REUSE_PORT=true SWITCHBOARD_ASSETS_LISTEN=off \
  SWITCHBOARD_SECRET_FILE="$OUT/gw0/secret.key" \
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$OUT/gw$i" > "$OUT/gw$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
sleep 1 # every gateway has bound the port (each logs "switchboard serving")
for i in $(seq 0 $((GATEWAYS-1))); do
  grep -q "switchboard serving" "$OUT/gw$i.log" || { echo "gateway $i did not start:" >&2; cat "$OUT/gw$i.log" >&2; exit 1; }
done
list=$(IFS=,; echo "${pids[*]}")
echo "gateways: $GATEWAYS on 127.0.0.1:$PORT (pids $list)"
echo "idle memory before: $(ps -o rss= -p "$list" | awk '{s+=$1} END {print s/1024 " MiB"}')"

"$BIN" loadtest idle --url ws://127.0.0.1:$PORT/v1/ws --secret-file "$OUT/gw0/secret.key" \
  --conns "$CONNS" --hold "$HOLD" --concurrency 256 --source-ips 127.0.0.2-127.0.0.120 \
  --server-pid "$list" --json "$OUT/capacity.json" --html "$OUT/capacity.html"
echo "conntrack entries at the end: $(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a)"
grep -h "level=ERROR\|level=WARN" "$OUT"/gw*.log | sort | uniq -c | head -20 || true
