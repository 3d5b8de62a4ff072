#!/usr/bin/env bash
# Forged in-place targets (issue 11): a `dir` target whose .vmback-point.json
# names volumes that leave the destination, restores --force over mount
# points, volumes leaving the config with a mount inside, and --to symlinks.
# Each case makes a real target with the binary, forges it, runs the real
# binary and checks the exit status, the message and that nothing outside
# the destination changed (a hash of every file of a sentinel tree, the
# files symlinks point to included).
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
source "$(dirname -- "$0")/target_lib.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (mounts, chown)"

# forge_volumes MIRROR NAME...: the point's description names exactly these
# volumes (JSON strings, so "\u0000" is a NUL).
forge_volumes() {
  local mirror=$1
  shift
  python3 - "$mirror/.vmback-point.json" "$@" <<'PY'
import json, sys
path = sys.argv[1]
d = json.load(open(path))
d["volumes"] = [{"name": json.loads('"' + n + '"'), "kind": "tree", "source": "/x"} for n in sys.argv[2:]]
open(path, "w").write(json.dumps(d))
PY
}

SRC=$WORK/src
mkdir -p "$SRC/a/sub" "$SRC/b"
echo "a file" >"$SRC/a/sub/f"
echo "b file" >"$SRC/b/g"
head -c 100000 /dev/urandom >"$SRC/img.raw"

# The sentinel: everything here must stay as it is. Destinations are made
# inside it, so "outside the destination" is the rest of it.
SENT=$WORK/sent
mkdir -p "$SENT/victimdir/deep" "$SENT/keep"
echo "victim" >"$SENT/victimdir/deep/v"
echo "passwd-like" >"$SENT/victimfile"
chmod 0644 "$SENT/victimfile"

new_target() {  # new_target DIR: a dir target holding volumes a, b, img.raw
  rm -rf -- "$1"
  mkdir -p -- "$1"
  vm backup --dir "$1" "$SRC/a" "$SRC/b" "$SRC/img.raw"
  [ "$VM_RC" -eq 0 ] || { _vm_context; die "cannot make the target $1"; }
}

T=$WORK/tgt/T
new_target "$T"
# What a forged "../NAME" would read: siblings of the mirror.
mkdir -p "$WORK/tgt/escaped" "$WORK/tgt/victimdir"
echo "escaped" >"$WORK/tgt/escaped/e"
chmod 4755 "$WORK/tgt/escaped/e"

section "volume names that leave the destination are refused"
for bad in '../escaped' '../victimdir' '..' '.' '' 'a/../../victimdir' 'x\u0000y' '/abs'; do
  new_target "$T"
  mkdir -p "$WORK/tgt/escaped" "$WORK/tgt/victimdir"
  echo "escaped" >"$WORK/tgt/escaped/e"
  forge_volumes "$T" a "$bad"
  rm -rf -- "$SENT/dest"
  mkdir -p "$SENT/dest"
  before=$(tree_state "$SENT" | grep -v ' ./dest/r')
  vm restore --dir "$T" current --to "$SENT/dest/r"
  expect_rc 3 "restore of a point naming volume '$bad' (damage found)"
  expect_err "volume name" "restore of a point naming volume '$bad' says why"
  check_eq "$(tree_state "$SENT" | grep -v ' ./dest/r')" "$before" "nothing outside --to changed (volume '$bad')"
  check "no escaped file beside --to ('$bad')" test ! -e "$SENT/dest/escaped"
  # --force onto an existing destination beside a victim directory.
  mkdir -p "$SENT/dest/r"
  vm restore --dir "$T" current --to "$SENT/dest/r" --force
  expect_rc 3 "restore --force of a point naming volume '$bad'"
  check_eq "$(tree_state "$SENT" | grep -v ' ./dest/r')" "$before" "restore --force: nothing outside --to changed ('$bad')"
  # list and verify read the same names.
  vm verify --dir "$T"
  expect_nonzero "verify of a point naming volume '$bad'"
done

section "a volume leaving the config: a mount inside it is not emptied"
new_target "$T"
mkdir -p "$T/b/mnt"
mount -t tmpfs -o size=1m tmpfs "$T/b/mnt"
register_mount "$T/b/mnt"
echo "on another file system" >"$T/b/mnt/precious"
ln -s "$SENT/victimdir" "$T/b/link-out"
before=$(tree_state "$SENT")
vm backup --dir "$T" "$SRC/a" "$SRC/img.raw"
expect_rc 2 "backup that would remove a volume with a mount inside"
expect_err "$T/b/mnt" "the refusal names the mount point"
check "the mounted file system keeps its file" test -f "$T/b/mnt/precious"
check_eq "$(tree_state "$SENT")" "$before" "removing a volume: nothing outside the mirror changed"
umount "$T/b/mnt"

section "restore --force does not delete across a mount point"
new_target "$T"
D=$SENT/dest2
rm -rf -- "$D"
# a/sub is in the point too: the restore must not enter the mount to sync it.
mkdir -p "$D/a/sub"
mount -t tmpfs -o size=1m tmpfs "$D/a/sub"
register_mount "$D/a/sub"
echo "on another file system" >"$D/a/sub/precious"
vm restore --dir "$T" current a --to "$D/a" --force
expect_nonzero "restore --force over a directory holding a mount point"
expect_err "$D/a/sub" "the refusal names the mount point"
check "the mounted file system keeps its file" test -f "$D/a/sub/precious"
check "nothing was written into the mounted file system" test ! -e "$D/a/sub/f"
umount "$D/a/sub"
rm -rf -- "$D"

section "restore --delete replaces symlinks planted in the destination, never follows them"
new_target "$T"
D=$SENT/dest3
rm -rf -- "$D"
mkdir -p "$D"
ln -s "$SENT/victimdir" "$D/sub"     # where the point has a directory (a/sub)
ln -s "$SENT/victimfile" "$D/extra"  # a name the point does not have
before=$(tree_state "$SENT" | grep -v ' ./dest3')
vm restore --dir "$T" current a --to "$D" --delete
expect_rc 0 "restore --delete over planted symlinks"
check_eq "$(tree_state "$SENT" | grep -v ' ./dest3')" "$before" "planted symlinks: nothing they point to changed"
check "the planted directory symlink became a real directory" test -d "$D/sub" -a ! -L "$D/sub"
check "the file landed inside the destination" cmp "$SRC/a/sub/f" "$D/sub/f"
check "the extra symlink is gone" test ! -L "$D/extra"
rm -rf -- "$D"

section "--to a symlink"
new_target "$T"
ln -sfn "$SENT/victimfile" "$WORK/link-to-file"
ln -sfn "$SENT/keep" "$WORK/link-to-dir"
before=$(tree_state "$SENT")
vm restore --dir "$T" current img.raw --to "$WORK/link-to-file" --force
expect_rc 2 "restore --force of a file volume --to a symlink to a regular file"
expect_err "symlink" "the refusal says --to is a symlink"
vm restore --dir "$T" current img.raw --to "$WORK/link-to-file"
expect_nonzero "restore of a file volume --to a symlink to a regular file, no --force"
vm restore --dir "$T" current a --to "$WORK/link-to-dir" --force
expect_rc 2 "restore --force of a tree volume --to a symlink to a directory"
vm restore --dir "$T" current --to "$WORK/link-to-dir" --force
expect_rc 2 "restore --force of a whole point --to a symlink to a directory"
check_eq "$(tree_state "$SENT")" "$before" "--to symlinks: nothing they point to changed"

# The documented exception: /dev/VG/LV-style links to a block device.
truncate -s 1M "$WORK/disk.img"
attach_loop "$WORK/disk.img" LOOP
ln -sfn "$LOOP" "$WORK/link-to-dev"
vm restore --dir "$T" current img.raw --to "$WORK/link-to-dev"
expect_nonzero "restore --to a symlink to a block device needs --force"
vm restore --dir "$T" current img.raw --to "$WORK/link-to-dev" --force
expect_rc 0 "restore --force --to a symlink to a block device writes the device"
check "the device holds the image" cmp -n 100000 "$SRC/img.raw" "$LOOP"

section "restore from a target with --no-owner --no-special --no-privileges"
mkdir -p "$WORK/sp/t" "$WORK/sp/target"
echo x >"$WORK/sp/t/suid"
chown 1234:1234 "$WORK/sp/t/suid"
chmod 6755 "$WORK/sp/t/suid"
mkfifo "$WORK/sp/t/fifo"
vm backup --dir "$WORK/sp/target" "$WORK/sp/t"
expect_rc 0 "backup of a tree with a setuid file and a fifo"
vm restore --dir "$WORK/sp/target" current t --to "$WORK/sp/faithful"
expect_rc 0 "faithful restore from the target"
check_eq "$(stat -c '%a %u' "$WORK/sp/faithful/suid")" "6755 1234" "faithful: setuid and owner kept"
check "faithful: the fifo is there" test -p "$WORK/sp/faithful/fifo"
vm restore --dir "$WORK/sp/target" current t --to "$WORK/sp/safe" --no-owner --no-special --no-privileges
expect_rc 0 "safe restore from the target"
check_eq "$(stat -c '%a %u' "$WORK/sp/safe/suid")" "755 0" "safe: no setuid/setgid, owned by the restoring user"
check "safe: no fifo" test ! -e "$WORK/sp/safe/fifo"

finish
