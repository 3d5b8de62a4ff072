#!/usr/bin/env bash
# A forged point served by `vmback mount` (issue 15): what a stranger's disk
# holds is shown, never acted on. A file claiming 2^62 bytes with no block
# list, a tree entry named "..", a name with a slash, and a symlink to a host
# file: the bad file and the bad directories fail with EIO (not a crash, not
# a huge allocation), the symlink is shown as a link (never read by vmback),
# the good files of the same point read, the mount stays up and leaves
# nothing behind, and nothing outside the test's directory changes. Also:
# the mount is private (no allow_other: another user cannot enter it).
#
# usage: bash mount_forged.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/seclib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root"
[ -e /dev/fuse ] || die "needs /dev/fuse"

sentinel_and_store
cat >"$WORK/spec.json" <<EOF
{"volumes": [
  {"name": "good", "root": {"type": "dir", "entries": [
    {"type": "file", "name": "ok", "data": "fine\n"},
    {"type": "file", "name": "huge", "size": 4611686018427387904, "content": []},
    {"type": "symlink", "name": "host", "target": "$SENT/secret"}
  ]}},
  {"name": "dots", "root": {"type": "dir", "entries": [
    {"type": "file", "name": "..", "data": "up\n"}
  ]}},
  {"name": "slash", "root": {"type": "dir", "entries": [
    {"type": "file", "name": "a/b", "data": "deep\n"}
  ]}}
]}
EOF
forge_point "$STORE" "$WORK/spec.json" 2026-01-01T000000Z

MNT=$WORK/mnt
start_mount mount "$MNT" --store "$STORE"
P=$MNT/2026-01-01T000000Z

section "good files read, bad ones fail"
check_eq "$(cat "$P/good/ok")" fine "the good file of the forged point reads"
check_eq "$(stat -c %s "$P/good/huge")" 4611686018427387904 "the forged size is shown as it is"
check "the file claiming 2^62 bytes fails to read" bash -c "! head -c 1 '$P/good/huge' >/dev/null 2>'$WORK/huge.err'"
check "... with an I/O error" grep -q "Input/output error" "$WORK/huge.err"
check "the mount logged the forged file" grep -q "good/huge" "$WORK/mount.log"
check_eq "$(stat -c %F "$P/good/host")" "symbolic link" "a symlink to a host file is shown as a link"
check_eq "$(readlink "$P/good/host")" "$SENT/secret" "its target is shown as recorded"
check "a directory with an entry named '..' fails to list" bash -c "! ls '$P/dots' >/dev/null 2>&1"
check "a directory with an entry holding '/' fails to list" bash -c "! ls '$P/slash' >/dev/null 2>&1"
check "vmback mount is still running" running "$MOUNT_PID"
check_eq "$(cat "$P/good/ok")" fine "the good file still reads after the bad ones"
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$MOUNT_PID/status")
check "the mount's peak RSS (${RSS} KiB) stayed under 256 MiB" test "${RSS:-999999999}" -lt $((256 * 1024))

section "the mount is private"
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  check "another user cannot enter the mount" bash -c \
    "! setpriv --reuid=nobody --regid=nogroup --clear-groups ls '$MNT' >/dev/null 2>&1"
fi

stop_mount TERM "$MNT"
expect_unchanged "$SENT" "$BEFORE" "the sentinel"
finish
