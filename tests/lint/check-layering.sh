#!/bin/sh
# check-layering.sh: the dependency rules of docs/ARCHITECTURE.md, enforced.
#   - no libuv, RocksDB, clock or OS-randomness calls in protocol logic
#     (crdt/ ring/ replication/ and storage/ outside the RocksDB backend);
#   - rocksdb/c.h only in storage/store_rocksdb.c;
#   - msgpack only in codec files (*_codec.c) and tests/bench/fuzz code.
# Prints each violation as file:line and exits 1 when there is any.
set -u
root=${1:-$(dirname "$0")/../..}
cd "$root" || exit 2

violations=$(mktemp)
trap 'rm -f "$violations"' EXIT

# report: records each grep -n line on stdin as a violation of rule $1,
# skipping comment lines (they may name a function to explain a rule).
report() {
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|/\*|//)' |
    sed "s|^|layering: $1: |" >>"$violations"
}

logic_files=$(find crdt ring replication storage -name '*.[ch]' \
  ! -name 'store_rocksdb.*' 2>/dev/null)
if [ -n "$logic_files" ]; then
  # shellcheck disable=SC2086
  grep -nE '\buv_[a-z_]+\(|#include <uv\.h>|\brocksdb_[a-z_]+\(|#include <rocksdb/|\bclock_gettime\(|\bgettimeofday\(|\btime\(NULL\)|\brand\(\)|\brandom\(\)|\bgetrandom\(|/dev/urandom|\bsocket\(' \
    $logic_files | report "I/O, clock or OS randomness in protocol logic"
fi

grep -rnE '#include <rocksdb/' --include='*.[ch]' . 2>/dev/null |
  grep -vE '^\./(storage/store_rocksdb\.c|build[^/]*/)' |
  report "rocksdb/c.h outside storage/store_rocksdb.c"

grep -rnE '#include <msgpack\.h>|\bmsgpack_[a-z_]+\(' --include='*.[ch]' \
  crdt ring replication storage client node 2>/dev/null |
  grep -vE '_codec\.[ch]:' |
  report "msgpack outside a codec file"

if [ -s "$violations" ]; then
  cat "$violations"
  exit 1
fi
echo "layering: ok"
