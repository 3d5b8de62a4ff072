#!/usr/bin/env bash
# Readers go on while a backup runs (issue 12, case 11), through the real
# binary, on a store mirrored over two directories:
#
# A backup slowed with --read-limit (a 24 MiB image at 4 MiB/s: about six
# seconds) runs while `list`, `restore` of the committed point and `verify`
# (and a verify of one part, --read-data-subset 1/2) each run to the end with
# exit 0. They see only the points committed when they started. A `prune`
# at the same time is refused (exit 4) naming the backup's pid; so is a
# second backup. After the backup: its point restores, and verify is clean.
# Then a pack damaged on the mirror: a verify during a second slow backup
# checks, heals nothing ("not healed", exit 5); after the backup it heals the
# copy (exit 5, "repaired"), and the next verify is clean.
#
# Usage: bash tests/integration/readers_during_backup.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

A=$WORK/A
B=$WORK/B
SRC=$WORK/src
mkdir -p "$SRC/etc"
text_file "$SRC/etc/hosts" 50
rand_file "$SRC/disk.img" $((24 * 1024 * 1024))

vm store init "$A" --mirror "$B"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"
vm backup --store "$A" "$SRC/etc"
expect_rc 0 "first backup"
list_points --store "$A"
FIRST=${POINTS[0]:-}
cp -a "$SRC/etc" "$WORK/etc.first"
echo changed >>"$SRC/etc/hosts"

# slow_backup OUT: a backup slowed to 4 MiB/s in the background (BPID), once
# it holds its locks (it writes its pid into write.lock).
slow_backup() {
  "$VMBACK" backup --store "$A" --read-limit 4M "$SRC/etc" "$SRC/disk.img" >"$WORK/$1.out" 2>"$WORK/$1.err" &
  BPID=$!
  register_pid "$BPID"
  for _ in $(seq 1 100); do
    grep -q "pid $BPID" "$A/write.lock" 2>/dev/null && break
    sleep 0.05
  done
}

section "a slow backup, and readers beside it"
slow_backup backup
check "the backup holds write.lock" grep -q "pid $BPID" "$A/write.lock"

vm list --store "$A"
expect_rc 0 "list during the backup"
check "list shows the committed point" grep -q "^$FIRST " "$VM_OUT"
check_eq "$(wc -l <"$VM_OUT")" 1 "list shows only the committed point"
vm restore --store "$A" "$FIRST" etc --to "$WORK/r1"
expect_rc 0 "restore during the backup"
check_same_tree "$WORK/etc.first" "$WORK/r1" "restore during the backup"
vm verify --store "$A"
expect_rc 0 "verify during the backup"
vm verify --store "$A" --read-data-subset 1/2 --json
expect_rc 0 "verify of part 1/2 during the backup"
vm prune --store "$A" --keep-last 1
expect_rc 4 "prune during the backup"
expect_err "pid $BPID" "prune names the backup's pid"
vm backup --store "$A" "$SRC/etc"
expect_rc 4 "a second backup during the backup"
_count_check
if ! running "$BPID"; then
  _fail "the backup ended before the readers were done: the test proves nothing (raise the image size)"
fi

rc=0
wait "$BPID" || rc=$?
forget_pid "$BPID"
check_eq "$rc" 0 "the slow backup's exit status ($(tr '\n' ' ' <"$WORK/backup.err"))"

section "after the backup"
list_points --store "$A"
check_eq "${#POINTS[@]}" 2 "two points"
vm restore --store "$A" latest --to "$WORK/r2"
expect_rc 0 "restore of the new point"
check_same_tree "$SRC/etc" "$WORK/r2/etc" "the new point's etc"
check_same_file "$SRC/disk.img" "$WORK/r2/disk.img" "the new point's image"
vm verify --store "$A"
expect_rc 0 "verify after the backup"

section "verify finds a copy to heal while a backup runs: not healed, exit 5"
PACK=$(cd "$B" && find packs -name '*.pack' | sort | head -n 1)
python3 - "$B/$PACK" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 1]))
EOF
echo again >>"$SRC/etc/hosts"
dd if=/dev/urandom of="$SRC/disk.img" bs=1M count=24 conv=notrunc status=none
slow_backup backup2
vm verify --store "$A"
expect_rc 5 "verify of a damaged copy during the backup"
expect_err "not healed" "verify says it could not heal while the backup runs"
check "the damaged pack is left as it was while the backup runs" \
  bash -c '! cmp -s "$1" "$2"' _ "$A/$PACK" "$B/$PACK"
_count_check
running "$BPID" || _fail "the second backup ended before verify was done: the test proves nothing"
rc=0
wait "$BPID" || rc=$?
forget_pid "$BPID"
check_eq "$rc" 0 "the second slow backup's exit status"
vm verify --store "$A"
expect_rc 5 "verify after the backup heals the copy"
expect_err "repaired" "verify says what it repaired"
check_same_file "$A/$PACK" "$B/$PACK" "the healed pack"
vm verify --store "$A"
expect_rc 0 "verify after the healing"

finish
