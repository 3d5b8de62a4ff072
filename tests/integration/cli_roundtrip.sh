#!/usr/bin/env bash
# Round trip through the real binary: store init, two backups of a tree with
# every kind of entry and metadata vmback claims to keep, list, verify, and
# restores of whole points, an older point, a single file and a subtree;
# then the same with a TOML config holding two volumes (a directory and an
# image file). Restored trees are compared with rsync -ncaHAX --delete -i,
# which must print nothing.
#
# Usage: bash tests/integration/cli_roundtrip.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (chown, mknod)"
for tool in rsync setfattr getfattr python3 cmp du; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

SRC=$WORK/src
STORE=$WORK/store
MiB=$((1024 * 1024))

# ---------------------------------------------------------------------------
section "building the source tree"
mkdir -p "$SRC/sub/deeper/deepest" "$SRC/empty-dir"
rand_file "$SRC/random.bin" $((3 * MiB + 123))            # not a whole number of blocks
text_file "$SRC/compressible.txt" $((4 * MiB))
: >"$SRC/empty-file"
rand_file "$SRC/sub/deeper/deepest/leaf.bin" 70000
echo "to be deleted before the second backup" >"$SRC/deleted-later.txt"

# A 200 MiB sparse file with a little data at the start, middle and end.
truncate -s 200M "$SRC/sparse.img"
rand_file "$WORK/chunk" 4096
dd if="$WORK/chunk" of="$SRC/sparse.img" bs=4096 seek=0 conv=notrunc status=none
dd if="$WORK/chunk" of="$SRC/sparse.img" bs=4096 seek=$((100 * MiB / 4096 + 3)) conv=notrunc status=none
dd if="$WORK/chunk" of="$SRC/sparse.img" bs=4096 seek=$((200 * MiB / 4096 - 1)) conv=notrunc status=none

# Hard links (one across directories), symlinks (one dangling, one with a
# non-UTF-8 target), a fifo, a char device, a unix socket.
rand_file "$SRC/hardlink-a" 100000
ln "$SRC/hardlink-a" "$SRC/sub/hardlink-b"
ln "$SRC/hardlink-a" "$SRC/hardlink-c"
ln -s random.bin "$SRC/symlink"
ln -s "does/not/exist" "$SRC/dangling-symlink"
ln -s $'target-\xfe\xff' "$SRC/odd-target-symlink"
mkfifo "$SRC/fifo"
mknod "$SRC/null-device" c 1 3
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SRC/socket"

# Odd names: spaces, a newline, invalid UTF-8, valid UTF-8, a leading dash.
echo "space" >"$SRC/name with spaces"
echo "newline" >"$SRC/new"$'\n'"line"
echo "bad utf8" >"$SRC/bad"$'\xff'"name"
echo "utf8" >"$SRC/caf"$'\xc3\xa9'
echo "dash" >"$SRC/-dash"
mkdir "$SRC/dir with "$'\xfe'" odd name"
echo "inside" >"$SRC/dir with "$'\xfe'" odd name/file"$'\t'"tab"

# Owners, modes (setuid, sticky, read-only), xattrs (text and binary values,
# on a file, a directory and a symlink), mtimes with nanoseconds.
echo "owned" >"$SRC/sub/owned file"
chown 1234:5678 "$SRC/sub/owned file" "$SRC/sub"
chown -h 4321:8765 "$SRC/symlink"
chmod 0640 "$SRC/sub/owned file"
chmod 4755 "$SRC/random.bin"
chmod 1777 "$SRC/empty-dir"
chmod 0400 "$SRC/compressible.txt"
setfattr -n user.comment -v "hello world" "$SRC/sub/owned file"
setfattr -n user.binary -v 0x00ff10fe "$SRC/sub/owned file"
setfattr -n user.dir -v "on a directory" "$SRC/sub"
setfattr -n user.empty "$SRC/random.bin"
touch -h -d '2001-02-03 04:05:06.123456789' "$SRC/sub/owned file" "$SRC/symlink"

# ACLs, if the file system takes them.
HAVE_ACL=0
if command -v setfacl >/dev/null && setfacl -m u:1234:rwx "$SRC/name with spaces" 2>/dev/null; then
  setfacl -d -m g:5678:rx "$SRC/sub/deeper"
  setfacl -m g:42:r "$SRC/sub/deeper"
  HAVE_ACL=1
else
  echo "note: setfacl unsupported here; ACLs not tested"
fi
touch -d '2010-10-10 10:10:10.5' "$SRC/sub/deeper"

# A copy of the tree as it is at the first backup, for the older point.
ORIG=$WORK/orig
rsync -aHAXS "$SRC/" "$ORIG/"
out=$(rsync -ncaHAX --delete -i "$SRC/" "$ORIG/") || die "rsync cannot compare the tree with its copy"
[ -z "$out" ] || die "rsync cannot copy this tree faithfully (test environment problem): $out"

# ---------------------------------------------------------------------------
section "store init, first backup"
vm store init "$STORE"
expect_rc 0 "store init $STORE"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "first backup of $SRC"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a first point"
cp "$VM_OUT" "$WORK/backup1.json"
# Compression: 4 MiB of text must not cost 4 MiB. Random data (3 MiB + 100 KB
# + 70 KB + 3 x 4 KiB) cannot shrink; everything stored must stay below
# that plus 1 MiB.
check "first backup: --json stats are sane and compressible data was compressed" \
  python3 - "$WORK/backup1.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
vols = r["volumes"]
assert [v["name"] for v in vols] == ["src"], f"volumes {[v['name'] for v in vols]}, expected ['src']"
assert r["errors"] == 0, f"errors {r['errors']}"
v = vols[0]
assert v["bytes"] >= 200 * 2**20, f"volume bytes {v['bytes']} < size of the sparse file"
assert v["bytes_read"] < 20 * 2**20, f"read {v['bytes_read']} bytes: holes of the sparse file were read"
limit = 3 * 2**20 + 123 + 100000 + 70000 + 3 * 4096 + 2**20
assert r["bytes_written"] < limit, f"wrote {r['bytes_written']} bytes, expected < {limit}: no compression?"
EOF

# ---------------------------------------------------------------------------
section "changing the tree, second backup"
sleep 1.1 # a different point name without relying on the .2 suffix
echo "appended after the first backup" >>"$SRC/compressible.txt"
printf 'CHANGED!' | dd of="$SRC/random.bin" bs=1 seek=$((2 * MiB)) conv=notrunc status=none
rm "$SRC/deleted-later.txt"
echo "new in the second backup" >"$SRC/added later.txt"
setfattr -n user.comment -v "changed xattr" "$SRC/sub/owned file"

vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "second backup of $SRC"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a second point"
cp "$VM_OUT" "$WORK/backup2.json"
# Only the three changed or new files may be read again.
changed=$(($(stat -c %s "$SRC/compressible.txt") + $(stat -c %s "$SRC/random.bin") + $(stat -c %s "$SRC/added later.txt")))
check "second backup: unchanged files are not read again (quick check)" \
  python3 - "$WORK/backup2.json" "$changed" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
changed = int(sys.argv[2])
v = r["volumes"][0]
assert v["files_unchanged"] >= 5, f"files_unchanged {v['files_unchanged']}"
assert v["bytes_read"] <= changed + 65536, f"read {v['bytes_read']} bytes; changed files hold {changed}"
assert v["new_blocks"] <= 4, f"{v['new_blocks']} new blocks for 3 small changes"
EOF

# ---------------------------------------------------------------------------
section "list"
vm list --store "$STORE" --json
expect_rc 0 "list --json"
check "list --json: two points with names, times in order, volume src" \
  python3 - "$VM_OUT" <<'EOF'
import json, sys
pts = json.load(open(sys.argv[1]))
assert isinstance(pts, list) and len(pts) == 2, f"expected 2 points, got {pts!r}"
names = [p["name"] for p in pts]
assert all(isinstance(n, str) and n for n in names), f"bad names {names}"
assert names[0] != names[1], f"same name twice: {names}"
assert pts[0]["time_ns"] < pts[1]["time_ns"], "points not oldest first"
for p in pts:
    assert p["volumes"] == ["src"], f"volumes {p['volumes']}"
EOF
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 2 "number of points"
OLD=${POINTS[0]:-none}
NEW=${POINTS[1]:-none}
vm list --store "$STORE"
expect_rc 0 "list (text)"
check "list (text) names the older point" grep -qF -- "$OLD" "$VM_OUT"
check "list (text) names the newer point" grep -qF -- "$NEW" "$VM_OUT"

# ---------------------------------------------------------------------------
section "verify"
vm verify --store "$STORE" --json
expect_rc 0 "verify of a healthy store"
check "verify --json says ok, no problems, 2 points" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["problems"] == [] and r["points"] == 2, r
assert r["files_checked"] > 0 and r["packs"] > 0, r' "$VM_OUT"

# ---------------------------------------------------------------------------
section "restore latest (whole point)"
vm restore --store "$STORE" latest --to "$WORK/r-latest"
expect_rc 0 "restore latest --to a new directory"
check_same_tree "$SRC" "$WORK/r-latest/src" "restore of the latest point"
check "restore latest: only the volume directory in the destination" \
  test "$(ls -A "$WORK/r-latest")" = "src"
R=$WORK/r-latest/src
if [ -f "$R/sparse.img" ]; then
  size=$(stat -c %s "$R/sparse.img")
  used=$(du -B1 "$R/sparse.img" | cut -f1)
  check_eq "$size" $((200 * MiB)) "restored sparse file size"
  check "restored sparse file is sparse: $used bytes allocated for $size" test "$used" -lt $((8 * MiB))
  check_same_file "$SRC/sparse.img" "$R/sparse.img" "restored sparse file content"
else
  _count_check; _fail "restore latest: sparse.img missing"
fi
# The hard links must be one inode again (rsync -H also checks this).
inodes=$({ stat -c %i "$R/hardlink-a" "$R/sub/hardlink-b" "$R/hardlink-c" 2>/dev/null || echo missing; } | sort -u | wc -l)
check_eq "$inodes" 1 "restored hard links hardlink-a, sub/hardlink-b, hardlink-c share one inode"
check_eq "$(stat -c '%u:%g %a' "$R/sub/owned file" 2>/dev/null)" "1234:5678 640" "owner and mode of sub/owned file"
check_eq "$(stat -c '%a' "$R/random.bin" 2>/dev/null)" "4755" "setuid mode of random.bin"
check_eq "$(getfattr --only-values -n user.binary "$R/sub/owned file" 2>/dev/null | od -An -tx1 | tr -d ' \n')" \
  "00ff10fe" "binary xattr user.binary"
check_eq "$(stat -c '%y' "$R/sub/owned file" 2>/dev/null)" "$(stat -c '%y' "$SRC/sub/owned file")" \
  "mtime with nanoseconds of sub/owned file"
check_eq "$(printf %s "$(readlink "$R/odd-target-symlink")" | od -An -tx1 | tr -d ' \n')" \
  "$(printf 'target-\xfe\xff' | od -An -tx1 | tr -d ' \n')" "non-UTF-8 symlink target"
check_eq "$(stat -c '%F %t:%T' "$R/null-device" 2>/dev/null)" "character special file 1:3" "char device 1,3"
check "fifo restored as a fifo" test -p "$R/fifo"
check "socket restored as a socket" test -S "$R/socket"
if [ "$HAVE_ACL" = 1 ]; then
  check_eq "$(getfacl -cp "$R/sub/deeper" 2>/dev/null)" "$(getfacl -cp "$SRC/sub/deeper")" "ACLs of sub/deeper"
fi

section "restore the older point, compare with the saved copy"
vm restore --store "$STORE" "$OLD" --to "$WORK/r-old"
expect_rc 0 "restore $OLD"
check_same_tree "$ORIG" "$WORK/r-old/src" "restore of the older point $OLD"

section "restore into an existing destination with --force"
vm restore --store "$STORE" "$OLD" --to "$WORK/r-old" --force
expect_rc 0 "restore $OLD again over itself with --force"
check_same_tree "$ORIG" "$WORK/r-old/src" "restore of $OLD over an earlier restore of it"

# ---------------------------------------------------------------------------
section "restore single files"
vm restore --store "$STORE" latest "src/sub/owned file" --to "$WORK/one-file"
expect_rc 0 "restore of the single file src/sub/owned file"
check_same_file "$SRC/sub/owned file" "$WORK/one-file" "single-file restore content"
check_eq "$(stat -c '%s %u:%g %a %y' "$WORK/one-file" 2>/dev/null)" \
  "$(stat -c '%s %u:%g %a %y' "$SRC/sub/owned file")" "single-file restore: size, owner, mode, mtime"
check_eq "$(getfattr -d -m - --absolute-names "$WORK/one-file" 2>/dev/null | grep -v '^# file')" \
  "$(getfattr -d -m - --absolute-names "$SRC/sub/owned file" | grep -v '^# file')" "single-file restore: xattrs"

vm restore --store "$STORE" "$OLD" "src/random.bin" --to "$WORK/old-random.bin"
expect_rc 0 "restore of src/random.bin from the older point"
check_same_file "$ORIG/random.bin" "$WORK/old-random.bin" "random.bin from $OLD is the version before the change"

vm restore --store "$STORE" latest "src/new"$'\n'"line" --to "$WORK/newline-file"
expect_rc 0 "restore of a file whose name holds a newline"
check_same_file "$SRC/new"$'\n'"line" "$WORK/newline-file" "file with a newline in its name"

vm restore --store "$STORE" latest "src/bad"$'\xff'"name" --to "$WORK/bad-utf8-file"
expect_rc 0 "restore of a file whose name is not UTF-8"
check_same_file "$SRC/bad"$'\xff'"name" "$WORK/bad-utf8-file" "file with a non-UTF-8 name"

vm restore --store "$STORE" latest "src/sparse.img" --to "$WORK/sparse-single.img"
expect_rc 0 "restore of the single sparse file"
check_same_file "$SRC/sparse.img" "$WORK/sparse-single.img" "single sparse file content"
used=$(du -B1 "$WORK/sparse-single.img" 2>/dev/null | cut -f1 || echo 0)
check "single sparse file restored sparse ($used bytes allocated)" test "${used:-0}" -lt $((8 * MiB))

vm restore --store "$STORE" latest "src/symlink" --to "$WORK/one-symlink"
expect_rc 0 "restore of a single symlink"
check_eq "$(readlink "$WORK/one-symlink" 2>/dev/null)" "random.bin" "single symlink target"

vm restore --store "$STORE" latest "src/no such file" --to "$WORK/nothing"
expect_nonzero "restore of a path the point does not have"
expect_err "no such file" "restore of a missing path names it"
check "restore of a missing path creates nothing" test ! -e "$WORK/nothing"

# ---------------------------------------------------------------------------
section "restore subtrees"
vm restore --store "$STORE" latest "src/sub" --to "$WORK/subtree"
expect_rc 0 "restore of the subtree src/sub"
check_same_tree "$SRC/sub" "$WORK/subtree" "subtree src/sub (latest)"

vm restore --store "$STORE" latest "src/dir with "$'\xfe'" odd name" --to "$WORK/odd-subtree"
expect_rc 0 "restore of a subtree with a non-UTF-8 name"
check_same_tree "$SRC/dir with "$'\xfe'" odd name" "$WORK/odd-subtree" "subtree with an odd name"

vm restore --store "$STORE" "$OLD" "src/sub/deeper" --to "$WORK/old-subtree"
expect_rc 0 "restore of the subtree src/sub/deeper from the older point"
check_same_tree "$ORIG/sub/deeper" "$WORK/old-subtree" "subtree src/sub/deeper ($OLD)"

vm restore --store "$STORE" latest "src" --to "$WORK/volume-only"
expect_rc 0 "restore of the volume src by name"
check_same_tree "$SRC" "$WORK/volume-only" "volume restored by name"

# ---------------------------------------------------------------------------
section "a TOML config with two volumes: a directory and an image file"
DISK=$WORK/disk.img
truncate -s $((20 * MiB + 1000)) "$DISK"                 # not a whole number of blocks
rand_file "$WORK/chunk" $((300 * 1024))
dd if="$WORK/chunk" of="$DISK" bs=1024 seek=0 conv=notrunc status=none
dd if="$WORK/chunk" of="$DISK" bs=1024 seek=$((7 * 1024 + 17)) conv=notrunc status=none
printf 'tail bytes' | dd of="$DISK" bs=1 seek=$((20 * MiB + 990)) conv=notrunc status=none
mkdir "$WORK/cfg"
CFG=$WORK/cfg/vmback.toml
cat >"$CFG" <<EOF
# relative paths are relative to this file (a store's path must be absolute)
[target]
type = "store"
path = "$WORK/cfg/store2"

[[volume]]
name = "tree"
source = "../src"

[[volume]]
name = "disk"
source = "$DISK"
one_file_system = true
EOF
vm store init "$WORK/cfg/store2"
expect_rc 0 "store init for the config's target"

vm backup -c "$CFG"
expect_rc 0 "backup -c $CFG"
check "backup -c: output reports volume tree" grep -q '^tree: ' "$VM_OUT"
check "backup -c: output reports volume disk" grep -q '^disk: ' "$VM_OUT"
vm list -c "$CFG" --json
expect_rc 0 "list -c"
check "list -c --json: one point with volumes tree and disk" python3 -c '
import json, sys
pts = json.load(open(sys.argv[1]))
assert len(pts) == 1, pts
assert pts[0]["volumes"] == ["tree", "disk"], pts[0]["volumes"]' "$VM_OUT"
check "the config's target path store2 holds the point" \
  compgen -G "$WORK/cfg/store2/points/*.json"
vm verify -c "$CFG"
expect_rc 0 "verify -c"

vm restore -c "$CFG" latest --to "$WORK/r-cfg"
expect_rc 0 "restore -c latest (both volumes)"
check_same_tree "$SRC" "$WORK/r-cfg/tree" "config volume tree"
check_same_file "$DISK" "$WORK/r-cfg/disk" "config volume disk (image file)"

vm restore -c "$CFG" latest disk --to "$WORK/disk-restored.img"
expect_rc 0 "restore -c latest disk (one image volume)"
check_same_file "$DISK" "$WORK/disk-restored.img" "image volume restored alone"
check_eq "$(stat -c %s "$WORK/disk-restored.img" 2>/dev/null)" $((20 * MiB + 1000)) "restored image size"

vm restore -c "$CFG" latest "tree/sub/deeper/deepest/leaf.bin" --to "$WORK/leaf.bin"
expect_rc 0 "restore -c of a single file in the tree volume"
check_same_file "$SRC/sub/deeper/deepest/leaf.bin" "$WORK/leaf.bin" "single file via config"

# A second config backup after changing the image: incremental, both restorable.
cp --sparse=always "$DISK" "$WORK/disk-v1.img"
sleep 1.1
printf 'second version' | dd of="$DISK" bs=1 seek=12345 conv=notrunc status=none
vm backup -c "$CFG"
expect_rc 0 "second backup -c after changing the image"
list_points -c "$CFG"
check_eq "${#POINTS[@]}" 2 "points in the config's store after two backups"
if [ "${#POINTS[@]}" -eq 2 ]; then
  vm restore -c "$CFG" "${POINTS[0]}" disk --to "$WORK/disk-p1.img"
  expect_rc 0 "restore of the first version of the image"
  check_same_file "$WORK/disk-v1.img" "$WORK/disk-p1.img" "first version of the image"
  vm restore -c "$CFG" "${POINTS[1]}" disk --to "$WORK/disk-p2.img"
  expect_rc 0 "restore of the second version of the image"
  check_same_file "$DISK" "$WORK/disk-p2.img" "second version of the image"
fi
vm verify -c "$CFG"
expect_rc 0 "verify -c after two backups"

# ---------------------------------------------------------------------------
section "one_file_system in the config: a mount inside the tree"
MT=$WORK/mtree
mkdir -p "$MT/mnt" && echo "outside the mount" >"$MT/top.txt"
mount -t tmpfs -o size=4m vmback-test "$MT/mnt"
register_mount "$MT/mnt"
echo "inside the mount" >"$MT/mnt/inner.txt"
CFG3=$WORK/cfg/mounts.toml
cat >"$CFG3" <<EOF
[target]
path = "$WORK/cfg/store3"

[[volume]]
name = "stay"
source = "$MT"

[[volume]]
name = "cross"
source = "$MT"
one_file_system = false
EOF
vm store init "$WORK/cfg/store3"
vm backup -c "$CFG3"
expect_rc 0 "backup -c of a tree with a mount inside"
vm restore -c "$CFG3" latest --to "$WORK/r-mounts"
expect_rc 0 "restore of the one_file_system volumes"
check_same_tree "$MT" "$WORK/r-mounts/cross" "one_file_system = false: the mounted tree is backed up"
check "one_file_system = true (default): the mount point is kept as a directory" test -d "$WORK/r-mounts/stay/mnt"
check "one_file_system = true (default): the mount point is kept empty" test -z "$(ls -A "$WORK/r-mounts/stay/mnt" 2>/dev/null)"
check_same_file "$MT/top.txt" "$WORK/r-mounts/stay/top.txt" "one_file_system = true: files outside the mount"
umount "$MT/mnt"

# ---------------------------------------------------------------------------
section "many backups within one second: list order and latest"
# Point names come from the clock in seconds, with .2, .3, ... added for
# more in the same second. Back up a marker file many times in a row; the
# points must list oldest first and latest must be the last backup.
FAST=$WORK/fast-store
mkdir -p "$WORK/fast/src"
vm store init "$FAST"
for i in $(seq 1 24); do
  echo "$i" >"$WORK/fast/src/marker"
  vm backup --store "$FAST" "$WORK/fast/src"
  [ "$VM_RC" -eq 0 ] || { expect_rc 0 "quick backup number $i"; break; }
done
vm list --store "$FAST" --json
expect_rc 0 "list after 24 quick backups"
check "list --json after 24 quick backups: oldest first (time_ns ascending)" python3 -c '
import json, sys
pts = json.load(open(sys.argv[1]))
assert len(pts) == 24, f"{len(pts)} points"
order = [p["name"] for p in sorted(pts, key=lambda p: p["time_ns"])]
listed = [p["name"] for p in pts]
assert listed == order, "listed " + " ".join(listed) + "\n  but by time they are " + " ".join(order)' "$VM_OUT"
grep -q '\.10"' "$VM_OUT" || echo "note: fewer than 10 backups fell into one second; the order check proved little"
vm restore --store "$FAST" latest src/marker --to "$WORK/fast-marker"
expect_rc 0 "restore latest after 24 quick backups"
check_eq "$(cat "$WORK/fast-marker" 2>/dev/null)" "24" "marker restored from latest after 24 quick backups"

# ---------------------------------------------------------------------------
section "names that only look like UTF-8; source paths that are not UTF-8"
# Linux names are bytes. Overlong forms, UTF-16 surrogates and code points
# beyond U+10FFFF are not UTF-8 either, and must round-trip like \xff does.
U=$WORK/utf/src
mkdir -p "$U"
echo "overlong" >"$U/overlong-"$'\xc0\x80'
echo "surrogate" >"$U/surrogate-"$'\xed\xa0\x80'
echo "beyond" >"$U/beyond-"$'\xf4\x90\x80\x80'
ln -s "surrogate-"$'\xed\xa0\x80' "$U/link"
vm store init "$WORK/utf-store"
vm backup --store "$WORK/utf-store" "$U"
expect_rc 0 "backup of files named with overlong / surrogate / beyond-U+10FFFF byte sequences"
if [ "$VM_RC" -eq 0 ]; then
  vm restore --store "$WORK/utf-store" latest --to "$WORK/r-utf"
  expect_rc 0 "restore of files with near-UTF-8 names"
  check_same_tree "$U" "$WORK/r-utf/src" "files with near-UTF-8 names"
fi

P=$WORK/path$'\xff'dir/src
mkdir -p "$P" && echo "below a non-UTF-8 directory" >"$P/file"
vm store init "$WORK/path-store"
vm backup --store "$WORK/path-store" "$P"
expect_rc 0 "backup of a source whose path holds a non-UTF-8 byte"
if [ "$VM_RC" -eq 0 ]; then
  vm restore --store "$WORK/path-store" latest src --to "$WORK/r-path"
  expect_rc 0 "restore of a volume whose source path is not UTF-8"
  check_same_tree "$P" "$WORK/r-path" "volume whose source path is not UTF-8"
fi

V=$WORK/vol$'\xff'
mkdir -p "$V" && echo "in a volume named with a non-UTF-8 byte" >"$V/file"
vm store init "$WORK/volname-store"
vm backup --store "$WORK/volname-store" "$V"
# Either it works, or it is refused up front as a bad volume name (exit 2,
# naming the source); anything else is a bug.
if [ "$VM_RC" -eq 2 ]; then
  expect_err "$V" "refused non-UTF-8 volume name: message names the source"
  list_points --store "$WORK/volname-store"
  check_eq "${#POINTS[@]}" 0 "points after refusing a non-UTF-8 volume name"
else
  expect_rc 0 "backup of a source whose last component (the volume name) is not UTF-8 (or exit 2 refusing the name)"
  if [ "$VM_RC" -eq 0 ]; then
    vm restore --store "$WORK/volname-store" latest "vol"$'\xff' --to "$WORK/r-volname"
    expect_rc 0 "restore of a volume whose name is not UTF-8"
    check_same_tree "$V" "$WORK/r-volname" "volume whose name is not UTF-8"
  fi
fi

finish
