#!/bin/sh
# check-libchorus-needed.sh: the installed client library links only what a
# client needs (libuv, msgpack-c, xxhash, libsodium for passwords,
# OpenSSL's libssl and libcrypto for TLS, libc, libm, pthread): its dynamic
# section must not NEED liburcu (the ring's RCU
# publication) or librocksdb (storage), which only chorusd uses. A NEEDED
# entry appears when a client object reaches a symbol of one of them, e.g.
# through a ring, swim or storage file pulled into libchorus.
#   check-libchorus-needed.sh path/to/libchorus.so
# Exits 77 (skipped) when neither readelf nor objdump is installed.
set -u
lib=${1:?usage: check-libchorus-needed.sh libchorus.so}

if command -v readelf >/dev/null 2>&1; then
  needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p') || exit 2
elif command -v objdump >/dev/null 2>&1; then
  needed=$(objdump -p "$lib" | awk '$1 == "NEEDED" { print $2 }') || exit 2
else
  echo "libchorus-needed: skipped: neither readelf nor objdump is installed"
  exit 77
fi
if [ -z "$needed" ]; then
  echo "libchorus-needed: $lib has no NEEDED entries (not a shared library?)"
  exit 2
fi

echo "libchorus-needed: $lib needs: $(printf '%s\n' "$needed" | paste -sd ' ' -)"
bad=$(printf '%s\n' "$needed" | grep -E '^lib(urcu|rocksdb)')
if [ -n "$bad" ]; then
  printf '%s\n' "$bad" | sed 's/^/libchorus-needed: a client must not need /'
  exit 1
fi
echo "libchorus-needed: ok"
