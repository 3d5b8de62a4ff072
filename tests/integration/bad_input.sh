#!/usr/bin/env bash
# Bad input and damage: each case must end with the documented exit status
# (0 ok, 1 failed, 2 usage/config, 3 damage found, 4 locked) and a message on
# stderr that names the file or the cause; nothing may be committed by a
# failed backup, and damaged data must never be restored silently.
#
# Cases: config errors (unknown key, malformed TOML, missing file), command
# line errors, a missing backup source, --store on a non-store, a store of a
# newer format, restore over an existing destination with/without --force,
# an unknown point, a truncated manifest, a pack with one flipped bit, a lost
# index, a store locked by another process, a full disk, and a ZFS that
# does not answer (a stand-in zfs program) or a dataset that does not exist.
#
# Usage: bash tests/integration/bad_input.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mount)"
for tool in rsync python3 cmp flock losetup mkfs.ext4 mount; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
MiB=$((1024 * 1024))

# A small source tree, and a store with one point of it.
SRC=$WORK/src
mkdir -p "$SRC/sub"
rand_file "$SRC/data.bin" 300000
text_file "$SRC/sub/text.txt" 100000
echo hello >"$SRC/hello.txt"

new_store() { # new_store DIR: init a store and back up $SRC into it
  vm store init "$1"
  [ "$VM_RC" -eq 0 ] || { _vm_context; die "store init $1 failed"; }
  vm backup --store "$1" "$SRC"
  [ "$VM_RC" -eq 0 ] || { _vm_context; die "backup of $SRC into $1 failed"; }
}

# ---------------------------------------------------------------------------
section "config: unknown key"
STORE=$WORK/store
new_store "$STORE"
CFG=$WORK/unknown-key.toml
cat >"$CFG" <<EOF
[target]
path = "$STORE"
colour = "red"

[[volume]]
name = "src"
source = "$SRC"
EOF
vm backup -c "$CFG"
expect_rc 2 "backup with an unknown key in [target]"
expect_err "$CFG:3:" "unknown key: message gives FILE:LINE ($CFG:3)"
expect_err "colour" "unknown key: message names the key"

CFG=$WORK/unknown-volume-key.toml
cat >"$CFG" <<EOF
[target]
path = "$STORE"

[[volume]]
name = "src"
source = "$SRC"
excludes = ["*.tmp"]
EOF
vm backup -c "$CFG"
expect_rc 2 "backup with an unknown key in [[volume]]"
expect_err "$CFG:7:" "unknown volume key: message gives FILE:LINE ($CFG:7)"
expect_err "unknown key 'excludes'" "unknown volume key: message names the key"

CFG=$WORK/unknown-table.toml
printf '[target]\npath = "%s"\n\n[[volume]]\nname = "src"\nsource = "%s"\n\n[schedule]\nevery = "day"\n' \
  "$STORE" "$SRC" >"$CFG"
vm list -c "$CFG"
expect_rc 2 "list with an unknown table [schedule]"
expect_err "$CFG:8:" "unknown table: message gives FILE:LINE ($CFG:8)"

section "config: malformed TOML, wrong types, missing parts"
CFG=$WORK/malformed.toml
printf '[target]\npath = "%s"\nname = = "oops"\n' "$STORE" >"$CFG"
vm backup -c "$CFG"
expect_rc 2 "backup with malformed TOML"
expect_err "$CFG:3:" "malformed TOML: message gives FILE:LINE ($CFG:3)"

CFG=$WORK/unclosed.toml
printf '[target\npath = "%s"\n' "$STORE" >"$CFG"
vm list -c "$CFG"
expect_rc 2 "list with an unclosed table header"
expect_err "$CFG:1:" "unclosed table header: message gives FILE:LINE ($CFG:1)"

CFG=$WORK/wrong-type.toml
printf '[target]\npath = "%s"\n\n[[volume]]\nname = "src"\nsource = "%s"\none_file_system = "yes"\n' \
  "$STORE" "$SRC" >"$CFG"
vm backup -c "$CFG"
expect_rc 2 "backup with a string where a boolean belongs"
expect_err "$CFG:7:" "wrong type: message gives FILE:LINE ($CFG:7)"
expect_err "one_file_system" "wrong type: message names the key"

CFG=$WORK/duplicate-volume.toml
printf '[target]\npath = "%s"\n\n[[volume]]\nname = "v"\nsource = "%s"\n\n[[volume]]\nname = "v"\nsource = "%s/sub"\n' \
  "$STORE" "$SRC" "$SRC" >"$CFG"
vm backup -c "$CFG"
expect_rc 2 "backup with two volumes of the same name"
expect_err "duplicate volume name 'v'" "duplicate volume: message names it"

CFG=$WORK/no-volume.toml
printf '[target]\npath = "%s"\n' "$STORE" >"$CFG"
vm backup -c "$CFG"
expect_rc 2 "backup with a config without [[volume]]"
expect_err "$CFG" "config without volumes: message names the file"

section "config: missing file"
vm backup -c "$WORK/does-not-exist.toml"
expect_nonzero "backup -c with a missing config file"
expect_err "$WORK/does-not-exist.toml" "missing config: message names the path"
vm list -c "$WORK/does-not-exist.toml"
expect_nonzero "list -c with a missing config file"
expect_err "$WORK/does-not-exist.toml" "missing config (list): message names the path"

list_points --store "$STORE"
check_eq "${#POINTS[@]}" 1 "points after the rejected configs (none may be added)"

# ---------------------------------------------------------------------------
section "command line errors"
vm backup "$SRC"
expect_rc 2 "backup without --store or -c"
expect_err "store" "backup without a target: message says which options"
vm backup --store "$STORE" -c "$WORK/unknown-key.toml" "$SRC"
expect_rc 2 "backup with both --store and -c"
CFG=$WORK/good.toml
printf '[target]\npath = "%s"\n\n[[volume]]\nname = "src"\nsource = "%s"\n' "$STORE" "$SRC" >"$CFG"
vm backup -c "$CFG" "$SRC"
expect_rc 2 "backup -c CONFIG with PATHs as well"
vm backup --store "$STORE" --no-such-option "$SRC"
expect_rc 2 "backup with an unknown option"
expect_err "no-such-option" "unknown option: message names it"
vm restore --store "$STORE" latest
expect_rc 2 "restore without --to"
expect_err "--to" "restore without --to: message names the option"
mkdir -p "$WORK/a/same" "$WORK/b/same"
vm backup --store "$STORE" "$WORK/a/same" "$WORK/b/same"
expect_rc 2 "backup of two sources with the same last path component"
expect_err "same" "same volume name twice: message names it"
vm store init "$WORK/bad-bs" --block-size 3K
expect_rc 2 "store init with a block size that is not a power of two"
expect_err "block size" "bad block size: message says so"
mkdir "$WORK/not-empty" && echo x >"$WORK/not-empty/file"
vm store init "$WORK/not-empty"
expect_rc 2 "store init in a non-empty directory"
expect_err "$WORK/not-empty" "store init in a non-empty directory: message names it"
check "store init in a non-empty directory leaves it alone" test "$(ls -A "$WORK/not-empty")" = "file"
vm store init "$STORE"
expect_rc 2 "store init on an existing store"
expect_err "$STORE" "store init on an existing store: message names it"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 1 "points after the rejected command lines (none may be added)"

# ---------------------------------------------------------------------------
section "backup source that does not exist"
vm backup --store "$STORE" "$WORK/no-such-source"
expect_rc 1 "backup of a source that does not exist"
expect_err "$WORK/no-such-source" "missing source: message names it"
vm backup --store "$STORE" "$SRC" "$WORK/no-such-source"
expect_rc 1 "backup of an existing and a missing source"
expect_err "$WORK/no-such-source" "missing second source: message names it"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 1 "points after backups of missing sources (no new point)"
check "no temp files left in $STORE/tmp" test -z "$(ls -A "$STORE/tmp")"

# ---------------------------------------------------------------------------
section "--store on a directory that is not a store"
NOT=$WORK/not-a-store
mkdir "$NOT" && echo "precious" >"$NOT/file"
vm backup --store "$NOT" "$SRC"
expect_nonzero "backup --store on a directory that is not a store"
expect_err "$NOT" "not a store: message names the directory"
vm list --store "$NOT"
expect_nonzero "list --store on a directory that is not a store"
expect_err "$NOT" "not a store (list): message names the directory"
vm verify --store "$NOT"
expect_nonzero "verify --store on a directory that is not a store"
check "a non-store directory is left untouched" test "$(ls -A "$NOT")" = "file"
vm list --store "$WORK/no-such-dir"
expect_nonzero "list --store on a directory that does not exist"
expect_err "$WORK/no-such-dir" "missing store: message names it"
check "list --store on a missing directory does not create it" test ! -e "$WORK/no-such-dir"

# ---------------------------------------------------------------------------
section "a store of a newer format (version 99)"
NEWER=$WORK/newer-store
new_store "$NEWER"
python3 - "$NEWER/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["version"] = 99
open(p, "w").write(json.dumps(c, indent=2) + "\n")
EOF
vm backup --store "$NEWER" "$SRC"
expect_rc 2 "backup into a store of format version 99"
expect_err "newer" "version 99: message says the store is newer"
expect_err "99" "version 99: message gives the version"
vm list --store "$NEWER"
expect_rc 2 "list of a store of format version 99"
expect_err "newer" "version 99 (list): message says the store is newer"
vm restore --store "$NEWER" latest --to "$WORK/from-newer"
expect_rc 2 "restore from a store of format version 99"
check "restore from a newer store creates nothing" test ! -e "$WORK/from-newer"
check "the newer store keeps its one point" test "$(find "$NEWER/points" -name '*.json' | wc -l)" = 1

# ---------------------------------------------------------------------------
section "restore to an existing destination"
DEST=$WORK/existing-dir
mkdir "$DEST" && echo "keep me" >"$DEST/mine"
vm restore --store "$STORE" latest --to "$DEST"
expect_rc 2 "restore of a point into an existing directory without --force"
expect_err "$DEST" "existing destination: message names it"
expect_err "force" "existing destination: message mentions --force"
check "refused restore writes nothing into the destination" test "$(ls -A "$DEST")" = "mine"
vm restore --store "$STORE" latest --to "$DEST" --force
expect_rc 0 "restore of a point into an existing directory with --force"
check_same_tree "$SRC" "$DEST/src" "restore with --force into an existing directory"

FILE=$WORK/existing-file
echo "old content" >"$FILE"
vm restore --store "$STORE" latest src/data.bin --to "$FILE"
expect_rc 2 "restore of a file onto an existing file without --force"
expect_err "$FILE" "existing file: message names it"
check_eq "$(cat "$FILE")" "old content" "refused restore leaves the existing file as it was"
vm restore --store "$STORE" latest src/data.bin --to "$FILE" --force
expect_rc 0 "restore of a file onto an existing file with --force"
check_same_file "$SRC/data.bin" "$FILE" "restore with --force over an existing file"

# ---------------------------------------------------------------------------
section "restore of an unknown point"
vm restore --store "$STORE" 1999-01-01T000000Z --to "$WORK/unknown-point"
expect_nonzero "restore of a point that does not exist"
expect_err "1999-01-01T000000Z" "unknown point: message names it"
check "restore of an unknown point creates nothing" test ! -e "$WORK/unknown-point"
vm restore --store "$STORE" latest no-such-volume --to "$WORK/unknown-volume"
expect_nonzero "restore of a volume the point does not have"
expect_err "no-such-volume" "unknown volume: message names it"
EMPTY=$WORK/empty-store
vm store init "$EMPTY"
vm restore --store "$EMPTY" latest --to "$WORK/from-empty"
expect_nonzero "restore of latest from a store without points"
check "restore from an empty store creates nothing" test ! -e "$WORK/from-empty"

# ---------------------------------------------------------------------------
section "a truncated manifest"
TRUNC=$WORK/trunc-store
new_store "$TRUNC"
sleep 1.1
vm backup --store "$TRUNC" "$SRC"
expect_rc 0 "second backup for the truncated-manifest case"
list_points --store "$TRUNC"
check_eq "${#POINTS[@]}" 2 "points before truncating a manifest"
GOOD_POINT=${POINTS[0]:-none}
BAD_POINT=${POINTS[1]:-none}
MANIFEST=$TRUNC/points/$BAD_POINT.json
[ -f "$MANIFEST" ] || die "expected manifest $MANIFEST"
truncate -s $(($(stat -c %s "$MANIFEST") / 2)) "$MANIFEST"
vm verify --store "$TRUNC"
expect_rc 3 "verify of a store with a truncated manifest"
expect_err "$MANIFEST" "truncated manifest: verify names the file"
vm list --store "$TRUNC"
expect_nonzero "list of a store with a truncated manifest"
expect_err "$MANIFEST" "truncated manifest: list names the file"
vm restore --store "$TRUNC" "$GOOD_POINT" --to "$WORK/trunc-good"
expect_rc 0 "restore of the intact older point next to a truncated manifest"
check_same_tree "$SRC" "$WORK/trunc-good/src" "intact point next to a truncated manifest"
vm restore --store "$TRUNC" "$BAD_POINT" --to "$WORK/trunc-bad"
expect_nonzero "restore of the point whose manifest is truncated"
expect_err "$MANIFEST" "restore of the truncated point names the file"

# ---------------------------------------------------------------------------
section "a pack with one bit flipped"
# Two points of the same tree: the damaged file belongs to both, and verify
# must name both (a user picks the point to restore from that report).
FLIP=$WORK/flip-store
FSRC=$WORK/flip-src
mkdir "$FSRC"
echo "a small good file" >"$FSRC/good.txt"
rand_file "$FSRC/victim.bin" $((2 * MiB))
vm store init "$FLIP"
vm backup --store "$FLIP" "$FSRC"
expect_rc 0 "first backup for the bit-flip case"
sleep 1.1
vm backup --store "$FLIP" "$FSRC"
expect_rc 0 "second backup for the bit-flip case"
list_points --store "$FLIP"
check_eq "${#POINTS[@]}" 2 "points before the bit flip"
FLIP_P1=${POINTS[0]:-none}
FLIP_P2=${POINTS[1]:-none}
# A backup writes its data blobs and its trees and block lists into separate
# packs: the second backup wrote nothing new, so there are two, and the
# larger holds the data.
mapfile -t packs < <(find "$FLIP/packs" -name '*.pack' -type f -printf '%s %p\n' | sort -rn | cut -d' ' -f2-)
[ "${#packs[@]}" -eq 2 ] || die "expected a data pack and a metadata pack in $FLIP/packs, found ${#packs[@]} packs"
vm verify --store "$FLIP"
expect_rc 0 "verify before the bit flip"
# The data pack holds good.txt's block, then victim.bin's 32 blocks
# (random, so stored uncompressed): the middle byte is inside victim.bin's
# data.
off=$(flip_bit "${packs[0]}")
echo "flipped a bit at offset $off of ${packs[0]}"
vm verify --store "$FLIP"
expect_rc 3 "verify of a store with a flipped bit in a pack"
expect_err "victim.bin" "bit flip: verify names the affected file"
expect_err "$(basename "${packs[0]}")" "bit flip: verify names the damaged pack"
expect_err "$FLIP_P1: flip-src/victim.bin" "bit flip: verify names the older point $FLIP_P1 with the file"
expect_err "$FLIP_P2: flip-src/victim.bin" "bit flip: verify names the newer point $FLIP_P2 with the file (it holds the same damaged file)"
vm verify --store "$FLIP" --json
expect_rc 3 "verify --json of a store with a flipped bit"
check "bit flip: verify --json reports victim.bin in both points, and nothing for good.txt" \
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is False, r
for point in sys.argv[2:]:
    hits = [p for p in r["problems"] if p["point"] == point and p["path"].endswith("victim.bin")]
    assert hits, "no problem reported for point " + point + "; problems: " + json.dumps(r["problems"])
assert not [p for p in r["problems"] if "good.txt" in p["path"]], r["problems"]' "$VM_OUT" "$FLIP_P1" "$FLIP_P2"

for point in "$FLIP_P1" latest; do
  vm restore --store "$FLIP" "$point" flip-src/victim.bin --to "$WORK/victim-$point"
  expect_nonzero "restore of the damaged file from $point"
  expect_err_re "corrupt|damag|match|$(basename "${packs[0]}")" "restore of the damaged file from $point says why"
  if [ -e "$WORK/victim-$point" ]; then
    echo "note: the failed restore left $WORK/victim-$point behind ($(stat -c %s "$WORK/victim-$point") bytes)"
  fi
done
vm restore --store "$FLIP" latest --to "$WORK/flip-whole"
expect_nonzero "restore of the whole point holding the damaged file"
vm restore --store "$FLIP" latest flip-src/good.txt --to "$WORK/good-restored"
expect_rc 0 "restore of an undamaged file from the damaged pack"
check_same_file "$FSRC/good.txt" "$WORK/good-restored" "undamaged file from a damaged pack"

# The source is still intact. A backup that reads it in full and exits 0
# must commit a point that restores; deduplicating against the damaged copy
# would commit a point that is broken from the start. (Refusing, with a
# non-zero exit, would be acceptable too.)
sleep 1.1
vm backup --store "$FLIP" --full-read --json "$FSRC"
if [ "$VM_RC" -eq 0 ]; then
  vm restore --store "$FLIP" latest flip-src/victim.bin --to "$WORK/victim-after-rebackup"
  expect_rc 0 "restore of victim.bin from a --full-read backup made (exit 0) after the damage"
  if [ "$VM_RC" -eq 0 ]; then
    check_same_file "$FSRC/victim.bin" "$WORK/victim-after-rebackup" "victim.bin from the backup made after the damage"
  fi
else
  expect_nonzero "backup --full-read after the damage (refused)"
fi

# ---------------------------------------------------------------------------
section "a lost index (rm store/index/*)"
IDX=$WORK/index-store
new_store "$IDX"
list_points --store "$IDX"
IDX_FIRST=${POINTS[0]:-none}
[ -n "$(ls -A "$IDX/index")" ] || die "expected index files in $IDX/index"
rm -f "$IDX"/index/*
sleep 1.1
vm backup --store "$IDX" --full-read --json "$SRC"
expect_rc 0 "backup after the index was deleted"
check "backup after losing the index still deduplicates (nothing new to write)" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
n = r["blobs_written"]
assert n == 0, f"wrote {n} blobs for unchanged data"' "$VM_OUT"
rm -f "$IDX"/index/*
vm restore --store "$IDX" "$IDX_FIRST" --to "$WORK/idx-first"
expect_rc 0 "restore of the first point without an index"
check_same_tree "$SRC" "$WORK/idx-first/src" "first point restored without an index"
vm restore --store "$IDX" latest --to "$WORK/idx-latest"
expect_rc 0 "restore of the latest point without an index"
check_same_tree "$SRC" "$WORK/idx-latest/src" "latest point restored without an index"
rm -f "$IDX"/index/*
vm verify --store "$IDX"
expect_rc 0 "verify without an index"
list_points --store "$IDX"
check_eq "${#POINTS[@]}" 2 "points after backing up without an index"

# ---------------------------------------------------------------------------
section "a store locked by another process"
LOCKED=$WORK/locked-store
new_store "$LOCKED"
flock "$LOCKED/lock" sleep 30 &
holder=$!
register_pid "$holder"
for _ in $(seq 100); do
  flock -n "$LOCKED/lock" true 2>/dev/null || break
  sleep 0.1
done
flock -n "$LOCKED/lock" true 2>/dev/null && die "could not hold the lock $LOCKED/lock with flock"
vm backup --store "$LOCKED" "$SRC"
expect_rc 4 "backup into a store locked by another process"
expect_err "locked" "locked store: message says locked"
expect_err "$LOCKED" "locked store: message names the store"
vm verify --store "$LOCKED"
expect_rc 4 "verify of a store exclusively locked by another process"
# Release the lock: the holder's child (sleep) and the holder, by PID.
release_pid "$holder"
vm backup --store "$LOCKED" "$SRC"
expect_rc 0 "backup once the lock is released"
list_points --store "$LOCKED"
check_eq "${#POINTS[@]}" 2 "points in the once-locked store (one from before, one after the release)"

# ---------------------------------------------------------------------------
section "a full disk"
truncate -s 64M "$WORK/small-fs.img"
mkfs.ext4 -q -F "$WORK/small-fs.img"
attach_loop "$WORK/small-fs.img" FSDEV
mkdir "$WORK/mnt"
mount "$FSDEV" "$WORK/mnt"
register_mount "$WORK/mnt"
FULL=$WORK/mnt/store
new_store "$FULL"
list_points --store "$FULL"
SMALL_POINT=${POINTS[0]:-none}
BIG=$WORK/big
mkdir "$BIG"
rand_file "$BIG/random-1.bin" $((50 * MiB))
rand_file "$BIG/random-2.bin" $((50 * MiB))
echo "free before the big backup: $(df -B1 --output=avail "$WORK/mnt" | tail -1) bytes"
vm backup --store "$FULL" "$BIG"
expect_nonzero "backup of 100 MiB into a 64 MiB file system"
expect_err_re "no space|ENOSPC" "full disk: message says there is no space"
check "full disk: error message names a file in the store" grep -qF "$FULL" "$VM_ERR"
list_points --store "$FULL"
check_eq "${#POINTS[@]}" 1 "points after the failed big backup (no new point)"
check_eq "$(ls "$FULL/points")" "$SMALL_POINT.json" "only the small point's manifest in points/"
check "full disk: the failed run leaves no temp pack in $FULL/tmp" test -z "$(ls -A "$FULL/tmp")"
vm restore --store "$FULL" "$SMALL_POINT" --to "$WORK/after-full"
expect_rc 0 "restore of the earlier point after the disk filled up"
check_same_tree "$SRC" "$WORK/after-full/src" "earlier point restored bit-identically after a full disk"
# Free space (the big source), then the store must check out clean and take
# new backups again.
rm -rf "$BIG"
vm verify --store "$FULL"
expect_rc 0 "verify after the full-disk failure"
echo "changed after the full disk" >"$SRC/after-full.txt"
vm backup --store "$FULL" "$SRC"
expect_rc 0 "a small backup after the full-disk failure"
vm restore --store "$FULL" latest --to "$WORK/after-full-2"
expect_rc 0 "restore of the point made after the full-disk failure"
check_same_tree "$SRC" "$WORK/after-full-2/src" "point made after the full-disk failure"
vm verify --store "$FULL"
expect_rc 0 "verify at the end of the full-disk case"

# A stand-in `zfs` that answers as zfs-fuse's does when its daemon is not
# running (the real daemon is not stopped by a test), and one that says the
# dataset does not exist: only the second is told to create it.
section "a ZFS that does not answer, and a dataset that does not exist"
mkdir -p "$WORK/fakezfs/nodaemon" "$WORK/fakezfs/missing"
printf '#!/bin/sh\necho "connect: No such file or directory" >&2\necho "Please make sure that the zfs-fuse daemon is running." >&2\necho "internal error: failed to initialize ZFS library" >&2\nexit 1\n' \
  >"$WORK/fakezfs/nodaemon/zfs"
printf '#!/bin/sh\necho "cannot open '"'"'pool/vmback'"'"': dataset does not exist" >&2\nexit 1\n' >"$WORK/fakezfs/missing/zfs"
chmod +x "$WORK/fakezfs/nodaemon/zfs" "$WORK/fakezfs/missing/zfs"
PATH="$WORK/fakezfs/nodaemon:$PATH" vm list --zfs pool/vmback
expect_nonzero "list --zfs with no ZFS daemon"
expect_err "ZFS does not answer: start it" "says to start ZFS"
check "does not say to create the dataset" bash -c "! grep -q 'zfs create' '$VM_ERR'"
check "the message is one line" test "$(grep -c . "$VM_ERR")" -eq 1
PATH="$WORK/fakezfs/missing:$PATH" vm list --zfs pool/vmback
expect_nonzero "list --zfs of a dataset that does not exist"
expect_err "create it with 'zfs create pool/vmback'" "says how to create it"

finish
