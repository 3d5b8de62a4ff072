#!/usr/bin/env bash
# Issue 11, "Writing outside the destination": forged points whose volume
# and entry names, symlinks and hard links try to make restore write, chmod
# or delete outside --to. Each restore runs into $WORK/box/dest, beside a
# sentinel tree ($WORK/box/victim and $WORK/outside) that must not change.
set -euo pipefail
source "$(dirname "$0")/seclib.sh" "$@"

STORE=$WORK/store
vm store init "$STORE"
expect_rc 0 "store init"
sentinel_make "$WORK/outside"
mkdir -p "$WORK/box"
sentinel_make "$WORK/box/victimdir"
BEFORE=$(tree_state "$WORK/outside")
BOX_BEFORE=$(tree_state "$WORK/box")

n=0
# attack NAME SPEC [restore args...]: forges SPEC as a point, restores it
# into $WORK/box/dest (a fresh directory), expects a refusal naming the
# forged name, and nothing outside dest changed.
attack() {
  local what=$1 spec=$2
  shift 2
  n=$((n + 1))
  local point
  point=$(printf '2026-01-01T%06dZ' "$n")
  printf '%s\n' "$spec" >"$WORK/spec$n.json"
  forge_point "$STORE" "$WORK/spec$n.json" "$point"
  rm -rf "$WORK/box/dest"
  vm restore --store "$STORE" "$point" "$@"
  expect_nonzero "$what"
  expect_unchanged "$WORK/outside" "$BEFORE" "$what: the sentinel outside the box"
  rm -rf "$WORK/box/dest"
  expect_unchanged "$WORK/box" "$BOX_BEFORE" "$what: the rest of the box"
}

section "a volume named ../escaped (a setuid file) is refused when the manifest is read"
attack "volume ../escaped" \
  '{"volumes": [{"name": "../escaped", "root": {"type": "file", "mode": 3565, "data": "evil"}}]}' \
  --to "$WORK/box/dest"
expect_err "invalid or repeated volume name" "volume ../escaped: the message says why"
check "nothing named escaped appeared" test ! -e "$WORK/box/escaped"

section "a volume named ../victimdir cannot make restore --force delete outside"
mkdir -p "$WORK/box/dest"
attack "volume ../victimdir" \
  '{"volumes": [{"name": "../victimdir", "root": {"type": "file", "data": "x"}}]}' \
  --to "$WORK/box/dest" --force

section "a volume lnk (symlink) then lnk/evil cannot write through the link"
attack "volume lnk/evil" \
  "{\"volumes\": [{\"name\": \"lnk\", \"root\": {\"type\": \"symlink\", \"target\": \"$WORK/outside\"}},
                 {\"name\": \"lnk/evil\", \"root\": {\"type\": \"file\", \"data\": \"evil\"}}]}" \
  --to "$WORK/box/dest"

section "volume names with NUL, '.', empty, or repeated"
attack "volume with NUL" \
  '{"volumes": [{"name": "..\u0000", "root": {"type": "file", "data": "x"}}]}' --to "$WORK/box/dest"
attack "volume ." '{"volumes": [{"name": ".", "root": {"type": "file", "data": "x"}}]}' --to "$WORK/box/dest"
attack "empty volume name" '{"volumes": [{"name": "", "root": {"type": "file", "data": "x"}}]}' --to "$WORK/box/dest"
attack "repeated volume" \
  '{"volumes": [{"name": "v", "root": {"type": "dir", "entries": []}}, {"name": "v", "root": {"type": "file", "data": "x"}}]}' \
  --to "$WORK/box/dest"

section "a tree entry named ..\\0 (name_hex 2e2e00) cannot make restore remove the parent"
mkdir -p "$WORK/box/dest"
attack "entry ..\\0" \
  '{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [{"name_hex": "2e2e00", "type": "file", "data": "x"}]}}]}' \
  --to "$WORK/box/dest" --force
expect_err "invalid entry name" "entry ..\\0: the message says why"
attack "entry a/b" \
  '{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [{"name": "a/b", "type": "file", "data": "x"}]}}]}' \
  --to "$WORK/box/dest"
attack "entries a and a\\0 (NUL defeating the duplicate check)" \
  '{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [{"name": "a", "type": "dir", "entries": []}, {"name_hex": "6100", "type": "file", "data": "x"}]}}]}' \
  --to "$WORK/box/dest"

section "an entry that is a symlink cannot be written through by a later one"
# The tree holds a symlink d -> outside and, in a second volume, the same
# path as a directory: restoring the second over the first with --force
# must replace the link, never write into its target.
n=$((n + 1))
cat >"$WORK/spec$n.json" <<JSON
{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [
   {"name": "d", "type": "symlink", "target": "$WORK/outside"}]}}]}
JSON
forge_point "$STORE" "$WORK/spec$n.json" "2026-02-01T000000Z"
cat >"$WORK/spec$n.b.json" <<JSON
{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [
   {"name": "d", "type": "dir", "mode": 511, "entries": [{"name": "file", "type": "file", "mode": 3583, "data": "evil"}]}]}}]}
JSON
forge_point "$STORE" "$WORK/spec$n.b.json" "2026-02-02T000000Z"
rm -rf "$WORK/box/dest"
vm restore --store "$STORE" 2026-02-01T000000Z --to "$WORK/box/dest"
expect_rc 0 "restore of the symlink point"
check "d was restored as a symlink" test -L "$WORK/box/dest/v/d"
vm restore --store "$STORE" 2026-02-02T000000Z --to "$WORK/box/dest" --force
expect_rc 0 "restore --force of the directory point over it"
check "d is now a directory" test -d "$WORK/box/dest/v/d" -a ! -L "$WORK/box/dest/v/d"
check_eq "$(cat "$WORK/box/dest/v/d/file")" "evil" "the file went into the new directory"
expect_unchanged "$WORK/outside" "$BEFORE" "symlink replaced by a directory: the sentinel"

section "a hard link entry naming a path outside the volume links nothing outside"
n=$((n + 1))
cat >"$WORK/spec$n.json" <<JSON
{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [
   {"name": "h", "type": "file", "data": "mine", "hardlink": "../../outside/secret"}]}}]}
JSON
forge_point "$STORE" "$WORK/spec$n.json" "2026-03-01T000000Z"
rm -rf "$WORK/box/dest"
vm restore --store "$STORE" 2026-03-01T000000Z --to "$WORK/box/dest"
expect_rc 0 "restore of a forged hard link"
check_eq "$(cat "$WORK/box/dest/v/h")" "mine" "the entry got its own content"
check_eq "$(stat -c %h "$WORK/outside/secret")" "1" "the outside file got no new link"
expect_unchanged "$WORK/outside" "$BEFORE" "forged hard link: the sentinel"

section "--to that is a symlink to a file is never written through"
ln -s "$WORK/outside/file" "$WORK/box/tolink"
vm restore --store "$STORE" 2026-03-01T000000Z v/h --to "$WORK/box/tolink" --force
expect_nonzero "--to symlink to a file"
expect_err "is a symlink" "--to symlink: the message says why"
expect_unchanged "$WORK/outside" "$BEFORE" "--to symlink: the sentinel"
ln -s "$WORK/outside" "$WORK/box/todir"
vm restore --store "$STORE" 2026-03-01T000000Z --to "$WORK/box/todir" --force
expect_nonzero "--to symlink to a directory"
expect_unchanged "$WORK/outside" "$BEFORE" "--to symlink to a directory: the sentinel"
rm -f "$WORK/box/tolink" "$WORK/box/todir"

section "restore --force never deletes across a mount point"
mkdir -p "$WORK/box/dest2/v/mnt"
mount -t tmpfs -o size=1m vmback-sec "$WORK/box/dest2/v/mnt"
register_mount "$WORK/box/dest2/v/mnt"
echo "on another fs" >"$WORK/box/dest2/v/mnt/keep"
n=$((n + 1))
echo '{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [{"name": "mnt", "type": "file", "data": "x"}]}}]}' >"$WORK/spec$n.json"
forge_point "$STORE" "$WORK/spec$n.json" "2026-04-01T000000Z"
vm restore --store "$STORE" 2026-04-01T000000Z --to "$WORK/box/dest2" --force
expect_nonzero "restore --force over a mount point"
expect_err "mount point" "the refusal names the mount point"
check "the file on the other file system is still there" test -f "$WORK/box/dest2/v/mnt/keep"
umount "$WORK/box/dest2/v/mnt"

section "--no-owner --no-special --no-privileges"
n=$((n + 1))
cat >"$WORK/spec$n.json" <<JSON
{"volumes": [{"name": "v", "root": {"type": "dir", "entries": [
   {"name": "suid", "type": "file", "mode": 3565, "uid": 1234, "gid": 1234, "data": "x"},
   {"name": "null", "type": "chardev", "rdev": 259, "mode": 438},
   {"name": "fifo", "type": "fifo", "mode": 420}]}}]}
JSON
forge_point "$STORE" "$WORK/spec$n.json" "2026-05-01T000000Z"
vm restore --store "$STORE" 2026-05-01T000000Z --to "$WORK/box/faithful"
expect_rc 0 "faithful restore"
check_eq "$(stat -c '%a %u' "$WORK/box/faithful/v/suid")" "6755 1234" "faithful: setuid and owner kept"
check "faithful: the device node is there" test -c "$WORK/box/faithful/v/null"
vm restore --store "$STORE" 2026-05-01T000000Z --to "$WORK/box/safe" --no-owner --no-special --no-privileges
expect_rc 0 "restore --no-owner --no-special --no-privileges"
check_eq "$(stat -c '%a %u' "$WORK/box/safe/v/suid")" "755 0" "safe: no setuid/setgid, owned by the restoring user"
check "safe: no device node" test ! -e "$WORK/box/safe/v/null"
check "safe: no fifo" test ! -e "$WORK/box/safe/v/fifo"
section "names with control characters are escaped in human-readable output, exact in JSON"
echo '{"volumes": [{"name": "ev\u001b[2Jil\nvmback: forged line", "root": {"type": "file", "data": "x"}}]}' >"$WORK/spec_ctl.json"
vm store init "$WORK/store_ctl"   # its own store: the one above holds refused points
forge_point "$WORK/store_ctl" "$WORK/spec_ctl.json" "2026-06-01T000000Z"
vm list --store "$WORK/store_ctl"
expect_rc 0 "list with a control-character volume name"
check "list prints no raw ESC" bash -c "! grep -q \$'\\x1b' '$VM_OUT'"
check "list prints no forged line" bash -c "! grep -q '^vmback: forged line' '$VM_OUT'"
check "list shows the escape" grep -qF 'ev\x1b[2Jil\x0avmback: forged line' "$VM_OUT"
vm list --store "$WORK/store_ctl" --json
check_eq "$(python3 -c 'import json,sys; print(repr([v for p in json.load(open(sys.argv[1])) for v in p["volumes"] if v.startswith("ev")][0]))' "$VM_OUT")" \
  "'ev\x1b[2Jil\nvmback: forged line'" "list --json keeps the exact name"
vm restore --store "$WORK/store_ctl" 2026-06-01T000000Z "nonexistent" --to "$WORK/box/ctl"
expect_nonzero "restore of a missing volume"

rm -rf "$WORK/box/faithful" "$WORK/box/safe" "$WORK/box/dest" "$WORK/box/dest2" "$WORK/box/ctl"
expect_unchanged "$WORK/outside" "$BEFORE" "the sentinel at the end"

finish
