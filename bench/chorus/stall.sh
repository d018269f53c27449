#!/bin/sh
# stall.sh: a 3-node cluster (N=3, QUORUM) under a sustained closed-loop
# load, with what issue 27's stall would show printed every second: the
# cluster's coordinated requests per second (from each node's /metrics),
# the nodes' CPU, peer messages lost, SWIM suspicions, hints queued, peer
# connections and slow-request lines so far. A stall shows as a collapse
# of ops/s with CPU per op going up.
#
# Usage (from the repository root, after a release build):
#   bench/chorus/stall.sh [BUILD]        (default build-rel)
# Environment: DURATION (s, default 60), CONNS (50), INFLIGHT (1),
# DURABILITY (none), WORKLOAD (rw50), PORT (base port, 7700), CHORUSD (a
# chorusd of another build, to compare; the client stays BUILD's), KEEP=1 keeps
# the data and logs folder.
set -eu

build=${1:-build-rel}
duration=${DURATION:-60}
conns=${CONNS:-50}
inflight=${INFLIGHT:-1}
durability=${DURABILITY:-none}
workload=${WORKLOAD:-rw50}
port=${PORT:-7700}
chorusd=${CHORUSD:-$build/node/chorusd}
bench=$build/bench/chorus/chorus-bench
for f in "$chorusd" "$bench"; do
  [ -x "$f" ] || { echo "stall.sh: $f not built" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "stall.sh: needs curl" >&2; exit 1; }
tmp=$(mktemp -d /tmp/chorus-stall-XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

seed=127.0.0.1:$port
for i in 0 1 2; do
  "$chorusd" --id "n$i" --listen "127.0.0.1:$((port + i))" \
    --http "127.0.0.1:$((port + 10 + i))" --data "$tmp/n$i" --seeds "$seed" \
    --cluster stall --replicas 3 --dc dc1 --rack r1 \
    --durability "$durability" --profile local --log-level info \
    >"$tmp/n$i.log" 2>&1 &
  pids="$pids $!"
  [ "$i" = 0 ] && sleep 0.3
done
nodes="$pids"
echo "$nodes" >"$tmp/pids"
echo "nodes $nodes, folder $tmp"
sleep 3

# scrape: the three nodes' /metrics, fetched at once (a node whose loop
# is stuck answers late or not at all: its share is missing, and that
# second's figure says so with a "?").
scrape() {
  cp=""
  for i in 0 1 2; do
    curl -s --max-time 1 "http://127.0.0.1:$((port + 10 + i))/metrics" \
      >"$tmp/m$i" 2>/dev/null &
    cp="$cp $!"
  done
  for j in $cp; do wait "$j" 2>/dev/null || true; done
  cat "$tmp/m0" "$tmp/m1" "$tmp/m2"
}
cpu_ticks() {
  t=0
  for p in $nodes; do
    v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}

"$bench" --seeds "127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))" \
  --cluster stall -c "$conns" -p "$inflight" -d "$duration" --warmup 0 --workload "$workload" \
  --keys 100000 --value-size 100 --uniform --read QUORUM --write QUORUM \
  >"$tmp/bench.out" 2>&1 &
bpid=$!
pids="$pids $bpid"

hz=$(getconf CLK_TCK)
t0=$(date +%s.%N)
printf '%6s %8s %9s %6s %6s %7s %5s %5s %4s %8s %8s\n' s "ops/s" "cpu_us/op" \
  lost suspct hints conns slow aae compared treekeys
prev_req=0 prev_cpu=$(cpu_ticks) prev_s=0
while kill -0 "$bpid" 2>/dev/null; do
  sleep 1
  m=$(scrape)
  s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  got=$(printf '%s\n' "$m" | grep -c '^chorus_node_info' || true)
  set -- $(printf '%s\n' "$m" | awk '
    /^chorus_requests_total/ { req += $NF }
    /^chorus_peer_messages_lost_total/ { lost += $NF }
    /^chorus_swim_suspicions_total/ { sus += $NF }
    /^chorus_hints_queued_total/ { hq += $NF }
    /^chorus_connections\{/ { if ($0 ~ /peer/) conn += $NF }
    /^chorus_aae_exchanges_started_total/ { aae += $NF }
    /^chorus_aae_keys_compared_total/ { cmp += $NF }
    /^chorus_aae_tree_keys/ { tk += $NF }
    END { printf "%d %d %d %d %d %d %d %d\n", req, lost, sus, hq, conn, aae,
      cmp, tk }')
  req=$1 lost=$2 sus=$3 hq=$4 conn=$5 aae=$6 cmp=$7 tk=$8
  cpu=$(cpu_ticks)
  slow=$(cat "$tmp"/n?.log | grep -c 'slow [A-Z]' || true)
  if [ "$got" != 3 ]; then
    printf '%6s %8s (%s of 3 nodes answered /metrics within 1 s)\n' "$s" "?" \
      "$got"
    continue
  fi
  d=$((req - prev_req))
  # per second over the time since the last full sample
  set -- $(awk -v c=$((cpu - prev_cpu)) -v hz="$hz" -v d="$d" -v s="$s" \
    -v p="$prev_s" 'BEGIN { printf "%.0f ", d / (s - p);
      if (d > 0) printf "%.0f\n", c / hz * 1e6 / d; else print "-" }')
  rate=$1 us=$2
  printf '%6s %8d %9s %6d %6d %7d %5d %5d %4d %8d %8d\n' "$s" "$rate" "$us" \
    "$lost" "$sus" "$hq" "$conn" "$slow" "$aae" "$cmp" "$tk"
  prev_req=$req prev_cpu=$cpu prev_s=$s
done
wait "$bpid" || true
tail -n 15 "$tmp/bench.out"
grep -h -i 'slow\|suspect\|refused\|closing' "$tmp"/n?.log | tail -n 20 || true
