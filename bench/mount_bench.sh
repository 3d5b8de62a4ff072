#!/usr/bin/env bash
# Reading through `vmback mount` beside the other ways of getting data back.
# A benchmark, not a test: the goals of issue 15 are printed next to the
# figures, never asserted.
#
#   nice -n 10 bash bench/mount_bench.sh          (as root: FUSE)
#
# 1. the image of bench/store_bench.sh (bench/gen_image.py: sparse, 30%
#    random, 20% compressible, 50% holes; BENCH_SIZE, default 4G) backed up
#    into a store;
# 2. warm cache (the store's packs read once before each run), one run each:
#      restore   vmback restore of the image to a file
#      dump      vmback dump of the image to /dev/null
#      mount     dd bs=1M of the image through a fresh vmback mount
#    throughput = the image's apparent size / wall time;
# 3. random 4 KiB reads (offsets uniform over the image, seeded) through a
#    fresh mount, by 1 and by 8 reader processes, each for BENCH_RANDOM_S
#    seconds: reads per second in all;
# 4. the mount's peak RSS (VmHWM) after all of it (--cache-mib 128);
# 5. a tree of BENCH_FILES (default 100000) small files in 100 directories,
#    backed up 30 times (10 files changed between backups): the wall time of
#    `vmback ls -R` of the newest point, and of `vmback find` of one name
#    across the 30 points.
#
# Environment: BENCH_DIR (parent of the work dir, default /tmp), BENCH_SEED,
# BENCH_SIZE, BENCH_KEEP=1, VMBACK, BENCH_OUT (default
# bench/out/mount_results.json), BENCH_RANDOM_S (default 20), BENCH_FILES.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "mount_bench: run as root (FUSE)" >&2; exit 2; }
require_tools mount_bench "$VMBACK" python3 "$TIME" dd mountpoint timeout
[ -e /dev/fuse ] || { echo "mount_bench: no /dev/fuse" >&2; exit 2; }

make_work vmback-mount-bench
MNT=$WORK/mnt
MOUNT_PID=
cleanup() {
  if [[ -n "$MOUNT_PID" ]]; then kill "$MOUNT_PID" 2>/dev/null || true; wait "$MOUNT_PID" 2>/dev/null || true; fi
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  remove_work
}
trap cleanup EXIT
use_vmback_copy
preflight_or_exit mount_bench
RANDOM_S=${BENCH_RANDOM_S:-20}
FILES=${BENCH_FILES:-100000}
OUT=${BENCH_OUT:-$OUT_DIR/mount_results.json}

IMG=$WORK/img.raw
log "generating the image ($SIZE, seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"
STORE=$WORK/store
"$VMBACK" -q store init "$STORE" >/dev/null
log "backing up the image"
"$VMBACK" -q backup --store "$STORE" "$IMG" >/dev/null
APPARENT=$(stat -c %s "$IMG")
WARM_FILES=()
warm_store() { find "$STORE/packs" -type f -exec cat {} + >/dev/null; }

# start_mount ARGS...: a fresh mount at MNT, in the background.
start_mount() {
  mkdir -p "$MNT"
  "$VMBACK" mount --store "$STORE" "$@" "$MNT" 2>"$WORK/logs/mount.err" &
  MOUNT_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
  cat "$WORK/logs/mount.err" >&2
  echo "mount_bench: vmback mount did not mount" >&2
  exit 1
}
stop_mount() {
  kill "$MOUNT_PID"
  wait "$MOUNT_PID" || true
  MOUNT_PID=
}
# timed NAME CMD...: wall seconds of CMD into $WORK/NAME.s (warm store).
timed() {
  local name=$1
  shift
  warm_store
  local busy
  busy=$(wait_quiet)
  log "$name: $* (machine busy before: ${busy}%)"
  "$TIME" -f '%e %M' -o "$WORK/logs/$name.time" "$@" >/dev/null 2>"$WORK/logs/$name.err"
  awk '{print $1}' "$WORK/logs/$name.time" >"$WORK/$name.s"
  log "$name: $(cat "$WORK/$name.s") s"
}

timed restore "$VMBACK" -q restore --store "$STORE" latest img.raw --to "$WORK/restored"
rm -rf "$WORK/restored"
timed dump bash -c "'$VMBACK' -q dump --store '$STORE' latest img.raw >/dev/null"
start_mount --point latest
timed mount dd if="$MNT/img.raw" of=/dev/null bs=1M
stop_mount

# Random 4 KiB reads: N processes, each RANDOM_S seconds.
random_reads() {
  local n=$1
  start_mount --point latest
  warm_store
  python3 - "$MNT/img.raw" "$n" "$RANDOM_S" "$SEED" >"$WORK/random-$n.txt" <<'PY'
import os, random, sys, time
path, n, secs, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
size = os.path.getsize(path)
r, w = os.pipe()
for i in range(n):
    if os.fork() == 0:
        os.close(r)
        rng = random.Random(seed * 100 + i)
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        count, end = 0, time.monotonic() + secs
        while time.monotonic() < end:
            os.pread(fd, 4096, rng.randrange(size // 4096) * 4096)
            count += 1
        os.write(w, b"%d\n" % count)
        os._exit(0)
os.close(w)
for _ in range(n):
    os.wait()
total = sum(int(x) for x in os.fdopen(r).read().split())
print(round(total / secs))
PY
  log "random 4 KiB reads, $n reader(s): $(cat "$WORK/random-$n.txt")/s"
  HWM=$(awk '/VmHWM/ {print $2}' "/proc/$MOUNT_PID/status")
  echo "$HWM" >"$WORK/hwm-$n.kib"
  stop_mount
}
random_reads 1
random_reads 8

# A big tree across 30 points.
TREE=$WORK/tree
log "making $FILES files"
python3 - "$TREE" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file-%06d.txt" % i), "w") as f:
        f.write("%d\n" % i)
PY
TSTORE=$WORK/tstore
"$VMBACK" -q store init "$TSTORE" >/dev/null
for ((p = 1; p <= 30; p++)); do
  for ((k = 0; k < 10; k++)); do
    i=$(((p * 10 + k) * 97 % FILES))
    echo "$p" >>"$TREE/$(printf 'd%03d/file-%06d.txt' $((i % 100)) "$i")"
  done
  "$VMBACK" -q backup --store "$TSTORE" "$TREE" >/dev/null
done
log "30 points of the tree backed up"
busy=$(wait_quiet)
"$TIME" -f '%e %M' -o "$WORK/logs/ls.time" "$VMBACK" -q ls --store "$TSTORE" latest tree -R >"$WORK/ls.out"
"$TIME" -f '%e %M' -o "$WORK/logs/find.time" "$VMBACK" -q find --store "$TSTORE" 'file-000042.txt' >"$WORK/find.out"
LS_ENTRIES=$(wc -l <"$WORK/ls.out")
FIND_POINTS=$(grep -c '^  ' "$WORK/find.out" || true)

python3 - "$WORK" "$APPARENT" "$OUT" "$LS_ENTRIES" "$FIND_POINTS" "$SIZE" <<'PY'
import json, sys
work, apparent, out, ls_entries, find_points, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def secs(name):
    return float(open(f"{work}/{name}.s").read())
def tm(name):
    wall, rss = open(f"{work}/logs/{name}.time").read().split()[-2:]
    return float(wall), int(rss)
r = {"image_apparent_bytes": apparent, "image_size": size}
for k in ("restore", "dump", "mount"):
    r[k + "_seconds"] = secs(k)
    r[k + "_mib_per_s"] = round(apparent / secs(k) / 2**20, 1)
r["mount_vs_restore"] = round(secs("restore") / secs("mount"), 2)
r["mount_vs_dump"] = round(secs("dump") / secs("mount"), 2)
for n in (1, 8):
    r[f"random_4k_reads_per_s_{n}"] = int(open(f"{work}/random-{n}.txt").read())
    r[f"mount_peak_rss_mib_after_{n}"] = round(int(open(f"{work}/hwm-{n}.kib").read()) / 1024, 1)
r["ls_R_seconds"], _ = tm("ls")
r["ls_R_entries"] = ls_entries
r["find_30_points_seconds"], _ = tm("find")
r["find_points_listed"] = find_points
json.dump(r, open(out, "w"), indent=2)
print(json.dumps(r, indent=2))
print("goals (issue 15): mount sequential >= 0.60 of restore: %.2f; ls -R of %d entries < 1 s: %.2f s; "
      "find across 30 points < 1 s: %.2f s; mount peak RSS < 256 MiB: %.0f MiB"
      % (r["mount_vs_restore"], ls_entries, r["ls_R_seconds"], r["find_30_points_seconds"],
         max(r["mount_peak_rss_mib_after_1"], r["mount_peak_rss_mib_after_8"])))
PY
