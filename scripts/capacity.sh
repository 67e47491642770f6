#!/usr/bin/env bash
# Connection capacity of one box: GATEWAYS gateway processes share one port
# (gateway.reuse_port, SO_REUSEPORT; each under the 20,000 open files a
# process may hold), and `switchboard loadtest idle` opens CONNS
# authenticated, idle, keep-alive WebSocket connections to them from worker
# processes bound to many loopback source addresses, holds them HOLD, and
# reports RSS per connection (summed over the gateways), kernel memory and
# CPU. Everything runs on this box and stops by itself.
#
# With CLUSTER=1 the gateways are those of the distributed deployment
# (docs/deploy.md): Redis, Kafka and Cassandra on loopback, the schema, one
# worker, and the gateways with --role gateway, every connection's route
# registered in the one Redis. Once the idle connections are up, a chat
# run (CHAT flags, default 500 pairs at 200 msg/s for 30 s) sends 1:1
# messages alongside them; with G gateways behind one port a pair's two
# users are on different gateway processes (G-1)/G of the time. It also
# reports Redis's used_memory before and with the connections up, per
# routed connection, and the engines' RSS. HOLD must outlast the chat.
#
# Usage, from the repository root:
#   scripts/capacity.sh [CONNS (250000)] [GATEWAYS (16)] [HOLD (60s)]
#   CLUSTER=1 scripts/capacity.sh 250000 16 90s
# Environment: OUT (default /tmp/switchboard-capacity), PORT (18800),
# CONCURRENCY (connections being opened at once per generator process,
# 256; each first sync reads Cassandra with CLUSTER=1, so fewer keep them
# within the 10 s dial timeout), CLUSTER, CHAT.
# Output: the report on stdout; JSON and HTML in $OUT, and with CLUSTER=1
# the chat's, chat.json and chat.html.
set -eu
CONNS=${1:-250000}
GATEWAYS=${2:-16}
HOLD=${3:-60s}
OUT=${OUT:-/tmp/switchboard-capacity}
PORT=${PORT:-18800}
CLUSTER=${CLUSTER:-}
CHAT=${CHAT:---pairs 500 --rate 200 --duration 30s}
CONCURRENCY=${CONCURRENCY:-256} # connections being opened at once per generator process
BIN=$OUT/switchboard
rm -rf "$OUT"; mkdir -p "$OUT"
go build -o "$BIN" ./cmd/switchboard

pids=()
engines=""
# Stopping: the switchboard processes first, while the engines still
# answer, each killed if it has not exited within 20 s; then the engines.
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 200); do
    alive=0; for p in "${pids[@]}"; do ! kill -0 "$p" 2>/dev/null || alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do ! kill -0 "$p" 2>/dev/null || { echo "pid $p did not stop in 20 s: killed" >&2; kill -9 "$p" 2>/dev/null || true; }; done
  [ -z "$engines" ] || kill "$engines" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Every gateway has its own data directory (the embedded store is one
# process's) and the same token secret.
"$BIN" token --user warmup --data-dir "$OUT/gw0" >/dev/null # creates gw0/secret.key
serve=("$BIN" serve)
if [ -n "$CLUSTER" ]; then
  bash scripts/engines-deps.sh >/dev/null
  go build -o "$OUT/engines" ./internal/testengines/engines
  "$OUT/engines" -env "$OUT/engines.env" > "$OUT/engines.log" 2>&1 &
  engines=$!
  for _ in $(seq 900); do [ -s "$OUT/engines.env" ] && break; kill -0 "$engines" 2>/dev/null || break; sleep 0.2; done
  [ -s "$OUT/engines.env" ] || { echo "engines did not start:" >&2; tail -n 30 "$OUT/engines.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$OUT/engines.env"
  cat > "$OUT/switchboard.yaml" <<YAML
backends: {store: cassandra, bus: kafka, router: redis}
cassandra: {hosts: ["$CASSANDRA"], keyspace: switchboard, replication: "1", batch_entries: true}
kafka: {brokers: ["$KAFKA"], replication_factor: 1, min_insync_replicas: 1}
redis: {addrs: ["$REDIS"]}
gateway: {message_rate: 100000, message_burst: 100000}
YAML
  "$BIN" migrate --hosts "$CASSANDRA" --keyspace switchboard --replication 1 > "$OUT/migrate.log"
  serve=("$BIN" serve --config "$OUT/switchboard.yaml" --role gateway)
  SWITCHBOARD_SECRET_FILE="$OUT/gw0/secret.key" "$BIN" serve --config "$OUT/switchboard.yaml" --role worker \
    --listen 127.0.0.1:$((PORT+1)) --data-dir "$OUT/worker" > "$OUT/worker.log" 2>&1 &
  pids+=($!)
  redis_memory() { redis-cli -u "redis://$REDIS" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }
  redis_keys() { redis-cli -u "redis://$REDIS" dbsize; }
  redis_routes() { redis-cli -u "redis://$REDIS" --scan --pattern 'sb:rt:*' | wc -l; } # users with a route
fi
for i in $(seq 0 $((GATEWAYS-1))); do
  SWITCHBOARD_GATEWAY_REUSE_PORT=true SWITCHBOARD_ASSETS_LISTEN=off \
  SWITCHBOARD_SECRET_FILE="$OUT/gw0/secret.key" \
    "${serve[@]}" --listen 127.0.0.1:$PORT --data-dir "$OUT/gw$i" > "$OUT/gw$i.log" 2>&1 &
  pids+=($!)
done
gw_pids=("${pids[@]: -$GATEWAYS}")
for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
for i in $(seq 0 $((GATEWAYS-1))); do # every gateway has bound the port
  for _ in $(seq 600); do grep -q "serving" "$OUT/gw$i.log" && break; sleep 0.1; done
  grep -q "serving" "$OUT/gw$i.log" || { echo "gateway $i did not start:" >&2; cat "$OUT/gw$i.log" >&2; exit 1; }
done
list=$(IFS=,; echo "${gw_pids[*]}")
echo "gateways: $GATEWAYS on 127.0.0.1:$PORT (pids $list)"
echo "idle memory before: $(ps -o rss= -p "$list" | awk '{s+=$1} END {print s/1024 " MiB"}')"
if [ -n "$CLUSTER" ]; then
  mem0=$(redis_memory) keys0=$(redis_keys) routes0=$(redis_routes)
  echo "redis before: used_memory $mem0 bytes, $keys0 keys, $routes0 users routed"
fi

"$BIN" loadtest idle --url ws://127.0.0.1:$PORT/v1/ws --secret-file "$OUT/gw0/secret.key" \
  --conns "$CONNS" --hold "$HOLD" --concurrency "$CONCURRENCY" --source-ips 127.0.0.2-127.0.0.120 \
  --server-pid "$list" --json "$OUT/capacity.json" --html "$OUT/capacity.html" > >(tee "$OUT/idle.txt") 2>&1 &
idle=$!
pids+=("$idle")
if [ -n "$CLUSTER" ]; then
  # Once every connection is up (the idle run says "holding") and so
  # routed in Redis (a hash per user, and its epoch counter), measure
  # Redis and chat.
  for _ in $(seq 36000); do
    grep -q "idle: holding" "$OUT/idle.txt" && break
    kill -0 "$idle" 2>/dev/null || break; sleep 0.1
  done
  mem1=$(redis_memory) keys1=$(redis_keys) routes1=$(redis_routes)
  # The worker's request path over the chat: (count, seconds) of the
  # commands' wait in Kafka, their time in the sequencer, its commits.
  stages() {
    curl -sf "http://127.0.0.1:$((PORT+1))/metrics" | awk '
      /^switchboard_cluster_command_wait_seconds_(count|sum) /{v[$1]=$2}
      /^switchboard_cluster_command_seconds_(count|sum) /{v[$1]=$2}
      /^switchboard_store_commit_seconds_(count|sum) /{v[$1]=$2}
      END {print v["switchboard_cluster_command_wait_seconds_count"]+0, v["switchboard_cluster_command_wait_seconds_sum"]+0,
        v["switchboard_cluster_command_seconds_count"]+0, v["switchboard_cluster_command_seconds_sum"]+0,
        v["switchboard_store_commit_seconds_count"]+0, v["switchboard_store_commit_seconds_sum"]+0}'
  }
  st0=$(stages)
  # shellcheck disable=SC2086
  "$BIN" loadtest chat --url ws://127.0.0.1:$PORT/v1/ws --secret-file "$OUT/gw0/secret.key" --user-prefix ltc \
    --server-pid "$list" --json "$OUT/chat.json" --html "$OUT/chat.html" --quiet $CHAT > "$OUT/chat.txt" 2>&1 || true
  mem2=$(redis_memory) keys2=$(redis_keys)
  st1=$(stages)
fi
wait "$idle" || true
if [ -n "$CLUSTER" ]; then
  echo "== chat alongside the idle connections ($CHAT):"
  cat "$OUT/chat.txt"
  echo "$st0 $st1" | awk '{ w = $7 - $1; c = $9 - $3; k = $11 - $5
    if (w > 0 && c > 0 && k > 0) printf "== the worker during the chat: commands waited in Kafka %.1f ms on average, took %.1f ms in the sequencer; %d store commits, %.1f ms each\n", 1000*($8-$2)/w, 1000*($10-$4)/c, k, 1000*($12-$6)/k }'
  echo "== redis: used_memory $mem0 bytes with $keys0 keys before; $mem1 with $keys1 keys ($routes1 users routed) once the connections were up; $mem2 with $keys2 after the chat"
  awk -v a="$mem0" -v b="$mem1" -v n=$((routes1 - routes0)) -v k=$((keys1 - keys0)) \
    'BEGIN { if (n > 0) printf "   %.0f bytes of Redis memory per routed connection (%d users routed, %d new keys)\n", (b-a)/n, n, k }'
  for p in $(pgrep -P "$engines"); do
    printf "   %-40.40s RSS %7.1f MiB\n" "$(tr '\0' ' ' < "/proc/$p/cmdline" | grep -o 'redis-server\|kafka\.Kafka\|CassandraDaemon\|java' | head -1)" \
      "$(awk '/VmRSS/{print $2/1024}' "/proc/$p/status")"
  done
  echo "   worker RSS $(ps -o rss= -p "${pids[0]}" | awk '{print $1/1024}') MiB"
fi
echo "conntrack entries at the end: $(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a)"
grep -h "level=ERROR\|level=WARN" "$OUT"/gw*.log ${CLUSTER:+"$OUT/worker.log"} | grep -v "token aware policy" | cut -c1-200 | sort | uniq -c | sort -rn | head -20 || true
