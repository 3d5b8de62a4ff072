#!/usr/bin/env bash
# Backups are private (issue 11, "Secrets readable by every user", and the
# temp files of "Smaller ones"). A backup of / puts /etc/shadow into packs:
# every directory of a store is 0700 and every file 0600, on every copy,
# whatever the umask of whoever started vmback; a store made before (0755 /
# 0644) is narrowed by the next write command, with one line saying so, and
# left alone by a read. JSON reports are 0600; metrics textfiles 0644 (read
# by node_exporter, another user). A temporary beside a metrics file in a
# directory other users can write cannot be a planted symlink: vmback makes
# its temporaries O_EXCL|O_NOFOLLOW under random names.
#
# usage: bash store_modes.sh /path/to/vmback
set -euo pipefail
source "$(dirname "$0")/../integration/lib.sh" "$@"

umask 022  # as a careless shell would have it: the modes must come from vmback
SRC=$WORK/src
mkdir -p "$SRC/sub" "$WORK/state"
text_file "$SRC/a.txt" 200
rand_file "$SRC/sub/b.bin" 300000
rand_file "$WORK/disk.img" 1M

# modes_private DIR WHAT: every directory 0700, every file 0600, nothing else.
modes_private() {
  local dir=$1 what=$2 bad
  _count_check
  bad=$(find "$dir" \( \( -type d ! -perm 0700 \) -o \( -type f ! -perm 0600 \) -o \( ! -type d ! -type f \) \) \
    -printf '%m %y %p\n')
  if [ -n "$bad" ]; then
    _fail "$what: entries that are not 0700 directories or 0600 files:"
    printf '%s\n' "$bad" | head -20 | sed 's/^/    /' >&2
  fi
}

# ---------------------------------------------------------------------------
section "a new store and its mirror: 0700 / 0600 everywhere"
A=$WORK/a
B=$WORK/b
mkdir -m 0755 "$B"  # an empty directory the user made, as mkdir does
vm store init "$A" --mirror "$B"
expect_rc 0 "store init with a mirror"
modes_private "$A" "the new store"
modes_private "$B" "the new mirror"
vm backup --store "$A" "$SRC" "$WORK/disk.img"
expect_rc 0 "backup"
echo more >>"$SRC/a.txt"
vm backup --store "$A" "$SRC"
expect_rc 0 "second backup"
vm verify --store "$A"
expect_rc 0 "verify"
vm prune --store "$A" --keep-last 1
expect_rc 0 "prune"
check "the store has packs, index files and points" test -n "$(find "$A/packs" -name '*.pack')"
modes_private "$A" "the store after backup, verify and prune"
modes_private "$B" "the mirror after backup, verify and prune"

section "an empty replacement disk named with --mirror becomes a private copy"
rm -rf -- "${B:?}"/*
chmod 0755 "$B"
vm store sync --store "$A" --mirror "$B"
expect_rc 0 "store sync onto an empty directory named with --mirror"
check "the replacement is a store" test -f "$B/config.json"
modes_private "$B" "the replacement copy"

section "an existing store with wide modes: narrowed by the next write, not by a read"
chmod -R go+rX "$A" "$B"
chmod go+w "$A/points"
vm list --store "$A"
expect_rc 0 "list of a store with wide modes"
check "list leaves the modes alone" test "$(stat -c %a "$A/config.json")" = 644
vm backup --store "$A" "$SRC"
expect_rc 0 "backup into a store with wide modes"
expect_err "tightened the modes" "backup says it tightened the modes"
check "one line per copy" test "$(grep -c 'tightened the modes' "$VM_ERR" || true)" -eq 2
modes_private "$A" "the store after the backup narrowed it"
modes_private "$B" "the mirror after the backup narrowed it"
vm backup --store "$A" "$SRC"
expect_rc 0 "a second backup"
check "nothing more to tighten, nothing said" test "$(grep -c 'tightened' "$VM_ERR" || true)" -eq 0

section "reports 0600, metrics 0644, whatever the umask"
mkdir -p "$WORK/textfiles"
chmod 1777 "$WORK/textfiles"  # a directory other users can write into
cat >"$WORK/vmback.toml" <<EOF
[target]
path = "$A"

[retention]
keep_last = 2

[run]
state_dir = "$WORK/state"

[report]
dir = "$WORK/reports"
metrics_file = "$WORK/textfiles/vmback.prom"

[[volume]]
name = "tree"
source = "$SRC"
snapshot = "none"
vms = []
EOF
echo "node_exporter reads this" >"$WORK/victim"
cp -- "$WORK/victim" "$WORK/victim.orig"
# The old temporary was "vmback.prom.tmp-PID": a local user plants it for
# the next pids (from one process, so that vmback's pid is among them).
next=$(sh -c 'echo $$')
python3 -c '
import os, sys
victim, d, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
for p in range(first, first + 400):
    os.symlink(victim, "%s/vmback.prom.tmp-%d" % (d, p))' "$WORK/victim" "$WORK/textfiles" "$next"
vm run -c "$WORK/vmback.toml"
expect_rc 0 "run with [report]"
check "the metrics file exists" test -f "$WORK/textfiles/vmback.prom"
check "metrics file 0644" test "$(stat -c %a "$WORK/textfiles/vmback.prom")" = 644
check "the metrics file is not a symlink" test ! -L "$WORK/textfiles/vmback.prom"
check "the planted temporary's target is untouched" cmp -s "$WORK/victim" "$WORK/victim.orig"
check "the planted symlinks are still symlinks" test -L "$WORK/textfiles/vmback.prom.tmp-$next"
check "no temporary of vmback's own left" test -z "$(find "$WORK/textfiles" -type f -name '*.tmp-*')"
check "a report was written" test -n "$(find "$WORK/reports" -name 'vmback-*.json')"
_count_check
bad=$(find "$WORK/reports" -type f ! -perm 0600 -printf '%m %p\n')
[ -z "$bad" ] || _fail "reports that are not 0600: $bad"
modes_private "$A" "the store after run"

finish
