#!/usr/bin/env bash
# Builds and runs the native engine's C++ tests (scheduler on simulated time;
# engine on a real file with O_DIRECT and io_uring), without Node.
#   bash scripts/native-test.sh           optimised build
#   bash scripts/native-test.sh --asan    under AddressSanitizer and UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-std=c++17 -Wall -Wextra -Werror -g -O1)
if [ "${1:-}" = "--asan" ]; then
  flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
c++ "${flags[@]}" -o "$out/scheduler_test" native/src/scheduler.cc native/test/scheduler_test.cc
c++ "${flags[@]}" -o "$out/engine_test" native/src/scheduler.cc native/src/engine.cc native/test/engine_test.cc -luring -lpthread
# The C++ load generator bench:nvme runs: built here so a change that breaks it fails the tests.
c++ "${flags[@]}" -o "$out/engine_bench" native/src/scheduler.cc native/src/engine.cc native/test/engine_bench.cc -luring -lpthread
"$out/scheduler_test"
POCKET_TEST_DIR="${POCKET_TEST_DIR:-/var/tmp}" "$out/engine_test"
