#!/usr/bin/env bash
# A guest's file system is hostile to the host that mounts its snapshot:
# `vmback run` mounts it with -t <the type blkid found> (the kernel does not
# try every file system driver on guest-made bytes) and -o
# ro,nosuid,nodev,noexec, XFS with nouuid (an LVM snapshot of a mounted XFS
# has the UUID of its origin, and XFS refuses a duplicate without it); "--"
# before the paths. state_dir, which holds the mount points, is made 0700 by
# vmback, and tightened to 0700 if it was wider.
#
# LVM is the stand-in tests/helpers/fake_lvm (no device-mapper here: a
# regular file plays the LV, lvcreate -s copies it; mount sets up a loop
# device for it). "mount" on PATH is a wrapper that logs its argv and the
# options the kernel shows for the new mount, then exits as mount did.
#
#   xfs    an XFS volume whose origin is mounted (read-only) during the run:
#          argv has -t xfs and -o ro,nosuid,nodev,noexec,nouuid; the kernel
#          shows nosuid,nodev,noexec; the point holds its files
#   ext4   argv has -t ext4 and -o ro,nosuid,nodev,noexec
#   state  a new state_dir is 0700 under umask 022; a 0755 one becomes 0700
#
# Usage: bash tests/security/job_mount_options.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount, losetup)"
for tool in mkfs.xfs mkfs.ext4 losetup findmnt; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
REAL_MOUNT=$(command -v mount)
source "$(dirname -- "$0")/job_lib.sh"
use_fake_lvm
cat >"$WORK/bin/mount" <<EOF
#!/bin/bash
echo "mount \$*" >>'$WORK/mount.log'
$REAL_MOUNT "\$@"
rc=\$?
[ \$rc -eq 0 ] && echo "options \$(findmnt -n -o OPTIONS --mountpoint "\${@: -1}")" >>'$WORK/mount.log'
exit \$rc
EOF
chmod 755 "$WORK/bin/mount"

# Whatever a failed run leaves mounted under $WORK, and the loop devices
# mount set up for the snapshot images, go before lib.sh's clean-up.
_cleanup_work_mounts() {
  local m l
  for m in $(awk -v w="$WORK" 'index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -- "$m" 2>/dev/null || umount -l -- "$m" 2>/dev/null || true
  done
  for l in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v d="$WORK/vg/" -v own="${XFS_LOOP:-}" 'index($2, d) == 1 && $1 != own { print $1 }'); do
    losetup -d "$l" 2>/dev/null || true
  done
}
register_cleanup _cleanup_work_mounts

VG=$WORK/vg
mkdir -p "$VG" "$WORK/origin" "$WORK/fsrc"
# XFS: populated through a mount, then mounted read-only as its origin
# stays during the run (its UUID in use, as a guest's LV is).
truncate -s 320M "$VG/xfs"
mkfs.xfs -q "$VG/xfs"
attach_loop "$VG/xfs" XFS_LOOP
"$REAL_MOUNT" -- "$XFS_LOOP" "$WORK/origin"
echo "inside the XFS volume" >"$WORK/origin/hello.txt"
umount -- "$WORK/origin"
"$REAL_MOUNT" -o ro -- "$XFS_LOOP" "$WORK/origin"
register_mount "$WORK/origin"
# ext4, populated by mkfs.
echo "inside the ext4 volume" >"$WORK/fsrc/hello.txt"
truncate -s 16M "$VG/ext4"
mkfs.ext4 -q -F -d "$WORK/fsrc" "$VG/ext4"

config() { # STATE_DIR
  cat <<EOF
[target]
path = "$WORK/store"

[run]
state_dir = "$1"

[[volume]]
name = "xfs"
source = "$VG/xfs"
snapshot = "lvm"
snapshot_size = "64M"
vms = []

[[volume]]
name = "ext4"
source = "$VG/ext4"
snapshot = "lvm"
snapshot_size = "64M"
vms = []
EOF
}
vm store init "$WORK/store"
expect_rc 0 "store init"

section "xfs and ext4: the mount argv and the kernel's options"
umask 022
config "$WORK/state" >"$WORK/vmback.toml"
: >"$WORK/mount.log"
vm run -c "$WORK/vmback.toml"
expect_rc 0 "a run with an XFS (origin mounted) and an ext4 volume"
cat "$WORK/mount.log"
check "xfs: mount argv" grep -qE "^mount -t xfs -o ro,nosuid,nodev,noexec,nouuid -- $VG/vmback-xfs-[^ ]+ $WORK/state/mnt-xfs\$" "$WORK/mount.log"
check "ext4: mount argv" grep -qE "^mount -t ext4 -o ro,nosuid,nodev,noexec -- $VG/vmback-ext4-[^ ]+ $WORK/state/mnt-ext4\$" "$WORK/mount.log"
_count_check
opts=$(grep -c '^options .*nosuid.*nodev.*noexec' "$WORK/mount.log" || true)
[ "$opts" -eq 2 ] || _fail "the kernel does not show nosuid,nodev,noexec on both mounts: $(grep '^options' "$WORK/mount.log")"
list_points --store "$WORK/store"
check_eq "${#POINTS[@]}" 1 "one point"
vm restore --store "$WORK/store" "${POINTS[0]}" --to "$WORK/restored"
expect_rc 0 "restore the point"
check "the XFS volume's file is in the point" grep -q "inside the XFS volume" "$WORK/restored/xfs/hello.txt"
check "the ext4 volume's file is in the point" grep -q "inside the ext4 volume" "$WORK/restored/ext4/hello.txt"

section "state_dir: made 0700, tightened when wider"
check_eq "$(stat -c %a "$WORK/state")" 700 "a new state_dir is 0700 under umask 022"
mkdir -m 0755 "$WORK/state2"
config "$WORK/state2" >"$WORK/vmback2.toml"
vm run -c "$WORK/vmback2.toml"
expect_rc 0 "a run with a 0755 state_dir"
check_eq "$(stat -c %a "$WORK/state2")" 700 "a 0755 state_dir is tightened to 0700"
expect_err "tightened to 0700" "says so"

finish
