#!/usr/bin/env bash
# The crash journal in state_dir is read as hostile: vmback acts only on the
# records it could have written (mount points $STATE/mnt-*, snapshots named
# vmback-<volume>-<run id> beside their source or .vmback-<volume>-<run id>
# beside or inside it, for the run the journal names) and refuses any other
# with a message, running nothing on it; every command it runs has "--"
# before its paths.
# LVM is the stand-in tests/helpers/fake_lvm (no device-mapper here), which
# logs every call: that log shows what was run.
#
#   forged   a mount point outside state_dir (a real tmpfs), one starting
#            with '-', one escaping with '..'; LVM, reflink and btrfs records
#            whose target is not vmback's name, of another run, or whose
#            source starts with '-': `vmback run` and `vmback run
#            --recover-only` fail naming each, the tmpfs stays mounted, every
#            planted file stays, nothing of them reaches lvm or umount, the
#            journal stays; the one valid snapshot record is dropped (lvremove
#            with "--")
#            libvirt backup-job records whose socket directory is not
#            NBD_DIR/nbd-HEX (outside it, or escaping it with '..'): refused,
#            named, the directory intact
#   genuine  a journal of valid records only (a real mount on $STATE/mnt-disk,
#            a snapshot): --recover-only unmounts, drops, removes the journal
#
# Usage: bash tests/security/journal_forged.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount)"
REAL_UMOUNT=$(command -v umount)
source "$(dirname -- "$0")/job_lib.sh"
use_fake_lvm
# umount is logged too, then run for real.
printf '#!/bin/sh\necho "umount $*" >>%q\nexec %q "$@"\n' "$WORK/umount.log" "$REAL_UMOUNT" >"$WORK/bin/umount"
chmod 755 "$WORK/bin/umount"

VG=$WORK/vg
STATE=$WORK/state
mkdir -p "$VG" "$STATE" "$WORK/victim" "$WORK/images/precious" "$WORK/images/.vmback-disk-r2"
truncate -s 1M "$VG/disk"
echo "an LV that is not vmback's" >"$VG/precious"
echo "a snapshot of another run" >"$VG/vmback-disk-r2"
echo "keep" >"$WORK/images/precious/file"
echo "keep" >"$WORK/images/.vmback-disk-r2/file"
mount -t tmpfs -o size=1M tmpfs "$WORK/victim"
register_mount "$WORK/victim"
echo "on a mount vmback did not make" >"$WORK/victim/file"

write_node_xml "$VG/disk"
job_config "$STATE" 30 "$VG/disk" >"$WORK/vmback.toml"
vm store init "$WORK/store"
expect_rc 0 "store init"

# snap KIND VOLUME SOURCE TARGET: a journal "snapshot" line.
snap() {
  python3 -c 'import json, sys
k, v, s, t = sys.argv[1:]
rec = json.dumps({"snapshot": k, "volume": v, "source": s, "target": t})
print(json.dumps({"op": "snapshot", "volume": v, "record": rec}))' "$1" "$2" "$3" "$4"
}
mountrec() { python3 -c 'import json, sys; print(json.dumps({"op": "mount", "dir": sys.argv[1]}))' "$1"; }
jobrec() { python3 -c 'import json, sys; print(json.dumps({"op": "backup-job", "vm": "web", "dir": sys.argv[1]}))' "$1"; }

forge() {
  {
    echo '{"op":"start","run":"r1","time":"2030-01-01T00:00:00Z"}'
    mountrec "$WORK/victim"
    mountrec "-l"
    mountrec "$STATE/mnt-../victim"
    snap lvm disk "$VG/disk" "$VG/precious"
    snap lvm disk "$VG/disk" "$VG/vmback-disk-r2"
    snap lvm disk "-$VG/disk" "-$VG/vmback-disk-r1"
    snap lvm disk "$VG/../vg/disk" "$VG/../vg/vmback-disk-r1"
    snap reflink disk "$WORK/images/disk.img" "$WORK/images/precious"
    snap reflink disk "$WORK/images/disk.img" "$WORK/images/.vmback-disk-r2"
    snap btrfs disk "$WORK/images/sv" "$WORK/images/precious"
    snap lvm disk "$VG/disk" "$VG/vmback-disk-r1"
    jobrec "$WORK/images/precious"
    jobrec "/run/vmback/nbd-0a/../../..$WORK/images/precious"
  } >"$STATE/journal"
  echo "valid leftover of run r1" >"$VG/vmback-disk-r1"
  : >"$WORK/lvm.log"
  : >"$WORK/umount.log"
}

planted_intact() { # WHAT
  check "$1: the tmpfs vmback did not mount is still mounted" mountpoint -q "$WORK/victim"
  check "$1: the file on it is intact" grep -q "did not make" "$WORK/victim/file"
  check "$1: $VG/precious is intact" grep -q "not vmback's" "$VG/precious"
  check "$1: another run's snapshot is intact" grep -q "another run" "$VG/vmback-disk-r2"
  check "$1: a directory not of vmback's form is intact" test -f "$WORK/images/precious/file"
  check "$1: another run's directory is intact" test -f "$WORK/images/.vmback-disk-r2/file"
  check "$1: the journal is kept" test -f "$STATE/journal"
  local lvm_calls umounts
  lvm_calls=$(grep -v '^lvm vgs' "$WORK/lvm.log" || true)
  check_eq "$lvm_calls" "lvm lvremove -f -- $VG/vmback-disk-r1" "$1: lvm ran only on the valid record, with --"
  umounts=$(cat "$WORK/umount.log")
  check_eq "$umounts" "" "$1: umount never ran on a forged mount record"
  check "$1: the valid leftover was dropped" test ! -e "$VG/vmback-disk-r1"
}
refusals_named() { # WHAT
  expect_nonzero "$1: a journal with forged records fails"
  expect_err "refusing mount record '$WORK/victim'" "$1: names the mount point outside state_dir"
  expect_err "refusing mount record '-l'" "$1: names the mount point starting with '-'"
  expect_err "refusing mount record '$STATE/mnt-../victim'" "$1: names the mount point with '..'"
  expect_err "$VG/precious is not $VG/vmback-disk-r1" "$1: names an LVM target not of vmback's form"
  expect_err "$VG/vmback-disk-r2 is not $VG/vmback-disk-r1" "$1: names another run's LVM snapshot"
  expect_err "source -$VG/disk is not a plain absolute path" "$1: names a source starting with '-'"
  expect_err "source $VG/../vg/disk is not a plain absolute path" "$1: names a source with '..'"
  expect_err "$WORK/images/precious is not $WORK/images/.vmback-disk-r1" "$1: names a reflink target not of vmback's form"
  expect_err "$WORK/images/.vmback-disk-r2 is not" "$1: names another run's reflink directory"
  expect_err "refusing backup job record of VM web with directory '$WORK/images/precious'" \
    "$1: names a backup job's socket directory outside nbd_dir"
  expect_err "directory '/run/vmback/nbd-0a/../../..$WORK/images/precious'" \
    "$1: names a backup job's socket directory escaping nbd_dir with '..'"
}

section "forged: vmback run"
forge
vm run -c "$WORK/vmback.toml"
refusals_named "run"
planted_intact "run"
check_eq "$(grep -c lvcreate "$WORK/lvm.log" || true)" 0 "run: stopped before any snapshot"

section "forged: vmback run --recover-only"
forge
vm run --recover-only -c "$WORK/vmback.toml"
refusals_named "recover-only"
planted_intact "recover-only"

section "genuine: every record is acted on"
mkdir -p "$STATE/mnt-disk"
mount -t tmpfs -o size=1M tmpfs "$STATE/mnt-disk"
register_mount "$STATE/mnt-disk"
{
  echo '{"op":"start","run":"r1","time":"2030-01-01T00:00:00Z"}'
  mountrec "$STATE/mnt-disk"
  snap lvm disk "$VG/disk" "$VG/vmback-disk-r1"
} >"$STATE/journal"
echo "valid leftover of run r1" >"$VG/vmback-disk-r1"
: >"$WORK/lvm.log"
: >"$WORK/umount.log"
vm run --recover-only -c "$WORK/vmback.toml"
expect_rc 0 "recover-only of a genuine journal"
check "the mount was undone" test -z "$(awk -v d="$STATE/mnt-disk" '$2 == d' /proc/self/mounts)"
check_eq "$(cat "$WORK/umount.log")" "umount -- $STATE/mnt-disk" "umount ran with --"
check "the snapshot was dropped" test ! -e "$VG/vmback-disk-r1"
check "the journal is gone" test ! -e "$STATE/journal"
vm run --recover-only -c "$WORK/vmback.toml"
expect_rc 0 "recover-only without a journal does nothing"
check_eq "$(grep -vc '^lvm vgs' "$WORK/lvm.log" || true)" 1 "nothing more was run"

finish
