#!/usr/bin/env bash
# Issue 12, case 12: `restore --force` onto a block device that is in use.
# A loop device holds a mounted ext4; restoring an image onto it is refused
# (O_EXCL), naming the mount point, and the file system on it is untouched.
# The same from an in-place dir target. Once unmounted, the restore writes
# the image.
#
# Usage: bash tests/integration/restore_busy_device.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"

section "an image in a store, and a loop device with a mounted ext4"
rand_file "$WORK/image" $((8 * 1024 * 1024))
vm store init "$WORK/store"
expect_rc 0 "store init"
vm backup --store "$WORK/store" "$WORK/image"
expect_rc 0 "backup of the image"
truncate -s 16M "$WORK/dev.img"
mkfs.ext4 -q -F "$WORK/dev.img"
attach_loop "$WORK/dev.img" LOOP
mkdir "$WORK/mnt"
mount "$LOOP" "$WORK/mnt"
register_mount "$WORK/mnt"
echo "data on the mounted file system" >"$WORK/mnt/keep"
sync

section "restore --force onto the mounted device is refused"
vm restore --store "$WORK/store" latest image --to "$LOOP" --force
expect_nonzero "restore onto a mounted device"
expect_err "is in use" "the refusal says the device is in use"
expect_err "mounted on $WORK/mnt" "the refusal names the mount point"
check_eq "$(cat "$WORK/mnt/keep")" "data on the mounted file system" "the mounted file system still reads"

section "the same from an in-place dir target"
mkdir "$WORK/target"
vm backup --dir "$WORK/target" "$WORK/image"
expect_rc 0 "backup of the image into a dir target"
vm restore --dir "$WORK/target" current image --to "$LOOP" --force
expect_nonzero "restore from a target onto a mounted device"
expect_err "mounted on $WORK/mnt" "the refusal names the mount point"
check_eq "$(cat "$WORK/mnt/keep")" "data on the mounted file system" "the mounted file system still reads"

section "unmounted, the file system is clean; then the same restore writes the image"
umount "$WORK/mnt"
# (A byte comparison of the device would not do: the mounted ext4 itself
# writes to it in the background.)
check "e2fsck finds the file system clean" e2fsck -fn "$LOOP"
vm restore --store "$WORK/store" latest image --to "$LOOP" --force
expect_rc 0 "restore onto the unmounted device"
check_eq "$(head -c $((8 * 1024 * 1024)) "$LOOP" | sha256sum)" "$(sha256sum <"$WORK/image")" "the device holds the image"

finish
