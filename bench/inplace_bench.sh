#!/usr/bin/env bash
# vmback's in-place sink side by side with `rsync -a --inplace --no-whole-file`,
# the classic way to keep a mirror of VM images whose unchanged blocks stay
# shared between ZFS snapshots. A benchmark, not a test: goals are printed
# next to the figures, never asserted.
#
#   bash bench/inplace_bench.sh            (as root: loop devices, zfs-fuse)
#
# 1. the image of bench/store_bench.sh (bench/gen_image.py, same seed and
#    size: sparse, 30% random, 20% compressible, 50% holes);
# 2. targets of each kind, one per tool: a plain directory on an XFS file
#    system on a loop device, and a dataset on a zfs-fuse pool mirrored over
#    two loop devices (compression=on, checksum=sha256);
# 3. full run, then the same change as the store benchmark (1% of 4 KiB
#    blocks + one 64 MiB run), then the incremental run;
# 4. per run: wall, CPU (user+sys), peak RSS, and the bytes the file system
#    wrote to its devices (sectors written in /sys/block/loopN/stat, after a
#    sync; a ZFS mirror writes everything twice, for both tools alike).
# The page cache is dropped before every run. "Changed blocks" below is the
# number of 128 KiB blocks whose content differs before/after the change,
# times 128 KiB: what an ideal in-place tool must write.
#
# Environment: BENCH_DIR (default /tmp), BENCH_SEED (42), BENCH_SIZE (4G),
# BENCH_ZFS=0 to skip ZFS, VMBACK (default build/vmback), BENCH_KEEP=1.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
VMBACK=$(realpath "${VMBACK:-$ROOT/build/vmback}")
SEED=${BENCH_SEED:-42}
SIZE=${BENCH_SIZE:-4G}
DO_ZFS=${BENCH_ZFS:-1}
TIME=/usr/bin/time
[ "$(id -u)" -eq 0 ] || { echo "inplace_bench: run as root (loop devices, zfs-fuse)" >&2; exit 2; }
for t in "$VMBACK" rsync python3 "$TIME" losetup mkfs.xfs; do
  command -v "$t" >/dev/null || { echo "inplace_bench: missing $t" >&2; exit 2; }
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/vmback-inplace-bench.XXXXXX")
LOOPS=()
ZPID=
POOL=vmbench$$
cleanup() {
  set +e
  umount "$WORK/xfs" 2>/dev/null
  if [ "$DO_ZFS" = 1 ]; then zpool destroy -f "$POOL" >/dev/null 2>&1; fi
  if [ -n "$ZPID" ]; then
    kill "$ZPID"
    for _ in $(seq 100); do kill -0 "$ZPID" 2>/dev/null || break; sleep 0.1; done
  fi
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# loop FILE VAR: attaches FILE, records the device for cleanup and stores it
# in VAR (not printed: $(...) would record it in a subshell, never detached).
loop() { local d; d=$(losetup -f --show "$1"); LOOPS+=("$d"); printf -v "$2" '%s' "$d"; }
sectors_written() { local s=0 d; for d in "$@"; do s=$((s + $(awk '{print $7}' "/sys/block/$(basename "$d")/stat"))); done; echo "$s"; }

mkdir -p "$WORK/src" "$WORK/logs"
IMG=$WORK/src/vm-disk.img
log "generating a $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"

truncate -s 20G "$WORK/xfs.img"
loop "$WORK/xfs.img" XDEV
mkfs.xfs -q "$XDEV"
mkdir -p "$WORK/xfs"
mount "$XDEV" "$WORK/xfs"
mkdir -p "$WORK/xfs/vmback" "$WORK/xfs/rsync"
ZDEVS=()
if [ "$DO_ZFS" = 1 ]; then
  command -v zfs-fuse >/dev/null || { echo "inplace_bench: missing zfs-fuse (or BENCH_ZFS=0)" >&2; exit 2; }
  if ! zpool list >/dev/null 2>&1; then
    zfs-fuse --no-daemon --no-kstat-mount >"$WORK/logs/zfs-fuse.log" 2>&1 &
    ZPID=$!
    for _ in $(seq 100); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  truncate -s 20G "$WORK/z1.img" "$WORK/z2.img"
  loop "$WORK/z1.img" Z1
  loop "$WORK/z2.img" Z2
  ZDEVS=("$Z1" "$Z2")
  zpool create -o cachefile=none -m "$WORK/zfs" "$POOL" mirror "${ZDEVS[@]}"
  zfs set compression=on "$POOL"
  zfs set checksum=sha256 "$POOL"
  zfs create "$POOL/vmback"
  zfs create "$POOL/rsync"
fi

RESULTS=$WORK/results.tsv
: >"$RESULTS"
# measure TARGET TOOL PHASE CMD...
measure() {
  local target=$1 tool=$2 phase=$3
  shift 3
  local devs=("$XDEV")
  [ "$target" = zfs ] && devs=("${ZDEVS[@]}")
  sync
  echo 3 >/proc/sys/vm/drop_caches
  local s0 s1 rc=0
  s0=$(sectors_written "${devs[@]}")
  log "$target $tool $phase: $*"
  "$TIME" -f '%e %U %S %M' -o "$WORK/logs/$target-$tool-$phase.time" "$@" \
    >"$WORK/logs/$target-$tool-$phase.out" 2>"$WORK/logs/$target-$tool-$phase.err" || rc=$?
  sync
  [ "$target" = zfs ] && { zpool list "$POOL" >/dev/null; sleep 6; sync; }  # let ZFS commit its txg
  s1=$(sectors_written "${devs[@]}")
  read -r wall user sys rss <"$WORK/logs/$target-$tool-$phase.time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$tool" "$phase" "$rc" "$wall" "$user" "$sys" "$rss" \
    "$(((s1 - s0) * 512))" >>"$RESULTS"
  [ "$rc" -eq 0 ] || { log "FAILED (exit $rc)"; tail -5 "$WORK/logs/$target-$tool-$phase.err" >&2; }
}

run_phase() {
  local phase=$1
  measure dir vmback "$phase" "$VMBACK" -q backup --dir "$WORK/xfs/vmback" "$IMG"
  measure dir rsync "$phase" rsync -a --inplace --no-whole-file "$IMG" "$WORK/xfs/rsync/"
  if [ "$DO_ZFS" = 1 ]; then
    measure zfs vmback "$phase" "$VMBACK" -q backup --zfs "$POOL/vmback" "$IMG"
    measure zfs rsync "$phase" bash -c "rsync -a --inplace --no-whole-file '$IMG' '$WORK/zfs/rsync/' && zfs snapshot '$POOL/rsync@$phase'"
  fi
}

run_phase full
cp --sparse=always "$IMG" "$WORK/src/before.img"
log "modifying the image"
python3 "$SCRIPT_DIR/gen_image.py" modify "$IMG" --seed "$SEED" >"$WORK/modify.json"
# Changed blocks at 16 KiB (the directory target's block) and 128 KiB (the
# ZFS recordsize): what an ideal in-place tool writes on each.
CHANGED=$(python3 - "$WORK/src/before.img" "$IMG" <<'EOF'
import sys
bs = 128 << 10
n4 = n128 = 0
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    while True:
        x, y = a.read(bs), b.read(bs)
        if not x and not y:
            break
        if x != y:
            n128 += 1
            n4 += sum(x[i:i + 16384] != y[i:i + 16384] for i in range(0, max(len(x), len(y)), 16384))
print(n4, n128)
EOF
)
rm -f "$WORK/src/before.img"
run_phase incremental
cmp "$IMG" "$WORK/xfs/vmback/vm-disk.img" && cmp "$IMG" "$WORK/xfs/rsync/vm-disk.img" || log "MIRRORS DIFFER"

python3 - "$RESULTS" "$CHANGED" "$WORK/gen.json" "$SIZE" <<'EOF'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n4, n128 = (int(x) for x in sys.argv[2].split())
changed = {"dir": n4 * 16384, "zfs": n128 * (128 << 10)}
gen = json.load(open(sys.argv[3]))
MIB = 1 << 20
r = {}
print("\nvmback in-place vs rsync -a --inplace --no-whole-file  (image %s apparent, %.0f MiB allocated)"
      % (sys.argv[4], gen["allocated_bytes"] / MIB))
print("changed blocks after the change: %d of 16 KiB = %.1f MiB (directory target, block 16 KiB); %d of 128 KiB = %.1f MiB"
      " (ZFS, recordsize 128 KiB): the ideal bytes of an incremental run\n" % (n4, changed["dir"] / MIB, n128, changed["zfs"] / MIB))
print("%-4s %-12s %-7s %6s %8s %8s %9s %12s" % ("fs", "phase", "tool", "exit", "wall s", "cpu s", "RSS MiB", "written MiB"))
for t, tool, phase, rc, wall, user, sys_, rss, wr in rows:
    r[(t, tool, phase)] = dict(wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss) / 1024, wr=int(wr), rc=int(rc))
    x = r[(t, tool, phase)]
    print("%-4s %-12s %-7s %6s %8.2f %8.2f %9.1f %12.1f" % (t, phase, tool, rc, x["wall"], x["cpu"], x["rss"], x["wr"] / MIB))
print()
for t in ("dir", "zfs"):
    for phase in ("full", "incremental"):
        a, b = r.get((t, "vmback", phase)), r.get((t, "rsync", phase))
        if a and b:
            print("%s %-11s: rsync wall / vmback wall = %.2fx; cpu %.2fx; bytes vmback/rsync = %.3f"
                  % (t, phase, b["wall"] / a["wall"], b["cpu"] / max(a["cpu"], 0.01), a["wr"] / max(b["wr"], 1)))
inc = r.get(("dir", "vmback", "incremental"))
if inc:
    print("\ngoals (printed, not asserted):")
    sp = r[("dir", "rsync", "incremental")]["wall"] / inc["wall"]
    print("  incremental on a plain directory >= 10x faster than rsync: %.2fx -> %s" % (sp, "met" if sp >= 10 else "NOT met"))
    over = inc["wr"] / changed["dir"] - 1 if changed["dir"] else 0
    print("  dir: bytes written within 10%% of the changed blocks: %.1f MiB vs %.1f MiB (%+.1f%%; includes file-system"
          " metadata and the blockmap) -> %s" % (inc["wr"] / MIB, changed["dir"] / MIB, 100 * over,
                                                  "met" if over <= 0.10 else "NOT met"))
    z, zr = r.get(("zfs", "vmback", "incremental")), r.get(("zfs", "rsync", "incremental"))
    if z and zr:
        # Compression shrinks a rewritten record (mostly holes or text around
        # the change), so changed x 128 KiB x 2 copies is no bound here.
        print("  zfs: vmback wrote %.1f MiB, rsync %.1f MiB to the two mirrored devices (informational)"
              % (z["wr"] / MIB, zr["wr"] / MIB))
    print("  memory flat in the image size: peak RSS %.1f MiB full, %.1f MiB incremental, for a %s image"
          % (r[("dir", "vmback", "full")]["rss"], inc["rss"], sys.argv[4]))
EOF
