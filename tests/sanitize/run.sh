#!/usr/bin/env bash
# Sanitizer and fuzzing sweep (issue 7, "prove nothing is lost"):
#
#   unit   an ASan+UBSan tree: the whole unit suite (ctest -L unit);
#   tsan   a TSan tree: the thread pool and rate pacer, and the tests that run them (backup, restore,
#          verify and the in-place sink);
#   fuzz   a clang tree with the libFuzzer targets of tests/fuzz (ASan+UBSan):
#          each target over its seed corpus, seeded, for a fixed number of runs.
#
# The ASan and TSan trees use clang++ by default: it built the ASan tree in
# 320 s where g++ took 497 s (2 cores), and the tests ran in 118 s under it.
# (clang 14 cannot capture a structured binding in a lambda: tests capture
# such a name by an init-capture instead.) SANITIZE_CXX=g++ builds with g++.
# Prints a table (suite, runs, failures, seconds) and exits non-zero on any
# failure. Short in CI (100000 runs per fuzz target); VMBACK_LONG_TESTS=1
# fuzzes each target for 10 minutes instead.
#
# Environment:
#   ASAN_BUILD_DIR, TSAN_BUILD_DIR, FUZZ_BUILD_DIR
#                     build trees (default: build-asan, build-tsan, build-fuzz
#                     under the repository root)
#   SANITIZE_CXX      compiler of the ASan and TSan trees (default: clang++)
#   VMBACK_FUZZ_RUNS  runs per fuzz target (overrides the defaults above)
#   JOBS              parallel jobs for ninja and ctest (default: nproc)
#   ONLY              the steps to run, any of "unit tsan fuzz" (default: all)
#   BUILD_ONLY=1      only build the trees (scripts/test builds them at low
#                     priority while ctest runs, then runs this again)
#
# Tests that need root run as root in CI, as in the normal suite.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
asan_dir=${ASAN_BUILD_DIR:-$root/build-asan}
tsan_dir=${TSAN_BUILD_DIR:-$root/build-tsan}
fuzz_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
san_cxx=${SANITIZE_CXX:-clang++}
jobs=${JOBS:-$(nproc)}
only=${ONLY:-unit tsan fuzz}

# Longest first (100,000 runs: sealed 38 s, manifest 35 s, config 17 s, pack
# 13 s, the others 8-10 s), so that two at a time end close together: sealed
# last ran alone for 38 s.
fuzz_targets=(sealed manifest config pack blockmap domain_xml index)
if [ "${VMBACK_LONG_TESTS:-0}" = 1 ]; then
  fuzz_limit=(-runs="${VMBACK_FUZZ_RUNS:--1}" -max_total_time=600)
else
  fuzz_limit=(-runs="${VMBACK_FUZZ_RUNS:-100000}")
fi
# The tests that use ThreadPool (src/util/thread_pool.h) or another thread: their binaries,
# and their gtest suites (a GTEST_FILTER).
tsan_targets=(backup_test restore_test verify_test inplace_test thread_pool_test rate_pacer_test coalescing_runner_test)
tsan_tests='ThreadPoolTest.*:RatePacerTest.*:CoalescingRunnerTest.*:BackupTest.*:RestoreTest.*:DamagedRestoreTest.*:VerifyTest.*:InplaceTest.*:InplaceTreeTest.*:InplaceFaultTest.*:SourcePrefetchTest.*'
# Unit tests that leak on purpose: they release a snapshot handle to act out
# a crash, then clean up from the journal record. LeakSanitizer is off there.
leaking_binary=snapshot_test
leaking_tests='*Test.DropLeftoverFromJournalRecord'

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitize/tsan.supp}

rows=()
failed=0
start_all=$SECONDS

# row SUITE RUNS FAILURES SECONDS
row() {
  rows+=("$(printf '%-24s %10s %9s %8s' "$1" "$2" "$3" "$4")")
  [ "$3" = 0 ] || failed=1
}

wants() { [[ " $only " == *" $1 "* ]]; }
runs() { [ "${BUILD_ONLY:-0}" != 1 ]; }

# The ninja targets for TARGETS...; "unit-tests" stands for every unit test
# binary (one per *_test.cpp under src/, tests/helpers and tests/packaging,
# named after it) that the tree defines.
expand_targets() {
  local dir=$1 t
  shift
  for t in "$@"; do
    if [ "$t" = unit-tests ]; then
      comm -12 <(find "$root/src" "$root/tests/helpers" "$root/tests/packaging" -name '*_test.cpp' -printf '%f\n' |
                   sed 's/\.cpp$//' | sort -u) \
               <(ninja -C "$dir" -t targets all | sed -n 's/^\([A-Za-z0-9_]*\): CXX_EXECUTABLE_LINKER.*/\1/p' | sort -u)
    else
      echo "$t"
    fi
  done
}

# build NAME DIR CXX CMAKE_ARGS... -- TARGETS...
build() {
  local name=$1 dir=$2 cxx=$3
  shift 3
  local args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  local t0=$SECONDS log=$dir/build.log
  mkdir -p "$dir"
  # A tree configured with another compiler (g++ before clang++ became the
  # default) is configured afresh: CMake does not switch compilers in place.
  local was
  was=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  if [ -n "$was" ] && [ "$was" != "$cxx" ] && [ "$was" != "$(command -v "$cxx")" ]; then
    echo "== $dir was configured with another compiler: configuring it afresh with $cxx"
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  echo "== build $name in $dir (log: $log)"
  if cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       "${args[@]}" >"$log" 2>&1 &&
     ninja -C "$dir" -j"$jobs" $(expand_targets "$dir" "$@") >>"$log" 2>&1; then
    row "build $name" - 0 $((SECONDS - t0))
    return 0
  fi
  tail -n 40 "$log"
  echo "build $name failed; whole log: $log"
  row "build $name" - 1 $((SECONDS - t0))
  return 1
}

# ctest_suite NAME DIR LOG CTEST_ARGS...: runs ctest, records tests run and
# failed. The trees register one ctest test per unit test binary
# (VMBACK_UNIT_TEST_PER_BINARY), so the counts are gtest's: the sums of what
# each binary says it ran and failed (ctest -V keeps every binary's output).
ctest_suite() {
  local name=$1 dir=$2 log=$2/$3
  shift 3
  local t0=$SECONDS
  echo "== $name (log: $log)"
  (cd "$dir" && "${run_prefix[@]}" ctest -V -j"$jobs" --timeout 1200 "$@") >"$log" 2>&1
  local rc=$?
  local total failures
  total=$(sed -nE 's/^[0-9]+: \[==========\] ([0-9]+) tests? from .* ran\..*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
  failures=$(sed -nE 's/^[0-9]+: \[  FAILED  \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
  if [ -z "$total" ] || [ "$total" = 0 ]; then
    echo "$name: ctest ran no tests"
    total=${total:-0}
    failures=1
  elif [ "$rc" -ne 0 ] && [ "${failures:-0}" = 0 ]; then
    failures=1
  fi
  if [ "$failures" != 0 ]; then
    sed -n '/The following tests FAILED/,$p' "$log"
    sed -nE 's/^[0-9]+: (\[  FAILED  \] [A-Za-z].*)/\1/p' "$log" | sort -u | head -n 20
    echo "$name: see $log"
  fi
  row "$name" "$total" "$failures" $((SECONDS - t0))
}

# fuzz TARGET: runs one fuzz target over its seed corpus (in the background,
# beside others); its result goes to fuzz-runs/TARGET.row for fuzz_row.
fuzz() {
  local t=$1 t0=$SECONDS
  local work=$fuzz_dir/fuzz-runs/$t log=$fuzz_dir/fuzz-runs/$t.log
  local dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  rm -rf "$work" && mkdir -p "$work" "$fuzz_dir/fuzz-runs/crashes"
  echo "== fuzz $t (log: $log)"
  # What the fuzzer finds goes into $work; the seed corpus is only read.
  "$fuzz_dir/tests/fuzz/fuzz_$t" "${fuzz_limit[@]}" "${dict[@]}" -seed=1 -timeout=60 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$fuzz_dir/fuzz-runs/crashes/$t-" \
    "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  local runs
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    grep -E '^fuzz:|ERROR|runtime error|SUMMARY' "$log" | head -n 5
    echo "fuzz_$t failed; the input is in $fuzz_dir/fuzz-runs/crashes/, the log in $log"
  fi
  echo "${runs:-?} $([ "$rc" = 0 ] && echo 0 || echo 1) $((SECONDS - t0))" >"$fuzz_dir/fuzz-runs/$t.row"
}

# fuzz_row TARGET: the table row of a finished fuzz run (failed if it left none).
fuzz_row() {
  local runs=? failures=1 seconds=0
  [ -s "$fuzz_dir/fuzz-runs/$1.row" ] && read -r runs failures seconds <"$fuzz_dir/fuzz-runs/$1.row"
  row "fuzz $1" "$runs" "$failures" "$seconds"
}

run_prefix=()
# The sanitizer trees build at -O1 with line tables only (-g1): what the
# sanitizers need for exact reports and stack traces, at less than half the
# compile time of -O2 -g (measured on one test file: 40 s of CPU against 89 s).
san_flags=-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
# One ctest test per unit test binary, not per gtest test: under ASan the
# median test took 0.29 s, most of it starting the binary. (Per test under
# g++, the ASan unit run took 268 s in CI; per binary under clang, 118 s.)
per_binary=-DVMBACK_UNIT_TEST_PER_BINARY=ON

if wants unit; then
  if build asan+ubsan "$asan_dir" "$san_cxx" -DVMBACK_SANITIZE=address,undefined "$san_flags" $per_binary -- unit-tests && runs; then
    GTEST_FILTER=-$leaking_tests ctest_suite "unit (asan+ubsan)" "$asan_dir" ctest-unit.log -L unit
    # Still ASan and UBSan, only without the leak check.
    ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 GTEST_FILTER=$leaking_tests \
      ctest_suite "unit, meant to leak" "$asan_dir" ctest-leaking.log -R "^unit\.$leaking_binary\$"
  fi
fi

if wants tsan; then
  # ThreadSanitizer cannot map its shadow memory under the high ASLR entropy
  # of some kernels; without ASLR it always can.
  if setarch "$(uname -m)" -R true 2>/dev/null; then run_prefix=(setarch "$(uname -m)" -R); fi
  if build tsan "$tsan_dir" "$san_cxx" -DVMBACK_SANITIZE=thread "$san_flags" $per_binary -- "${tsan_targets[@]}" && runs; then
    GTEST_FILTER=$tsan_tests ctest_suite "threaded (tsan)" "$tsan_dir" ctest.log \
      -R "^unit\.($(IFS='|'; echo "${tsan_targets[*]}"))\$"
  fi
  run_prefix=()
fi

if wants fuzz; then
  fuzz_bins=()
  for t in "${fuzz_targets[@]}"; do fuzz_bins+=("fuzz_$t"); done
  if build fuzz "$fuzz_dir" clang++ -DVMBACK_FUZZ=ON -DBUILD_TESTING=OFF -- "${fuzz_bins[@]}" && runs; then
    # Each target is one process on one core: $jobs of them at a time.
    for t in "${fuzz_targets[@]}"; do
      rm -f "$fuzz_dir/fuzz-runs/$t.row"
      while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
      fuzz "$t" &
    done
    wait
    for t in "${fuzz_targets[@]}"; do fuzz_row "$t"; done
  fi
fi

echo
printf '%-24s %10s %9s %8s\n' suite runs failures seconds
printf '%s\n' "${rows[@]}"
echo "total: $((SECONDS - start_all)) s"
exit "$failed"
