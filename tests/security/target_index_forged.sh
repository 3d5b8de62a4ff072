#!/usr/bin/env bash
# A forged map index in a `dir` target: the index of blockmap headers that a
# tree volume keeps in its .vmback-blockmaps (docs/FORMAT.md, "The map
# index"), forged with a right checksum, as anyone who can write the disk
# can make it. One with a path twice, a count or a path length beyond its
# size, or a record without a map is not used: the backup says why, reads
# the maps instead and mirrors the source exactly. One that is sound but
# names paths outside the tree (../.., absolute) makes the backup touch
# nothing outside its target. After each, the next backup writes a sound
# index again.
set -euo pipefail
source "$(dirname -- "$0")/seclib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root"

SRC=$WORK/src
mkdir -p "$SRC/tree/sub/deeper"
echo "one" >"$SRC/tree/one"
echo "two" >"$SRC/tree/sub/two"
head -c 300000 /dev/urandom >"$SRC/tree/sub/deeper/img"
for i in $(seq 1 20); do echo "file $i" >"$SRC/tree/sub/f$i"; done
SENT=$WORK/sent
sentinel_make "$SENT"
BEFORE=$(tree_state "$SENT")

T=$WORK/T
mkdir -p "$T"
vm backup --dir "$T" "$SRC/tree"
expect_rc 0 "first backup"
INDEX=$T/tree/.vmback-blockmaps/index
vm backup --dir "$T" "$SRC/tree"
expect_rc 0 "second backup"
[ -f "$INDEX" ] || die "no map index at $INDEX"

# forge HOW: rewrites INDEX (parsed as FORMAT.md describes it) forged HOW,
# with a right checksum.
forge() {
  python3 - "$INDEX" "$1" <<'PY'
import hashlib, struct, sys
path, how = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
body = data[:-32]
header = bytearray(body[:32])
count = struct.unpack_from("<Q", header, 24)[0]
records, off = [], 32
for _ in range(count):
    n = struct.unpack_from("<I", body, off)[0]
    records.append([bytearray(body[off + 4:off + 84]), body[off + 84:off + 84 + n]])
    off += 84 + n
assert off == len(body) and len(records) >= 3, "the index is not as FORMAT.md says"
path_len = None
if how == "twice":
    records[1][1] = records[0][1]
elif how == "count":
    struct.pack_into("<Q", header, 24, 1 << 62)
elif how == "path-length":
    path_len = 0xFFFFFFF0
elif how == "no-map":
    struct.pack_into("<Q", records[0][0], 48, 0)  # map inode 0: never written so
elif how == "outside":
    extra = bytearray(records[0][0])
    for p in (b"../../sent/file", b"/etc/passwd", b"../tree2/x"):
        records.append([bytearray(extra), p])
    records.sort(key=lambda r: r[1])
    struct.pack_into("<Q", header, 24, len(records))
else:
    sys.exit("unknown forgery " + how)
out = bytearray(header)
for i, (fields, p) in enumerate(records):
    out += struct.pack("<I", path_len if (path_len is not None and i == 0) else len(p)) + fields + p
out += hashlib.sha256(out).digest()
open(path, "wb").write(out)
PY
}

# mirror_exact WHAT: the mirror is the source (vmback's own entries aside).
mirror_exact() {
  local rc=0
  diff -r --exclude=.vmback-blockmaps "$SRC/tree" "$T/tree" >"$WORK/diff.out" 2>&1 || rc=$?
  check_eq "$rc" 0 "$1: the mirror is the source"
  [ "$rc" -eq 0 ] || head -20 "$WORK/diff.out" >&2
}

# try HOW WHY: forge the index HOW, change the source, back up: the index
# is not used (stderr says WHY, when given), the mirror is right, the
# sentinel unchanged; the next backup says nothing of the index.
try() {
  local how=$1 why=$2
  section "an index forged: $how"
  forge "$how"
  echo "changed for $how" >"$SRC/tree/sub/f3"
  head -c 4096 /dev/urandom | dd of="$SRC/tree/sub/deeper/img" bs=4096 seek=7 conv=notrunc status=none
  vm backup --dir "$T" "$SRC/tree"
  expect_rc 0 "backup with an index forged ($how)"
  if [ -n "$why" ]; then
    expect_err "map index $INDEX $why" "the index forged ($how) is named and not used"
    expect_err "the blockmaps are read instead" "the index forged ($how): the maps are read"
  fi
  mirror_exact "index forged ($how)"
  expect_unchanged "$SENT" "$BEFORE" "index forged ($how)"
  vm backup --dir "$T" "$SRC/tree"
  expect_rc 0 "the backup after the index forged ($how)"
  check_eq "$(grep -ci "map index" "$VM_ERR" || true)" 0 "the next backup finds a sound index ($how)"
  mirror_exact "after the index forged ($how)"
}

try twice "has records that do not fit its count"
try count "has a count that does not fit its size"
try path-length "has records that do not fit its count"
try no-map "has records that do not fit its count"
try outside ""
check "nothing was made beside the tree's mirror" test ! -e "$T/tree2"
check_eq "$(find "$T" -maxdepth 1 -mindepth 1 ! -name tree ! -name '.vmback*' | wc -l)" 0 \
  "the target holds the tree's mirror and vmback's own entries only"

finish
