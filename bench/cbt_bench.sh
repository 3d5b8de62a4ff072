#!/usr/bin/env bash
# vmback's day 2 with changed-block tracking (track_changes = true: shared
# extents of the kept reflink base), side by side with vmback's own full
# read, rsync, restic and borg. A benchmark, not a test: the goals of
# issue 14 are printed next to the figures, never asserted.
#
#   nice -n 10 bash bench/cbt_bench.sh          (as root: loop device, mount)
#
# 1. a loop XFS (mkfs.xfs -m reflink=1 on a sparse file) holding the image of
#    bench/store_bench.sh (bench/gen_image.py, same seed and size: sparse,
#    30% random, 20% compressible, 50% holes);
# 2. day 1, one `vmback run` per configuration, each its own volume and
#    state dir (source = the image, snapshot = "reflink", track_changes =
#    true, mode = "block", vms = []), so each keeps its own base:
#      vmback-store   into a store
#      vmback-dir     into a dir target ([target] type = "dir")
#      vmback-full    into a second store, for the full-read day 2
#    and rsync -a --inplace --no-whole-file (a day-1 copy), restic, borg;
# 3. the day-2 change of store_bench.sh, written in place (1% of the 4 KiB
#    blocks plus one 64 MiB run), so only the written extents stop being
#    shared with the bases;
# 4. day 2 of each, from the same day-1 state: vmback-store and vmback-dir
#    read the shared-extents change list, vmback-full runs with --full-read;
#    rsync onto the day-1 copy; restic and borg as in store_bench.sh.
# Per run: wall, CPU (user+sys), peak RSS (/usr/bin/time), the bytes added
# to the store/target/repository, and for vmback the bytes read, the change
# method and why, from its JSON report. "Changed" is the union of the 4 KiB
# blocks the change wrote (gen_image.py modify); the report also counts the
# changed bytes in 16 and 64 KiB blocks (by content), the least the dir
# target (16 KiB blocks) and the store (64 KiB) can read, since a 4 KiB
# write costs its reader a whole block. After day 2 (not timed) the dir
# target's copy and a restore of the store's point are compared with the
# image.
# Warm cache: before each measured run the image (for rsync also its day-1
# copy) is read once, so the loop device's backing file is in the page
# cache; vmback reads its new reflink snapshot, a new inode, through it.
#
# Environment:
#   BENCH_DIR    parent of the work dir (default /tmp); a fresh
#                vmback-cbt-bench.XXXXXX directory is made inside and removed
#   BENCH_SEED   generator seed (default 42)
#   BENCH_SIZE   image apparent size (default 4G; smaller only for smoke runs)
#   BENCH_KEEP=1 keep the work dir (the loop file system is still unmounted)
#   VMBACK       vmback binary (default build/vmback of this checkout)
#   BENCH_OUT    where the JSON goes (default bench/out/cbt_results.json)
#   BENCH_TIMEOUT    per measured run, seconds (default 1800)
#   BENCH_FORCE=1    run even if vmback fails the pre-flight sanity check
#   BENCH_QUIET_MAX  wait up to this many s for a quiet machine before each run (default 120)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "cbt_bench: run as root (loop device, mount)" >&2; exit 2; }
require_tools cbt_bench "$VMBACK" restic borg rsync python3 "$TIME" du fincore timeout sha256sum \
  losetup mkfs.xfs mount umount mountpoint truncate

make_work vmback-cbt-bench
MNT=$WORK/xfs
LOOP=
cleanup() {
  set +e
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
  if [[ -n "$LOOP" ]]; then losetup -d "$LOOP"; fi
  remove_work
}
trap cleanup EXIT
mkdir -p "$MNT"
use_restic_borg_repos

use_vmback_copy
preflight_or_exit cbt_bench

# The XFS holds the image, the bases (shared extents) and the day-2 rewrites:
# twice the image's apparent size is ample; the file is sparse.
FS_BYTES=$(python3 -c "import sys; sys.path.insert(0, sys.argv[1]); import gen_image as g; print(2 * g.parse_size(sys.argv[2]) + (1 << 30))" \
  "$SCRIPT_DIR" "$SIZE")
truncate -s "$FS_BYTES" "$WORK/xfs.fs"
LOOP=$(losetup -f --show "$WORK/xfs.fs")  # not in a function's subshell: the trap must see it
mkfs.xfs -q -m reflink=1 "$LOOP"
mount -t xfs -- "$LOOP" "$MNT"
mkdir -p "$MNT/images"
IMG=$MNT/images/vm-disk.img
log "work dir $WORK; XFS (reflink) on $LOOP at $MNT; generating $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"
log "$(cat "$WORK/gen.json")"

# config NAME TARGET_TOML: one volume NAME over the image, its own state dir.
config() {
  cat >"$WORK/$1.toml" <<EOF
[target]
$2

[run]
state_dir = "$WORK/state-$1"

[[volume]]
name = "$1"
source = "$IMG"
snapshot = "reflink"
track_changes = true
mode = "block"
vms = []
EOF
}
config vmback-store "path = \"$WORK/store\""
config vmback-dir "type = \"dir\"
path = \"$WORK/mirror\""
config vmback-full "path = \"$WORK/store-full\""
mkdir -p "$WORK/mirror" "$WORK/rsync"
RSYNC_COPY=$WORK/rsync/$(basename "$IMG")

measure vmback-store init "$WORK/store" "$VMBACK" -q store init "$WORK/store"
measure vmback-full init "$WORK/store-full" "$VMBACK" -q store init "$WORK/store-full"
init_restic_borg

MEASURE_CACHE=warm
WARM_FILES=("$IMG")
# run_day PHASE [vmback-full's extra flag]
run_day() {
  local phase=$1 full_flag=${2:-}
  measure vmback-store "$phase" "$WORK/store" "$VMBACK" -q run -c "$WORK/vmback-store.toml" --json
  measure vmback-dir "$phase" "$WORK/mirror" "$VMBACK" -q run -c "$WORK/vmback-dir.toml" --json
  measure vmback-full "$phase" "$WORK/store-full" "$VMBACK" -q run -c "$WORK/vmback-full.toml" --json $full_flag
  [[ $phase == day1 ]] || WARM_FILES=("$IMG" "$RSYNC_COPY")
  measure rsync "$phase" "$WORK/rsync" rsync -a --inplace --no-whole-file "$IMG" "$WORK/rsync/"
  WARM_FILES=("$IMG")
  measure_restic_borg "$phase"
}

run_day day1
modify_image
# The changed bytes at the block sizes the readers work in (4 KiB: the
# file system; 16 and 64 KiB: the dir target's and the store's defaults),
# from the content (the rsync copy is still day 1's image): the least a
# reader with that block size can read.
python3 - "$RSYNC_COPY" "$IMG" >"$WORK/changed.json" <<'PY'
import json, sys
K4 = 4096
changed = {4: set(), 16: set(), 64: set()}  # KiB -> indices of changed blocks
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    off = 0
    while True:
        x, y = a.read(1 << 24), b.read(1 << 24)
        if not x and not y:
            break
        if x != y:
            for i in range(0, max(len(x), len(y)), K4):
                if x[i:i + K4] != y[i:i + K4]:
                    for kib in changed:
                        changed[kib].add((off + i) // (kib * 1024))
        off += max(len(x), len(y))
print(json.dumps({str(kib * 1024): len(blocks) * kib * 1024 for kib, blocks in changed.items()}))
PY
log "changed bytes by block size: $(cat "$WORK/changed.json")"
run_day day2 --full-read
# Sanity (not timed): day 2's points are the image. A file source is
# mirrored as MIRROR/VOLUME and restored from the store by its volume name.
check() {
  if "${@:2}" >>"$WORK/logs/checks.err" 2>&1; then echo "$1: yes"; else echo "$1: NO"; fi >>"$WORK/checks.txt"
}
check "dir target's copy == image" cmp "$IMG" "$WORK/mirror/vmback-dir"
check "store (shared extents) day 2 restores to the image" \
  bash -c '"$1" -q restore --store "$2" latest vmback-store --to "$3" && cmp "$3" "$4"' _ \
  "$VMBACK" "$WORK/store" "$WORK/restored.img" "$IMG"
rm -f -- "$WORK/restored.img"
log "checks: $(paste -sd ';' "$WORK/checks.txt")"

if ! python3 "$SCRIPT_DIR/cbt_report.py" "$WORK" "${BENCH_OUT:-$OUT_DIR/cbt_results.json}" "$VMBACK_ORIG" "$SIZE"; then
  BENCH_KEEP=1
  echo "cbt_bench: the report failed; raw results in $WORK/results.tsv and $WORK/logs" >&2
  exit 1
fi
