#!/usr/bin/env bash
# The whole distributed stack on one machine, to try it out: Redis, Kafka
# and Cassandra on loopback (installed by scripts/engines-deps.sh, data in
# temporary directories), the schema applied by `switchboard migrate`, two
# workers and two gateways. Ctrl-C stops everything.
#
# Usage, from the repository root:
#   scripts/cluster.sh            (or: make cluster)
# Then, in two other terminals (alice on one gateway, bob on the other):
#   bin/switchboard chat --user alice --data-dir .cluster --server ws://127.0.0.1:8080/v1/ws
#   bin/switchboard chat --user bob   --data-dir .cluster --server ws://127.0.0.1:8082/v1/ws
# Logs: .cluster/*.log. Ports: gateways 8080 and 8082 (asset API off),
# workers' /metrics on 8090 and 8091. docs/deploy.md explains the layout.
set -eu
cd "$(dirname "$0")/.."
DIR=.cluster
mkdir -p "$DIR" bin
bash scripts/engines-deps.sh >/dev/null
go build -o bin/switchboard ./cmd/switchboard
go build -o "$DIR/engines" ./internal/testengines/engines

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped"
}
trap cleanup EXIT INT TERM

rm -f "$DIR/engines.env"
echo "starting Redis, Kafka and Cassandra (about 20 s)…"
"$DIR/engines" -env "$DIR/engines.env" > "$DIR/engines.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do [ -s "$DIR/engines.env" ] && break; kill -0 "${pids[0]}" 2>/dev/null || { cat "$DIR/engines.log"; exit 1; }; sleep 0.2; done
[ -s "$DIR/engines.env" ] || { echo "engines did not start:"; cat "$DIR/engines.log"; exit 1; }
# shellcheck disable=SC1091
. "$DIR/engines.env"
bin/switchboard token --user setup --data-dir "$DIR" >/dev/null # creates $DIR/secret.key

cat > "$DIR/switchboard.yaml" <<YAML
# The distributed backends on one machine (replication 1: one of each
# engine). docs/deploy.md has the production version.
secret_file: $DIR/secret.key
backends: {store: cassandra, bus: kafka, router: redis}
cassandra: {hosts: ["$CASSANDRA"], keyspace: switchboard, replication: "1", batch_entries: true}
kafka: {brokers: ["$KAFKA"], replication_factor: 1, min_insync_replicas: 1}
redis: {addrs: ["$REDIS"]}
assets: {listen: "off"}
# Four sequencers, shared by the two workers (each user's inbox belongs to
# one); kill one worker and the other takes its partitions over.
commands: {partitions: 4}
YAML
bin/switchboard migrate --hosts "$CASSANDRA" --keyspace switchboard --replication 1

start() { # name, args...
  local name=$1; shift
  bin/switchboard serve --config "$DIR/switchboard.yaml" "$@" > "$DIR/$name.log" 2>&1 &
  pids+=($!)
}
start worker1 --role worker --listen 127.0.0.1:8090 --data-dir "$DIR/worker1"
start worker2 --role worker --listen 127.0.0.1:8091 --data-dir "$DIR/worker2"
start gateway1 --role gateway --listen 127.0.0.1:8080 --data-dir "$DIR/gateway1"
start gateway2 --role gateway --listen 127.0.0.1:8082 --data-dir "$DIR/gateway2"
for port in 8090 8091 8080 8082; do
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" || { echo "the process on $port is not ready; logs in $DIR"; tail -n 20 "$DIR"/*.log; exit 1; }
done
cat <<MSG
switchboard cluster running:
  gateways  ws://127.0.0.1:8080/v1/ws  ws://127.0.0.1:8082/v1/ws
  workers   http://127.0.0.1:8090/metrics  http://127.0.0.1:8091/metrics
  Redis $REDIS   Kafka $KAFKA   Cassandra $CASSANDRA
  chat:     bin/switchboard chat --user alice --data-dir $DIR --server ws://127.0.0.1:8080/v1/ws
            bin/switchboard chat --user bob --data-dir $DIR --server ws://127.0.0.1:8082/v1/ws
  logs:     $DIR/*.log
Ctrl-C stops everything.
MSG
# Run until Ctrl-C. A gateway or worker that exits (say, one you killed
# to watch a failover) is reported; the rest keep running.
names=(engines worker1 worker2 gateway1 gateway2)
gone=()
while kill -0 "${pids[0]}" 2>/dev/null; do
  for i in 1 2 3 4; do
    if [ -z "${gone[$i]:-}" ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
      gone[$i]=1
      echo "${names[$i]} exited (log: $DIR/${names[$i]}.log)" >&2
    fi
  done
  sleep 1
done
echo "the engines exited; logs in $DIR" >&2
