#!/bin/sh
# bench/storage/compare.sh: chorus's storage layer beside RocksDB's db_bench,
# same machine, same run, same key/value sizes and table settings, printed as
# ratios. Usage: bench/storage/compare.sh [NUM_KEYS]   (default 1000000)
set -eu
cd "$(dirname "$0")/../.."
num=${1:-1000000}

scripts/deps bench
if [ ! -f build-rel/build.ninja ]; then
  meson setup build-rel --buildtype=release >/dev/null
fi
ninja -C build-rel bench/storage/bench_store >/dev/null

work=$(mktemp -d /tmp/chorus-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# db_bench with the backend's settings: 64 MiB memtable and block cache,
# bloom filter of 10 bits, lz4, 16-byte keys, 100-byte values, WAL on.
common="--num=$num --value_size=100 --key_size=16 --compression_type=lz4 --seed=301 \
  --write_buffer_size=67108864 --cache_size=67108864 --bloom_bits=10 \
  --compression_ratio=1 --histogram=0"
db_bench --benchmarks=filluniquerandom,readrandom,readseq --db="$work/db" \
  $common >"$work/db_bench.txt" 2>&1
# fillsync: each write with sync=1, one fsync per write; fewer keys, since
# every one costs an fsync.
db_bench --benchmarks=fillsync --db="$work/dbsync" $common --num=$((num / 100)) \
  >"$work/db_bench_sync.txt" 2>&1
build-rel/bench/storage/bench_store --num "$num" --dir "$work/chorus" \
  >"$work/chorus.txt"

ops() { awk -v b="$1" '$1 == b { for (i = 1; i <= NF; i++) if ($(i+1) == "ops/sec;" || $(i+1) == "ops/sec") { print $i; exit } }' "$2"; }
res() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$work/chorus.txt"; }

cat "$work/chorus.txt" | grep -v '^RESULT'
echo
printf '%-36s %12s %12s %8s\n' "operation" "chorus" "db_bench" "ratio"
row() {
  printf '%-36s %12s %12s %8s\n' "$1" "$2" "$3" \
    "$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
}
row "put unsynced / filluniquerandom" "$(res put_unsynced)" "$(ops filluniquerandom "$work/db_bench.txt")"
row "get random / readrandom" "$(res get)" "$(ops readrandom "$work/db_bench.txt")"
row "scan / readseq" "$(res scan)" "$(ops readseq "$work/db_bench.txt")"
row "synced put, 1 writer / fillsync" "$(res sync1)" "$(ops fillsync "$work/db_bench_sync.txt")"
row "synced put, 8 writers / fillsync" "$(res sync8)" "$(ops fillsync "$work/db_bench_sync.txt")"
row "synced put, 64 writers / fillsync" "$(res sync64)" "$(ops fillsync "$work/db_bench_sync.txt")"
