#!/usr/bin/env bash
# Symlinks planted in an in-place `dir` target (issue 11): where vmback
# expects its own file or directory (a file volume, a blockmap, a blockmap
# directory, the lock) a symlink is an error naming it, and nothing it points
# to is written, truncated or deleted. Also: the modes of a new mirror (top
# directory 0700, blockmaps 0600) and the nodev warning of plan/verify.
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
source "$(dirname -- "$0")/target_lib.sh"

[ "$(id -u)" -eq 0 ] || die "needs root"

map_of() {  # map_of MAPROOT REL: where the blockmap of REL lives
  local h
  h=$(printf '%s' "$2" | sha256sum | cut -c1-64)
  printf '%s/.vmback-blockmaps/%s/%s.map' "$1" "${h:0:2}" "$h"
}

SRC=$WORK/src
mkdir -p "$SRC/a/sub"
echo "a file" >"$SRC/a/sub/f"
head -c 100000 /dev/urandom >"$SRC/img.raw"
SENT=$WORK/sent
mkdir -p "$SENT/etc"
echo "root:x:0:0::/root:/bin/bash" >"$SENT/etc/passwd"
echo "precious" >"$SENT/etc/other"

T=$WORK/T
new_target() {
  rm -rf -- "$T"
  mkdir -p -- "$T"
  vm backup --dir "$T" "$SRC/a" "$SRC/img.raw"
  [ "$VM_RC" -eq 0 ] || { _vm_context; die "cannot make the target"; }
}

# plant WHAT PATH LINKTARGET: replace PATH in a fresh target by a symlink,
# back up again, expect an error naming PATH and the sentinel unchanged.
plant() {
  local what=$1 path=$2 to=$3
  new_target
  rm -rf -- "$path"
  ln -s -- "$to" "$path"
  local before
  before=$(tree_state "$SENT")
  vm backup --dir "$T" "$SRC/a" "$SRC/img.raw"
  expect_nonzero "backup with $what a symlink"
  expect_err "$path" "the error names $what"
  check_eq "$(tree_state "$SENT")" "$before" "$what a symlink: nothing it points to changed"
}

section "symlinks where vmback expects its own files"
plant "the file volume" "$T/img.raw" "$SENT/etc/passwd"
plant "a file volume's blockmap" "$(map_of "$T" img.raw)" "$SENT/etc/passwd"
plant "the blockmap directory" "$T/.vmback-blockmaps" "$SENT/etc"
map=$(map_of "$T" img.raw)
plant "a blockmap subdirectory" "$(dirname -- "$map")" "$SENT/etc"
plant "a tree volume's blockmap directory" "$T/a/.vmback-blockmaps" "$SENT/etc"
plant "a tree file's blockmap" "$(map_of "$T/a" sub/f)" "$SENT/etc/other"
plant "the target's lock" "$T/.vmback-lock" "$SENT/etc/passwd"
plant "a blockmap lock" "$T/.vmback-blockmaps/lock" "$SENT/etc/passwd"
plant "a dangling lock" "$T/.vmback-lock" "$SENT/etc/newfile"
check "a dangling lock symlink created nothing" test ! -e "$SENT/etc/newfile"

section "restoring a point with a symlink for a volume"
new_target
rm -f -- "$T/img.raw"
ln -s -- "$SENT/etc/passwd" "$T/img.raw"
vm restore --dir "$T" current img.raw --to "$WORK/out.raw"
expect_nonzero "restore of a volume that is a symlink in the point"
check "nothing restored from the symlink" test ! -e "$WORK/out.raw"

section "modes of a new mirror"
new_target
check_eq "$(stat -c %a "$T")" "700" "the mirror's top directory"
check_eq "$(find "$T" -name '*.map' ! -perm 0600 | wc -l)" "0" "every blockmap is 0600"
check_eq "$(find "$T" -name '*.map' | wc -l)" "2" "two blockmaps"
check_eq "$(find "$T" -path '*.vmback-blockmaps*' -type d ! -perm 0700 | wc -l)" "0" "blockmap directories are 0700"
chmod 0755 "$T"
vm backup --dir "$T" "$SRC/a" "$SRC/img.raw"
expect_rc 0 "a backup into a mirror opened up to 0755"
check_eq "$(stat -c %a "$T")" "700" "the next backup closes the mirror again"

section "plan and verify warn when the target's mount lacks nodev"
mkdir -p "$WORK/mnt"
mount -t tmpfs -o size=8m,dev tmpfs "$WORK/mnt"
register_mount "$WORK/mnt"
mkdir "$WORK/mnt/T"
vm backup --dir "$WORK/mnt/T" "$SRC/a"
expect_rc 0 "backup into a target on a mount with dev"
vm verify --dir "$WORK/mnt/T"
expect_err "nodev" "verify warns about the missing nodev"
cat >"$WORK/plan.toml" <<TOML
[target]
type = "dir"
path = "$WORK/mnt/T"
[run]
state_dir = "$WORK/state"
[[volume]]
name = "a"
source = "$SRC/a"
TOML
vm plan -c "$WORK/plan.toml"
expect_rc 0 "plan of a target on a mount with dev"
expect_err "nodev" "plan warns about the missing nodev"
mount -o remount,nodev,nosuid,noexec "$WORK/mnt"
vm verify --dir "$WORK/mnt/T"
expect_rc 0 "verify on a nodev mount"
check "no nodev warning on a nodev mount" bash -c "! grep -qi nodev '$VM_ERR'"
umount "$WORK/mnt"

finish
