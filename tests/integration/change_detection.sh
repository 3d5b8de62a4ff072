#!/usr/bin/env bash
# Change detection through the real binary (issue 12, cases 13 and 7):
#
# - A file rewritten with the same size and its mtime set back with
#   `touch -d` (and a file replaced by rename with the same size and mtime)
#   is read again: its ctime and inode number moved. The restore gives the
#   new content.
# - A nightly backup of volumes a and b, a one-off backup of a third path,
#   then the next nightly backup: a and b are compared with the last point
#   that holds them and are not read again (--json bytes_read, files_unchanged).
#   `restore latest a` restores a from that point, not "no volume 'a'".
# - [run] full_read_every: `backup -c` reads everything when no point that
#   recent was a full read.
#
# Usage: bash tests/integration/change_detection.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

for tool in python3 cmp dd touch; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

STORE=$WORK/store
KiB=1024

# json_field FILE VOLUME KEY: the volume's KEY from a backup --json report.
json_field() {
  python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(next(v[sys.argv[3]] for v in r["volumes"] if v["name"] == sys.argv[2]))
EOF
}

vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

# ---------------------------------------------------------------------------
section "same size, mtime set back with touch -d"
SRC=$WORK/src
mkdir -p "$SRC"
rand_file "$SRC/config.db" $((200 * KiB))
rand_file "$SRC/other.bin" $((50 * KiB))
touch -d '2024-01-02 03:04:05.123456789' "$SRC/config.db"
mtime_before=$(stat -c %y "$SRC/config.db")

vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "first backup of $SRC"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a first point"

sleep 1.1 # a different point name, and a ctime that surely moved
cp "$SRC/config.db" "$WORK/config.db.old"
rand_file "$WORK/new-content" $((200 * KiB))
dd if="$WORK/new-content" of="$SRC/config.db" bs=64K conv=notrunc status=none
touch -d '2024-01-02 03:04:05.123456789' "$SRC/config.db"
check_eq "$(stat -c %y "$SRC/config.db")" "$mtime_before" "setup: mtime set back"
check "setup: the content did change" bash -c "! cmp -s '$WORK/config.db.old' '$SRC/config.db'"

vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "second backup of $SRC"
cp "$VM_OUT" "$WORK/backup2.json"
check_eq "$(json_field "$WORK/backup2.json" src bytes_read)" $((200 * KiB)) \
  "second backup reads exactly the rewritten file (bytes_read)"
check_eq "$(json_field "$WORK/backup2.json" src files_unchanged)" 1 \
  "second backup: only other.bin unchanged"

vm restore --store "$STORE" latest src/config.db --to "$WORK/restored.db"
expect_rc 0 "restore latest src/config.db"
check_same_file "$WORK/restored.db" "$SRC/config.db" "restored config.db has the new content"

sleep 1.1
vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "third backup of $SRC"
check_eq "$(json_field "$VM_OUT" src bytes_read)" 0 "third backup: nothing changed, nothing read"

# ---------------------------------------------------------------------------
section "replaced by rename, same size and mtime"
sleep 1.1
rand_file "$SRC/.other.tmp" $((50 * KiB))
touch -r "$SRC/other.bin" "$SRC/.other.tmp"
mv -f "$SRC/.other.tmp" "$SRC/other.bin"
vm backup --store "$STORE" --json "$SRC"
expect_rc 0 "backup after the rename"
check_eq "$(json_field "$VM_OUT" src bytes_read)" $((50 * KiB)) "the renamed-over file is read again"
vm restore --store "$STORE" latest src/other.bin --to "$WORK/restored-other.bin"
expect_rc 0 "restore latest src/other.bin"
check_same_file "$WORK/restored-other.bin" "$SRC/other.bin" "restored other.bin has the new content"

# ---------------------------------------------------------------------------
section "nightly a+b, one-off c, nightly a+b"
NIGHT=$WORK/night
mkdir -p "$NIGHT/a/sub" "$NIGHT/b" "$WORK/oneoff/c"
rand_file "$NIGHT/a/one" $((300 * KiB))
rand_file "$NIGHT/a/sub/two" $((100 * KiB))
rand_file "$NIGHT/b/three" $((400 * KiB))
rand_file "$WORK/oneoff/c/four" $((10 * KiB))

sleep 1.1
vm backup --store "$STORE" --json "$NIGHT/a" "$NIGHT/b"
expect_rc 0 "nightly backup of a and b"
check_eq "$(json_field "$VM_OUT" a bytes_read)" $((400 * KiB)) "first nightly backup reads a"

sleep 1.1
vm backup --store "$STORE" --json "$WORK/oneoff/c"
expect_rc 0 "one-off backup of c"

sleep 1.1
vm backup --store "$STORE" --json "$NIGHT/a" "$NIGHT/b"
expect_rc 0 "next nightly backup of a and b"
cp "$VM_OUT" "$WORK/night2.json"
check_eq "$(json_field "$WORK/night2.json" a bytes_read)" 0 "next nightly: a is not read again"
check_eq "$(json_field "$WORK/night2.json" b bytes_read)" 0 "next nightly: b is not read again"
check_eq "$(json_field "$WORK/night2.json" a files_unchanged)" 2 "next nightly: a's files unchanged"
check_eq "$(json_field "$WORK/night2.json" b files_unchanged)" 1 "next nightly: b's file unchanged"

# `latest` with a volume named: the newest point that holds it.
sleep 1.1
vm backup --store "$STORE" --json "$WORK/oneoff/c"
expect_rc 0 "second one-off backup of c"
vm restore --store "$STORE" latest a --to "$WORK/restored-a"
expect_rc 0 "restore latest a (the newest point holding a)"
check_same_file "$WORK/restored-a/sub/two" "$NIGHT/a/sub/two" "restore latest a: sub/two"
vm restore --store "$STORE" latest b/three --to "$WORK/restored-three"
expect_rc 0 "restore latest b/three"
check_same_file "$WORK/restored-three" "$NIGHT/b/three" "restore latest b/three"
vm restore --store "$STORE" latest nosuchvolume --to "$WORK/restored-none"
expect_rc 1 "restore latest of a volume no point holds"
expect_err "nosuchvolume" "restore latest nosuchvolume names the volume"

# ---------------------------------------------------------------------------
section "[run] full_read_every"
cat >"$WORK/cfg.toml" <<EOF
[target]
path = "$STORE"
[run]
full_read_every = "1h"
[[volume]]
name = "a"
source = "$NIGHT/a"
EOF
sleep 1.1
vm backup -c "$WORK/cfg.toml" --json
expect_rc 0 "backup -c with full_read_every = 1h"
check_eq "$(json_field "$VM_OUT" a bytes_read)" $((400 * KiB)) "no full read recorded yet: a is read in full"
sleep 1.1
vm backup -c "$WORK/cfg.toml" --json
expect_rc 0 "backup -c again"
check_eq "$(json_field "$VM_OUT" a bytes_read)" 0 "a full read a moment ago: nothing read"
sed -i 's/^full_read_every = .*/full_read_every = "1s"/' "$WORK/cfg.toml"
sleep 1.1
vm backup -c "$WORK/cfg.toml" --json
expect_rc 0 "backup -c with full_read_every = 1s"
check_eq "$(json_field "$VM_OUT" a bytes_read)" $((400 * KiB)) "last full read over 1s ago: a is read in full"

finish
