#!/usr/bin/env bash
# The ZFS in-place target, on a real ZFS (zfs-fuse): a pool mirrored over two
# files in the test's directory, compression=on, checksum=sha256.
#
#   incremental   4 backups with seeded random changes to a 32 MiB image and
#                 a tree; each run writes at most the changed 128 KiB records;
#                 every point restores bit-identical (through a ZFS clone)
#   mount         vmback mount reads the points through clones, and
#                 SIGTERM unmounts it and destroys them
#   blockmaps     a deleted map and a map with a flipped bit are rebuilt by
#                 the next backup (compare against the data), with a message
#   scrub         one disk of the mirror overwritten with garbage: verify
#                 reports that the pool repaired it (exit 5), data intact
#   end to end    wrong bytes written into the mirror behind vmback's back and
#                 snapshotted under vmback's prefix: verify names the point,
#                 file and block (exit 3); restore refuses to emit them
#   prune         keep_last 2 destroys vmback's old snapshots, never another
#   bad targets   no such dataset, not mounted, full (quota): clear error,
#                 non-zero exit, no snapshot taken
#   target init   --dry-run prints the commands; a real init makes a mirrored
#                 pool with compression and sha256 checksums
# zfs-fuse has no .zfs directory and no hole punching: zero blocks are
# written as zeros (compression stores them as nothing).
#
# Usage: bash tests/integration/zfs_target.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
source "$(dirname -- "$0")/zfs_lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (zfs-fuse)"
for tool in python3 rsync cmp zpool zfs; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

POOL=vmbt$$x$RANDOM
zfs_start
zfs_make_pool "$POOL" 384M "$WORK/pool"
zfs create "$POOL/vmback"
SRC=$WORK/src
mkdir -p "$SRC/tree/sub"
python3 - "$SRC/img" <<'EOF'
import random, sys
r = random.Random(1)
with open(sys.argv[1], "wb") as f:
    f.truncate(32 << 20)
    for off in range(0, 32 << 20, 1 << 20):
        if r.random() < 0.7:          # 70% data, the rest holes
            f.seek(off)
            f.write(r.randbytes(1 << 20))
EOF
text_file "$SRC/tree/notes.txt" 300000
echo "a small file" >"$SRC/tree/sub/small"
ln -s notes.txt "$SRC/tree/link"
cat >"$WORK/vmback.toml" <<EOF
[target]
type = "zfs"
dataset = "$POOL/vmback"

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
cp --sparse=always "$SRC/img" "$WORK/img.0"
for run in 1 2 3; do
  touched=$(change_blocks "$SRC/img" "$run" 20)
  echo "run $run" >"$SRC/tree/sub/run"
  vm backup -c "$WORK/vmback.toml" --json
  expect_rc 0 "backup $run"
  written=$(json_field "$VM_OUT" 'd["inplace"][0]["bytes_written"]')
  records=$(json_field "$VM_OUT" 'd["inplace"][0]["blocks_written"]')
  check_eq "$records" "$touched" "run $run: records written = records changed"
  check "run $run: bytes written ($written) <= changed records x 128 KiB" test "$written" -le $((touched * 131072))
  cp --sparse=always "$SRC/img" "$WORK/img.$run"
  cp -a "$SRC/tree" "$WORK/tree.$run"
done
list_points -c "$WORK/vmback.toml"
# keep_last applies only to prune, not yet run: 4 points.
check_eq "${#POINTS[@]}" 4 "points after four backups"
check "points are snapshots with vmback's prefix" bash -c "zfs list -H -t snapshot -o name -r $POOL/vmback | grep -c '@vmback-' | grep -qx 4"

section "stats: what zfs says of each point's snapshot"
vm stats -c "$WORK/vmback.toml" --json
expect_rc 0 "stats of a zfs target"
check "stats: each point's used and referenced (and written) as zfs get gives them" python3 -c '
import json, subprocess, sys
d = json.load(open(sys.argv[1]))
names = [p["name"] for p in d["points"]]
assert len(names) == 4, names
out = subprocess.run(["zfs", "get", "-Hp", "-o", "name,property,value", "used,referenced"] +
                     [sys.argv[2] + "@" + n for n in names], capture_output=True, text=True, check=True).stdout
want = {}
for line in out.splitlines():
    n, prop, v = line.split("\t")
    want.setdefault(n.split("@")[1], {})[prop] = int(v)
got = {p["name"]: {"used": p["used"], "referenced": p["referenced"]} for p in d["points"]}
assert got == want, (got, want)' "$VM_OUT" "$POOL/vmback"
vm stats -c "$WORK/vmback.toml" latest
expect_rc 0 "stats latest of a zfs target"
check "stats: the text names the latest point" grep -qE "^  ${POINTS[3]:-none}: used .*, referenced .* \(zfs get\)$" "$VM_OUT"

section "every point restores bit-identical (through a clone)"
for i in 0 1 2 3; do
  vm restore -c "$WORK/vmback.toml" "${POINTS[$i]}" img --to "$WORK/r$i.img"
  expect_rc 0 "restore img of point $i"
  check_same_file "$WORK/r$i.img" "$WORK/img.$i" "point $i image"
done
vm restore -c "$WORK/vmback.toml" latest --to "$WORK/rall"
expect_rc 0 "restore the whole latest point"
check_same_tree "$WORK/tree.3" "$WORK/rall/tree" "latest tree"
check_same_file "$WORK/rall/img" "$WORK/img.3" "latest image"
vm restore -c "$WORK/vmback.toml" "${POINTS[1]}" tree/sub/run --to "$WORK/run1"
expect_rc 0 "restore one file from a tree"
check_eq "$(cat "$WORK/run1")" "run 1" "one file from point 1"
check "no clone is left" bash -c "! zfs list -H -o name -r $POOL | grep -q vmback-clone"

section "point names: list's time and latest~N"
check_point_names zfs img "$WORK/img.2" -c "$WORK/vmback.toml"
check "no clone is left after them" bash -c "! zfs list -H -o name -r $POOL | grep -q vmback-clone"

section "mount: points read through clones, destroyed at unmount"
MNT=$WORK/mnt
start_mount mount "$MNT" -c "$WORK/vmback.toml"
check_eq "$(readlink "$MNT/latest")" "${POINTS[3]:-none}" "mount: latest links to the newest point"
check_same_file "$MNT/${POINTS[1]:-none}/img" "$WORK/img.1" "mount: point 1's image through the mount"
check_same_file "$MNT/latest/img" "$WORK/img.3" "mount: the latest image through the mount"
check "mount: the latest tree through the mount" diff -r --no-dereference "$WORK/tree.3" "$MNT/latest/tree"
check "mount: the points read are clones while mounted" bash -c "zfs list -H -o name -r $POOL | grep -q vmback-clone"
stop_mount TERM "$MNT"
check "mount: no clone is left after the unmount" bash -c "! zfs list -H -o name -r $POOL | grep -q vmback-clone"

section "blockmaps: missing and damaged are rebuilt"
maps=$(find "$WORK/pool/mnt/vmback/.vmback-blockmaps" -name '*.map')
check_eq "$(echo "$maps" | wc -l)" 1 "one map for the file volume"
rm -f "$maps"
change_blocks "$SRC/img" 10 3 >/dev/null
vm backup -c "$WORK/vmback.toml" --json
expect_rc 5 "backup with a missing blockmap (a warning)"
check_eq "$(json_field "$VM_OUT" 'd["inplace"][0]["blockmaps_rebuilt"]')" 1 "missing map rebuilt"
expect_err "blockmap" "the rebuild is reported"
flip_bit "$maps" 200 >/dev/null
vm backup -c "$WORK/vmback.toml" --json
expect_rc 5 "backup with a damaged blockmap (a warning)"
check_eq "$(json_field "$VM_OUT" 'd["inplace"][0]["blockmaps_rebuilt"]')" 1 "damaged map rebuilt"
vm restore -c "$WORK/vmback.toml" latest img --to "$WORK/after-rebuild.img"
check_same_file "$WORK/after-rebuild.img" "$SRC/img" "image after the rebuilds"

section "scrub: one disk of the mirror overwritten"
vm verify -c "$WORK/vmback.toml"
expect_rc 0 "verify before damage"
python3 - "$WORK/pool/disk1" <<'EOF'
import os, sys
# Garbage over the whole disk but its labels (first and last 4 MiB).
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    off = 4 << 20
    while off < size - (4 << 20):
        f.seek(off)
        f.write(os.urandom(1 << 20))
        off += 1 << 20
EOF
vm verify -c "$WORK/vmback.toml"
expect_rc 5 "verify after damaging one disk: repaired, a warning"
check "verify says the pool repaired it" grep -q "repaired" "$VM_OUT"
vm restore -c "$WORK/vmback.toml" latest img --to "$WORK/after-scrub.img"
expect_rc 0 "restore after the scrub"
check_same_file "$WORK/after-scrub.img" "$SRC/img" "image after the scrub"
zpool clear "$POOL"

section "end to end: wrong data written behind vmback's back"
# ZFS checksums what it is given: bytes written wrong are stored "correctly".
printf 'WRONG' | dd of="$WORK/pool/mnt/vmback/img" bs=1 seek=$((5 * 131072 + 77)) conv=notrunc status=none
sync
zfs snapshot "$POOL/vmback@vmback-2030-01-01T000000Z"
vm verify -c "$WORK/vmback.toml"
expect_rc 3 "verify finds the wrong block"
check "verify names point, file and block" grep -q "vmback-2030-01-01T000000Z: img: block 5 (offset 655360)" "$VM_OUT"
vm restore -c "$WORK/vmback.toml" vmback-2030-01-01T000000Z img --to "$WORK/wrong.img"
expect_rc 3 "restore refuses the damaged point"
expect_err "block 5" "restore names the block"
zfs destroy "$POOL/vmback@vmback-2030-01-01T000000Z"
vm backup -c "$WORK/vmback.toml" --json
expect_rc 5 "the next backup repairs the mirror (a warning)"
check_eq "$(json_field "$VM_OUT" 'd["inplace"][0]["blockmaps_rebuilt"]')" 1 "the edited file was compared, not trusted"
vm verify -c "$WORK/vmback.toml"
expect_rc 0 "verify clean again"

section "prune destroys only vmback's snapshots"
zfs snapshot "$POOL/vmback@manual-keep"
vm prune -c "$WORK/vmback.toml"
expect_rc 0 "prune"
list_points -c "$WORK/vmback.toml"
check_eq "${#POINTS[@]}" 2 "keep_last 2"
check "a snapshot without vmback's prefix survives" zfs list -t snapshot "$POOL/vmback@manual-keep"
vm restore -c "$WORK/vmback.toml" "${POINTS[0]}" img --to "$WORK/kept.img"
expect_rc 0 "a kept point restores"

section "bad targets: clear errors, no snapshot"
vm backup --zfs "$POOL/nothere" "$SRC/img"
expect_nonzero "no such dataset"
expect_err "$POOL/nothere" "the dataset is named"
zfs create -o mountpoint=none "$POOL/unmounted"
vm backup --zfs "$POOL/unmounted" "$SRC/img"
expect_rc 2 "dataset not mounted"
expect_err "not mounted" "says it is not mounted"
vm backup --zfs "$POOL" "$SRC/img"
expect_rc 2 "the pool's root holds other datasets' mount points: not vmback's"
zfs create -o quota=8M "$POOL/small"
vm backup --zfs "$POOL/small" "$SRC/img"
expect_nonzero "a full dataset"
expect_err_re "space|quota" "says it is out of space"
check "no snapshot of the full dataset" bash -c "! zfs list -H -t snapshot -o name -r $POOL/small | grep -q @"

section "target init zfs"
vm target init zfs "${POOL}i" "$WORK/i1" "$WORK/i2" --dry-run
expect_rc 0 "init --dry-run"
check "dry run shows the mirror" grep -qF "would run: zpool create ${POOL}i mirror $WORK/i1 $WORK/i2" "$VM_OUT"
check "dry run shows checksums" grep -qF "zfs set checksum=sha256 ${POOL}i" "$VM_OUT"
check "dry run made no pool" bash -c "! zpool list ${POOL}i >/dev/null 2>&1"
truncate -s 128M "$WORK/i1" "$WORK/i2"
_ZFS_POOLS+=("${POOL}i")
vm target init zfs "${POOL}i" "$WORK/i1" "$WORK/i2" --mountpoint "$WORK/imnt"
expect_rc 0 "init"
check_eq "$(zfs get -H -o value compression "${POOL}i/vmback")" on "compression"
check_eq "$(zfs get -H -o value checksum "${POOL}i/vmback")" sha256 "checksum"
check "the pool is a mirror" bash -c "zpool status ${POOL}i | grep -q mirror"
vm backup --zfs "${POOL}i/vmback" "$SRC/tree"
expect_rc 0 "a backup into the new pool"

finish
