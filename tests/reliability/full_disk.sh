#!/usr/bin/env bash
# A full disk under the store: a 64 MiB ext4 image in the test's temp
# directory, on its own loop device, mounted in the temp directory, holds
# the store. Each pass makes the file system afresh, backs up twice, fills
# the disk with a file that leaves a seeded amount of room (a few MiB, or a
# few blocks: the space runs out while a pack, an index file or a manifest
# is written), then backs up changing sources until a backup fails. Then:
#
#   * the failing backup exits 1 and names the lack of space,
#   * no partial point: the points are those before it,
#   * every earlier point restores bit-identical (the disk still full),
#   * after the fill file is deleted: verify exits 0, and the next backup
#     succeeds, clears what the failed one left in tmp/, and its point
#     restores bit-identical.
#
# 3 passes in the short run, 12 with VMBACK_LONG_TESTS=1; VMBACK_SEED picks
# the seed (default 5). Root (losetup, mount); the loop device and the mount
# are removed on every exit, also on failure (lib.sh).
#
# Usage: bash tests/reliability/full_disk.sh /path/to/vmback
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=rlib.sh
source "$(dirname -- "$0")/rlib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"
for tool in mkfs.ext4 losetup mount umount fallocate df; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

PASSES=3
[ "$LONG" = 1 ] && PASSES=12
SEED=${VMBACK_SEED:-5}
RANDOM=$SEED

IMG=$WORK/disk.img
MNT=$WORK/mnt
SRC=$WORK/src
SAVED=$WORK/saved
mkdir -p "$MNT"
truncate -s 64M "$IMG"
attach_loop "$IMG" LOOP
register_mount "$MNT"

# avail PATH: free bytes on the file system of PATH (made with -m 0: no
# blocks reserved for root, so root sees the same).
avail() { df --output=avail -B1 "$1" | tail -n 1 | tr -d ' '; }

_RN=0
restore_check() { # POINT WHAT
  _RN=$((_RN + 1))
  local dest=$WORK/r/$_RN
  mkdir -p "$WORK/r"
  vm restore --store "$STORE" "$1" src --to "$dest"
  expect_rc 0 "$2: restore of point $1"
  [ "$VM_RC" -eq 0 ] && check_same_tree "$SAVED/$1" "$dest" "$2: point $1"
  rm -rf -- "$dest"
}

# backup_saving RC WHAT: a backup; on success the sources are saved under
# the new point's name.
backup_saving() {
  local before p
  fast_points --store "$STORE"
  before=" ${POINTS[*]:-} "
  vm backup --store "$STORE" "$SRC"
  if [ "$VM_RC" -eq 0 ]; then
    fast_points --store "$STORE"
    for p in "${POINTS[@]}"; do
      [[ "$before" == *" $p "* ]] || cp -a -- "$SRC" "$SAVED/$p"
    done
  fi
}

FAILED_PASSES=0
ENOSPC_RUNS=0
for ((pass = 1; pass <= PASSES; pass++)); do
  run_begin
  if mountpoint -q -- "$MNT"; then umount -- "$MNT"; fi
  mkfs.ext4 -q -F -m 0 "$LOOP"
  mount -t ext4 "$LOOP" "$MNT"
  STORE=$MNT/store
  rm -rf -- "$SRC" "$SAVED"
  mkdir -p "$SAVED"
  vm store init "$STORE" --block-size 16K
  expect_rc 0 "pass $pass: store init"
  gen=$((SEED * 1000 + pass * 100))
  change_tree "$SRC" "$gen" 2
  backup_saving
  expect_rc 0 "pass $pass: first backup"
  change_tree "$SRC" $((gen + 1)) 2
  backup_saving
  expect_rc 0 "pass $pass: second backup"

  # Fill the disk, leaving a seeded amount of room. Odd passes: a few MiB,
  # and backups of MiBs of new data (the space runs out in a pack). Even
  # passes: a few blocks, and backups of one small changed file (the space
  # runs out in a small pack, an index file or a manifest).
  if [ $((pass % 2)) -eq 1 ]; then
    small=0
    room=$(((RANDOM % 6 + 1) * 1024 * 1024 + RANDOM))
  else
    small=1
    room=$(((RANDOM % 12) * 4096 + RANDOM % 4096))
  fi
  free=$(avail "$MNT")
  fill=$((free - room))
  [ "$fill" -gt 0 ] && fallocate -l "$fill" "$MNT/fill"
  echo "    pass $pass: $(avail "$MNT") bytes left (asked for $room)"

  # Growing sources until a backup fails.
  failed=0
  for ((k = 2; k < 40; k++)); do
    if [ "$small" -eq 1 ]; then
      echo "change $k" >"$SRC/etc/small.txt"
      touch -m -d "@$((1600000000 + gen + k))" "$SRC/etc/small.txt"
    else
      change_tree "$SRC" $((gen + k)) 2
      seeded_file "$SRC/etc/blob-$k" $(((RANDOM % 3 + 1) * 1024 * 1024)) $((gen + k))
    fi
    fast_points --store "$STORE"
    points_before=("${POINTS[@]}")
    backup_saving
    if [ "$VM_RC" -ne 0 ]; then
      failed=1
      break
    fi
  done
  _count_check
  if [ "$failed" -ne 1 ]; then
    _fail "pass $pass: the disk never filled up"
  else
    ENOSPC_RUNS=$((ENOSPC_RUNS + 1))
    what="pass $pass, backup $k on a full disk"
    echo "    $what: $(grep -m1 -i 'no space' "$VM_ERR" | sed "s|$WORK/||g" | cut -c1-160)"
    expect_rc 1 "$what: exit status"
    expect_err "No space left on device" "$what: names the lack of space"
    fast_points --store "$STORE"
    check_eq "${POINTS[*]}" "${points_before[*]}" "$what: no partial point"
    for p in "${POINTS[@]}"; do restore_check "$p" "$what, the disk still full"; done

    rm -f -- "$MNT/fill"
    vm verify --store "$STORE"
    expect_rc 0 "$what: verify once the space is freed"
    # verify reads under the shared lock (a backup may be writing tmp/ beside
    # it): what the failed backup left there is cleared by the next writer.
    backup_saving
    expect_rc 0 "$what: the next backup"
    check_eq "$(ls -A "$STORE/tmp")" "" "$what: the next backup cleared what the failed backup left in tmp/"
    fast_points --store "$STORE"
    check_eq "${#POINTS[@]}" $((${#points_before[@]} + 1)) "$what: the next backup made a point"
    restore_check "${POINTS[${#POINTS[@]}-1]}" "$what: the next backup's point"
    vm verify --store "$STORE"
    expect_rc 0 "$what: verify after the next backup"
  fi
  run_end
  FAILED_PASSES=$((FAILED_PASSES + RUN_FAILED))
done
umount -- "$MNT"

summary_row "backup onto a full ext4 (loop device)" "$PASSES" "$ENOSPC_RUNS" "$FAILED_PASSES"
summary_print "full disk, seed $SEED"
finish
