#!/usr/bin/env bash
# Builds and runs the native C++ tests (scheduler on simulated time; CRC-32 against a reference;
# engine on a real file with O_DIRECT and io_uring), without Node.
#   bash scripts/native-test.sh           optimised build
#   bash scripts/native-test.sh --asan    under AddressSanitizer and UndefinedBehaviorSanitizer
#   bash scripts/native-test.sh --assert-cost [ROUNDS] [SECONDS]
#       what POCKET_ASSERT costs: engine_bench built as bench:nvme builds it (-O2), with assertions
#       on and compiled out (-DPOCKET_ASSERT_OFF, for this measurement only), alternating, ROUNDS
#       (default 5) runs of SECONDS (default 2) per case; prints each run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One bench case ("RW BLOCK_BYTES DEPTH") on FILE, ROUNDS times each way, alternating which goes first;
# prints each run, then the median IOPS each way and the median of the rounds' on/off ratios.
assert_cost_case() {
  local file="$1" case="$2" rounds="$3" seconds="$4"
  : >"$out/on.iops"
  : >"$out/off.iops"
  : >"$out/ratio"
  for ((r = 1; r <= rounds; r++)); do
    local order=(on off)
    ((r % 2 == 0)) && order=(off on)
    for build in "${order[@]}"; do
      # shellcheck disable=SC2086
      line=$("$out/bench_$build" "$file" $case "$seconds")
      echo "  $case round $r assertions $build: $line"
      sed -E 's/.*"iops":([0-9.]+).*/\1/' <<<"$line" >"$out/$build.last"
      cat "$out/$build.last" >>"$out/$build.iops"
    done
    awk -v on="$(cat "$out/on.last")" -v off="$(cat "$out/off.last")" 'BEGIN { print on / off }' >>"$out/ratio"
  done
  awk -v c="$case" -v on="$(median <"$out/on.iops")" -v off="$(median <"$out/off.iops")" -v ratio="$(median <"$out/ratio")" \
    'BEGIN { printf "%s: median IOPS on %.0f, off %.0f; median on/off of the rounds %.3f\n", c, on, off, ratio }'
}

assert_cost() {
  local rounds="${1:-5}" seconds="${2:-2}"
  local sources=(native/src/scheduler.cc native/src/engine.cc native/test/engine_bench.cc)
  c++ -std=c++17 -O2 -Wall -Wextra -Werror -o "$out/bench_on" "${sources[@]}" -luring -lpthread
  c++ -std=c++17 -O2 -Wall -Wextra -Werror -DPOCKET_ASSERT_OFF -o "$out/bench_off" "${sources[@]}" -luring -lpthread
  bench_file=$(mktemp "${POCKET_TEST_DIR:-/var/tmp}/pocket-assert-cost-XXXXXX")
  trap 'rm -rf "$out" "$bench_file"' EXIT
  fallocate -l 256MiB "$bench_file"
  # Never written: the file system answers reads of its unwritten extents without the device,
  # so these runs are bound by the engine's own work per request (where assertions run).
  echo "engine-bound (reads of unwritten extents, no device I/O):"
  for c in "randread 4096 1" "randread 4096 32"; do assert_cost_case "$bench_file" "$c" "$rounds" "$seconds"; done
  # Sequential writes wrap around the file many times over in 2 s: every extent is written after this.
  "$out/bench_on" "$bench_file" write 131072 32 2 >/dev/null
  echo "device-bound (the file written):"
  for c in "randread 4096 1" "randread 4096 32" "read 131072 32" "write 131072 32"; do assert_cost_case "$bench_file" "$c" "$rounds" "$seconds"; done
}

if [ "${1:-}" = "--assert-cost" ]; then
  shift
  assert_cost "$@"
  exit 0
fi

flags=(-std=c++17 -Wall -Wextra -Werror -g -O1)
if [ "${1:-}" = "--asan" ]; then
  flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
c++ "${flags[@]}" -o "$out/scheduler_test" native/src/scheduler.cc native/test/scheduler_test.cc
c++ "${flags[@]}" -o "$out/crc32_test" native/src/crc32.cc native/test/crc32_test.cc
c++ "${flags[@]}" -o "$out/engine_test" native/src/scheduler.cc native/src/engine.cc native/test/engine_test.cc -luring -lpthread
# The C++ load generator bench:nvme runs: built here so a change that breaks it fails the tests.
c++ "${flags[@]}" -o "$out/engine_bench" native/src/scheduler.cc native/src/engine.cc native/test/engine_bench.cc -luring -lpthread
# With assertions compiled out the engine must still compile cleanly (the --assert-cost build).
c++ -std=c++17 -Wall -Wextra -Werror -DPOCKET_ASSERT_OFF -fsyntax-only native/src/scheduler.cc native/src/engine.cc native/test/engine_bench.cc
"$out/scheduler_test"
"$out/crc32_test"
POCKET_TEST_DIR="${POCKET_TEST_DIR:-/var/tmp}" "$out/engine_test"
