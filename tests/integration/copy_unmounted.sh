#!/usr/bin/env bash
# Issue 12, case 6: an unmounted disk never becomes a copy on the root file
# system. Copy A is a directory on one ext4 (a loop device), copy B is the
# mount point of another; B's file system is unmounted, leaving the empty
# mount-point directory:
#
#   the store given by --store A (--mirror B) and by a config (path A,
#     mirrors [B]): backup, run, verify, prune and store sync go on with A
#     (exit 5, naming B) and write nothing into B; plan and verify warn that
#     B is on the root file system while A is on its own (when the test's
#     directory is on "/"'s file system)
#   B mounted again: store sync brings it in step, verify exits 0 without
#     that warning, the copies are identical
#   a new, empty disk at B: backup leaves it empty; store sync -c --init
#     makes it a copy (with the vmback-copy marker) and records it
#   a copy whose making was cut short (B holding only its marker) is
#     finished by the next backup
#
# Usage: bash tests/integration/copy_unmounted.sh /path/to/vmback   (root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"
for tool in losetup mkfs.ext4 mountpoint python3; do command -v "$tool" >/dev/null || die "needs $tool"; done

# new_disk NAME MOUNTPOINT: a 32 MiB ext4 on a loop device, mounted, without
# lost+found (so that the mount point itself can hold a copy).
new_disk() {
  local img=$WORK/$1.img var=DEV_$1
  truncate -s 32M "$img"
  attach_loop "$img" "$var"
  mkfs.ext4 -q -F -m 0 "${!var}"
  mkdir -p "$2"
  mount -t ext4 "${!var}" "$2"
  register_mount "$2"
  rmdir -- "$2/lost+found"
}


D1=$WORK/d1
A=$D1/vmback
B=$WORK/d2   # the mount point itself
SRC=$WORK/src
mkdir -p "$SRC"
rand_file "$SRC/a" 150000
new_disk d1 "$D1"
new_disk d2 "$B"
mirrored_store "$A" "$B" "$SRC"
vm backup -c "$CFG"
expect_rc 0 "a backup with both disks mounted"
check "B holds the store's marker" test -f "$B/vmback-copy"

# Whether "/" and the test's directory are one file system: then the empty
# mount point is on the root file system, as /mnt/usb2 would be.
ON_ROOT=0
[ "$(stat -c %d /)" = "$(stat -c %d "$WORK")" ] && ON_ROOT=1
[ "$ON_ROOT" = 1 ] || echo "    NOTE: $WORK is not on the root file system: the root-file-system warnings are not checked"

# b_untouched WHAT: the mount point B is still empty.
b_untouched() { check_eq "$(ls -A "$B")" "" "$1: the empty mount point $B"; }
# root_warning WHAT: the last command warned that B is on the root file system.
root_warning() {
  [ "$ON_ROOT" = 1 ] || return 0
  expect_err "copy $B is on the root file system, while the other copy is on a file system of its own" "$1"
}

section "B's file system unmounted"
umount -- "$B"
check "B is an empty directory" test -d "$B" -a -z "$(ls -A "$B")"
N=0
for how in path config; do
  # (store sync --mirror B would be the order to make B a copy: by path,
  # store sync is given the recorded copies.)
  if [ "$how" = path ]; then
    args=(--store "$A" --mirror "$B")
    paths=("$SRC")
    sync_args=(--store "$A")
  else
    args=(-c "$CFG")
    paths=()
    sync_args=(-c "$CFG")
  fi
  N=$((N + 1))
  echo "change $N" >>"$SRC/a"
  vm backup "${paths[@]}" "${args[@]}"
  expect_rc 5 "by $how: backup with B unmounted (done with warnings)"
  expect_err "copy $B is an empty directory" "by $how: backup names B"
  b_untouched "by $how: backup"
  vm verify "${args[@]}"
  expect_rc 5 "by $how: verify with B unmounted"
  root_warning "by $how: verify"
  b_untouched "by $how: verify"
  vm prune "${args[@]}" --keep-last 10
  expect_rc 5 "by $how: prune with B unmounted"
  b_untouched "by $how: prune"
  vm store sync "${sync_args[@]}"
  expect_rc 5 "by $how: store sync with B unmounted"
  root_warning "by $how: store sync"
  b_untouched "by $how: store sync"
done
vm backup --store "$A" "$SRC"
expect_rc 5 "by the path alone (B recorded): backup with B unmounted"
b_untouched "by the path alone: backup"
vm plan -c "$CFG"
expect_rc 0 "plan with B unmounted"
root_warning "plan"
echo "run" >>"$SRC/a"
vm run -c "$CFG"
expect_rc 5 "run with B unmounted"
b_untouched "run"

section "B mounted again"
mount -t ext4 "$DEV_d2" "$B"
vm store sync -c "$CFG"
expect_rc 0 "store sync with B back"
vm verify -c "$CFG"
expect_rc 0 "verify with B back"
check "verify says nothing of the root file system" bash -c '! grep -q "root file system" "$1"' _ "$VM_ERR"
check "the copies are identical" diff <(copy_listing "$A") <(copy_listing "$B")

section "a new, empty disk at B"
umount -- "$B"
new_disk d3 "$B"
vm backup -c "$CFG"
expect_rc 5 "backup onto a new, empty disk only named in the config"
b_untouched "backup with a new disk"
vm store sync -c "$CFG" --init
expect_rc 0 "store sync -c --init"
check "B is a copy now" test -f "$B/config.json"
check "B holds the marker" test -f "$B/vmback-copy"
check "the copies are identical" diff <(copy_listing "$A") <(copy_listing "$B")

section "a copy whose making was cut short"
cp -- "$B/vmback-copy" "$WORK/marker"
find "$B" -mindepth 1 -delete
cp -- "$WORK/marker" "$B/vmback-copy"
vm backup -c "$CFG"
expect_rc 5 "backup finishing the unfinished copy B"
expect_err "copy $B holds an unfinished copy of the store" "backup says what B holds"
check "B is a copy again" test -f "$B/config.json"
check "the copies are identical" diff <(copy_listing "$A") <(copy_listing "$B")
vm verify -c "$CFG"
expect_rc 0 "verify after B was finished"

finish
