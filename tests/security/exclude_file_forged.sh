#!/usr/bin/env bash
# A forged `backup --exclude-file` (issue 16): the file is hostile input.
# Each forgery is refused with a config error (exit 2) naming the file,
# before anything is read into the store (it holds no point afterwards),
# quickly (no hang on a fifo, no read of a huge file):
#
#   huge      2 MiB of patterns, and a sparse 100 GiB file: refused by size
#             before any byte is read ("more than the 1048576")
#   symlink   a symlink to a valid exclude file: not followed
#   fifo      a named pipe no one writes: "not a regular file", no hang
#   device    /dev/zero given directly: "not a regular file"
#   binary    random bytes with NULs: "a NUL byte", the line named
#   escapes   a pattern with a terminal escape (ESC [ 2 J): refused as a
#             control character, and the message carries no raw ESC
#   utf8      bytes that are not UTF-8: refused
#
# Usage: bash tests/security/exclude_file_forged.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/seclib.sh" "$@"

SRC=$WORK/src
mkdir -p "$SRC"
printf 'data\n' >"$SRC/a.txt"
STORE=$WORK/store
vm store init "$STORE"
expect_rc 0 "store init"
printf '*.tmp\n' >"$WORK/good.txt"

# refused NAME FILE TEXT: backup --exclude-file FILE fails with exit 2
# within 10 s, stderr naming FILE and holding TEXT, and no point is made.
refused() {
  local name=$1 file=$2 text=$3 start end
  start=$(date +%s)
  vm backup --store "$STORE" --exclude-file "$file" "$SRC"
  end=$(date +%s)
  expect_rc 2 "$name: refused as a config error"
  expect_err "$file" "$name: the file is named"
  expect_err "$text" "$name: the reason"
  LAST_ERR=$VM_ERR
  check "$name: within 10 s" test $((end - start)) -le 10
  vm list --store "$STORE"
  check "$name: no point made" test "$(grep -c . "$VM_OUT" || true)" -le 1
  check "$name: no raw escape in the message" bash -c "! grep -q $'\\x1b' '$VM_ERR'"
}

section "huge"
head -c 2M /dev/zero | tr '\0' 'a' >"$WORK/huge.txt"
refused huge "$WORK/huge.txt" "more than the 1048576"
truncate -s 100G "$WORK/sparse.txt"
refused sparse "$WORK/sparse.txt" "more than the 1048576"

section "symlink"
ln -s "$WORK/good.txt" "$WORK/link.txt"
refused symlink "$WORK/link.txt" "is a symbolic link"

section "fifo"
mkfifo "$WORK/fifo"
refused fifo "$WORK/fifo" "not a regular file"

section "device"
refused device /dev/zero "not a regular file"

section "binary"
{ printf '*.tmp\n'; head -c 4096 /dev/urandom; printf '\0\n'; } >"$WORK/binary.txt"
refused binary "$WORK/binary.txt" "binary.txt:"

section "escapes"
printf '*.tmp\n\x1b[2Jcleared\n' >"$WORK/esc.txt"
refused escapes "$WORK/esc.txt" "esc.txt:2: exclude pattern"
check "escapes: the reason" grep -qF "control character" "$LAST_ERR"

section "utf8"
printf 'caf\xe9\n' >"$WORK/latin1.txt"
refused utf8 "$WORK/latin1.txt" "not valid UTF-8"

section "a good file still works"
vm backup --store "$STORE" --exclude-file "$WORK/good.txt" "$SRC"
expect_rc 0 "a plain exclude file"

finish
