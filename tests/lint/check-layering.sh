#!/bin/sh
# check-layering.sh: the dependency rules of docs/ARCHITECTURE.md, enforced.
#   - no libuv, RocksDB, clock or OS-randomness calls in protocol logic
#     (crdt/ ring/ with ring/swim/, replication/, storage/ outside the
#     RocksDB backend) nor in the wire protocol (client/wire/) nor in the
#     TLS engine (client/tls/);
#   - the same, with any time(), rand() or random() call, in the sans-I/O
#     node core (node/core/), once that folder exists, and in the pure
#     half of the HTTP listener (node/http/);
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

# forbid RULE PATTERN FILE...: reports the lines of the files that match
# PATTERN (nothing when no file is given, e.g. a folder not yet created).
forbid() {
  rule=$1
  pattern=$2
  shift 2
  [ $# -gt 0 ] || return 0
  grep -nE "$pattern" "$@" /dev/null | report "$rule"
}

# sources DIR...: the C files under the folders that exist.
sources() {
  for d in "$@"; do
    [ -d "$d" ] && find "$d" -name '*.[ch]'
  done
}

io='\buv_[a-z_]+\(|#include <uv\.h>|\brocksdb_[a-z_]+\(|#include <rocksdb/|\bsocket\('
clock='\bclock_gettime\(|\bgettimeofday\(|\btime\(NULL\)|\brand\(\)|\brandom\(\)|\bgetrandom\(|/dev/urandom'
# The node core takes `now` in its events: no time source at all.
core_clock='\bclock_gettime\(|\bgettimeofday\(|\btime\(|\brand\(|\brandom\(|\bgetrandom\(|/dev/urandom'

# shellcheck disable=SC2046
forbid "I/O, clock or OS randomness in protocol logic" "$io|$clock" \
  $(sources crdt ring replication storage | grep -v '/store_rocksdb\.')
# shellcheck disable=SC2046
forbid "I/O, clock or OS randomness in the wire protocol or TLS engine" "$io|$clock" \
  $(sources client/wire client/tls)
# shellcheck disable=SC2046
forbid "I/O, clock or randomness in the sans-I/O node core" "$io|$core_clock" \
  $(sources node/core)
# shellcheck disable=SC2046
forbid "I/O, clock or randomness in the pure HTTP module" "$io|$core_clock" \
  $(sources node/http)

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
