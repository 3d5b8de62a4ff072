#!/usr/bin/env bash
# Builds bench/crypto_bench.cpp (libsodium, OpenSSL) and runs it on 1 MiB and
# on 64 KiB (the store's default block) buffers. A benchmark, not a test.
#
#   bash bench/crypto_bench.sh [SECONDS_PER_ROW]       (default 1.5)
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
read -r -a flags <<<"$(pkg-config --cflags --libs libsodium libcrypto)"
g++ -std=c++20 -O2 -o "$out/crypto_bench" "$SCRIPT_DIR/crypto_bench.cpp" "${flags[@]}"
secs=${1:-1.5}
"$out/crypto_bench" $((1 << 20)) "$secs"
"$out/crypto_bench" $((64 << 10)) "$secs"
