#!/bin/sh
# bench/stream/stream.sh: range streaming end to end on real processes. A
# 3-node cluster (N=3) on loopback is loaded with KEYS objects of VALUE
# bytes; a 4th node joins and pulls its ranges (STREAM_PULL/STREAM_CHUNK,
# docs/ARCHITECTURE.md, issue 19). Printed: the time from the joiner's start
# to its streams done (stream.ranges_done = stream.ranges) and to the
# cluster finishing the change (the joiner `normal`), the streaming rate in
# MB/s and keys/s, the same rate as a ratio of one plain ordered scan of a
# holder's store (bench_scan --scan, the same RocksDB data read by
# store_iter), and foreground throughput and p99 (chorus-bench, rw50 at
# QUORUM) before and during the join.
#
#   bench/stream/stream.sh [--build DIR] [--keys N] [--value-size B]
#       [--mbps M] [--seconds S] [--template DIR] [--save-template DIR]
#       [--port-base P] [--chorusd PATH]
#
# --build: a build folder with node/chorusd, client/chorus, bench/chorus/
#   chorus-bench and bench/stream/bench_scan (default build-rel, made with
#   --buildtype=release when missing).
# --chorusd: the daemon to run (default: the build's), e.g. an older build's
#   to compare with the same client and baseline programs.
# --mbps: the joiner's --stream-mbps (default 0: no throttle, so the rate
#   measured is the serving side's and the puller's).
# --seconds: foreground load per phase (default 10).
# --save-template DIR / --template DIR: loading 200k keys takes a minute or
#   more; the loaded, stopped founders' folders can be kept and reused (a
#   reopen flushes the memtables: the foreground load during the join
#   writes new ones).
set -eu
cd "$(dirname "$0")/../.."
build=build-rel keys=200000 vsize=1024 mbps=0 secs=10 template="" save=""
base=7701 chorusd=""
while [ $# -gt 0 ]; do
  case "$1" in
  --build) build=$2 ;;
  --keys) keys=$2 ;;
  --value-size) vsize=$2 ;;
  --mbps) mbps=$2 ;;
  --seconds) secs=$2 ;;
  --template) template=$2 ;;
  --save-template) save=$2 ;;
  --port-base) base=$2 ;;
  --chorusd) chorusd=$2 ;;
  *) echo "usage: see the head of $0" >&2; exit 2 ;;
  esac
  shift 2
done
if [ "$build" = build-rel ] && [ ! -f build-rel/build.ninja ]; then
  meson setup build-rel --buildtype=release >/dev/null
fi
if [ -f "$build/build.ninja" ]; then
  ninja -C "$build" node/chorusd client/chorus bench/chorus/chorus-bench \
    bench/stream/bench_scan >/dev/null
fi
[ -n "$chorusd" ] || chorusd="$build/node/chorusd"
work=$(mktemp -d /tmp/chorus-stream-XXXXXX)
pids=""
stop() {
  [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  pids=""
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT INT TERM

seeds="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
now() { date +%s.%N; }
node() { # node I [extra flags]: starts n$I
  i=$1
  shift
  "$chorusd" --id "n$i" --listen "127.0.0.1:$((base + i - 1))" \
    --data "$work/n$i" --seeds "$seeds" --replicas 3 --profile local \
    --rack "r$i" --durability group "$@" 2>>"$work/n$i.log" &
  pids="$pids $!"
}
# normal_count PORT: members `normal` in that node's metadata.
normal_count() {
  "$build/client/chorus" -H "127.0.0.1:$1" --json cluster status 2>/dev/null |
    grep -o '"state":"normal"' | wc -l
}
# stat PORT NAME: one status counter.
stat() {
  "$build/client/chorus" -H "127.0.0.1:$1" --json status 2>/dev/null |
    grep -o "\"$2\":-\?[0-9]*" | head -n 1 | cut -d: -f2
}
wait_normal() { # wait_normal PORT COUNT SECONDS
  t0=$(now)
  until [ "$(normal_count "$1")" -ge "$2" ]; do
    if [ "$(echo "$(now) - $t0 > $3" | bc)" = 1 ]; then
      echo "stream.sh: $2 normal members not seen in $3 s" >&2
      tail -n 5 "$work"/n*.log >&2
      exit 1
    fi
    sleep 0.2
  done
}
fg() { # fg OUT: the foreground load for $secs s, JSON into OUT
  "$build/bench/chorus/chorus-bench" --seeds "$seeds" --workload rw50 \
    --keys "$keys" --value-size "$vsize" -c 4 -p 4 --read QUORUM \
    --write QUORUM -d "$secs" --warmup 1 --json >"$1" 2>"$1.err"
}
fg_line() { # fg_line LABEL JSON
  ops=$(grep -o '"phase":"all","seconds":[0-9.]*,"ok":[0-9]*,"errors":[0-9]*,"ops_per_s":[0-9.]*' "$2" |
    sed 's/.*"ops_per_s"://')
  p99=$(grep -o '"all":{[^}]*}' "$2" | grep -o '"p99":[0-9.]*' | cut -d: -f2)
  printf '%-34s %10s ops/s   p99 %8s ms\n' "$1" "$ops" "$p99"
}

if [ -n "$template" ]; then
  for i in 1 2 3; do cp -a "$template/n$i" "$work/n$i"; done
fi
for i in 1 2 3; do node "$i"; done
wait_normal "$base" 3 60
if [ -z "$template" ]; then
  t0=$(now)
  "$build/bench/chorus/chorus-bench" --seeds "$seeds" --workload wo \
    --keys "$keys" --value-size "$vsize" --preload -n 1 --warmup 0 \
    -c 16 -p 8 --write QUORUM >/dev/null 2>"$work/preload.err"
  echo "loaded $keys keys x $vsize bytes in $(echo "$(now) - $t0" | bc) s"
fi
if [ -n "$save" ]; then
  stop
  rm -rf "$save"
  mkdir -p "$save"
  for i in 1 2 3; do cp -a "$work/n$i" "$save/n$i"; done
  for i in 1 2 3; do node "$i"; done
  wait_normal "$base" 3 60
fi

fg "$work/fg_before.json"
# The join, with the same load running.
fg "$work/fg_during.json" &
fgpid=$!
t0=$(now)
node 4 --stream-mbps "$mbps"
p4=$((base + 3))
streamed="" finished="" seen=0
while [ -z "$finished" ]; do
  sleep 0.2
  el=$(echo "$(now) - $t0" | bc)
  if [ -z "$streamed" ]; then
    r=$(stat "$p4" stream.ranges || true)
    d=$(stat "$p4" stream.ranges_done || true)
    [ "${r:-0}" -gt 0 ] && seen=1
    # Done: every range held, or the plan already dropped (the change
    # finished between two polls).
    if { [ "${r:-0}" -gt 0 ] && [ "$r" = "$d" ]; } ||
      { [ "$seen" = 1 ] && [ "${r:-1}" = 0 ]; }; then
      streamed=$el
    fi
  fi
  if [ -n "$streamed" ] && [ "$(normal_count "$base")" -ge 4 ]; then
    finished=$el
  fi
  if [ "$(echo "$el / 5 > ${last_said:-0} + 1" | bc)" = 1 ]; then
    last_said=$(echo "$el / 5" | bc)
    echo "  $el s: n4 stream.ranges_done ${d:-} of ${r:-}," \
      "stream.keys $(stat "$p4" stream.keys)" >&2
  fi
  if [ "$(echo "$el > 600" | bc)" = 1 ]; then
    echo "stream.sh: the join did not finish in 600 s" >&2
    exit 1
  fi
done
# The joiner's log times the streams to the millisecond: from its start to
# its "every range held" line.
ms_of() { # ms_of LOGLINE: its ISO time in ms since the epoch
  date -d "$(echo "$1" | cut -d' ' -f1)" +%s%3N
}
l0=$(head -n 1 "$work/n4.log")
lp=$(grep -m 1 'this node gains' "$work/n4.log" || true)
l1=$(grep -m 1 'every range held' "$work/n4.log" || true)
pulling=$streamed
if [ -n "$l0" ] && [ -n "$l1" ]; then
  streamed=$(echo "scale=3; ($(ms_of "$l1") - $(ms_of "$l0")) / 1000" | bc)
  pulling=$streamed
  [ -z "$lp" ] ||
    pulling=$(echo "scale=3; ($(ms_of "$l1") - $(ms_of "$lp")) / 1000" | bc)
fi
skeys=$(stat "$p4" stream.keys)
sbytes=$(stat "$p4" stream.bytes)
sbatches=$(stat "$p4" stream.batches)
wait "$fgpid" || true
stop
"$build/bench/stream/bench_scan" --scan "$work/n1" >"$work/scan.txt"
# The second (warm) scan: the holders served from a warm cache too.
scan_bytes=$(grep 'RESULT scan_bytes' "$work/scan.txt" | tail -n 1 | cut -d' ' -f3)
scan_keys=$(grep 'RESULT scan_keys' "$work/scan.txt" | tail -n 1 | cut -d' ' -f3)
scan_s=$(grep 'RESULT scan_seconds' "$work/scan.txt" | tail -n 1 | cut -d' ' -f3)

echo "join of n4 (--stream-mbps $mbps): streams done after $streamed s" \
  "($pulling s from its plan to its last range), change finished (n4" \
  "normal) after $finished s"
echo "streamed $skeys keys, $sbytes bytes in $sbatches batches"
awk -v k="$skeys" -v b="$sbytes" -v t="$pulling" -v sk="$scan_keys" \
  -v sb="$scan_bytes" -v ss="$scan_s" 'BEGIN {
  printf "%-34s %10.1f MB/s %12.0f keys/s\n", "streaming (plan to last range)", b / t / 1e6, k / t
  printf "%-34s %10.1f MB/s %12.0f keys/s\n", "one ordered scan of n1 (warm)", sb / ss / 1e6, sk / ss
  printf "%-34s %10.4f      %12.4f\n", "ratio streaming / scan", (b / t) / (sb / ss), (k / t) / (sk / ss)
}'
fg_line "foreground before the join" "$work/fg_before.json"
fg_line "foreground during the join" "$work/fg_during.json"
echo "(foreground: chorus-bench rw50 QUORUM, 4x4 in flight, ${secs} s from the join's start)"
