#!/bin/sh
# cas_vs_etcd.sh: compare-and-set (issue 23) beside plain QUORUM writes on
# one 3-node chorus cluster, and beside a 3-member etcd, on this machine in
# one session at the same concurrency.
#
#   chorus  3 chorusd on loopback, --replicas 3, --durability group (a
#           write is acknowledged once a quorum has it on disk, as etcd's);
#           chorus-bench --seeds against that one cluster: --workload wo
#           (blind QUORUM puts, 100 B) and --workload cas (if-value
#           increments of the value last seen; if-absent "0" on a key not
#           seen yet; one Paxos round of prepare and propose, more under
#           contention), token-aware.
#   etcd    3 members on loopback (the Debian etcd-server 3.4), driven by
#           etcd_cas.py over the v3 JSON gateway: put, and the same
#           increments as one txn each (compare VALUE == seen, put seen+1,
#           else range).
#
# Rounds alternate A/B (chorus put, chorus cas, etcd put, etcd cas) ROUNDS
# times, so load from elsewhere on the machine hits every row alike; each
# row prints every round and the median; the ratios are of medians.
#
# Usage (from the repository root, after ninja -C BUILD):
#   bench/chorus/cas_vs_etcd.sh [BUILD_DIR]
# Environment: DURATION (s per run, default 5), CONNS (default 16), ROUNDS
# (default 3), KEYS (default 100000; a few keys measure contention),
# DURABILITY (chorus's, default group; none acknowledges before fsync,
# which etcd never does), PORT (first of 3 chorus ports), ETCD_PORT
# (first of 6), ETCD=0 (chorus rows only), LOCKS=1 (also lock acquire then
# release: chorus-bench --workload lock beside etcd's lock API on a lease),
# KEEP=1 (keep the nodes' folders and logs).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-rel}
bench=$build/bench/chorus/chorus-bench
chorusd=$build/node/chorusd
duration=${DURATION:-5}
conns=${CONNS:-16}
rounds=${ROUNDS:-3}
keys=${KEYS:-100000}
durability=${DURABILITY:-group}
cp=${PORT:-$((26000 + $$ % 3000))}
ep=${ETCD_PORT:-$((29100 + $$ % 800))}

for f in "$bench" "$chorusd"; do
  [ -x "$f" ] || { echo "cas_vs_etcd.sh: $f not built" >&2; exit 1; }
done
for tool in etcd etcdctl python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "cas_vs_etcd.sh: $tool not found (apt-get install -y etcd-server" \
      "etcd-client python3)" >&2
    exit 1
  }
done

tmp=$(mktemp -d /tmp/chorus-cas-etcd-XXXXXX)
pids=
cleanup() {
  for pid in $pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $tmp" >&2; else
    rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {
  what=$1
  shift
  tries=0
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 150 ]; then
      echo "cas_vs_etcd.sh: $what did not start (logs in $tmp)" >&2
      trap - EXIT
      exit 1
    fi
    sleep 0.2
  done
}

seeds="127.0.0.1:$cp,127.0.0.1:$((cp + 1)),127.0.0.1:$((cp + 2))"
for i in 0 1 2; do
  "$chorusd" --id "c$i" --listen "127.0.0.1:$((cp + i))" --data "$tmp/c$i" \
    --seeds "$seeds" --cluster cas-etcd --replicas 3 --durability "$durability" \
    --profile local 2>"$tmp/c$i.log" &
  pids="$pids $!"
done
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
    --initial-cluster-token cas-etcd >"$tmp/etcd$i.log" 2>&1 &
  pids="$pids $!"
done
endpoints="127.0.0.1:$ep,127.0.0.1:$((ep + 1)),127.0.0.1:$((ep + 2))"
wait_for etcd etcdctl --endpoints="$endpoints" endpoint health
# chorus: a CAS through every node (a majority of live replicas needed).
cli=$build/client/chorus
chorus_up() {
  for i in 0 1 2; do
    "$cli" -H "127.0.0.1:$((cp + i))" --cluster cas-etcd \
      get "probe$i" --serial >/dev/null 2>&1 || return 1
  done
}
wait_for chorus chorus_up

# chorus_run WORKLOAD: "ops/s p50 p99" over the CSV's "all" row.
chorus_run() {
  "$bench" --seeds "$seeds" --cluster cas-etcd -c "$conns" -p 1 \
    -d "$duration" --warmup 1 --workload "$1" --keys "$keys" \
    --value-size 100 --uniform --write QUORUM --csv "$tmp/c.csv" \
    >"$tmp/c.out" 2>&1 || { cat "$tmp/c.out" >&2; return 1; }
  awk -F, '$10 == "all" { printf "%.0f %.3f %.3f\n", $13, $16, $18 }' \
    "$tmp/c.csv"
  rm -f "$tmp/c.csv"
}
etcd_run() {
  python3 "$root/bench/chorus/etcd_cas.py" "$endpoints" "$1" "$conns" \
    "$duration" "$keys" | awk '{ printf "%s %s %s\n", $1, $2, $3 }'
}

: >"$tmp/rows"
r=1
while [ $r -le "$rounds" ]; do
  echo "chorus-put $(chorus_run wo)" >>"$tmp/rows"
  echo "chorus-cas $(chorus_run cas)" >>"$tmp/rows"
  if [ "${LOCKS:-0}" = 1 ]; then
    echo "chorus-lock $(chorus_run lock)" >>"$tmp/rows"
  fi
  if [ "${ETCD:-1}" != 0 ]; then
    echo "etcd-put $(etcd_run put)" >>"$tmp/rows"
    echo "etcd-cas $(etcd_run cas)" >>"$tmp/rows"
    if [ "${LOCKS:-0}" = 1 ]; then
      echo "etcd-lock $(etcd_run lock)" >>"$tmp/rows"
    fi
  fi
  r=$((r + 1))
done

echo "CAS vs QUORUM writes vs etcd: $conns connections, 1 in flight each," \
  "$keys keys uniform, $duration s x $rounds rounds alternating;" \
  "host $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "chorus 3 nodes N=3 durability $durability; etcd $(etcd --version |
  awk 'NR == 1 { print $3 }') 3 members"
printf '\n%-11s | %-27s | %8s %8s %8s\n' row "ops/s per round" "ops/s" \
  "p50 ms" "p99 ms"
# Medians per row (of each column separately).
for row in chorus-put chorus-cas chorus-lock etcd-put etcd-cas etcd-lock; do
  grep -q "^$row " "$tmp/rows" || continue
  grep "^$row " "$tmp/rows" | awk -v row="$row" '
    { t[NR] = $2; a[NR] = $3; b[NR] = $4; all = all sprintf("%s ", $2) }
    function med(x, n,   i, j, s) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (x[j] < x[i]) { s = x[i]; x[i] = x[j]; x[j] = s }
      return x[int((n + 1) / 2)]
    }
    END { printf "%-11s | %-27s | %8.0f %8.2f %8.2f\n", row, all,
      med(t, NR), med(a, NR), med(b, NR) }'
done | tee "$tmp/med"
ratio() { # ratio ROW_A ROW_B COLUMN(3 ops/s, 4 p50, 5 p99)
  awk -v a="$1" -v b="$2" -v c="$3" '
    { v[$1] = $c }
    END { printf "%.2f", v[a] / (v[b] + 1e-9) }' "$tmp/flat"
}
# flatten: row ops p50 p99
awk -F'|' '{ split($1, r, " "); split($3, v, " "); print r[1], v[1], v[2], v[3] }' \
  "$tmp/med" >"$tmp/flat"
echo
echo "chorus cas / chorus put: throughput $(ratio chorus-cas chorus-put 2)x," \
  "p50 $(ratio chorus-cas chorus-put 3)x, p99 $(ratio chorus-cas chorus-put 4)x"
echo "etcd cas / etcd put:     throughput $(ratio etcd-cas etcd-put 2)x," \
  "p50 $(ratio etcd-cas etcd-put 3)x, p99 $(ratio etcd-cas etcd-put 4)x"
echo "chorus cas / etcd cas:   throughput $(ratio chorus-cas etcd-cas 2)x," \
  "p50 $(ratio chorus-cas etcd-cas 3)x, p99 $(ratio chorus-cas etcd-cas 4)x"
echo "chorus put / etcd put:   throughput $(ratio chorus-put etcd-put 2)x," \
  "p50 $(ratio chorus-put etcd-put 3)x, p99 $(ratio chorus-put etcd-put 4)x"
if [ "${LOCKS:-0}" = 1 ]; then
  echo "chorus lock / chorus put: throughput $(ratio chorus-lock chorus-put 2)x," \
    "p50 $(ratio chorus-lock chorus-put 3)x, p99 $(ratio chorus-lock chorus-put 4)x"
  if [ "${ETCD:-1}" != 0 ]; then
    echo "chorus lock / etcd lock: throughput" \
      "$(ratio chorus-lock etcd-lock 2)x, p50 $(ratio chorus-lock etcd-lock 3)x," \
      "p99 $(ratio chorus-lock etcd-lock 4)x"
  fi
  echo "(lock rows: acquire and release each count as one operation)"
fi
echo "(etcd rows: a Python client over the JSON gateway; its own cost is" \
  "in etcd's latencies)"
