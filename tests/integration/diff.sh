#!/usr/bin/env bash
# vmback diff on a store, a btrfs target (real btrfs on a loop device: an
# in-place target with history) and a dir target (one point, "current"): a
# scripted history between two points (a file added, one removed, one
# chmod'ed, a directory added, a file turned into a symlink, 2 blocks of a
# 1 MiB image rewritten, in a tree volume and in an image volume), then
#   --json          checked exactly: every change, in path order, with the
#                   changed-byte count of the images (2 or 1 blocks x the
#                   destination's block size: block lists or blockmaps
#                   compared, no data read)
#   text            one line per change and a summary
#   a path          only what is below it
#   wrong names     a point, a volume or a path that is not there is an
#                   error naming it
# and vmback find over the same history: names and paths a glob matches
# ('*' not crossing '/', '**' crossing), the points holding each, the
# version of its content (same block list or blockmap, same version) and
# where it changed; --point.
# On btrfs, a blockmap removed from the later snapshot: the image's content
# changed by bytes not known (no data read), and find shows "v?".
# Every mtime is pinned, so a directory whose entries changed does not show
# up as changed for its mtime.
#
# Usage: bash tests/integration/diff.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"
for tool in python3 mkfs.btrfs btrfs losetup; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

T0=@1700000000
T1=@1700000100
SRC=$WORK/src
mkdir -p "$SRC/tree/sub"
printf 'keep\n' >"$SRC/tree/keep.txt"
printf 'gone!\n' >"$SRC/tree/gone.txt"
printf 'mode\n' >"$SRC/tree/mode.txt"
chmod 0644 "$SRC/tree/mode.txt"
printf 'a file, then a link\n' >"$SRC/tree/was-file"
printf 'deep\n' >"$SRC/tree/sub/deep.txt"
head -c 1048576 /dev/urandom >"$SRC/tree/disk.img"
head -c 1048576 /dev/urandom >"$SRC/img"
pin() { find "$SRC" -exec touch -h -d "$T0" {} +; }
pin

# The btrfs target: one device, its subvolume; snapshots deleted before the
# unmount.
truncate -s 200M "$WORK/d1"
attach_loop "$WORK/d1" L1
mkfs.btrfs -q -f "$L1" >/dev/null
mkdir -p "$WORK/mnt"
mount "$L1" "$WORK/mnt"
register_mount "$WORK/mnt"
btrfs subvolume create "$WORK/mnt/vmback" >/dev/null
register_cleanup "for s in \"$WORK\"/mnt/*; do [ \"\$s\" = \"$WORK/mnt/vmback\" ] || btrfs subvolume delete \"\$s\" >/dev/null 2>&1; done"

STORE=$WORK/store
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
vm store init "$STORE"
expect_rc 0 "store init"

backup_all() {
  vm backup --store "$STORE" "$SRC/tree" "$SRC/img"
  expect_rc 0 "backup into the store ($1)"
  vm backup --btrfs "$WORK/mnt/vmback" "$SRC/tree" "$SRC/img"
  expect_rc 0 "backup into the btrfs target ($1)"
  vm backup --dir "$MIRROR" "$SRC/tree" "$SRC/img"
  expect_rc 0 "backup into the dir target ($1)"
}

section "the history"
backup_all first
sleep 1  # a btrfs point is named for its second
rm "$SRC/tree/gone.txt"
chmod 0600 "$SRC/tree/mode.txt"
rm "$SRC/tree/was-file"
ln -s keep.txt "$SRC/tree/was-file"
printf 'added\n' >"$SRC/tree/new.txt"
mkdir "$SRC/tree/newdir"
printf 'inner\n' >"$SRC/tree/newdir/inner.txt"
# 4 KiB at 0 and at 512 KiB: two blocks at every block size (16 to 128 KiB).
python3 - "$SRC/tree/disk.img" "$SRC/img" <<'EOF'
import sys
for path, offsets in ((sys.argv[1], (0, 512 << 10)), (sys.argv[2], (256 << 10,))):
    with open(path, "r+b") as f:
        for off in offsets:
            f.seek(off)
            old = f.read(4096)
            f.seek(off)
            f.write(bytes(b ^ 0xFF for b in old))
EOF
pin
touch -d "$T1" "$SRC/tree/disk.img" "$SRC/img"
backup_all second

# The changes expected, in path order, below the point's top (prefix "")
# or below tree/ ("tree/" entries only): type, the fields that changed and,
# for an image, the blocks of block size B that differ.
# expect_json WHAT B ONLY_TREE: $VM_OUT holds exactly these changes.
expect_json() {
  check "$1" python3 - "$VM_OUT" "$2" "$3" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
B, only_tree = int(sys.argv[2]), sys.argv[3] == "1"
T1 = "2023-11-14T22:15:00Z"
want = [
    {"change": "changed", "path": "img", "type": "file", "size": 1048576, "changes": ["content", "mtime"],
     "changed_blocks": 1, "block_size": B, "changed_bytes": B},
    {"change": "changed", "path": "tree/disk.img", "type": "file", "size": 1048576,
     "changes": ["content", "mtime"], "changed_blocks": 2, "block_size": B, "changed_bytes": 2 * B},
    {"change": "removed", "path": "tree/gone.txt", "type": "file", "size": 6},
    {"change": "changed", "path": "tree/mode.txt", "type": "file", "size": 5, "changes": ["mode"]},
    {"change": "added", "path": "tree/new.txt", "type": "file", "size": 6},
    {"change": "added", "path": "tree/newdir", "type": "dir", "size": 0},
    {"change": "added", "path": "tree/newdir/inner.txt", "type": "file", "size": 6},
    {"change": "changed", "path": "tree/was-file", "type": "symlink", "size": 0, "changes": ["type"]},
]
if only_tree:
    want = [w for w in want if w["path"].startswith("tree/")]
keys = ["change", "path", "type", "size", "changes", "changed_blocks", "block_size", "changed_bytes"]
short = [{k: g[k] for k in keys if k in g} for g in got]
assert short == want, "got:\n" + "\n".join(map(str, short)) + "\nwant:\n" + "\n".join(map(str, want))
by = {g["path"]: g for g in got}
m = by["tree/mode.txt"]
assert m["before"]["mode"] == 0o644 and m["after"]["mode"] == 0o600, m
w = by["tree/was-file"]
assert w["before"]["type"] == "file" and w["before"]["size"] == 20, w
assert w["after"]["type"] == "symlink" and w["after"]["target"] == "keep.txt", w
d = by["tree/disk.img"]
assert d["before"]["mtime"] == "2023-11-14T22:13:20Z" and d["after"]["mtime"] == T1, d
EOF
}

# one_destination KIND B P1 P2 DEST...: the diff of P1 and P2 of DEST (block size B).
one_destination() {
  local kind=$1 bs=$2 p1=$3 p2=$4
  shift 4
  local dest=("$@")

  section "$kind: diff --json"
  vm diff "${dest[@]}" "$p1" "$p2" --json
  expect_rc 0 "$kind: diff P1 P2 --json"
  expect_json "$kind: every change of the point, exactly, in path order" "$bs" 0
  vm diff "${dest[@]}" "$p1" "$p2" tree --json
  expect_rc 0 "$kind: diff P1 P2 tree --json"
  expect_json "$kind: below tree, only tree's changes" "$bs" 1
  vm diff "${dest[@]}" "$p1" "$p2" tree/sub --json
  expect_rc 0 "$kind: diff of an unchanged directory"
  check_eq "$(json_field "$VM_OUT" 'len(d)')" 0 "$kind: an unchanged directory has no changes"

  section "$kind: diff as text"
  vm diff "${dest[@]}" "$p1" "$p2"
  expect_rc 0 "$kind: diff P1 P2"
  check_eq "$(cat "$VM_OUT")" "M img: content, $bs bytes in 1 block of $bs; mtime 2023-11-14T22:13:20Z -> 2023-11-14T22:15:00Z
M tree/disk.img: content, $((2 * bs)) bytes in 2 blocks of $bs; mtime 2023-11-14T22:13:20Z -> 2023-11-14T22:15:00Z
- tree/gone.txt (6 bytes)
M tree/mode.txt: mode 0644 -> 0600
+ tree/new.txt (6 bytes)
+ tree/newdir/ (dir)
+ tree/newdir/inner.txt (6 bytes)
M tree/was-file: type file -> symlink (-> keep.txt)
3 added, 1 removed, 4 changed; $((3 * bs)) bytes of content changed" "$kind: one line per change, and a summary"
  vm diff "${dest[@]}" "$p2" "$p2"
  expect_rc 0 "$kind: a point against itself"
  check_eq "$(cat "$VM_OUT")" "no changes" "$kind: a point against itself has no changes"

  section "$kind: find"
  vm find "${dest[@]}" '*.txt' --json
  expect_rc 0 "$kind: find '*.txt' --json"
  check "$kind: find: every .txt of every point, the points holding it, unchanged" python3 - "$VM_OUT" "$p1" "$p2" <<'PY'
import json, sys
got, p1, p2 = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
short = [(f["path"], [(p["point"], p["changed"]) for p in f["points"]]) for f in got]
want = [("tree/gone.txt", [(p1, False)]), ("tree/keep.txt", [(p1, False), (p2, False)]),
        ("tree/mode.txt", [(p1, False), (p2, False)]), ("tree/new.txt", [(p2, False)]),
        ("tree/newdir/inner.txt", [(p2, False)]), ("tree/sub/deep.txt", [(p1, False), (p2, False)])]
assert short == want, short
by = {f["path"]: f["points"] for f in got}
assert by["tree/keep.txt"][0]["version"] and by["tree/keep.txt"][0]["version"] == by["tree/keep.txt"][1]["version"]
assert by["tree/keep.txt"][0]["version"] != by["tree/mode.txt"][0]["version"]
PY
  vm find "${dest[@]}" 'tree/*' --json
  expect_rc 0 "$kind: find 'tree/*'"
  check_eq "$(json_field "$VM_OUT" '[f["path"] for f in d]')" \
    "['tree/disk.img', 'tree/gone.txt', 'tree/keep.txt', 'tree/mode.txt', 'tree/new.txt', 'tree/newdir', 'tree/sub', 'tree/was-file']" \
    "$kind: find: '*' does not cross '/'"
  vm find "${dest[@]}" 'tree/**.txt' --point "$p2" --json
  expect_rc 0 "$kind: find 'tree/**.txt' --point P2"
  check_eq "$(json_field "$VM_OUT" '[(f["path"], len(f["points"])) for f in d]')" \
    "[('tree/keep.txt', 1), ('tree/mode.txt', 1), ('tree/new.txt', 1), ('tree/newdir/inner.txt', 1), ('tree/sub/deep.txt', 1)]" \
    "$kind: find: '**' crosses '/'; --point looks in one point"
  vm find "${dest[@]}" '*.img' --json
  expect_rc 0 "$kind: find '*.img'"
  check "$kind: find: the image's content changed in P2, a new version" python3 -c "import json, sys
f = json.load(open(sys.argv[1]))
assert [x['path'] for x in f] == ['tree/disk.img'], f
a, b = f[0]['points']
assert (a['point'], a['changed'], b['point'], b['changed']) == (sys.argv[2], False, sys.argv[3], True), f
assert a['version'] and b['version'] and a['version'] != b['version'], f" "$VM_OUT" "$p1" "$p2"
  vm find "${dest[@]}" 'was-[e-g]ile'
  expect_rc 0 "$kind: find 'was-[e-g]ile'"
  check "$kind: find as text: a file turned into a link is marked changed" python3 -c "import re, sys
t = open(sys.argv[1]).read().splitlines()
assert t[0] == 'tree/was-file', t
assert re.fullmatch(r'  ' + re.escape(sys.argv[2]) + r'  file +20 2023-11-14T22:13:20Z v1', t[1]), t
assert re.fullmatch(r'  ' + re.escape(sys.argv[3]) + r'  symlink +0 2023-11-14T22:13:20Z changed', t[2]), t
assert len(t) == 3, t" "$VM_OUT" "$p1" "$p2"
  vm find "${dest[@]}" '*' --point no-such-point
  expect_nonzero "$kind: find in a point that is not there"
  expect_err "no-such-point" "$kind: find: the error names the point"

  section "$kind: wrong names"
  vm diff "${dest[@]}" "$p1" no-such-point
  expect_nonzero "$kind: a point that is not there"
  expect_err "no-such-point" "$kind: the error names the point"
  vm diff "${dest[@]}" "$p1" "$p2" tree/nope
  expect_nonzero "$kind: a path in neither point"
  expect_err "tree/nope" "$kind: the error names the path"
  vm diff "${dest[@]}" "$p1" "$p2" nothere
  expect_nonzero "$kind: a volume in neither point"
  expect_err "nothere" "$kind: the error names the volume"
}

list_points --store "$STORE"
check_eq "${#POINTS[@]}" 2 "two points in the store"
one_destination store 65536 "${POINTS[0]}" "${POINTS[1]}" --store "$STORE"

list_points --btrfs "$WORK/mnt/vmback"
check_eq "${#POINTS[@]}" 2 "two points in the btrfs target"
one_destination btrfs 131072 "${POINTS[0]}" "${POINTS[1]}" --btrfs "$WORK/mnt/vmback"

section "btrfs: a point without the image's blockmap"
SNAP=$WORK/mnt/${POINTS[1]}
MAP=$(grep -lF 'disk.img' "$SNAP"/tree/.vmback-blockmaps/*/*.map)
check_eq "$(printf '%s\n' "$MAP" | wc -l)" 1 "btrfs: the image's blockmap in the later snapshot"
btrfs property set -ts "$SNAP" ro false
rm -- "$MAP"
btrfs property set -ts "$SNAP" ro true
vm diff --btrfs "$WORK/mnt/vmback" "${POINTS[0]}" "${POINTS[1]}" tree --json
expect_rc 0 "btrfs: diff without a blockmap"
check_eq "$(json_field "$VM_OUT" '[(x["changes"], x["changed_bytes"], x["changed_blocks"]) for x in d if x["path"] == "tree/disk.img"]')" \
  "[(['content', 'mtime'], None, None)]" "btrfs: the image changed by bytes not known"
vm diff --btrfs "$WORK/mnt/vmback" "${POINTS[0]}" "${POINTS[1]}" tree/disk.img
expect_rc 0 "btrfs: diff without a blockmap, as text"
check_eq "$(cat "$VM_OUT")" "M tree/disk.img: content, bytes changed not known (no blockmap); mtime 2023-11-14T22:13:20Z -> 2023-11-14T22:15:00Z
0 added, 0 removed, 1 changed; 0 bytes of content changed, and 1 file by bytes not known" "btrfs: the text says the bytes are not known"
vm find --btrfs "$WORK/mnt/vmback" disk.img
expect_rc 0 "btrfs: find without a blockmap"
check "btrfs: find shows v? where the blockmap is missing" grep -qE '^  .*  file +1048576 2023-11-14T22:15:00Z v\? changed$' "$VM_OUT"

section "dir target: one point"
vm diff --dir "$MIRROR" current current --json
expect_rc 0 "dir: diff current current"
check_eq "$(json_field "$VM_OUT" 'd')" "[]" "dir: its one point has no changes against itself"
vm diff --dir "$MIRROR" current latest tree
expect_rc 0 "dir: latest is current"
check_eq "$(cat "$VM_OUT")" "no changes" "dir: latest is current"
vm find --dir "$MIRROR" '*.img' --json
expect_rc 0 "dir: find '*.img'"
check_eq "$(json_field "$VM_OUT" '[(f["path"], [p["point"] for p in f["points"]], len(f["points"][0]["version"])) for f in d]')" \
  "[('tree/disk.img', ['current'], 64)]" "dir: find: the image, in current, with its blockmap's version"
vm diff --dir "$MIRROR" current yesterday
expect_nonzero "dir: a point that is not there"
expect_err "yesterday" "dir: the error names the point"
vm diff --dir "$MIRROR" current current tree/nope
expect_nonzero "dir: a path that is not there"
expect_err "tree/nope" "dir: the error names the path"
finish
