#!/bin/sh
# compare.sh: chorus against Redis on this machine, in one invocation and at
# the same concurrency: redis-benchmark against a private redis-server, and
# chorus-bench against a fresh 3-node local cluster (N=3, QUORUM reads and
# writes, 100-byte values, uniform over 100k keys, 50/50 read/update),
# without pipelining and with 16 requests in flight per connection
# (redis-benchmark -P 16 / chorus-bench -p 16). Prints the figures and the
# chorus/Redis ratios, for chorus --durability none (Redis without
# persistence) and --durability group (Redis with appendfsync always: both
# acknowledge a write only after it is on disk).
#
# Redis runs GET and SET as separate tests; its 50/50 throughput is their
# harmonic mean (half the requests at each rate), its latencies the mean of
# the two tests' percentiles. A single Redis process on one core against
# three chorus nodes, each writing to three replicas: the ratio is the price
# of replication and quorums, not a like-for-like engine comparison.
#
# Then the RESP gateway (issue 26): the very redis-benchmark runs (GET and
# SET, 100 B values, 100k keys, with and without -P 16) against
# redis-server and against the --resp port of one node of a fresh 3-node
# chorus cluster (N=3, QUORUM, durability none; Redis without
# persistence), one after the other: throughput and p99 ratios. All the
# load enters through that one node, which coordinates every request.
#
# Then, for durability none, an open loop at 70% of the non-pipelined peak
# just measured, for its latency; then open loops at 5% of that peak
# (issue 27: p99 at low load, with its bounds), LOW_ROUNDS rounds, each
# running in turn chorus 3 nodes N=3 QUORUM with durability none and group,
# chorus 1 node N=1 (no replica round trip), and chorus-floor's three
# floors at the same rate and connections: the quorum message pattern with
# no work done, one loopback round trip, and an fdatasync group commit
# (results/latency-5pct-issue-27.txt explains the time); and, when the Debian etcd-server package is
# installed, `etcdctl check perf --load=l` (60 s, 500 clients) against a
# private 3-member etcd on loopback beside chorus write-only with
# --durability group: both acknowledge a write once a quorum has it on disk.
#
# Usage (from the repository root, after `ninja -C build-bench-rel`):
#   bench/chorus/compare.sh [BUILD_DIR]
# Environment: DURATION (s, default 10), CONNS (default 50, redis-benchmark's
# default), REDIS_PORT, REDIS_OPS (requests per redis-benchmark test without
# pipelining, default 100000; ten times that with -P 16), DURABILITY ("none
# group"), ETCD (0 skips etcd), ETCD_PORT (first of six, default 23790),
# RESP (0 skips the RESP gateway's rows; DURABILITY=' ' ETCD=0 runs only
# them), RESP_PORT (first of six), LOW (0 skips the 5% rows), LOW_ROUNDS
# (default 3).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-bench-rel}
bench=$build/bench/chorus/chorus-bench
duration=${DURATION:-10}
conns=${CONNS:-50}
redis_port=${REDIS_PORT:-$((21000 + $$ % 4000))}
redis_ops=${REDIS_OPS:-100000}
modes=${DURABILITY:-none group}

for tool in redis-server redis-benchmark redis-cli awk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "compare.sh: $tool not found (apt-get install -y redis-server" \
      "redis-tools)" >&2
    exit 1
  fi
done
if [ ! -x "$bench" ]; then
  echo "compare.sh: $bench not built (ninja -C $build)" >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/chorus-compare-XXXXXX)
redis_pid=
etcd_pids=
resp_pids=
cleanup() {
  for pid in $redis_pid $etcd_pids $resp_pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for WHAT COMMAND...: retries COMMAND for up to 20 s.
wait_for() {
  what=$1
  shift
  tries=0
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 100 ]; then
      echo "compare.sh: $what did not start (logs in $tmp)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
redis_pid=$!
wait_for "redis-server on port $redis_port" redis-cli -p "$redis_port" ping

# redis_run P OPS [PORT]: "ops/s p50 p99" of a 50/50 GET/SET mix, against
# redis-server (flushed first) or the RESP server on PORT.
redis_run() {
  port=${3:-$redis_port}
  [ "$port" != "$redis_port" ] || redis-cli -p "$port" flushall >/dev/null
  redis-benchmark -p "$port" -c "$conns" -n "$2" -r 100000 -d 100 \
    -t set,get -P "$1" --csv -q >"$tmp/redis.csv" 2>"$tmp/redis.err"
  awk -F'"' '
    $2 == "SET" || $2 == "GET" { n++; inv += 0.5 / $4; p50 += $10; p99 += $14 }
    END { if (n != 2) exit 1; printf "%.0f %.3f %.3f\n", 1 / inv, p50 / 2, p99 / 2 }
  ' "$tmp/redis.csv"
}

# chorus_run P DURABILITY [WORKLOAD [extra...]]: "ops/s p50 p99
# cpu_us_per_op" of rw50 (or WORKLOAD).
chorus_run() {
  inflight=$1 durability=$2 workload=${3:-rw50}
  shift 2
  [ $# -eq 0 ] || shift
  "$bench" --start-cluster 3 --durability "$durability" --replicas 3 \
    -c "$conns" -p "$inflight" -d "$duration" --warmup 2 --workload "$workload" "$@" \
    --keys 100000 --value-size 100 --uniform --read QUORUM --write QUORUM \
    --csv "$tmp/chorus.csv" >"$tmp/chorus.out" 2>&1 || {
    cat "$tmp/chorus.out" >&2
    return 1
  }
  # columns: 10 op, 13 ops_per_s, 16 p50_ms, 18 p99_ms, 22 cpu_us_per_op
  awk -F, '$10 == "all" { printf "%.0f %.3f %.3f %s\n", $13, $16, $18, $22 }' \
    "$tmp/chorus.csv"
}

echo "chorus vs Redis: $conns connections, 100 B values, 100k keys, 50/50;"
echo "chorus 3 nodes N=3 QUORUM for $duration s; host $(nproc) CPUs"
printf '\n%-9s %-10s | %10s %8s %8s | %10s %8s %8s %7s | %7s %7s %7s\n' \
  durability in-flight "redis op/s" "p50 ms" "p99 ms" "chorus/s" "p50 ms" \
  "p99 ms" "us/op" "thr" "p50" "p99"
for mode in $modes; do
  if [ "$mode" = group ]; then
    redis-cli -p "$redis_port" config set appendonly yes >/dev/null
    redis-cli -p "$redis_port" config set appendfsync always >/dev/null
  else
    redis-cli -p "$redis_port" config set appendonly no >/dev/null
  fi
  for p in 1 16; do
    ops=$redis_ops
    [ "$p" = 1 ] || ops=$((redis_ops * 10))
    r=$(redis_run "$p" "$ops")
    c=$(chorus_run "$p" "$mode")
    [ "$mode$p" = none1 ] && peak=${c%% *}
    # shellcheck disable=SC2086
    set -- $r $c
    printf '%-9s %-10s | %10s %8s %8s | %10s %8s %8s %7s | %7.3f %7.2f %7.2f\n' \
      "$mode" "$p/conn" "$1" "$2" "$3" "$4" "$5" "$6" "$7" \
      "$(awk "BEGIN { print $4 / $1 }")" "$(awk "BEGIN { print $5 / $2 }")" \
      "$(awk "BEGIN { print $6 / $3 }")"
  done
done
echo
echo "ratios are chorus / Redis: thr above 1 is chorus faster; p50, p99"
echo "above 1 are chorus slower. us/op: chorus node CPU per request (3 nodes)."

if [ "${RESP:-1}" != 0 ]; then
  chorusd=$build/node/chorusd
  rp=${RESP_PORT:-$((25000 + $$ % 4000))}
  seeds="127.0.0.1:$rp,127.0.0.1:$((rp + 1)),127.0.0.1:$((rp + 2))"
  for i in 0 1 2; do
    "$chorusd" --id "r$i" --listen "127.0.0.1:$((rp + i))" \
      --resp "127.0.0.1:$((rp + 3 + i))" --data "$tmp/resp$i" \
      --seeds "$seeds" --cluster compare-resp --replicas 3 \
      --durability none --profile local 2>"$tmp/resp$i.log" &
    resp_pids="$resp_pids $!"
  done
  # Writes succeed through every member once they know each other; then
  # the metadata's last joins settle.
  resp_ok() {
    for i in 3 4 5; do
      [ "$(redis-cli -p "$((rp + i))" set compare:ready 1)" = OK ] || return 1
    done
  }
  wait_for "chorus with --resp on ports $((rp + 3))-$((rp + 5))" resp_ok
  sleep 2
  redis-cli -p "$redis_port" config set appendonly no >/dev/null
  echo
  echo "RESP gateway: redis-benchmark -t set,get -c $conns -d 100 -r 100000"
  echo "against redis-server and against chorus --resp (3 nodes, N=3, QUORUM,"
  echo "durability none; every request through one node)"
  printf '\n%-10s | %10s %8s %8s | %10s %8s %8s | %7s %7s %7s\n' \
    in-flight "redis op/s" "p50 ms" "p99 ms" "resp op/s" "p50 ms" "p99 ms" \
    thr p50 p99
  for p in 1 16; do
    ops=$redis_ops
    [ "$p" = 1 ] || ops=$((redis_ops * 10))
    r=$(redis_run "$p" "$ops")
    if ! c=$(redis_run "$p" "$ops" "$((rp + 3))"); then
      # redis-benchmark stops at the first error reply (a TIMEDOUT under
      # overload, say): say which, rather than a row.
      printf '%-10s | %10s %8s %8s | failed: %s\n' "$p/conn" $r \
        "$(cat "$tmp/redis.csv" "$tmp/redis.err" | tr '\r' '\n' |
          grep -m1 -i error || echo "no result")"
      continue
    fi
    # shellcheck disable=SC2086
    set -- $r $c
    printf '%-10s | %10s %8s %8s | %10s %8s %8s | %7.3f %7.2f %7.2f\n' \
      "$p/conn" "$1" "$2" "$3" "$4" "$5" "$6" \
      "$(awk "BEGIN { print $4 / $1 }")" "$(awk "BEGIN { print $5 / $2 }")" \
      "$(awk "BEGIN { print $6 / $3 }")"
  done
  for pid in $resp_pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  resp_pids=
fi

if [ -n "${peak:-}" ]; then
  rate=$((peak * 7 / 10))
  set -- $(chorus_run 1 none rw50 --rate "$rate")
  echo
  echo "open loop at 70% of the peak above ($rate of $peak ops/s, none," \
    "rw50): $1 ops/s, p50 $2 ms, p99 $3 ms, $4 us/op"
fi

# floor_run SHAPE RATE: "ops/s p50 p99 us_per_op" of chorus-floor, as
# chorus_run prints them (ops/s is the rate; us/op its servers' CPU).
floor_run() {
  "$build/bench/chorus/chorus-floor" --shape "$1" --rate "$2" -c "$conns" \
    -d "$duration" --warmup 2 >"$tmp/floor.out" 2>&1 || {
    cat "$tmp/floor.out" >&2
    return 1
  }
  awk -v r="$2" '$1 == "all" { p50 = $3; p99 = $5 }
    /server CPU/ { cpu = $(NF - 1) }
    END { printf "%s %s %s %s\n", r, p50, p99, cpu == "" ? "-" : cpu }' \
    "$tmp/floor.out"
}

if [ -n "${peak:-}" ] && [ "${LOW:-1}" != 0 ]; then
  rate=$((peak / 20))
  rounds=${LOW_ROUNDS:-3}
  echo
  echo "open loop at 5% of the peak above ($rate of $peak ops/s, rw50," \
    "$conns connections), $rounds rounds, setups in turn; p50/p99 ms per round:"
  : >"$tmp/low"
  i=1
  while [ "$i" -le "$rounds" ]; do
    for s in c3none c3group c1 fquorum fecho ffsync; do
      case $s in
      c3none) r=$(chorus_run 1 none rw50 --rate "$rate") ;;
      c3group) r=$(chorus_run 1 group rw50 --rate "$rate") ;;
      c1) r=$(chorus_run 1 none rw50 --rate "$rate" --start-cluster 1 \
        --replicas 1) ;;
      fquorum) r=$(floor_run quorum "$rate") ;;
      fecho) r=$(floor_run echo "$rate") ;;
      ffsync) r=$(floor_run fsync "$rate") ;;
      esac
      case $s in c*) out=$tmp/chorus.out ;; *) out=$tmp/floor.out ;; esac
      # the client's send lag (its pacing timer's wake-up): p50 p99
      lag=$(awk '/send lag/ { for (i = 1; i <= NF; i++) {
          if ($i == "p50") a = $(i + 1); if ($i == "p99") b = $(i + 1) }
        if (a == "") { a = $4; b = $6 } print a, b }' "$out")
      echo "$s $r $(cut -d' ' -f1 /proc/loadavg) ${lag:-- -}" >>"$tmp/low"
    done
    i=$((i + 1))
  done
  # one row per setup: each round's p50/p99, the median p99, the median
  # send lag p50/p99 of the client, the mean node (or floor server) CPU per
  # request, the load averages seen
  awk '
    BEGIN {
      name["c3none"] = "chorus 3 nodes N=3 QUORUM, none"
      name["c3group"] = "chorus 3 nodes N=3 QUORUM, group"
      name["c1"] = "chorus 1 node N=1, none"
      name["fquorum"] = "floor: quorum pattern, no work"
      name["fecho"] = "floor: one loopback round trip"
      name["ffsync"] = "floor: fdatasync group commit"
      split("c3none c3group c1 fquorum fecho ffsync", order, " ")
    }
    function median(a, m,   i, j, t) {
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    { n[$1]++; cell[$1, n[$1]] = sprintf("%.3f/%.3f", $3, $4)
      p99[$1, n[$1]] = $4; l50[$1, n[$1]] = $7; l99[$1, n[$1]] = $8
      if ($5 != "-") { cpu[$1] += $5; nc[$1]++ }
      load[$1] = load[$1] (load[$1] == "" ? "" : " ") $6 }
    END {
      printf "  %-33s %s | %s | %s | %s | %s\n", "setup", "p50/p99 per round",
        "p99 median", "send lag p50/p99", "CPU/op", "load"
      for (k = 1; k <= 6; k++) {
        s = order[k]; line = ""
        for (i = 1; i <= n[s]; i++) {
          line = line " " cell[s, i]; v[i] = p99[s, i]
          a[i] = l50[s, i]; b[i] = l99[s, i]
        }
        printf "  %-33s%s | %.3f ms | %.3f/%.3f ms | %s us | %s\n", name[s],
          line, median(v, n[s]), median(a, n[s]), median(b, n[s]),
          nc[s] ? sprintf("%.1f", cpu[s] / nc[s]) : "-", load[s]
      }
    }' "$tmp/low"
fi

[ "${ETCD:-1}" = 0 ] && exit 0
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1
then
  echo
  echo "etcd: not installed (apt-get install -y etcd-server etcd-client);" \
    "chorus alone:"
  set -- $(chorus_run 1 group wo)
  echo "chorus write-only, durability group, $conns connections: $1 writes/s"
  exit 0
fi
ep=${ETCD_PORT:-23790}
initial=
for i in 0 1 2; do
  initial="$initial${initial:+,}e$i=http://127.0.0.1:$((ep + 10 + i))"
done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$tmp/etcd$i" --log-level error \
    --listen-client-urls "http://127.0.0.1:$((ep + i))" \
    --advertise-client-urls "http://127.0.0.1:$((ep + i))" \
    --listen-peer-urls "http://127.0.0.1:$((ep + 10 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ep + 10 + i))" \
    --initial-cluster "$initial" --initial-cluster-state new \
    --initial-cluster-token chorus-compare >"$tmp/etcd$i.log" 2>&1 &
  etcd_pids="$etcd_pids $!"
done
endpoints="127.0.0.1:$ep,127.0.0.1:$((ep + 1)),127.0.0.1:$((ep + 2))"
wait_for etcd etcdctl --endpoints="$endpoints" endpoint health
# check perf prints "PASS: Throughput is N writes/s" or "FAIL: Throughput
# too low: N writes/s" (the load asks for 8000 writes/s).
etcd_wps=$(etcdctl --endpoints="$endpoints" check perf --load=l 2>&1 |
  tr '\r' '\n' | awk '/Throughput/ { for (i = 1; i <= NF; i++)
    if ($(i + 1) == "writes/s") print $i }' | tail -1)
for pid in $etcd_pids; do
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
etcd_pids=
set -- $(chorus_run 1 group wo)
echo
echo "etcd 3 members, check perf --load=l: ${etcd_wps:-?} writes/s;" \
  "chorus write-only, durability group, $conns connections: $1 writes/s" \
  "(p99 $3 ms, $4 us/op): $(awk "BEGIN { print ${1:-0} / (${etcd_wps:-0} + 1e-9) }")x etcd"

