#!/usr/bin/env bash
# vmback mount (FUSE) on a store and on a dir target:
# - every file of a mounted point reads back equal to the original (and to
#   a restore), with its metadata; `latest` links to the newest point;
# - a sparse image shows its holes through SEEK_HOLE/SEEK_DATA;
# - an ext4 image inside a point is loop-mounted through the view and one
#   file of it compared: single-file restore from inside a VM's disk;
# - a point committed while mounted appears without a remount;
# - a damaged block fails the reads that touch it with EIO, logged with the
#   file and the bytes, while the rest of the file reads;
# - SIGTERM, SIGHUP and `umount` end the command and leave no mount (SIGINT
#   too, but a script's background job ignores it);
# - a missing directory, a file as DIR and a point not there are refused
#   before anything is mounted.
#
# Usage: bash tests/integration/mount.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ -e /dev/fuse ] || die "needs /dev/fuse"
command -v mkfs.ext4 >/dev/null || die "needs mkfs.ext4 (e2fsprogs)"

SRC=$WORK/tree
mkdir -p "$SRC/sub/deeper"
head -c 300000 /dev/urandom >"$SRC/a.bin"
head -c 5000000 /dev/urandom >"$SRC/big.bin"
printf 'leaf\n' >"$SRC/sub/c.txt"
: >"$SRC/sub/empty"
printf 'secret\n' >"$SRC/sub/deeper/private"
chmod 600 "$SRC/sub/deeper/private"
chown 1234:5678 "$SRC/sub/c.txt"
ln -s a.bin "$SRC/link"
touch -d '2020-02-02 02:02:02' "$SRC/sub/c.txt"
# A sparse image: data at the start, in the middle and at the end.
IMG=$WORK/disk.img
truncate -s 8M "$IMG"
head -c 70000 /dev/urandom | dd of="$IMG" conv=notrunc status=none
head -c 100000 /dev/urandom | dd of="$IMG" bs=1 seek=3000000 conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$IMG" bs=4096 seek=2047 conv=notrunc status=none
# A guest's file system: an ext4 image made from a directory (no mount).
GUEST=$WORK/guest
mkdir -p "$GUEST/etc/nginx"
head -c 200000 /dev/urandom | base64 >"$GUEST/etc/nginx/nginx.conf"
# 80 MiB: past PointFs::kDirectFrom, so the loop device reads the view
# without the page cache (direct I/O), as it does for a real disk image.
mkfs.ext4 -q -F -d "$GUEST" "$WORK/guest.ext4" 80M

# seek WHENCE FILE OFFSET: lseek(2) of FILE with SEEK_DATA or SEEK_HOLE;
# prints the offset, or ENXIO.
seek() {
  python3 - "$@" <<'EOF'
import os, sys
whence = {"data": os.SEEK_DATA, "hole": os.SEEK_HOLE}[sys.argv[1]]
fd = os.open(sys.argv[2], os.O_RDONLY)
try:
    print(os.lseek(fd, int(sys.argv[3]), whence))
except OSError as e:
    print("ENXIO" if e.errno == 6 else e)
EOF
}

# views KIND MNT POINT: what every mount must show of a point of $SRC,
# $IMG and guest.ext4.
views() {
  local kind=$1 mnt=$2 point=$3
  check_eq "$(readlink "$mnt/latest")" "$point" "$kind: latest links to the newest point"
  check "$kind: every file of the tree reads back equal" diff -r --no-dereference "$SRC" "$mnt/$point/tree"
  check_same_file "$mnt/latest/disk.img" "$IMG" "$kind: the sparse image through latest"
  check_eq "$(stat -c '%s %a %u:%g %Y' "$mnt/$point/tree/sub/c.txt")" \
    "$(stat -c '%s %a %u:%g %Y' "$SRC/sub/c.txt")" "$kind: size, mode, owner and mtime of a file"
  check_eq "$(stat -c '%a' "$mnt/$point/tree/sub/deeper/private")" 600 "$kind: a private file keeps its mode"
  check_eq "$(readlink "$mnt/$point/tree/link")" a.bin "$kind: a symlink's target"
  check "$kind: the view is read-only" bash -c "! touch '$mnt/$point/tree/new' 2>/dev/null"
  check "$kind: a file cannot be written" bash -c "! echo x 2>/dev/null >>'$mnt/$point/tree/a.bin'"

  section "$kind: holes"
  local hole data
  hole=$(seek hole "$mnt/latest/disk.img" 0)
  check "$kind: the first hole ($hole) is after the first 70000 bytes of data" \
    test "$hole" -ge 70000 -a "$hole" -lt 3000000
  data=$(seek data "$mnt/latest/disk.img" "$hole")
  check "$kind: the next data ($data) is the data at 3000000" test "$data" -gt "$hole" -a "$data" -le 3000000
  check_eq "$(seek hole "$mnt/latest/disk.img" $((8 * 1024 * 1024 - 1)))" $((8 * 1024 * 1024)) \
    "$kind: the end of the file is a hole"
  check_eq "$(seek data "$mnt/latest/disk.img" $((8 * 1024 * 1024)))" ENXIO "$kind: no data past the end"
  check_eq "$(dd if="$mnt/latest/disk.img" bs=4096 skip=100 count=1 status=none | tr -d '\0' | wc -c)" 0 \
    "$kind: a hole reads as zeros"

  section "$kind: one file from inside a guest's ext4 image"
  local guest=$WORK/guest-$kind loop
  mkdir -p "$guest"
  loop=$(losetup -f --show -r -- "$mnt/$point/guest.ext4") || die "losetup -r of the guest image in the view failed"
  register_cleanup "losetup -d $loop 2>/dev/null || true"
  if mount -o ro,noload "$loop" "$guest"; then
    check_same_file "$guest/etc/nginx/nginx.conf" "$GUEST/etc/nginx/nginx.conf" \
      "$kind: a file inside the guest's file system"
    umount "$guest"
  else
    _count_check
    _fail "$kind: mount -o ro,noload of the guest image (loop device over the FUSE view) failed"
  fi
  losetup -d "$loop"
}

section "refusals"
STORE=$WORK/store
vm store init "$STORE" --block-size 4K
expect_rc 0 "store init"
vm mount --store "$STORE" "$WORK/nowhere"
expect_rc 2 "mount on a directory that is not there"
expect_err "$WORK/nowhere is not a directory" "the refusal names the directory"
vm mount --store "$STORE" "$IMG"
expect_rc 2 "mount on a file"
vm backup --store "$STORE" --json "$SRC" "$IMG" "$WORK/guest.ext4"
expect_rc 0 "backup into the store"
POINT=$(json_field "$VM_OUT" 'd["point"]')
mkdir -p "$WORK/m0"
vm mount --store "$STORE" --point no-such-point "$WORK/m0"
expect_nonzero "mount --point of a point not there"
expect_err "no-such-point" "the error names the point"
check "nothing was mounted for a point not there" bash -c "! mountpoint -q '$WORK/m0'"

section "store: every point, and latest"
MNT=$WORK/mnt
start_mount store "$MNT" --store "$STORE"
check_eq "$(ls "$MNT")" "$(printf '%s\nlatest' "$POINT")" "store: the top lists the point and latest"
views store "$MNT" "$POINT"
# A restore of the same point agrees with the view.
vm restore --store "$STORE" "$POINT" tree --to "$WORK/restored"
expect_rc 0 "store: restore of the tree"
check "store: the view equals a restore" diff -r --no-dereference "$WORK/restored" "$MNT/$POINT/tree"

section "store: a point committed while mounted"
printf 'changed\n' >"$SRC/sub/c.txt"
vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "store: a second backup while mounted"
POINT2=$(json_field "$VM_OUT" 'd["point"]')
for ((i = 0; i < 100; i++)); do
  [ -d "$MNT/$POINT2" ] && break
  sleep 0.1
done
check "store: the new point is there without a remount" test -d "$MNT/$POINT2"
for ((i = 0; i < 50; i++)); do
  [ "$(readlink "$MNT/latest")" = "$POINT2" ] && break
  sleep 0.1
done
check_eq "$(readlink "$MNT/latest")" "$POINT2" "store: latest moves to the new point"
check_eq "$(cat "$MNT/$POINT2/tree/sub/c.txt")" changed "store: the new point's file"
check_eq "$(cat "$MNT/$POINT/tree/sub/c.txt")" leaf "store: the old point's file is unchanged"
stop_mount TERM "$MNT"

section "store: a damaged block"
check "store: a block of big.bin damaged in its pack" damage_block "$STORE" "$SRC/big.bin" 1048576
start_mount store-damaged "$MNT" --store "$STORE" --point "$POINT"
check "store --point: the top holds the point's volumes" test -d "$MNT/tree" -a -f "$MNT/disk.img"
check "store: reading the damaged file fails" bash -c "! cat '$MNT/tree/big.bin' >/dev/null 2>'$WORK/cat.err'"
check "store: the failure is an I/O error" grep -q "Input/output error" "$WORK/cat.err"
check "store: the blocks before the damage read" \
  cmp <(dd if="$MNT/tree/big.bin" bs=4096 count=256 iflag=direct status=none) <(head -c 1048576 "$SRC/big.bin")
check "store: the blocks after the damage read" \
  cmp <(dd if="$MNT/tree/big.bin" bs=4096 skip=257 count=100 iflag=direct status=none) \
  <(dd if="$SRC/big.bin" bs=4096 skip=257 count=100 status=none)
check "store: the log names the file and the bytes" grep -q "tree/big.bin.*1048576" "$WORK/store-damaged.log"
stop_mount umount "$MNT"

section "dir target"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
printf 'leaf\n' >"$SRC/sub/c.txt"
touch -d '2020-02-02 02:02:02' "$SRC/sub/c.txt"
vm backup --dir "$MIRROR" "$SRC" "$IMG" "$WORK/guest.ext4"
expect_rc 0 "backup into a dir target"
start_mount dir "$MNT" --dir "$MIRROR"
DPOINT=$(readlink "$MNT/latest")
check "dir: latest names a point" test -n "$DPOINT"
views dir "$MNT" "$DPOINT"
check "dir: vmback's own blockmaps are not shown" bash -c "! ls -a '$MNT/$DPOINT/tree' | grep -q blockmap"
stop_mount TERM "$MNT"

section "dir target: a damaged block"
flip_bit "$MIRROR/tree/big.bin" 2000000 >/dev/null
start_mount dir-damaged "$MNT" --dir "$MIRROR"
check "dir: reading the damaged file fails" bash -c "! cat '$MNT/latest/tree/big.bin' >/dev/null 2>'$WORK/cat.err'"
check "dir: the failure is an I/O error" grep -q "Input/output error" "$WORK/cat.err"
check "dir: the file's start reads" \
  cmp <(dd if="$MNT/latest/tree/big.bin" bs=4096 count=100 iflag=direct status=none) <(head -c 409600 "$SRC/big.bin")
check "dir: the log names the file" grep -q "tree/big.bin" "$WORK/dir-damaged.log"
stop_mount HUP "$MNT"
finish
