#!/usr/bin/env bash
# Two slow disks read at once (issue 20): restore and verify from a store
# with one copy and with two, beside a zfs-fuse mirror over the same kind of
# disks and `cat` of the pack files from one disk. A benchmark, not a test:
# goals are printed next to the figures, never asserted.
#
#   bash bench/two_disks_bench.sh            (as root: loop devices, cgroup v1 blkio)
#
# The "USB disks": loop devices over files, each read-throttled to
# BENCH_DISK_BPS bytes/s (default 40 MB/s) for the processes measured, with
# the cgroup v1 blkio controller (a group of this run's own, removed at the
# end). Two carry an XFS file system each (d0, d1); two more a zfs-fuse pool
# mirrored over them (its daemon, started here, runs in the throttled group:
# it does the pool's reads). The page cache is dropped before every timed
# run (echo 3 > /proc/sys/vm/drop_caches), so the disks are measured.
#
# 1. a BENCH_SIZE (default 1G) image of bench/gen_image.py (30% random, 20%
#    compressible, 50% holes);
# 2. a store with one copy (d0/one) and a store with two (d0/two, mirror
#    d1/two), one backup of the image into each (not throttled);
# 3. timed, throttled: restore of the image from each store, verify of each
#    store, `cat` of one store's pack files from d0, and a copy of the image
#    out of the zfs-fuse mirror (cp --sparse=always);
# 4. a table with wall, CPU, peak RSS, the bytes each device read
#    (/sys/block/loopN/stat), and the ratios the goals name; JSON to
#    bench/out/two_disks_results.json.
#
# Environment: BENCH_DIR (default /tmp), BENCH_SEED (42), BENCH_SIZE (1G),
# BENCH_DISK_BPS (41943040), BENCH_ZFS=0 to leave out ZFS, VMBACK (default
# build/vmback), BENCH_KEEP=1 keeps the work dir.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
VMBACK=$(realpath "${VMBACK:-$ROOT/build/vmback}")
SEED=${BENCH_SEED:-42}
SIZE=${BENCH_SIZE:-1G}
BPS=${BENCH_DISK_BPS:-41943040}
DO_ZFS=${BENCH_ZFS:-1}
TIME=/usr/bin/time
BLKIO=/sys/fs/cgroup/blkio
[ "$(id -u)" -eq 0 ] || { echo "two_disks_bench: run as root (loop devices, cgroups)" >&2; exit 2; }
[ -w "$BLKIO/cgroup.procs" ] || { echo "two_disks_bench: needs the cgroup v1 blkio controller at $BLKIO" >&2; exit 2; }
for t in "$VMBACK" python3 "$TIME" losetup mkfs.xfs cmp; do
  command -v "$t" >/dev/null || { echo "two_disks_bench: missing $t" >&2; exit 2; }
done
if [ "$DO_ZFS" = 1 ]; then
  command -v zfs-fuse >/dev/null || { echo "two_disks_bench: missing zfs-fuse (or BENCH_ZFS=0)" >&2; exit 2; }
  if zpool list >/dev/null 2>&1; then
    echo "two_disks_bench: a zfs-fuse daemon runs already; this benchmark throttles one of its own (or BENCH_ZFS=0)" >&2
    exit 2
  fi
fi

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/vmback-two-disks.XXXXXX")
GROUP=$BLKIO/vmback-bench-$$
LOOPS=()
MOUNTS=()
ZPID=
POOL=vmtwo$$
cleanup() {
  set +e
  [ -n "$ZPID" ] && zpool destroy -f "$POOL" >/dev/null 2>&1
  if [ -n "$ZPID" ]; then
    kill "$ZPID"
    for _ in $(seq 100); do kill -0 "$ZPID" 2>/dev/null || break; sleep 0.1; done
  fi
  for m in "${MOUNTS[@]}"; do umount "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  [ -d "$GROUP" ] && rmdir "$GROUP"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# loop FILE VAR: attaches FILE, records the device for cleanup, stores it in VAR.
loop() { local d; d=$(losetup -f --show "$1"); LOOPS+=("$d"); printf -v "$2" '%s' "$d"; }
sectors_read() { awk '{print $3}' "/sys/block/$(basename "$1")/stat"; }
throttle() { echo "$(lsblk -dno MAJ:MIN "$1" | tr -d ' ') $BPS" >"$GROUP/blkio.throttle.read_bps_device"; }

mkdir -p "$WORK/src" "$WORK/logs" "$WORK/out"
mkdir "$GROUP"
IMG=$WORK/src/vm-disk.img
log "generating a $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"

DISKS=()
for i in 0 1; do
  truncate -s 8G "$WORK/disk$i.img"
  loop "$WORK/disk$i.img" DEV
  mkfs.xfs -q "$DEV"
  mkdir -p "$WORK/d$i"
  mount "$DEV" "$WORK/d$i"
  MOUNTS+=("$WORK/d$i")
  DISKS+=("$DEV")
  throttle "$DEV"
done
ZDEVS=()
if [ "$DO_ZFS" = 1 ]; then
  for i in 0 1; do
    truncate -s 8G "$WORK/z$i.img"
    loop "$WORK/z$i.img" DEV
    ZDEVS+=("$DEV")
    throttle "$DEV"
  done
  zfs-fuse --no-daemon --no-kstat-mount >"$WORK/logs/zfs-fuse.log" 2>&1 &
  ZPID=$!
  for _ in $(seq 100); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
  zpool create -o cachefile=none -m "$WORK/zfs" "$POOL" mirror "${ZDEVS[@]}"
  zfs set compression=on "$POOL"
  zfs set checksum=sha256 "$POOL"
  cp --sparse=always "$IMG" "$WORK/zfs/"
  sync
  sleep 6  # zfs-fuse commits its transaction group
  echo "$ZPID" >"$GROUP/cgroup.procs"  # its reads of the pool are the disks' reads
fi
log "throttled reads of ${DISKS[*]} ${ZDEVS[*]} to $BPS B/s in $GROUP"

"$VMBACK" -q store init "$WORK/d0/one" >/dev/null
"$VMBACK" -q store init "$WORK/d0/two" --mirror "$WORK/d1/two" >/dev/null
"$VMBACK" -q backup --store "$WORK/d0/one" "$IMG" >/dev/null
"$VMBACK" -q backup --store "$WORK/d0/two" "$IMG" >/dev/null

RESULTS=$WORK/results.tsv
: >"$RESULTS"
# measure NAME CMD...: run in the throttled group, page cache dropped first.
measure() {
  local name=$1
  shift
  sync
  echo 3 >/proc/sys/vm/drop_caches
  local before=() after=() d rc=0
  for d in "${DISKS[@]}" "${ZDEVS[@]}"; do before+=("$(sectors_read "$d")"); done
  log "$name: $*"
  "$TIME" -f '%e %U %S %M' -o "$WORK/logs/$name.time" \
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$GROUP" "$@" \
    >"$WORK/logs/$name.out" 2>"$WORK/logs/$name.err" || rc=$?
  for d in "${DISKS[@]}" "${ZDEVS[@]}"; do after+=("$(sectors_read "$d")"); done
  local i reads=""
  for i in "${!before[@]}"; do reads+="$(((after[i] - before[i]) * 512)),"; done
  read -r wall user sys rss <"$WORK/logs/$name.time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$wall" "$user" "$sys" "$rss" "${reads%,}" >>"$RESULTS"
  [ "$rc" -eq 0 ] || { log "$name FAILED (exit $rc)"; tail -5 "$WORK/logs/$name.err" >&2; }
  log "$name: ${wall}s"
}
restored_ok() { cmp -s "$IMG" "$1" && echo yes || echo no; }

measure restore-one-copy "$VMBACK" -q restore --store "$WORK/d0/one" latest vm-disk.img --to "$WORK/out/one.img"
echo "restore-one-copy $(restored_ok "$WORK/out/one.img")" >>"$WORK/restored.txt"
rm -f "$WORK/out/one.img"
measure restore-two-copies "$VMBACK" -q restore --store "$WORK/d0/two" latest vm-disk.img --to "$WORK/out/two.img"
echo "restore-two-copies $(restored_ok "$WORK/out/two.img")" >>"$WORK/restored.txt"
rm -f "$WORK/out/two.img"
measure verify-one-copy "$VMBACK" verify --store "$WORK/d0/one" --json
measure verify-two-copies "$VMBACK" verify --store "$WORK/d0/two" --json
measure cat-packs-one-disk sh -c 'cat "$1"/packs/*/*.pack >/dev/null' sh "$WORK/d0/one"
if [ "$DO_ZFS" = 1 ]; then
  measure zfs-mirror-copy cp --sparse=always "$WORK/zfs/vm-disk.img" "$WORK/out/zfs.img"
  echo "zfs-mirror-copy $(restored_ok "$WORK/out/zfs.img")" >>"$WORK/restored.txt"
  rm -f "$WORK/out/zfs.img"
fi

python3 - "$WORK" "${BENCH_OUT:-$SCRIPT_DIR/out/two_disks_results.json}" "$BPS" "$VMBACK" <<'PY'
import datetime, json, os, sys
work, out_path, bps, vmback = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
MIB = 1 << 20
runs = {}
for line in open(os.path.join(work, "results.tsv")):
    name, rc, wall, user, sys_, rss, reads = line.rstrip("\n").split("\t")
    runs[name] = {"exit_status": int(rc), "wall_s": float(wall), "cpu_s": round(float(user) + float(sys_), 2),
                  "peak_rss_mib": round(int(rss) / 1024, 1), "device_read_bytes": [int(x) for x in reads.split(",")]}
restored = dict(l.split() for l in open(os.path.join(work, "restored.txt")))
for name, ok in restored.items():
    runs[name]["identical"] = ok == "yes"
for name in ("verify-one-copy", "verify-two-copies"):
    try:
        runs[name]["copies"] = json.load(open(os.path.join(work, "logs", name + ".out"))).get("copies")
    except Exception:  # noqa: BLE001
        pass
gen = json.load(open(os.path.join(work, "gen.json")))
print()
print("two disks read at once  (%s, %d cores)" % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
print("vmback: %s" % vmback)
print("image: %.0f MiB apparent, %.0f MiB allocated; every disk read-throttled to %.0f MB/s (cgroup v1 blkio);"
      " page cache dropped before each run" % (gen["apparent_bytes"] / MIB, gen["allocated_bytes"] / MIB, bps / 1e6))
hdr = ["run", "status", "wall s", "cpu s", "peak RSS MiB", "MiB read: d0", "d1", "zfs0", "zfs1"]
rows = []
for name, r in runs.items():
    st = "ok" if r["exit_status"] == 0 else "FAIL(%d)" % r["exit_status"]
    if r.get("identical") is False:
        st = "DIFFERS"
    reads = ["%.1f" % (b / MIB) for b in r["device_read_bytes"]] + ["-"] * 4
    rows.append([name, st, "%.2f" % r["wall_s"], "%.2f" % r["cpu_s"], "%.1f" % r["peak_rss_mib"]] + reads[:4])
widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
for cells in [hdr, ["-" * w for w in widths]] + rows:
    print("  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip())


def wall(name):
    r = runs.get(name)
    return r["wall_s"] if r and r["exit_status"] == 0 and r.get("identical", True) else None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


goals = [
    ("restore from two copies >= 1.8x as fast as from one (one / two)",
     ratio(wall("restore-one-copy"), wall("restore-two-copies")), ">=", 1.8),
    ("verify of two copies within 1.2x the time of one (two / one)",
     ratio(wall("verify-two-copies"), wall("verify-one-copy")), "<=", 1.2),
    ("restore from two copies vs zfs-fuse mirror copy-out (vmback / zfs; informational)",
     ratio(wall("restore-two-copies"), wall("zfs-mirror-copy")), None, None),
    ("restore from one copy vs cat of its packs from one disk (vmback / cat; informational)",
     ratio(wall("restore-one-copy"), wall("cat-packs-one-disk")), None, None),
]
print()
print("goals (informational, not asserted):")
result_goals = []
for name, value, cmp, target in goals:
    met = None if value is None or cmp is None else (value >= target if cmp == ">=" else value <= target)
    text = "-" if value is None else "%.2f" % value
    tail = "" if cmp is None else "  (target %s %s)  %s" % (cmp, target, "met" if met else "MISSED")
    print("  %-88s %s%s" % (name, text, tail))
    result_goals.append({"goal": name, "measured": value, "target": None if cmp is None else "%s %s" % (cmp, target), "met": met})
for name in ("verify-one-copy", "verify-two-copies"):
    for c in runs.get(name, {}).get("copies") or []:
        if isinstance(c, dict) and c.get("read_bytes_per_second") is not None:
            print("  %s: copy %s read at %.1f MB/s" % (name, c.get("dir", "?"), c["read_bytes_per_second"] / 1e6))
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as f:
    json.dump({"timestamp": datetime.datetime.now().isoformat(timespec="seconds"), "disk_read_bps": bps,
               "image": gen, "runs": runs, "goals": result_goals}, f, indent=2)
print()
print("JSON: " + out_path)
PY
