#!/bin/sh
# ab.sh: is build B slower than build A? Alternating runs of chorus-bench
# (from build A, so the client is the same) against a fresh 3-node cluster
# of A's chorusd, then B's, back to back, ROUNDS times; prints every run and
# the means of node CPU per request (µs/op, the figure a regression shows
# in first) and throughput. Single runs on a shared VM move by ±15%: read
# the means of alternating rounds, never one run.
#
# Usage (from the repository root, after a release build of each tree):
#   bench/chorus/ab.sh BUILD_A BUILD_B
# Environment: ROUNDS (default 4), DURATION (s, default 8), CONNS (50),
# INFLIGHT (1), DURABILITY (none), WORKLOAD (rw50), OPS (unset: each run
# lasts DURATION; set: each run counts OPS requests instead, so both sides
# do the same work. Prefer it where the figure depends on how much was
# written: a flush of the data memtable sorts all 64 MiB of it, about a
# fifth of a node's CPU over a run that includes one, and a timed run at
# the faster side's throughput pays for more of them).
set -eu

a=${1:?usage: ab.sh BUILD_A BUILD_B}
b=${2:?usage: ab.sh BUILD_A BUILD_B}
bench=$a/bench/chorus/chorus-bench
rounds=${ROUNDS:-4}
duration=${DURATION:-8}
conns=${CONNS:-50}
inflight=${INFLIGHT:-1}
durability=${DURABILITY:-none}
workload=${WORKLOAD:-rw50}
len_flag=-d len_val=$duration length="$duration s"
if [ -n "${OPS:-}" ]; then len_flag=-n len_val=$OPS length="$OPS requests"; fi
for f in "$bench" "$a/node/chorusd" "$b/node/chorusd"; do
  [ -x "$f" ] || { echo "ab.sh: $f not built" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/chorus/ab-lib.sh
. "$(dirname "$0")/ab-lib.sh"

# run A|B: "ops/s cpu_us_per_op" of one measured run of that build.
run() {
  if [ "$1" = A ]; then dir=$a; else dir=$b; fi
  "$bench" --start-cluster 3 --chorusd "$dir/node/chorusd" \
    --durability "$durability" --replicas 3 -c "$conns" -p "$inflight" \
    "$len_flag" "$len_val" --warmup 2 --workload "$workload" --keys 100000 \
    --value-size 100 --uniform --read QUORUM --write QUORUM \
    --csv "$tmp/run.csv" >"$tmp/run.out" 2>&1 || {
    cat "$tmp/run.out" >&2
    return 1
  }
  # columns: 10 op, 13 ops_per_s, 22 cpu_us_per_op
  awk -F, '$10 == "all" { printf "%.0f %s\n", $13, $22 }' "$tmp/run.csv"
  rm -f "$tmp/run.csv"
}

echo "A/B: $workload, $conns connections x $inflight, durability $durability,"
echo "3 nodes N=3 QUORUM, $length per run, $rounds rounds"
echo "A = $a"
echo "B = $b"
ab_rounds "$rounds" A B
ab_summary A B
