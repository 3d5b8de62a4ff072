#!/usr/bin/env bash
# The btrfs in-place target, on a real btrfs: RAID1 (data and metadata) over
# two loop devices backed by files in the test's directory, mounted with
# compress=zstd; the target is a subvolume, points are read-only snapshots
# beside it.
#
#   incremental   4 backups with seeded random changes; each run writes at
#                 most the changed 128 KiB blocks; every point restores
#                 bit-identical; holes stay holes
#   scrub         one device overwritten with garbage (not its superblocks):
#                 verify reports that btrfs repaired it (exit 5), data intact
#   end to end    wrong bytes written into the mirror behind vmback's back and
#                 snapshotted under vmback's prefix: verify names point, file
#                 and block (exit 3)
#   prune         keep_last 2 deletes vmback's old snapshots, never another
#   bad targets   not a subvolume, not btrfs: clear error, nothing made
#
# Usage: bash tests/integration/btrfs_target.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"
for tool in python3 rsync cmp mkfs.btrfs btrfs losetup; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

truncate -s 320M "$WORK/d1" "$WORK/d2"
attach_loop "$WORK/d1" L1
attach_loop "$WORK/d2" L2
mkfs.btrfs -q -f -d raid1 -m raid1 "$L1" "$L2" >/dev/null
mkdir -p "$WORK/mnt"
mount -o compress=zstd "$L1" "$WORK/mnt"
register_mount "$WORK/mnt"
btrfs subvolume create "$WORK/mnt/vmback" >/dev/null
# Snapshots (vmback's and others) are deleted before the unmount.
register_cleanup "for s in \"$WORK\"/mnt/*; do [ \"\$s\" = \"$WORK/mnt/vmback\" ] || btrfs subvolume delete \"\$s\" >/dev/null 2>&1; done"

SRC=$WORK/src
mkdir -p "$SRC/tree/sub"
python3 - "$SRC/img" <<'EOF'
import random, sys
r = random.Random(2)
with open(sys.argv[1], "wb") as f:
    f.truncate(24 << 20)
    for off in range(0, 24 << 20, 1 << 20):
        if r.random() < 0.7:
            f.seek(off)
            f.write(r.randbytes(1 << 20))
EOF
text_file "$SRC/tree/notes.txt" 200000
echo small >"$SRC/tree/sub/small"
cat >"$WORK/vmback.toml" <<EOF
[target]
type = "btrfs"
path = "$WORK/mnt/vmback"

[retention]
keep_last = 2

[[volume]]
name = "img"
source = "$SRC/img"

[[volume]]
name = "tree"
source = "$SRC/tree"
EOF


# ---------------------------------------------------------------------------
section "first backup and incremental runs"
vm backup -c "$WORK/vmback.toml" --json
expect_rc 0 "first backup"
sync
check "the mirror keeps the image's holes" test "$(du -k "$WORK/mnt/vmback/img" | cut -f1)" -lt $((24 * 1024 * 9 / 10))
cp --sparse=always "$SRC/img" "$WORK/img.0"
for run in 1 2 3; do
  touched=$(change_blocks "$SRC/img" "$run" 15)
  echo "run $run" >"$SRC/tree/sub/run"
  vm backup -c "$WORK/vmback.toml" --json
  expect_rc 0 "backup $run"
  check_eq "$(json_field "$VM_OUT" 'd["inplace"][0]["blocks_written"]')" "$touched" "run $run: blocks written = blocks changed"
  written=$(json_field "$VM_OUT" 'd["inplace"][0]["bytes_written"]')
  check "run $run: bytes written ($written) <= changed blocks x 128 KiB" test "$written" -le $((touched * 131072))
  cp --sparse=always "$SRC/img" "$WORK/img.$run"
  cp -a "$SRC/tree" "$WORK/tree.$run"
done
list_points -c "$WORK/vmback.toml"
check_eq "${#POINTS[@]}" 4 "points after four backups"
for i in 0 1 2 3; do
  check "point $i is a read-only snapshot" bash -c "btrfs property get -ts '$WORK/mnt/${POINTS[$i]}' ro | grep -q true"
  vm restore -c "$WORK/vmback.toml" "${POINTS[$i]}" img --to "$WORK/r$i.img"
  expect_rc 0 "restore img of point $i"
  check_same_file "$WORK/r$i.img" "$WORK/img.$i" "point $i image"
done
vm restore -c "$WORK/vmback.toml" latest tree --to "$WORK/rtree"
expect_rc 0 "restore the latest tree"
check_same_tree "$WORK/tree.3" "$WORK/rtree" "latest tree"

section "point names: list's time and latest~N"
check_point_names btrfs img "$WORK/img.2" -c "$WORK/vmback.toml"

section "stats: du, then btrfs quota groups"
vm stats -c "$WORK/vmback.toml" --json
expect_rc 0 "stats without quotas"
check "without quotas: du of each point" python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['points']
assert len(p) == 4 and all(x['du_bytes'] > 0 for x in p), p" "$VM_OUT"
vm stats -c "$WORK/vmback.toml"
check "without quotas: says how to get them" grep -qF "btrfs quota enable" "$VM_OUT"
btrfs quota enable "$WORK/mnt"
btrfs quota rescan -w "$WORK/mnt" >/dev/null
vm stats -c "$WORK/vmback.toml" --json
expect_rc 0 "stats with quotas"
check "with quotas: each point's referenced and exclusive bytes" python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['points']
assert len(p) == 4, p
for x in p:
    assert 0 < x['exclusive'] < x['referenced'], x  # the points share most of their extents
assert p[3]['referenced'] > 12 << 20, p  # most of the 24 MiB image is data" "$VM_OUT"
vm stats -c "$WORK/vmback.toml" latest
check "with quotas: the text" grep -qE "${POINTS[3]}: exclusive .* \(freed by deleting it\), referenced .* \(btrfs qgroup\)" "$VM_OUT"
btrfs quota disable "$WORK/mnt"

section "scrub: one device overwritten"
vm verify -c "$WORK/vmback.toml"
expect_rc 0 "verify before damage"
sync
python3 - "$WORK/d1" <<'EOF'
import os, sys
# Garbage over the device but its superblocks (64 KiB and 64 MiB).
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    for start, end in ((1 << 20, 63 << 20), (65 << 20, size)):
        off = start
        while off < end:
            f.seek(off)
            f.write(os.urandom(1 << 20))
            off += 1 << 20
EOF
echo 3 >/proc/sys/vm/drop_caches
vm verify -c "$WORK/vmback.toml"
expect_rc 5 "verify after damaging one device: repaired, a warning"
check "verify says btrfs repaired it" grep -q "repaired [1-9]" "$VM_OUT"
vm restore -c "$WORK/vmback.toml" latest img --to "$WORK/after-scrub.img"
expect_rc 0 "restore after the scrub"
check_same_file "$WORK/after-scrub.img" "$SRC/img" "image after the scrub"

section "end to end: wrong data written behind vmback's back"
printf 'WRONG' | dd of="$WORK/mnt/vmback/img" bs=1 seek=$((3 * 131072 + 9)) conv=notrunc status=none
btrfs subvolume snapshot -r "$WORK/mnt/vmback" "$WORK/mnt/vmback-2030-01-01T000000Z" >/dev/null
vm verify -c "$WORK/vmback.toml"
expect_rc 3 "verify finds the wrong block"
check "verify names point, file and block" grep -q "vmback-2030-01-01T000000Z: img: block 3 (offset 393216)" "$VM_OUT"
btrfs subvolume delete "$WORK/mnt/vmback-2030-01-01T000000Z" >/dev/null
vm backup -c "$WORK/vmback.toml"
expect_rc 5 "the next backup repairs the mirror (a warning: the map was rebuilt)"
vm verify -c "$WORK/vmback.toml"
expect_rc 0 "verify clean again"

section "prune deletes only vmback's snapshots"
btrfs subvolume snapshot -r "$WORK/mnt/vmback" "$WORK/mnt/manual-keep" >/dev/null
vm prune -c "$WORK/vmback.toml"
expect_rc 0 "prune"
list_points -c "$WORK/vmback.toml"
check_eq "${#POINTS[@]}" 2 "keep_last 2"
check "a snapshot without vmback's prefix survives" test -d "$WORK/mnt/manual-keep"

section "bad targets"
mkdir "$WORK/mnt/plain"
vm backup --btrfs "$WORK/mnt/plain" "$SRC/img"
expect_rc 2 "a directory that is not a subvolume"
expect_err "not a subvolume" "says so"
vm backup --btrfs "$WORK/src" "$SRC/img"
expect_rc 2 "a directory not on btrfs"
expect_err "not on a btrfs" "says so"
rmdir "$WORK/mnt/plain"

finish
