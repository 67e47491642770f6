#!/usr/bin/env bash
# Cross-gateway 1:1 chat on the distributed deployment, on this one box:
# Redis, Kafka and Cassandra on loopback (scripts/engines-deps.sh installs
# them), the schema, two workers and two gateways with pprof on, then
# `switchboard loadtest chat` with each pair's sender on one gateway and
# its recipient on the other. While the load runs it takes a CPU profile
# (PROFILE seconds) of the worker that owns the sequencer and of gateway 1,
# and the CPU each process used over the same window (from /proc: the
# engines' JVMs, Redis, workers, gateways, the load generator). Everything
# stops by itself at the end.
#
# Usage, from the repository root:
#   scripts/clusterbench.sh [loadtest chat flags]
#   (default: --pairs 1000 --rate 2000 --duration 60s --size 100)
# Environment: OUT (default /tmp/switchboard-clusterbench), NAME (the
# reports' base name, default chat), PORT (first of four ports, default
# 18900), PROFILE (seconds, default 30), WARMUP and WARMUP_RATE (a first
# run of the same pairs whose report is discarded, so that the engines'
# JVMs have compiled their hot code: default 30s at 200 msg/s, which
# this box sustains; WARMUP=0: none), RATES (e.g. "2000 4000 6000": one
# measured run per rate, one after the other on the same deployment,
# reports $NAME-RATE.*), TRACE (seconds of an execution trace of the
# sequencer's worker taken with the profiles, and where its stages
# blocked, from `go tool trace -pprof=sync`; default 0: none),
# PARTITIONS (the command topic's partitions, commands.partitions:
# default 1, one sequencer and a standby; with more, both workers
# sequence, and the store and request-path figures are both workers'),
# APPLY_DEPTH (chat.apply_depth: batches each sequencer has in Cassandra
# at once, 1 to 3; default 3).
# Output: the loadtest report on stdout, then each process's CPU and RSS
# over the profile's window, `go tool pprof -top` of both profiles; in
# $OUT: $NAME.json and .html, $NAME-worker.pprof, $NAME-gateway.pprof,
# $NAME-cpu.txt, top snapshots, the processes' logs.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/switchboard-clusterbench}
NAME=${NAME:-chat}
PORT=${PORT:-18900}
PROFILE=${PROFILE:-30}
WARMUP=${WARMUP:-30s}
WARMUP_RATE=${WARMUP_RATE:-200}
RATES=${RATES:-}
TRACE=${TRACE:-0}
PARTITIONS=${PARTITIONS:-1}
APPLY_DEPTH=${APPLY_DEPTH:-3}
if [ $# -eq 0 ]; then set -- --pairs 1000 --rate 2000 --duration 60s --size 100; fi
BIN=$OUT/switchboard
rm -rf "$OUT"; mkdir -p "$OUT"
bash scripts/engines-deps.sh >/dev/null
go build -o "$BIN" ./cmd/switchboard
go build -o "$OUT/engines" ./internal/testengines/engines

# Stopping: the switchboard processes first, while the engines still
# answer (a worker's last deliveries need Redis), each killed if it has not
# exited within 20 s; then the engines.
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do [ "$p" = "${engines:-}" ] || kill "$p" 2>/dev/null || true; done
  for _ in $(seq 200); do
    alive=0
    for p in "${pids[@]}"; do [ "$p" = "${engines:-}" ] || ! kill -0 "$p" 2>/dev/null || alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do
    [ "$p" = "${engines:-}" ] || ! kill -0 "$p" 2>/dev/null || { echo "pid $p did not stop in 20 s: killed" >&2; kill -9 "$p" 2>/dev/null || true; }
  done
  [ -z "${engines:-}" ] || kill "$engines" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "starting Redis, Kafka and Cassandra…" >&2
"$OUT/engines" -env "$OUT/engines.env" > "$OUT/engines.log" 2>&1 &
engines=$!
pids+=("$engines")
for _ in $(seq 900); do [ -s "$OUT/engines.env" ] && break; kill -0 "$engines" 2>/dev/null || break; sleep 0.2; done
[ -s "$OUT/engines.env" ] || { echo "engines did not start:" >&2; tail -n 30 "$OUT/engines.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$OUT/engines.env"
"$BIN" token --user setup --data-dir "$OUT" >/dev/null # creates $OUT/secret.key

# The per-connection rate limit is raised because the generator
# multiplexes many users' sends (as in docs/benchmarks.md). batch_entries:
# with one Cassandra node, multi-partition batches cost the server about
# half as much per message as one request per partition (BenchmarkApply).
cat > "$OUT/switchboard.yaml" <<YAML
secret_file: $OUT/secret.key
pprof: true
backends: {store: cassandra, bus: kafka, router: redis}
cassandra: {hosts: ["$CASSANDRA"], keyspace: switchboard, replication: "1", batch_entries: true}
kafka: {brokers: ["$KAFKA"], replication_factor: 1, min_insync_replicas: 1}
redis: {addrs: ["$REDIS"]}
assets: {listen: "off"}
gateway: {message_rate: 100000, message_burst: 100000}
commands: {partitions: $PARTITIONS}
chat: {apply_depth: $APPLY_DEPTH}
YAML
"$BIN" migrate --hosts "$CASSANDRA" --keyspace switchboard --replication 1 > "$OUT/migrate.log"

W1=$PORT W2=$((PORT+1)) G1=$((PORT+2)) G2=$((PORT+3))
start() { # name, port, role
  "$BIN" serve --config "$OUT/switchboard.yaml" --role "$3" --listen "127.0.0.1:$2" --data-dir "$OUT/$1" > "$OUT/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
start worker1 "$W1" worker
start worker2 "$W2" worker
start gateway1 "$G1" gateway
start gateway2 "$G2" gateway
for port in $W1 $W2 $G1 $G2; do
  for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" || { echo "the process on $port is not ready; logs in $OUT" >&2; tail -n 20 "$OUT"/*.log >&2; exit 1; }
done
seq_name=""
for _ in $(seq 300); do
  for w in worker1 worker2; do grep -q "sequencer started" "$OUT/$w.log" && seq_name=$w; done
  [ -n "$seq_name" ] && break; sleep 0.1
done
[ -n "$seq_name" ] || { echo "no worker started the sequencer in 30 s; logs in $OUT" >&2; exit 1; }
seq_port=$W1; [ "$seq_name" = worker2 ] && seq_port=$W2
seq_pid=$(eval echo "\$pid_$seq_name")
standby=worker1; [ "$seq_name" = worker1 ] && standby=worker2
standby_pid=$(eval echo "\$pid_$standby")
seq_role=worker-sequencer standby_role=worker-standby
if [ "$PARTITIONS" -gt 1 ]; then seq_role="$seq_name" standby_role="$standby"; fi
servers="$pid_gateway1,$pid_gateway2,$pid_worker1,$pid_worker2"
echo "command partitions: $PARTITIONS, apply depth $APPLY_DEPTH; sequencer: $seq_name (pid $seq_pid); gateways $pid_gateway1 $pid_gateway2; Redis $REDIS Kafka $KAFKA Cassandra $CASSANDRA" >&2

# The engines' processes, by what they run.
engine_pids() {
  for p in $(pgrep -P "$engines"); do
    case "$(tr '\0' ' ' < "/proc/$p/cmdline")" in
      *cassandra*) echo "cassandra $p" ;; *kafka*) echo "kafka $p" ;; *redis*) echo "redis $p" ;; *) echo "engine $p" ;;
    esac
  done
}
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo gone; }
# commits WHEN: the sequencers' store commits so far (count, seconds,
# requests), their commands' wait and core times (count, seconds each),
# summed over both workers (a standby has none), and gateway 1's request
# round trips (count, seconds).
commits() {
  { curl -sf "http://127.0.0.1:$W1/metrics"; curl -sf "http://127.0.0.1:$W2/metrics"; curl -sf "http://127.0.0.1:$G1/metrics" | sed 's/^/gw_/'; } | awk -v w="$1" '
    /^switchboard_store_commit_seconds_count /{c+=$2} /^switchboard_store_commit_seconds_sum /{s+=$2}
    /^switchboard_store_batch_requests_sum /{r+=$2}
    /^switchboard_cluster_command_wait_seconds_count /{wc+=$2} /^switchboard_cluster_command_wait_seconds_sum /{ws+=$2}
    /^switchboard_cluster_command_seconds_count /{cc+=$2} /^switchboard_cluster_command_seconds_sum /{cs+=$2}
    /^gw_switchboard_cluster_request_seconds_count /{gc=$2} /^gw_switchboard_cluster_request_seconds_sum /{gs=$2}
    END {print w, c+0, s+0, r+0, wc+0, ws+0, cc+0, cs+0, gc+0, gs+0}'
}

URLS="ws://127.0.0.1:$G1/v1/ws,ws://127.0.0.1:$G2/v1/ws"
loadtest() { # loadtest chat across both gateways, with the given flags; run it in a subshell or with &
  exec "$BIN" loadtest chat --url "$URLS" --secret-file "$OUT/secret.key" --server-pid "$servers" "$@"
}

# measure NAME FLAGS...: one load run with its reports, profiles and the
# CPU of every process over the profile's window.
measure() {
  local name=$1; shift
  loadtest --json "$OUT/$name.json" --html "$OUT/$name.html" "$@" &
  local lt=$!
  pids+=("$lt")
  # Profile once the sends have started (the gateway has counted more).
  local base n
  base=$(curl -sf "http://127.0.0.1:$G1/metrics" | awk '/^switchboard_gateway_send_frames_total /{print $2}')
  for _ in $(seq 1200); do
    n=$(curl -sf "http://127.0.0.1:$G1/metrics" | awk '/^switchboard_gateway_send_frames_total /{print $2}')
    [ "${n:-0}" != "${base:-0}" ] && break
    kill -0 "$lt" 2>/dev/null || break; sleep 0.1
  done
  local procs
  procs="$(engine_pids)
$seq_role $seq_pid
$standby_role $standby_pid
gateway1 $pid_gateway1
gateway2 $pid_gateway2
loadtest $lt"
  declare -A t0
  while read -r _ p; do t0[$p]=$(cpu_ticks "$p"); done <<< "$procs"
  local start_ns u0 n0 s0 i0 w0 q0 sq0 u1 n1 s1 i1 w1 q1 sq1 c0 c1
  c0=$(commits start)
  start_ns=$(date +%s%N)
  read -r _ u0 n0 s0 i0 w0 q0 sq0 _ < /proc/stat
  curl -sf -o "$OUT/$name-worker.pprof" "http://127.0.0.1:$seq_port/debug/pprof/profile?seconds=$PROFILE" &
  local prof1=$!
  curl -sf -o "$OUT/$name-gateway.pprof" "http://127.0.0.1:$G1/debug/pprof/profile?seconds=$PROFILE" &
  local prof2=$!
  top_snapshot > "$OUT/$name-top-start.txt" || true
  if [ "$TRACE" != 0 ]; then # what the sequencer waits for
    curl -sf -o "$OUT/$name-worker.trace" "http://127.0.0.1:$seq_port/debug/pprof/trace?seconds=$TRACE" || true
  fi
  wait "$prof1" "$prof2" || echo "a profile failed (the run ended before it?)" >&2
  read -r _ u1 n1 s1 i1 w1 q1 sq1 _ < /proc/stat
  c1=$(commits end)
  top_snapshot > "$OUT/$name-top-end.txt" || true
  local ms hz busy all mine=0
  ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  hz=$(getconf CLK_TCK)
  busy=$(( (u1+n1+s1+q1+sq1) - (u0+n0+s0+q0+sq0) )) all=$(( (u1+n1+s1+q1+sq1+i1+w1) - (u0+n0+s0+q0+sq0+i0+w0) ))
  {
    echo "$name: CPU over the ${PROFILE} s profile window (cores), RSS at its end:"
    awk -v busy="$busy" -v all="$all" -v sq=$((sq1-sq0)) -v cpus="$(nproc)" \
      'BEGIN { printf "  %-18s %d CPUs, %.2f busy (softirq %.2f)\n", "whole box", cpus, cpus*busy/all, cpus*sq/all }'
    while read -r pname p; do
      local t1; t1=$(cpu_ticks "$p")
      if [ "$t1" = gone ] || [ "${t0[$p]}" = gone ]; then printf "  %-18s pid %-8s exited during the window\n" "$pname" "$p"; continue; fi
      mine=$((mine + t1 - ${t0[$p]}))
      awk -v n="$pname" -v p="$p" -v a="${t0[$p]}" -v b="$t1" -v hz="$hz" -v ms="$ms" \
        -v rss="$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null)" \
        'BEGIN { printf "  %-18s pid %-8s %5.2f CPU   RSS %7.1f MiB\n", n, p, (b-a)/hz/(ms/1000), rss/1024 }'
    done <<< "$procs"
    echo "$c0 $c1" | awk '{ n = $12 - $2; if (n > 0) printf "  sequencer\x27s store commits: %d (%.0f/s), mean %.2f ms, mean %.1f requests each\n", n, n/('"$ms"'/1000), 1000*($13-$3)/n, ($14-$4)/n
      wn = $15 - $5; cn = $17 - $7; gn = $19 - $9
      if (wn > 0 && cn > 0 && gn > 0) {
        g = 1000*($20-$10)/gn; wt = 1000*($16-$6)/wn; co = 1000*($18-$8)/cn
        printf "  request path, means: gateway 1\x27s round trip %.1f ms = command in Kafka %.1f + sequencer %.1f + reply back %.1f\n", g, wt, co, g-wt-co
      } }'
    awk -v rest=$((busy - mine)) -v hz="$hz" -v ms="$ms" \
      'BEGIN { printf "  %-18s %5.2f CPU (softirq, other processes on the box)\n", "everything else", rest/hz/(ms/1000) }'
  } > "$OUT/$name-cpu.txt"
  local rc=0
  wait "$lt" || rc=$?
  cat "$OUT/$name-cpu.txt"
  for f in worker gateway; do
    [ -s "$OUT/$name-$f.pprof" ] || continue
    echo "== go tool pprof -top $OUT/$name-$f.pprof (top 25)"
    go tool pprof -top -nodecount 25 "$BIN" "$OUT/$name-$f.pprof" 2>/dev/null | sed -n '6,32p'
  done
  if [ -s "$OUT/$name-worker.trace" ]; then
    echo "== where the sequencer's stages wait ($TRACE s trace; go tool trace -pprof=sync)"
    go tool trace -pprof=sync "$OUT/$name-worker.trace" > "$OUT/$name-worker-sync.pprof" 2>/dev/null &&
      go tool pprof -peek 'chat.\(\*Service\).(postLoop|applyLoop|commitLoop)$|chat.\(\*publisher\).publish$' "$OUT/$name-worker-sync.pprof" 2>/dev/null | sed -n '4,40p'
  fi
  return $rc
}
top_snapshot() { top -b -n 2 -d 2 -w 200 | awk '/^top -/{n++} n==2' | head -n 20; }

if [ "$WARMUP" != 0 ]; then
  echo "warm-up: $WARMUP at $WARMUP_RATE msg/s (JIT of the engines' JVMs), report discarded" >&2
  (loadtest "$@" --duration "$WARMUP" --rate "$WARMUP_RATE" --quiet) > "$OUT/warmup.txt" 2>&1 || { echo "warm-up failed:" >&2; tail -n 20 "$OUT/warmup.txt" >&2; }
fi
rc=0
if [ -z "$RATES" ]; then
  measure "$NAME" "$@" || rc=$?
else
  for r in $RATES; do
    echo "== rate $r msg/s" >&2
    measure "$NAME-$r" "$@" --rate "$r" || rc=$?
  done
fi
grep -h "level=ERROR\|level=WARN" "$OUT"/worker*.log "$OUT"/gateway*.log | grep -v "token aware policy" | cut -c1-200 | sort | uniq -c | sort -rn | head -10 || true
exit "$rc"
