#!/bin/sh
# auth-ab.sh: what do logins cost? Alternating chorus-bench runs against a
# fresh 3-node cluster with --auth off (off), then one with --auth required
# and every client logged in (auth: chorus-bench --user, the nodes' first
# admin), back to back, ROUNDS times; prints every run, the mean and spread
# (min..max) of node CPU per request (µs/op) and throughput per side, and
# the ratios auth/off. A login is per connection and the role check one
# lookup per request, so the ratio should be ~1: read the means of
# alternating rounds, never one run (a shared VM moves single runs ±15%).
#
# Usage (from the repository root, after a release build):
#   bench/chorus/auth-ab.sh BUILD
# The started cluster's first admin has cheap Argon2id costs (chorus-bench
# passes --admin-kdf 1:64): each of the CONNS clients derives its keys
# once, and at the default costs (64 MiB, ~0.1 s each) that would spill
# into the measured run on a small machine.
# Environment: ROUNDS (default 4), DURATION (s, default 8), WARMUP (s,
# default 2), CONNS (50), ORDER ("off auth"; "auth off" to check the
# order does not decide),
# INFLIGHT (1), DURABILITY (none), WORKLOAD (rw50).
set -eu

b=${1:?usage: auth-ab.sh BUILD}
bench=$b/bench/chorus/chorus-bench
rounds=${ROUNDS:-4}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
conns=${CONNS:-50}
inflight=${INFLIGHT:-1}
durability=${DURABILITY:-none}
workload=${WORKLOAD:-rw50}
for f in "$bench" "$b/node/chorusd"; do
  [ -x "$f" ] || { echo "auth-ab.sh: $f not built" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/chorus/ab-lib.sh
. "$(dirname "$0")/ab-lib.sh"
CHORUS_PASSWORD=$(head -c 18 /dev/urandom | base64)
export CHORUS_PASSWORD

# run off|auth: "ops/s cpu_us_per_op" of one measured run.
run() {
  user=""
  [ "$1" = auth ] && user="--user bench"
  # shellcheck disable=SC2086
  "$bench" --start-cluster 3 --chorusd "$b/node/chorusd" $user \
    --durability "$durability" --replicas 3 -c "$conns" -p "$inflight" \
    -d "$duration" --warmup "$warmup" --workload "$workload" --keys 100000 \
    --value-size 100 --uniform --read QUORUM --write QUORUM \
    --csv "$tmp/run.csv" >"$tmp/run.out" 2>&1 || {
    cat "$tmp/run.out" >&2
    return 1
  }
  # columns: 10 op, 13 ops_per_s, 22 cpu_us_per_op
  awk -F, '$10 == "all" { printf "%.0f %s\n", $13, $22 }' "$tmp/run.csv"
  rm -f "$tmp/run.csv"
}

echo "auth A/B: $workload, $conns connections x $inflight, durability $durability,"
echo "3 nodes N=3 QUORUM, $duration s per run, $rounds rounds"
# shellcheck disable=SC2086 # ORDER is two words
ab_rounds "$rounds" ${ORDER:-off auth}
ab_summary off auth
