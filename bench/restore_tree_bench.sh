#!/usr/bin/env bash
# Restore of a tree of many small files (issue 17), vmback beside cp -a +
# sync, restic and borg when installed. A benchmark, not a test: figures
# only. Warm cache; every run restores into a new directory.
#
#   bench/restore_tree_bench.sh [VMBACK]
#
# The tree: BENCH_FILES (default 20000) files of 1-16 KiB random bytes in
# 200 directories, seeded. Nothing is deleted in the 35 s before the timed
# runs: ext4 without a journal skips recently freed inodes when it allocates
# (recently_deleted()), which made every tool several times slower right
# after an rm -rf of the previous run's output.
#
# Environment: BENCH_DIR (default /tmp), BENCH_RUNS (default 3),
# BENCH_FILES (default 20000), BENCH_KEEP=1 keeps the work dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vmback=${1:-${VMBACK:-$here/../build/vmback}}
runs=${BENCH_RUNS:-3}
files=${BENCH_FILES:-20000}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/vmback-tree-bench.XXXXXX")
[[ ${BENCH_KEEP:-0} == 1 ]] || trap 'rm -rf "$work"' EXIT
cd "$work"

python3 - "$files" <<'PY'
import os, random, sys
n = int(sys.argv[1]); rng = random.Random(17)
for i in range(n):
    d = i % 200
    p = os.path.join("src", "d%03d" % (d // 20), "sub%03d" % d)
    os.makedirs(p, exist_ok=True)
    with open(os.path.join(p, "file%05d.dat" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16384)))
PY
"$vmback" store init store >/dev/null
"$vmback" -q backup --store store src >/dev/null
have() { command -v "$1" >/dev/null; }
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
if have restic; then restic init -q -r restic-repo && restic -q -r restic-repo backup src >/dev/null; fi
if have borg; then borg init -e none borg-repo && borg create borg-repo::a src; fi
mkdir runs
cat $(find src -type f) store/packs/*/* >/dev/null
sync
sleep 35

timed() {  # LABEL RUN COMMAND...
  local label=$1 run=$2; shift 2
  sync
  /usr/bin/time -f "$label run $run: %e s wall, %U s user, %S s sys" "$@" >/dev/null
}
for i in $(seq "$runs"); do
  timed "vmback restore" "$i" "$vmback" -q restore --store store latest src --to "runs/v$i"
  timed "cp -a + sync  " "$i" sh -c "cp -a src runs/c$i && sync"
  if have restic; then timed "restic restore" "$i" restic -q -r restic-repo restore latest --target "runs/r$i"; fi
  if have borg; then mkdir "runs/b$i"; timed "borg extract  " "$i" sh -c "cd runs/b$i && borg extract ../../borg-repo::a"; fi
  diff -r src "runs/v$i" >/dev/null || echo "vmback run $i: restored tree differs from src"
done
echo "$files files; restic and borg do not fsync what they restore, vmback and the cp row do"
