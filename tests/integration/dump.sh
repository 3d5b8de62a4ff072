#!/usr/bin/env bash
# vmback dump on a store and on a dir target: a file of a tree and a sparse
# image (data, holes and an explicit zero block) written to standard output
# are byte-identical to the originals; a damaged block (a flipped byte in a
# store's pack, in a dir target's mirror) stops dump with a non-zero exit
# naming the file and the bytes; a directory, a symlink, a fifo, a path not
# there and a terminal on standard output (through script(1)) are refused.
#
# Usage: bash tests/integration/dump.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

command -v python3 >/dev/null || die "needs python3"
command -v script >/dev/null || die "needs script (util-linux) for a terminal"

SRC=$WORK/tree
mkdir -p "$SRC/sub"
head -c 300000 /dev/urandom >"$SRC/a.bin"
printf 'leaf\n' >"$SRC/sub/c.txt"
ln -s a.bin "$SRC/link"
mkfifo "$SRC/pipe"
# A sparse image: data at the start, in the middle and at the end; holes
# between; an explicit zero block written as data.
IMG=$WORK/disk.img
truncate -s 8M "$IMG"
head -c 70000 /dev/urandom | dd of="$IMG" conv=notrunc status=none
head -c 100000 /dev/urandom | dd of="$IMG" bs=1 seek=3000000 conv=notrunc status=none
head -c 65536 /dev/zero | dd of="$IMG" bs=65536 seek=64 conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$IMG" bs=4096 seek=2047 conv=notrunc status=none

# try_dump WHAT ARGS...: dump to $VM_OUT; checks it succeeded.
try_dump() {
  local what=$1
  shift
  vm dump "$@"
  expect_rc 0 "$what"
}

# refusals KIND POINT DEST...: what dump must refuse, on any destination.
refusals() {
  local kind=$1 point=$2
  shift 2
  local dest=("$@")
  vm dump "${dest[@]}" "$point" tree/sub
  expect_rc 2 "$kind: dump of a directory"
  expect_err "'tree/sub' in point $point is a directory, not a file" "$kind: the refusal names the directory"
  expect_err "use 'vmback restore'" "$kind: the refusal says to use restore"
  check_eq "$(stat -c %s "$VM_OUT")" 0 "$kind: nothing written for a directory"
  vm dump "${dest[@]}" "$point" tree/link
  expect_rc 2 "$kind: dump of a symlink"
  expect_err "'tree/link' in point $point is a symlink" "$kind: the refusal names the link"
  vm dump "${dest[@]}" "$point" tree/pipe
  expect_rc 2 "$kind: dump of a fifo"
  expect_err "'tree/pipe' in point $point is a device node, fifo or socket" "$kind: the refusal names the fifo"
  vm dump "${dest[@]}" "$point" tree
  expect_rc 2 "$kind: dump of a tree volume"
  expect_err "'tree' in point $point is a directory" "$kind: the refusal names the volume"
  vm dump "${dest[@]}" "$point" tree/nope
  expect_nonzero "$kind: dump of a path not there"
  expect_err "tree/nope" "$kind: the error names the path"

  section "$kind: a terminal on standard output"
  local out=$WORK/tty-$kind.txt rc=0
  script -qec "$(printf '%q ' "$VMBACK" dump "${dest[@]}" "$point" tree/sub/c.txt)" /dev/null >"$out" 2>&1 || rc=$?
  _count_check
  [ "$rc" -ne 0 ] || _fail "$kind: dump to a terminal should fail"
  check "$kind: the refusal says why" grep -qF "standard output is a terminal" "$out"
  check "$kind: nothing of the file reached the terminal" bash -c "! grep -q leaf '$out'"
  rc=0
  script -qec "$(printf '%q ' "$VMBACK" dump "${dest[@]}" "$point" tree/sub/c.txt --force)" /dev/null >"$out" 2>&1 || rc=$?
  check_eq "$rc" 0 "$kind: dump --force writes to a terminal"
  check "$kind: --force: the file reached the terminal" grep -q leaf "$out"
}

section "store: a file and a sparse image"
STORE=$WORK/store
vm store init "$STORE" --block-size 4K
expect_rc 0 "store init"
vm backup --store "$STORE" --json "$SRC" "$IMG"
expect_rc 0 "backup into the store"
POINT=$(json_field "$VM_OUT" 'd["point"]')
try_dump "store: dump of a file" --store "$STORE" "$POINT" tree/a.bin
check_same_file "$VM_OUT" "$SRC/a.bin" "store: the file dumped"
try_dump "store: dump of a sparse image, latest" --store "$STORE" latest disk.img
check_same_file "$VM_OUT" "$IMG" "store: the sparse image dumped"
try_dump "store: a path with extra slashes" --store "$STORE" "$POINT" /tree//sub/c.txt/
check_eq "$(cat "$VM_OUT")" leaf "store: the file at a path given with extra slashes"
check "store: dump into a pipe" bash -c "'$VMBACK' dump --store '$STORE' '$POINT' disk.img | cmp - '$IMG'"
refusals store "$POINT" --store "$STORE"

section "store: a damaged block"
check "store: a block of a.bin damaged in its pack" damage_block "$STORE" "$SRC/a.bin" 4096
vm dump --store "$STORE" "$POINT" tree/a.bin
expect_rc 3 "store: dump of a file with a damaged block"
expect_err "tree/a.bin in point $POINT: bytes 4096..8192 cannot be read" "store: the error names the file and the bytes"
expect_err "bytes already written to standard output are incomplete: discard them" "store: the error says to discard the output"
_count_check
if [ "$(stat -c %s "$VM_OUT")" -gt 4096 ] || ! cmp -s "$VM_OUT" <(head -c "$(stat -c %s "$VM_OUT")" "$SRC/a.bin"); then
  _fail "store: dump wrote something past the damage, or something wrong before it"
fi
try_dump "store: another file of the damaged point" --store "$STORE" "$POINT" disk.img
check_same_file "$VM_OUT" "$IMG" "store: an undamaged file still dumps"

section "dir target: a file and a sparse image"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
vm backup --dir "$MIRROR" "$SRC" "$IMG"
expect_rc 0 "backup into a dir target"
try_dump "dir: dump of a file" --dir "$MIRROR" current tree/a.bin
check_same_file "$VM_OUT" "$SRC/a.bin" "dir: the file dumped"
try_dump "dir: dump of a sparse image" --dir "$MIRROR" latest disk.img
check_same_file "$VM_OUT" "$IMG" "dir: the sparse image dumped"
refusals dir current --dir "$MIRROR"
vm dump --dir "$MIRROR" current tree/.vmback-blockmaps/a.bin
expect_nonzero "dir: vmback's own blockmaps are not a file of the point"
vm dump --dir "$MIRROR" current tree/../disk.img
expect_nonzero "dir: a path escaping the volume"

section "dir target: a damaged block"
flip_bit "$MIRROR/tree/a.bin" 150000 >/dev/null
vm dump --dir "$MIRROR" current tree/a.bin
expect_rc 3 "dir: dump of a file with a damaged block"
expect_err_re "tree/a\.bin: block [0-9]+ \(bytes [0-9]+\.\.[0-9]+\) differs from its blockmap" \
  "dir: the error names the file and the bytes"
expect_err "bytes already written to standard output are incomplete: discard them" "dir: the error says to discard the output"
# The block size is the target's; the range named holds the flipped byte,
# and dump wrote exactly what came before it, unchanged.
RANGE=$(sed -n 's/.*tree\/a\.bin: block [0-9]* (bytes \([0-9]*\)\.\.\([0-9]*\)).*/\1 \2/p' "$VM_ERR")
read -r FROM TO <<<"${RANGE:-0 0}"
check "dir: the range named ($FROM..$TO) holds the damaged byte" test "$FROM" -le 150000 -a "$TO" -gt 150000
check_eq "$(stat -c %s "$VM_OUT")" "$FROM" "dir: dump stopped before the damaged block"
check "dir: what dump wrote before it is the file's start" cmp -s "$VM_OUT" <(head -c "$FROM" "$SRC/a.bin")
finish
