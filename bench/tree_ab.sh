#!/usr/bin/env bash
# Two vmback binaries side by side on the tree of bench/tree_bench.sh, into a
# store each: is a change to the tree walk faster? A benchmark, not a test:
# it prints figures, it asserts nothing.
#
#   bench/tree_ab.sh OLD_VMBACK NEW_VMBACK [ROUNDS]
#
# 1. generates the tree (bench/gen_tree.py, as tree_bench.sh does);
# 2. day 1: each binary backs it up into a store of its own, the page cache
#    dropped before each;
# 3. day 2, nothing changed, ROUNDS times (default 5), the binaries taking
#    turns (old first in odd rounds, new first in even ones): before each
#    run the page cache is dropped and the source tree read again, so the
#    store is cold and the source warm, as in tree_bench.sh;
# 4. prints each run's wall, user and system CPU and peak RSS
#    (/usr/bin/time), and the medians of day 2.
#
# The binaries are copied into the work dir first, so that a rebuild during
# the run changes nothing. Environment: BENCH_FILES, BENCH_TREE_BYTES,
# BENCH_DIR, BENCH_SEED, BENCH_KEEP as for tree_bench.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/lib.sh"
[[ $# -ge 2 ]] || { echo "usage: $0 OLD_VMBACK NEW_VMBACK [ROUNDS]" >&2; exit 2; }
ROUNDS=${3:-5}
require_tools tree_ab "$1" "$2" python3 "$TIME" find xargs

FILES=${BENCH_FILES:-100000}
TREE_BYTES=${BENCH_TREE_BYTES:-$((2 * 1024 * 1024 * 1024 * FILES / 100000))}
make_work vmback-tree-ab
trap remove_work EXIT
install -m 0700 "$1" "$WORK/old"
install -m 0700 "$2" "$WORK/new"
SRC=$WORK/src

log "generating a tree of $FILES entries, $TREE_BYTES bytes (seed $SEED)"
python3 "$SCRIPT_DIR/gen_tree.py" create "$SRC" --files "$FILES" --bytes "$TREE_BYTES" --seed "$SEED" >/dev/null

# run NAME PHASE: one timed backup of the tree with binary NAME; one line
# "PHASE NAME wall user sys rss_kib" into $WORK/runs.
run() {
  local out=$WORK/$1-$2.time
  "$TIME" -f '%e %U %S %M' -o "$out" "$WORK/$1" -q backup --store "$WORK/$1-store" "$SRC" >/dev/null
  echo "$2 $1 $(cat "$out")" | tee -a "$WORK/runs" >&2
}

for b in old new; do
  "$WORK/$b" -q store init "$WORK/$b-store" >/dev/null
  drop_caches >/dev/null
  run "$b" day1
done
for ((r = 1; r <= ROUNDS; r++)); do
  order=(old new)
  ((r % 2)) || order=(new old)
  for b in "${order[@]}"; do
    drop_caches >/dev/null
    find "$SRC" -type f -print0 | xargs -0 -n 512 cat >/dev/null
    find "$SRC" -printf '' >/dev/null
    run "$b" day2
  done
done

python3 - "$WORK/runs" "$1" "$2" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"{'phase':6} {'binary':4} {'runs':>4} {'wall s':>8} {'user s':>8} {'sys s':>8} {'RSS MiB':>8}")
for phase in ("day1", "day2"):
    for b in ("old", "new"):
        r = [[float(x) for x in row[2:]] for row in rows if row[0] == phase and row[1] == b]
        med = [statistics.median(c) for c in zip(*r)]
        print(f"{phase:6} {b:4} {len(r):4} {med[0]:8.2f} {med[1]:8.2f} {med[2]:8.2f} {med[3] / 1024:8.1f}")
print(f"old: {sys.argv[2]}\nnew: {sys.argv[3]}\n(medians; day 2 with a warm source and a cold store)")
PY
