#!/usr/bin/env bash
# track_changes = true on a reflink (XFS) and a btrfs volume, with real loop
# file systems mounted on the source directories, into the store and into
# an in-place dir target:
#   run 1   reads in full and says why (the first point); its snapshot
#           stays inside the source as the next run's base, recorded in
#           STATE/base-VOLUME.json
#   run 2   after a few 4 KiB writes into a 48 MiB image: the report says
#           "shared-extents", the bytes read are far below the image (at
#           most 1 MiB), the old base is gone and the new one is recorded;
#           the point restores to exactly the source as it was
#   run 3   --full-read: reads everything, and its point restores the same
#   run 4   after the base snapshot is deleted by hand: a full read whose
#           report says the base is gone
#   plan    shows that the snapshot is kept as the next run's base
# Usage: bash tests/integration/track_changes.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mkfs, losetup, mount)"
for tool in mkfs.xfs mkfs.btrfs btrfs losetup mount umount cmp truncate; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
unset VMBACK_TEST_CRASH_AT

# config FILE TARGET_TOML SOURCE KIND STATE
config() {
  cat >"$1" <<EOF
[target]
$2

[run]
state_dir = "$5"

[[volume]]
name = "images"
source = "$3"
snapshot = "$4"
track_changes = true
vms = []
EOF
}

snapshots_in() { find "$1" -mindepth 1 -maxdepth 1 -name '.vmback-images-*' | sort; }

# report_says WHAT PYTHON: the run's JSON report ($VM_OUT) answers; v is the volume.
report_says() {
  check "$1" python3 -c "import json, sys
r = json.load(open(sys.argv[1]))
v = r['backup']['volumes'][0]
$2" "$VM_OUT"
}

# mount_source KIND FS SRC: a fresh file system of that kind on a loop
# device, mounted on SRC (btrfs: a subvolume of it, as images often are).
mount_source() {
  local kind=$1 fs=$2 src=$3
  truncate -s 400M "$WORK/$kind.fs"
  if [ "$fs" = xfs ]; then mkfs.xfs -q -m reflink=1 "$WORK/$kind.fs"; else mkfs.btrfs -q "$WORK/$kind.fs"; fi
  attach_loop "$WORK/$kind.fs" LOOP
  if [ "$fs" = btrfs ]; then
    mkdir -p "$WORK/btrfs-top"
    mount -t btrfs -- "$LOOP" "$WORK/btrfs-top"
    register_mount "$WORK/btrfs-top"
    btrfs -q subvolume create "$WORK/btrfs-top/images" >/dev/null
    mount -t btrfs -o subvol=images -- "$LOOP" "$src"
  else
    mount -t "$fs" -- "$LOOP" "$src"
  fi
  register_mount "$src"
}

count_lines() { printf '%s\n' "$1" | grep -c . || true; }

# one_fs KIND FS: the whole story on a file system of that kind.
one_fs() {
  local kind=$1 fs=$2
  local src=$WORK/$kind-images state=$WORK/$kind-state store=$WORK/$kind-store
  section "$kind: store"
  mkdir -p "$src"
  mount_source "$kind" "$fs" "$src"
  rand_file "$src/disk.img" 48M
  rand_file "$src/small.raw" 100000
  config "$WORK/$kind.toml" "path = \"$store\"" "$src" "$kind" "$state"
  vm store init "$store"
  expect_rc 0 "$kind: store init"

  vm plan -c "$WORK/$kind.toml"
  expect_rc 0 "$kind: plan"
  check "$kind: plan says the snapshot is kept" grep -qF "kept as the next run's base" "$VM_OUT"

  vm run -c "$WORK/$kind.toml" --json
  expect_rc 0 "$kind: run 1"
  report_says "$kind: run 1 reads in full, saying why" \
    "assert v['change_method'] == 'full-read' and 'no version in the parent point' in v['change_why'], v"
  local base1 base2 base3
  base1=$(snapshots_in "$src")
  check_eq "$(count_lines "$base1")" 1 "$kind: run 1 keeps one snapshot in the source"
  check "$kind: the base is recorded" grep -qF "\"path\": \"$base1" "$state/base-images.json"
  check "$kind: no journal left" test ! -e "$state/journal"

  change_blocks "$src/disk.img" 7 5 >/dev/null
  cp --reflink=never "$src/disk.img" "$WORK/disk-at-run2.img"
  vm run -c "$WORK/$kind.toml" --json
  expect_rc 0 "$kind: run 2"
  report_says "$kind: run 2 reads only what changed" \
    "assert v['change_method'] == 'shared-extents' and v['files_by_change_list'] == 1 and v['bytes_read'] <= (1 << 20), v"
  base2=$(snapshots_in "$src")
  check_eq "$(count_lines "$base2")" 1 "$kind: run 2 leaves one base"
  check "$kind: the base is a new one" test "$base1" != "$base2"
  vm restore --store "$store" latest images/disk.img --to "$WORK/restored2.img"
  expect_rc 0 "$kind: restore of run 2"
  check "$kind: run 2's point is the image as it was" cmp -s "$WORK/restored2.img" "$WORK/disk-at-run2.img"

  vm run -c "$WORK/$kind.toml" --json --full-read
  expect_rc 0 "$kind: run 3 (--full-read)"
  report_says "$kind: run 3 reads everything" \
    "assert v['bytes_read'] >= (48 << 20) and v['change_method'] == 'full-read', v"
  vm restore --store "$store" latest images/disk.img --to "$WORK/restored3.img"
  expect_rc 0 "$kind: restore of run 3"
  check "$kind: run 3's point is the same image" cmp -s "$WORK/restored3.img" "$WORK/disk-at-run2.img"
  rm -f -- "$WORK/restored2.img" "$WORK/restored3.img"

  base3=$(snapshots_in "$src")
  if [ "$kind" = btrfs ]; then btrfs -q subvolume delete "$base3" >/dev/null; else rm -rf -- "$base3"; fi
  change_blocks "$src/disk.img" 9 2 >/dev/null
  vm run -c "$WORK/$kind.toml" --json
  expect_rc 0 "$kind: run 4 (base deleted by hand)"
  report_says "$kind: run 4 says the base is gone" \
    "assert 'is gone' in v['change_why'] and v['change_method'] == 'full-read', v"
  change_blocks "$src/disk.img" 13 1 >/dev/null
  vm run -c "$WORK/$kind.toml"
  expect_rc 0 "$kind: run 5 (text report)"
  check "$kind: the text report says what was read and how" grep -qE '^volume images: read .* of .* \(shared-extents\)$' "$VM_OUT"

  section "$kind: dir target"
  mkdir -p "$WORK/$kind-mirror"
  config "$WORK/$kind-dir.toml" "type = \"dir\"
path = \"$WORK/$kind-mirror\"" "$src" "$kind" "$WORK/$kind-dir-state"
  vm run -c "$WORK/$kind-dir.toml" --json
  expect_rc 0 "$kind: dir target run 1"
  change_blocks "$src/disk.img" 11 3 >/dev/null
  vm run -c "$WORK/$kind-dir.toml" --json
  expect_rc 0 "$kind: dir target run 2"
  report_says "$kind: the dir target reads only what changed" \
    "assert v['change_method'] == 'shared-extents' and v['bytes_read'] <= (1 << 20), v"
  check "$kind: the mirror is the image" cmp -s "$WORK/$kind-mirror/images/disk.img" "$src/disk.img"
}

one_fs reflink xfs
one_fs btrfs btrfs
finish
