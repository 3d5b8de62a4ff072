#!/usr/bin/env bash
# vmback ls on a store and on a dir target: a known tree (a file, a
# subdirectory, a symlink, a fifo, a setuid file, a name with a newline and
# one that is not UTF-8) backed up, then listed: the volumes of a point, a
# directory's entries, -R, -l and --json checked against the tree as it is;
# a file listed is the entry itself; "latest"; a path that is not there or
# escapes the volume is an error naming it; a symlink in the mirror of a dir
# target is shown as the link, never followed; vmback's own files in a dir
# target (blockmaps, the point's description) are never shown.
#
# Usage: bash tests/integration/ls.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (chown)"
command -v python3 >/dev/null || die "needs python3"

SRC=$WORK/tree
mkdir -p "$SRC/sub/deeper"
printf 'hello\n' >"$SRC/a.txt"
head -c 70000 /dev/urandom >"$SRC/sub/b.bin"
printf 'leaf\n' >"$SRC/sub/deeper/c.txt"
ln -s sub/b.bin "$SRC/link"
ln -s / "$SRC/to-root"
mkfifo "$SRC/pipe"
printf 'x\n' >"$SRC/suid"
chmod 4750 "$SRC/suid"
chown 1234:5678 "$SRC/a.txt"
touch -d '2024-02-03 04:05:06 UTC' "$SRC/a.txt"
printf 'nl\n' >"$SRC/new"$'\n'"line"
printf 'latin1\n' >"$SRC/caf"$'\xe9'

STORE=$WORK/store
vm store init "$STORE"
expect_rc 0 "store init"

# json_check WHAT PYTHON: the JSON in $VM_OUT satisfies PYTHON (e: the list;
# by: path -> entry).
json_check() {
  check "$1" python3 -c "import json, sys
e = json.load(open(sys.argv[1]))
by = {x.get('path', x.get('path_hex')): x for x in e}
$2" "$VM_OUT"
}

one_destination() {
  local kind=$1 point=$2
  shift 2
  local dest=("$@")

  section "$kind: the volumes of a point"
  vm ls "${dest[@]}" "$point"
  expect_rc 0 "$kind: ls POINT"
  check_eq "$(cat "$VM_OUT")" "tree/" "$kind: the point holds one volume, a directory"

  section "$kind: a directory's entries"
  vm ls "${dest[@]}" "$point" tree --json
  expect_rc 0 "$kind: ls POINT tree --json"
  json_check "$kind: every top entry, nothing else" "
names = sorted(by)
want = sorted(['tree/a.txt', 'tree/sub', 'tree/link', 'tree/to-root', 'tree/pipe', 'tree/suid',
               'tree/new\nline', '747265652f636166e9'])
assert names == want, names"
  json_check "$kind: types, owner, size, mtime of a.txt" "
a = by['tree/a.txt']
assert a['type'] == 'file' and a['size'] == 6 and a['uid'] == 1234 and a['gid'] == 5678, a
assert a['mtime'] == '2024-02-03T04:05:06Z', a
assert by['tree/sub']['type'] == 'dir' and by['tree/pipe']['type'] == 'fifo'
assert by['tree/link']['type'] == 'symlink' and by['tree/link']['target'] == 'sub/b.bin'
assert by['tree/suid']['mode'] == 0o4750, oct(by['tree/suid']['mode'])"

  vm ls "${dest[@]}" "$point" tree -l
  expect_rc 0 "$kind: ls -l"
  check "$kind: -l shows mode, owner, size, time and a link's target" grep -qxE \
    -- '-rw-r--r-- 1234:5678 +6 2024-02-03T04:05:06Z tree/a.txt' "$VM_OUT"
  check "$kind: -l shows setuid" grep -qE -- '^-rwsr-x--- 0:0 +2 .* tree/suid$' "$VM_OUT"
  check "$kind: -l shows the link's target" grep -qE -- '^lrwxrwxrwx .* tree/link -> sub/b.bin$' "$VM_OUT"
  check "$kind: a name with a newline is escaped on one line" grep -qF 'tree/new\x0aline' "$VM_OUT"

  section "$kind: -R, a file, latest"
  vm ls "${dest[@]}" "$point" tree/sub -R
  expect_rc 0 "$kind: ls -R"
  check_eq "$(cat "$VM_OUT")" "tree/sub/b.bin
tree/sub/deeper/
tree/sub/deeper/c.txt" "$kind: -R lists everything below, in order"
  vm ls "${dest[@]}" latest tree/sub/b.bin --json
  expect_rc 0 "$kind: ls latest FILE"
  json_check "$kind: a file is listed as itself" "assert [x['path'] for x in e] == ['tree/sub/b.bin'] and e[0]['size'] == 70000, e"
  vm ls "${dest[@]}" "$point" tree/to-root
  expect_rc 0 "$kind: ls of a symlink to /"
  check_eq "$(cat "$VM_OUT")" "tree/to-root" "$kind: a symlink is the link itself, not followed"

  section "$kind: wrong paths"
  vm ls "${dest[@]}" "$point" tree/nope
  expect_nonzero "$kind: a path that is not there"
  expect_err "tree/nope" "$kind: the error names the path"
  vm ls "${dest[@]}" "$point" nothere
  expect_nonzero "$kind: a volume that is not there"
  expect_err "no volume 'nothere'" "$kind: the error names the volume"
}

section "store"
vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "backup into the store"
POINT=$(json_field "$VM_OUT" 'd["point"]')
one_destination store "$POINT" --store "$STORE"

section "dir target"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
vm backup --dir "$MIRROR" "$SRC"
expect_rc 0 "backup into a dir target"
one_destination dir current --dir "$MIRROR"
vm ls --dir "$MIRROR" current -R
expect_rc 0 "dir: ls -R of the whole point"
check "dir: vmback's own files are never shown" bash -c "! grep -q '.vmback-' '$VM_OUT'"
vm ls --dir "$MIRROR" current tree/../../etc
expect_nonzero "dir: a path escaping the volume"

section "dir target: -R of a wider tree"
# 40 directories of 40 files: the listing grows (and moves in memory) while
# a directory's path is still in use; every path must come out right.
WIDE=$WORK/wide
python3 - "$WIDE" <<'PY'
import os, sys
for d in range(40):
    os.makedirs(f"{sys.argv[1]}/d{d:02}")
    for f in range(40):
        open(f"{sys.argv[1]}/d{d:02}/f{f:02}", "w").write("x")
PY
mkdir -p "$WORK/wide-mirror"
vm backup --dir "$WORK/wide-mirror" "$WIDE"
expect_rc 0 "dir: backup of the wide tree"
vm ls --dir "$WORK/wide-mirror" current wide -R
expect_rc 0 "dir: ls -R of the wide tree"
for d in $(seq -w 0 39); do echo "wide/d$d/"; for f in $(seq -w 0 39); do echo "wide/d$d/f$f"; done; done >"$WORK/wide.want"
check "dir: ls -R names every entry of the wide tree, in order" cmp "$VM_OUT" "$WORK/wide.want"
finish
