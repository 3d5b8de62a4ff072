#!/usr/bin/env bash
# Reads spread over a store's two copies (two disks read at once), on two
# loop devices with an XFS file system each. Disk speeds are set with the
# cgroup v1 blkio controller: the commands measured run in a group of this
# test's own (removed at the end) whose reads of a device are throttled.
# The page cache of the store's files is dropped (POSIX_FADV_DONTNEED, these
# files alone) before each command, so the disks serve the reads; what each
# disk served is read from /sys/block/loopN/stat.
#   equal disks    both throttled alike: a restore reads about half of the
#                  packs' bytes from each disk; bit-identical
#   a slow disk    copy B at 1/32 of A's speed: a restore reads at most a
#                  tenth of its bytes from B, so B does not set the pace;
#                  bit-identical
#   verify         reads every copy in full, both at once: the fast copy's
#                  reads end long before the slow one's (--json read_seconds),
#                  and the per-copy figures are reported
#   a copy failing B's packs cut short while a restore reads from it: the
#                  restore ends bit-identical from A, says what failed, and
#                  B's packs are rewritten from A
#
# Usage: bash tests/integration/two_disks.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, cgroups)"
BLKIO=/sys/fs/cgroup/blkio
[ -w "$BLKIO/cgroup.procs" ] || die "needs the cgroup v1 blkio controller at $BLKIO"
for tool in losetup mkfs.xfs python3 cmp lsblk; do command -v "$tool" >/dev/null || die "needs $tool"; done

GROUP=$BLKIO/vmback-test-$$
mkdir "$GROUP"
register_cleanup "rmdir '$GROUP'"
DEVS=()
for i in 0 1; do
  truncate -s 1G "$WORK/disk$i.img"
  attach_loop "$WORK/disk$i.img" DEV
  mkfs.xfs -q "$DEV"
  mkdir "$WORK/d$i"
  mount "$DEV" "$WORK/d$i"
  register_mount "$WORK/d$i"
  DEVS+=("$DEV")
done
A=$WORK/d0/store
B=$WORK/d1/store

# throttle DEV BYTES_PER_SECOND (0: no limit) for the group's reads
throttle() { echo "$(lsblk -dno MAJ:MIN "$1" | tr -d ' ') $2" >"$GROUP/blkio.throttle.read_bps_device"; }
read_bytes() { echo $(($(awk '{print $3}' "/sys/block/$(basename "$1")/stat") * 512)); }
# Drops the page cache of every file of both copies.
drop_store_cache() {
  python3 - "$A" "$B" <<'EOF'
import os, sys
for root in sys.argv[1:]:
    for dp, _, fs in os.walk(root):
        for f in fs:
            fd = os.open(os.path.join(dp, f), os.O_RDONLY | os.O_NOFOLLOW)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
EOF
}
# throttled CMD...: runs vmback CMD in the group (as vm does, VM_RC its exit
# status); R0/R1: the bytes each disk read meanwhile.
throttled() {
  local a0 a1
  drop_store_cache
  a0=$(read_bytes "${DEVS[0]}")
  a1=$(read_bytes "${DEVS[1]}")
  VM_RC=0
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$GROUP" "$VMBACK" "$@" \
    >"$WORK/out" 2>"$WORK/err" || VM_RC=$?
  R0=$(($(read_bytes "${DEVS[0]}") - a0))
  R1=$(($(read_bytes "${DEVS[1]}") - a1))
  echo "    vmback $1: disk A read $R0 B, disk B read $R1 B (exit $VM_RC)"
}

# 48 MiB that does not compress: two packs, 24 ranges of 2 MiB.
rand_file "$WORK/src.img" $((48 << 20))
vm store init "$A" --mirror "$B"
expect_rc 0 "store init with a mirror"
vm backup --store "$A" "$WORK/src.img"
expect_rc 0 "backup"
PACKS=$(find "$A/packs" -name '*.pack' -printf '%s\n' | awk '{s += $1} END {print s}')

# restore_at BPS_A BPS_B OUT: a restore of the image with the disks at those
# speeds, bit-identical.
restore_at() {
  throttle "${DEVS[0]}" "$1"
  throttle "${DEVS[1]}" "$2"
  throttled restore --store "$A" latest src.img --to "$3"
  expect_rc 0 "restore"
  check_same_file "$WORK/src.img" "$3" "restored image"
}

section "equal disks: each serves about half"
restore_at $((16 << 20)) $((16 << 20)) "$WORK/r1.img"
check "disk A served between a quarter and three quarters" \
  python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); sys.exit(not (0.25 <= a / (a + b) <= 0.75))" "$R0" "$R1"
check "together they read about the packs' bytes once, not twice" \
  python3 -c "import sys; sys.exit(not (int(sys.argv[1]) + int(sys.argv[2]) <= 1.3 * int(sys.argv[3])))" "$R0" "$R1" "$PACKS"

section "a slow disk does not set the pace"
restore_at $((32 << 20)) $((1 << 20)) "$WORK/r2.img"
check "the slow disk served at most a tenth" \
  python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); sys.exit(not (b <= 0.1 * (a + b)))" "$R0" "$R1"

section "verify reads both copies at once"
throttle "${DEVS[0]}" 0
throttle "${DEVS[1]}" $((8 << 20))
throttled verify --store "$A" --json
expect_rc 0 "verify"
cp "$WORK/out" "$WORK/verify.json"
check "each copy read in full" python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r['copies']) == 2, r['copies']
for c in r['copies']:
    assert c['bytes_read'] == int(sys.argv[2]), (c, sys.argv[2])
    assert c['read_bytes_per_second'] > 0, c
" "$WORK/verify.json" "$PACKS"
check "the fast copy is not held to the slow one's pace" python3 -c "
import json, sys
a, b = json.load(open(sys.argv[1]))['copies']
assert a['read_seconds'] * 3 < b['read_seconds'], (a, b)
" "$WORK/verify.json"
throttled verify --store "$A"
expect_rc 0 "verify (text)"
check "the text gives each copy's read speed" grep -q "copy $B: .* read 48.*/s" "$WORK/out"

section "a copy failing in the middle of a restore"
throttle "${DEVS[0]}" $((4 << 20))
throttle "${DEVS[1]}" $((4 << 20))
mapfile -t BPACKS < <(cd "$B" && find packs -name '*.pack' | sort)
drop_store_cache
sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$GROUP" \
  "$VMBACK" restore --store "$A" latest src.img --to "$WORK/r3.img" >"$WORK/out3" 2>"$WORK/err3" &
PID=$!
register_pid "$PID"
sleep 2
# Cut short in place: the restore's open descriptors see it.
for p in "${BPACKS[@]}"; do truncate -s 4096 "$B/$p"; done
RC=0
wait "$PID" || RC=$?
release_pid "$PID"
check "the restore ended well (exit 0, or 5 with a warning)" test "$RC" -eq 0 -o "$RC" -eq 5
check_same_file "$WORK/src.img" "$WORK/r3.img" "restored, though copy B failed"
check "the failure is named" grep -q "$B/packs/" "$WORK/err3" || { cat "$WORK/err3" "$WORK/out3"; echo "rc $RC"; }
throttle "${DEVS[0]}" 0
throttle "${DEVS[1]}" 0
vm verify --store "$A"
check "verify then leaves B whole" bash -c '
  for p in "${@:3}"; do cmp -s "$1/$p" "$2/$p" || exit 1; done' sh "$A" "$B" "${BPACKS[@]}"

finish
