#!/usr/bin/env bash
# Every documented exit status, each from a real situation, so that a cron
# job or systemd unit (and whoever reads its status at 3 a.m.) can rely on it:
#
#   0  success                          a backup, a clean verify
#   5  success with warnings            a mirror copy absent during a backup
#   1  failed, nothing committed        a source that cannot be read; a full disk
#   2  bad command line or configuration unknown option, unknown config key
#   3  damage                           verify after a pack was damaged on the only copy
#   4  locked                           another process holds the store's lock
# Never 0 when data is missing: a point whose source could not be read in
# part exits 3, and the failed runs above commit no point.
#
# Usage: bash tests/integration/exit_codes.sh /path/to/vmback   (as root for the full disk)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
for tool in flock python3; do command -v "$tool" >/dev/null || die "needs $tool"; done

S=$WORK/store
mkdir -p "$WORK/src/tree"
rand_file "$WORK/src/tree/a" 300000
"$VMBACK" -q store init "$S" >/dev/null

section "0: success"
vm backup --store "$S" "$WORK/src/tree"
expect_rc 0 "a backup"
vm verify --store "$S"
expect_rc 0 "a clean verify"
list_points --store "$S"
check_eq "${#POINTS[@]}" 1 "one point"

section "2: bad command line or configuration"
vm backup --store "$S" --no-such-option
expect_rc 2 "an unknown option"
printf '[target]\npath = "%s"\ncolour = "blue"\n' "$S" >"$WORK/bad.toml"
vm backup -c "$WORK/bad.toml"
expect_rc 2 "an unknown config key"
expect_err "bad.toml:3" "names file and line"
vm list
expect_rc 2 "no target given"

section "1: failed, nothing committed"
vm backup --store "$S" "$WORK/src/missing"
expect_rc 1 "a source that does not exist"
expect_err "$WORK/src/missing" "names the source"
list_points --store "$S"
check_eq "${#POINTS[@]}" 1 "no point committed by the failed backup"
if [ "$(id -u)" -eq 0 ]; then
  truncate -s 48M "$WORK/small.img"
  mkfs.ext4 -q -F "$WORK/small.img"
  attach_loop "$WORK/small.img" LOOP
  mkdir -p "$WORK/small"
  mount "$LOOP" "$WORK/small"
  register_mount "$WORK/small"
  "$VMBACK" -q store init "$WORK/small/store" >/dev/null
  rand_file "$WORK/src/big" 80M
  vm backup --store "$WORK/small/store" "$WORK/src/big"
  expect_rc 1 "a full disk"
  expect_err "space" "says the disk is full"
  list_points --store "$WORK/small/store"
  check_eq "${#POINTS[@]}" 0 "no point on the full disk"
else
  echo "exit_codes: not root: full-disk case skipped"
fi

section "4: locked"
flock -x "$S/lock" sleep 30 &
register_pid $!
for _ in $(seq 50); do
  flock -n -x "$S/lock" true 2>/dev/null || break
  sleep 0.1
done
vm backup --store "$S" "$WORK/src/tree" --lock-wait 0
expect_rc 4 "the store is locked"
expect_err "locked" "says so"
release_pid "$(jobs -p | tail -n 1)"

section "5: success with warnings"
M1=$WORK/m1
M2=$WORK/m2
"$VMBACK" -q store init "$M1" --mirror "$M2" >/dev/null
vm backup --store "$M1" "$WORK/src/tree"
expect_rc 0 "a mirrored backup"
mv "$M2" "$WORK/m2-unplugged"
vm backup --store "$M1" "$WORK/src/tree"
expect_rc 5 "a backup with a copy absent"
expect_err "$M2" "names the absent copy"

section "3: damage"
pack=$(find "$S/packs" -type f | head -n 1)
flip_bit "$pack" 100 >/dev/null
vm verify --store "$S"
expect_rc 3 "verify finds a damaged pack on the only copy"

finish
