#!/bin/sh
# tls-ab.sh: what does TLS cost? Alternating chorus-bench runs against a
# fresh 3-node cluster without TLS (off), then one with client and peer
# TLS 1.3 (tls: chorus-bench --tls, certificates from scripts/mkcerts),
# back to back, ROUNDS times; prints every run, the mean and spread
# (min..max) of node CPU per request (µs/op) and throughput per side, and
# the ratios tls/off. Single runs on a shared VM move by ±15%: read the
# means of alternating rounds, never one run.
#
# Usage (from the repository root, after a release build):
#   bench/chorus/tls-ab.sh BUILD
# Environment: ROUNDS (default 4), DURATION (s, default 8), CONNS (50),
# INFLIGHT (1), DURABILITY (none), WORKLOAD (rw50), PEER_TLS (required;
# off: TLS on client links only), RATE (requests/s: an open loop at that
# rate; default a closed loop). In a closed loop TLS also slows the
# single-threaded bench client, so the nodes see fewer requests per loop
# iteration and batch less: RATE, below both sides' closed-loop
# throughput, compares them at the same load.
set -eu

b=${1:?usage: tls-ab.sh BUILD}
bench=$b/bench/chorus/chorus-bench
rounds=${ROUNDS:-4}
duration=${DURATION:-8}
conns=${CONNS:-50}
inflight=${INFLIGHT:-1}
durability=${DURABILITY:-none}
workload=${WORKLOAD:-rw50}
peer_tls=${PEER_TLS:-required}
for f in "$bench" "$b/node/chorusd"; do
  [ -x "$f" ] || { echo "tls-ab.sh: $f not built" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/chorus/ab-lib.sh
. "$(dirname "$0")/ab-lib.sh"
"$(dirname "$0")/../../scripts/mkcerts" "$tmp/certs" >/dev/null

# run off|tls: "ops/s cpu_us_per_op" of one measured run.
run() {
  tls=""
  [ "$1" = tls ] && tls="--tls $tmp/certs --peer-tls $peer_tls"
  # shellcheck disable=SC2086
  "$bench" --start-cluster 3 --chorusd "$b/node/chorusd" $tls \
    --durability "$durability" --replicas 3 -c "$conns" -p "$inflight" \
    -d "$duration" --warmup 2 --workload "$workload" --keys 100000 \
    --value-size 100 --uniform --read QUORUM --write QUORUM \
    ${RATE:+--rate "$RATE"} --csv "$tmp/run.csv" >"$tmp/run.out" 2>&1 || {
    cat "$tmp/run.out" >&2
    return 1
  }
  # columns: 10 op, 13 ops_per_s, 22 cpu_us_per_op
  awk -F, '$10 == "all" { printf "%.0f %s\n", $13, $22 }' "$tmp/run.csv"
  rm -f "$tmp/run.csv"
}

echo "TLS A/B: $workload, $conns connections x $inflight, durability $durability,"
echo "3 nodes N=3 QUORUM, $duration s per run, $rounds rounds, peer TLS $peer_tls${RATE:+, open loop at $RATE/s}"
ab_rounds "$rounds" off tls
ab_summary off tls
