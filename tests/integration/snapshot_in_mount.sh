#!/usr/bin/env bash
# `vmback run` with a reflink or btrfs snapshot of a volume whose source
# directory is itself a mount point (issue 12, case 3): the usual layout of
# /var/lib/libvirt/images on its own LV or subvolume. The snapshot must be
# made inside the source's own file system (a hidden .vmback-<volume>-<run id>
# at the top of the source), never beside it in the parent file system, where
# FICLONE fails with "Invalid cross-device link" and btrfs refuses to
# snapshot.
#
#   reflink  an XFS (mkfs.xfs -m reflink=1) on a loop device, mounted on the
#            source directory: `vmback plan` shows the snapshot inside the
#            source; the run backs it up; the restored tree is the
#            source's (files, sparse file, hard link, symlink, modes, owners,
#            mtimes), without any .vmback-* entry; nothing is left in the
#            source, no journal; a planted .vmback-<volume>-<n> directory (a
#            leftover whose journal was lost) is neither copied into the
#            snapshot nor backed up, and is left where it is; an in-place
#            (dir) target gets the files and no snapshot directory; a run
#            killed by SIGKILL while its snapshot exists leaves it inside the
#            mount, recorded in the journal, and `vmback run --recover-only`
#            removes it there
#   btrfs    a btrfs on a loop device whose subvolume is mounted on the source
#            directory (mount -o subvol=): the snapshot subvolume is made
#            (and planned) inside it; the backup holds the files and no snapshot (a planted
#            leftover subvolume shows as an empty directory in the run's
#            snapshot and is left out, from the store and from an in-place
#            dir target); a run killed while its snapshot exists is cleaned
#            up by the next run, which then backs up
#
# Usage: bash tests/integration/snapshot_in_mount.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mkfs, losetup, mount)"
for tool in mkfs.xfs mkfs.btrfs btrfs losetup mount umount mountpoint rsync truncate; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
unset VMBACK_TEST_CRASH_AT

STATE=$WORK/state

# config FILE TARGET_TOML VOLUME SOURCE KIND: a run config with one volume
# and no VMs (vms = []: libvirt is not asked).
config() {
  cat >"$1" <<EOF
[target]
$2

[retention]
keep_last = 100

[run]
state_dir = "$STATE"

[[volume]]
name = "$3"
source = "$4"
snapshot = "$5"
vms = []
EOF
}

# same_tree SOURCE RESTORED WHAT: rsync finds no difference (content,
# hard links, owners, modes, mtimes, symlinks; extra entries count) but for
# the times of the top directory itself (making and dropping the snapshot
# inside it moves them, and the point keeps them as they were) and the
# .vmback-* entries at the top (snapshots_in checks those).
same_tree() {
  local out rc=0
  _count_check
  out=$(rsync -ncaHAX --delete --exclude='/.vmback-*' -i -- "$1/" "$2/" 2>&1) || rc=$?
  out=$(printf '%s\n' "$out" | grep -vxF '.d..t...... ./' || true)
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    _fail "$3: rsync -ncaHAX --delete -i $1/ $2/ found differences (exit $rc):"
    printf '%s\n' "$out" | head -40 | cat -v | sed 's/^/    /' >&2
  fi
  return 0
}

# snapshots_in DIR: the .vmback-<...> entries at the top of DIR but the
# in-place target's own .vmback-blockmaps.
snapshots_in() {
  [ -d "$1" ] || return 0
  find "$1" -mindepth 1 -maxdepth 1 -name '.vmback-*' ! -name .vmback-blockmaps | sort
}

# fill DIR: images and a little tree: dense, sparse, a hard link, a symlink,
# a subdirectory, modes, an owner, mtimes.
fill() {
  rand_file "$1/a.img" 3M
  truncate -s 64M "$1/sparse.qcow2"
  rand_file "$WORK/chunk" 70000
  dd if="$WORK/chunk" of="$1/sparse.qcow2" bs=4096 seek=5000 conv=notrunc status=none
  mkdir -m 0700 "$1/sub"
  rand_file "$1/sub/b.raw" 100000
  chown 1234:5678 "$1/sub/b.raw"
  chmod 0600 "$1/sub/b.raw"
  ln "$1/a.img" "$1/sub/a-link.img"
  ln -s sub/b.raw "$1/b-link"
  touch -d '2024-01-02 03:04:05.5' "$1/a.img" "$1/sub"
  chmod 0750 "$1"
}

# plan_shows CFG WHAT LINE...: vmback plan succeeds and prints each LINE.
plan_shows() {
  local cfg=$1 what=$2 line
  shift 2
  vm plan -c "$cfg"
  expect_rc 0 "$what: plan"
  for line in "$@"; do
    _count_check
    grep -qF -- "$line" "$VM_OUT" || { _fail "$what: plan does not show: $line"; _vm_context; }
  done
  return 0
}

# run_ok CFG SOURCE WHAT: vmback run succeeds (exit 0), and leaves no
# snapshot in SOURCE and no journal.
run_ok() {
  vm run -c "$1"
  expect_rc 0 "$3: vmback run"
  check_eq "$(snapshots_in "$2")" "" "$3: snapshots left in the source"
  check "$3: no journal left" test ! -e "$STATE/journal"
}

# restored_ok STORE VOLUME SOURCE WHAT: the latest point's volume restores
# to the source's tree and holds no .vmback-* entry.
_R=0
restored_ok() {
  _R=$((_R + 1))
  local to=$WORK/restored-$_R
  vm restore --store "$1" latest "$2" --to "$to"
  expect_rc 0 "$4: restore of volume $2"
  same_tree "$3" "$to" "$4: the restored volume $2"
  check_eq "$(snapshots_in "$to")" "" "$4: .vmback-* entries in the backup of $2"
  rm -rf -- "$to"
}

# crash_leaves CFG SOURCE WHAT: a run killed by SIGKILL while its snapshot
# exists (at the sync step) leaves it inside SOURCE, recorded in the journal.
crash_leaves() {
  { VMBACK_TEST_CRASH_AT=sync vm run -c "$1"; } 2>/dev/null
  expect_rc 137 "$3: killed by SIGKILL at the sync step"
  LEFT=$(snapshots_in "$2")
  check_eq "$(printf '%s\n' "$LEFT" | grep -c . || true)" 1 "$3: one snapshot left inside the source"
  check "$3: the journal is left" test -e "$STATE/journal"
  _count_check
  [ -n "$LEFT" ] && grep -qF -- "\\\"target\\\":\\\"$LEFT\\\"" "$STATE/journal" ||
    _fail "$3: the journal does not record the snapshot at ${LEFT:-(none)}: $(cat "$STATE/journal" 2>/dev/null || true)"
  return 0
}

# ---------------------------------------------------------------------------
section "reflink: an XFS mounted on the source directory"
IMAGES=$WORK/images
STORE=$WORK/store
mkdir -p "$IMAGES"
truncate -s 320M "$WORK/xfs.img"
mkfs.xfs -q -m reflink=1 "$WORK/xfs.img"
attach_loop "$WORK/xfs.img" XFS_LOOP
mount -t xfs -- "$XFS_LOOP" "$IMAGES"
register_mount "$IMAGES"
fill "$IMAGES"
check "setup: the source is a mount point" mountpoint -q "$IMAGES"
config "$WORK/reflink.toml" "path = \"$STORE\"" images "$IMAGES" reflink
vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

plan_shows "$WORK/reflink.toml" reflink "mkdir -m 0700 -- $IMAGES/.vmback-images-<run id>" \
  "reflink copy (FICLONERANGE) -- $IMAGES/a.img $IMAGES/.vmback-images-<run id>/a.img" \
  "(read images from $IMAGES/.vmback-images-<run id>)" "rm -r -- $IMAGES/.vmback-images-<run id>"
run_ok "$WORK/reflink.toml" "$IMAGES" "reflink"
restored_ok "$STORE" images "$IMAGES" "reflink"

section "reflink: a leftover .vmback-images-* in the source is not backed up"
mkdir -m 0700 "$IMAGES/.vmback-images-1"
echo "a leftover whose journal was lost" >"$IMAGES/.vmback-images-1/a.img"
rand_file "$IMAGES/a.img" 3M # a change, so that the point differs
vm run -c "$WORK/reflink.toml"
expect_rc 0 "reflink with a planted leftover: vmback run"
check_eq "$(snapshots_in "$IMAGES")" "$IMAGES/.vmback-images-1" "reflink: only the planted leftover is in the source"
check "reflink: the planted leftover is kept as it was" grep -q "journal was lost" "$IMAGES/.vmback-images-1/a.img"
rm -rf -- "$IMAGES/.vmback-images-1"
restored_ok "$STORE" images "$IMAGES" "reflink with a planted leftover"

section "reflink: into an in-place (dir) target"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
config "$WORK/reflink-dir.toml" "type = \"dir\"
path = \"$MIRROR\"" images "$IMAGES" reflink
run_ok "$WORK/reflink-dir.toml" "$IMAGES" "reflink to a dir target"
_count_check
if [ -d "$MIRROR/images" ]; then
  check_eq "$(snapshots_in "$MIRROR/images")" "" "reflink to a dir target: .vmback-images-* in the mirror"
  check_same_file "$IMAGES/sub/b.raw" "$MIRROR/images/sub/b.raw" "reflink to a dir target: sub/b.raw mirrored"
  check_same_file "$IMAGES/a.img" "$MIRROR/images/a.img" "reflink to a dir target: a.img mirrored"
else
  _fail "reflink to a dir target: no $MIRROR/images"
fi

section "reflink: killed while the snapshot exists; --recover-only removes it inside the mount"
crash_leaves "$WORK/reflink.toml" "$IMAGES" "reflink"
vm run --recover-only -c "$WORK/reflink.toml"
expect_rc 0 "reflink: run --recover-only"
expect_err "dropped snapshot" "reflink: --recover-only says it dropped the snapshot"
check_eq "$(snapshots_in "$IMAGES")" "" "reflink: snapshots left after --recover-only"
check "reflink: no journal after --recover-only" test ! -e "$STATE/journal"
check "reflink: the source is intact" cmp -s "$IMAGES/a.img" "$IMAGES/sub/a-link.img"
run_ok "$WORK/reflink.toml" "$IMAGES" "reflink after the recovery"
restored_ok "$STORE" images "$IMAGES" "reflink after the recovery"

# ---------------------------------------------------------------------------
section "btrfs: a subvolume mounted on the source directory"
BTOP=$WORK/btrfs-top
VMS=$WORK/vms
BSTORE=$WORK/bstore
mkdir -p "$BTOP" "$VMS"
truncate -s 256M "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img" 2>/dev/null
attach_loop "$WORK/btrfs.img" BTRFS_LOOP
mount -t btrfs -- "$BTRFS_LOOP" "$BTOP"
register_mount "$BTOP"
btrfs -q subvolume create "$BTOP/vms" >/dev/null
mount -t btrfs -o subvol=vms -- "$BTRFS_LOOP" "$VMS"
register_mount "$VMS"
fill "$VMS"
check "setup: the source is a mount point" mountpoint -q "$VMS"
config "$WORK/btrfs.toml" "path = \"$BSTORE\"" vms "$VMS" btrfs
vm store init "$BSTORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

plan_shows "$WORK/btrfs.toml" btrfs "btrfs subvolume snapshot -r -- $VMS $VMS/.vmback-vms-<run id>" \
  "btrfs subvolume delete -- $VMS/.vmback-vms-<run id>"
run_ok "$WORK/btrfs.toml" "$VMS" "btrfs"
restored_ok "$BSTORE" vms "$VMS" "btrfs"
check_eq "$(btrfs subvolume list -o "$BTOP" | awk '{print $NF}')" "vms" "btrfs: no snapshot subvolume left"

section "btrfs: a leftover snapshot subvolume in the source is not backed up"
btrfs -q subvolume snapshot -r "$VMS" "$VMS/.vmback-vms-1" >/dev/null
rand_file "$VMS/a.img" 3M
vm run -c "$WORK/btrfs.toml"
expect_rc 0 "btrfs with a planted leftover: vmback run"
check_eq "$(snapshots_in "$VMS")" "$VMS/.vmback-vms-1" "btrfs: only the planted leftover is in the source"
restored_ok "$BSTORE" vms "$VMS" "btrfs with a planted leftover"
# The in-place copy leaves it out too.
BMIRROR=$WORK/bmirror
mkdir -p "$BMIRROR"
config "$WORK/btrfs-dir.toml" "type = \"dir\"
path = \"$BMIRROR\"" vms "$VMS" btrfs
vm run -c "$WORK/btrfs-dir.toml"
expect_rc 0 "btrfs with a planted leftover to a dir target: vmback run"
check_eq "$(snapshots_in "$BMIRROR/vms")" "" "btrfs with a planted leftover to a dir target: .vmback-vms-* in the mirror"
check_same_file "$VMS/sub/b.raw" "$BMIRROR/vms/sub/b.raw" "btrfs to a dir target: sub/b.raw mirrored"
check_eq "$(snapshots_in "$VMS")" "$VMS/.vmback-vms-1" "btrfs to a dir target: only the planted leftover is in the source"
btrfs -q subvolume delete "$VMS/.vmback-vms-1" >/dev/null

section "btrfs: killed while the snapshot exists; the next run removes it inside the mount"
crash_leaves "$WORK/btrfs.toml" "$VMS" "btrfs"
vm run -c "$WORK/btrfs.toml"
expect_rc 5 "btrfs: the run after the crash (recovered: warnings)"
expect_err "dropped snapshot" "btrfs: the next run says it dropped the snapshot"
check_eq "$(snapshots_in "$VMS")" "" "btrfs: snapshots left after the next run"
check "btrfs: no journal after the next run" test ! -e "$STATE/journal"
check_eq "$(btrfs subvolume list -o "$BTOP" | awk '{print $NF}')" "vms" "btrfs: no snapshot subvolume left after the next run"
restored_ok "$BSTORE" vms "$VMS" "btrfs after the recovery"

finish
