#!/usr/bin/env bash
# Day 1 and day 2 into an encrypted store beside a plain one (issue 18: the
# goal is at most 10% more wall time for either, and no more peak memory).
# A benchmark, not a test: the goal is printed next to the figures.
#
#   bash bench/encrypt_bench.sh        (BENCH_SIZE=4G by default; BENCH_ROUNDS=2)
#
# The image of bench/store_bench.sh (bench/gen_image.py, same seed): 30%
# random, 20% compressible, 50% holes. Each round backs it up into a fresh
# plain store and a fresh encrypted store (key file: no Argon2id), in
# alternating order, then applies the day-2 change (gen_image.py modify) to
# the image and backs it up into both again. Per run: wall, CPU (user+sys) and peak RSS
# from /usr/bin/time; the best of the rounds is printed. The page cache is
# left warm (both stores read the same image, the order alternates).
#
# Environment: BENCH_DIR (default /tmp), BENCH_SIZE (4G), BENCH_SEED (42),
# BENCH_ROUNDS (2), VMBACK (default build/vmback).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMBACK=${VMBACK:-$SCRIPT_DIR/../build/vmback}
SIZE=${BENCH_SIZE:-4G}
SEED=${BENCH_SEED:-42}
ROUNDS=${BENCH_ROUNDS:-2}
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/vmback-encbench.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

IMG=$WORK/src/disk.img
mkdir -p "$WORK/src"

# run KIND DAY ROUND: one backup of the image into the KIND store of this
# round; appends "KIND DAY wall cpu rss_kib" to results.
run() {
  local kind=$1 day=$2 round=$3 args=()
  [ "$kind" = encrypted ] && args=(--key-file "$WORK/key")
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/t" "$VMBACK" -q backup --store "$WORK/$kind-$round" "${args[@]}" \
    "$IMG" >/dev/null
  read -r wall user sys rss <"$WORK/t"
  echo "$kind $day $wall $(python3 -c "print($user + $sys)") $rss" >>"$WORK/results"
}

for round in $(seq 1 "$ROUNDS"); do
  rm -f -- "$IMG"
  python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >/dev/null
  "$VMBACK" -q store init "$WORK/plain-$round" >/dev/null
  "$VMBACK" -q store init "$WORK/encrypted-$round" --encrypt --key-file "$WORK/key" >/dev/null
  order=(plain encrypted)
  [ $((round % 2)) -eq 0 ] && order=(encrypted plain)
  for kind in "${order[@]}"; do run "$kind" day1 "$round"; done
  python3 "$SCRIPT_DIR/gen_image.py" modify "$IMG" --seed "$SEED" >/dev/null
  for kind in "${order[@]}"; do run "$kind" day2 "$round"; done
  rm -rf -- "$WORK/plain-$round" "$WORK/encrypted-$round"
done

python3 - "$WORK/results" "$SIZE" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    kind, day, wall, cpu, rss = line.split()
    best = rows.setdefault((kind, day), [1e9, 1e9, 0])
    best[0] = min(best[0], float(wall)); best[1] = min(best[1], float(cpu)); best[2] = max(best[2], int(rss))
print(f"image {sys.argv[2]}; best of the rounds (peak RSS: the largest)")
print(f"{'day':6} {'store':10} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13}")
for day in ("day1", "day2"):
    for kind in ("plain", "encrypted"):
        w, c, r = rows[(kind, day)]
        print(f"{day:6} {kind:10} {w:8.2f} {c:8.2f} {r / 1024:13.1f}")
    p, e = rows[("plain", day)], rows[("encrypted", day)]
    print(f"{day:6} {'overhead':10} {100 * (e[0] / p[0] - 1):+7.1f}% {100 * (e[1] / p[1] - 1):+7.1f}% "
          f"{(e[2] - p[2]) / 1024:+12.1f}   (goal: wall at most +10%, RSS +0)")
PY
