#!/usr/bin/env bash
# Block devices as sources and restore targets, on loop devices backed by
# files in the test's own directory: back up /dev/loopN (holes and random
# data), restore it onto a second loop device (refused without --force; the
# second device starts full of other random data, so holes must be written
# as zeros), onto a too-small device (refused), to a regular file and as part
# of a whole-point restore; then change the device, back up again and
# restore both versions. A symlink to a device is backed up as a volume
# named after the link.
#
# Usage: bash tests/integration/block_device.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup)"
for tool in losetup cmp python3 sha256sum blockdev; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
MiB=$((1024 * 1024))
STORE=$WORK/store

devsum() { sha256sum <"$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------
section "two loop devices"
# a.img: 64 MiB, mostly holes, random data at aligned and unaligned offsets
# and up to the very end.
truncate -s 64M "$WORK/a.img"
rand_file "$WORK/chunk" $((2 * MiB))
dd if="$WORK/chunk" of="$WORK/a.img" bs=1M count=1 seek=0 conv=notrunc status=none
dd if="$WORK/chunk" of="$WORK/a.img" bs=100000 count=3 seek=$((10 * MiB + 12345)) oflag=seek_bytes conv=notrunc status=none
dd if="$WORK/chunk" of="$WORK/a.img" bs=1M count=2 seek=33 conv=notrunc status=none
dd if="$WORK/chunk" of="$WORK/a.img" bs=1024 count=100 seek=$((64 * 1024 - 100)) conv=notrunc status=none
# b.img: 64 MiB of other random data, everywhere.
rand_file "$WORK/b.img" 64M
# c.img: too small for a.
rand_file "$WORK/c.img" 32M

attach_loop "$WORK/a.img" LA
attach_loop "$WORK/b.img" LB
attach_loop "$WORK/c.img" LC
echo "source $LA, target $LB, small target $LC"
# Restores must not change the device nodes' metadata (checked below); put
# it back in any case when the test ends.
for dev in "$LA" "$LB" "$LC"; do
  register_cleanup "chown $(stat -c '%u:%g' "$dev") $dev; chmod $(stat -c '%a' "$dev") $dev; touch -h -d @$(stat -c '%.9Y' "$dev") $dev"
done
check "$LA is a block device" test -b "$LA"
check_eq "$(blockdev --getsize64 "$LA")" $((64 * MiB)) "size of $LA"
VOL=$(basename "$LA")
A_SUM=$(devsum "$LA")

# ---------------------------------------------------------------------------
section "backup of $LA"
vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"
vm backup --store "$STORE" --json "$LA"
expect_rc 0 "backup of the block device $LA"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a point"
check "backup --json: one volume named $VOL holding 64 MiB" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
v = r["volumes"]
assert [x["name"] for x in v] == [sys.argv[2]], [x["name"] for x in v]
assert v[0]["bytes"] == 64 * 2**20, v[0]["bytes"]
assert v[0]["files"] == 1, v[0]["files"]
assert r["errors"] == 0, r["errors"]' "$VM_OUT" "$VOL"
vm list --store "$STORE" --json
expect_rc 0 "list"
check "list --json: one point with volume $VOL" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
assert len(p) == 1 and p[0]["volumes"] == [sys.argv[2]], p' "$VM_OUT" "$VOL"
vm verify --store "$STORE"
expect_rc 0 "verify after backing up a block device"
check_eq "$(devsum "$LA")" "$A_SUM" "backup leaves the source device unchanged"

# ---------------------------------------------------------------------------
section "restore onto the second loop device"
B_SUM=$(devsum "$LB")
vm restore --store "$STORE" latest "$VOL" --to "$LB"
expect_rc 2 "restore onto a block device without --force"
expect_err "$LB" "refused device restore: message names the device"
expect_err "force" "refused device restore: message mentions --force"
check_eq "$(devsum "$LB")" "$B_SUM" "a refused restore leaves $LB untouched"
check "a refused restore leaves $LB a block device" test -b "$LB"

vm restore --store "$STORE" latest "$VOL" --to "$LB" --force
expect_rc 0 "restore onto a block device with --force"
check "$LB is still a block device after the restore" test -b "$LB"
check_same_file "$LA" "$LB" "device restored onto $LB (holes of $LA must be zeros on $LB)"

C_SUM=$(devsum "$LC")
vm restore --store "$STORE" latest "$VOL" --to "$LC" --force
expect_nonzero "restore of a 64 MiB volume onto a 32 MiB device"
expect_err "$LC" "too-small device: message names it"
expect_err "smaller" "too-small device: message says it is smaller"
check_eq "$(devsum "$LC")" "$C_SUM" "a restore onto a too-small device writes nothing"

# ---------------------------------------------------------------------------
section "restore to a regular file"
vm restore --store "$STORE" latest "$VOL" --to "$WORK/restored.img"
expect_rc 0 "restore of the device volume to a new regular file"
check "the restored image is a regular file" test -f "$WORK/restored.img"
check_eq "$(stat -c %s "$WORK/restored.img" 2>/dev/null)" $((64 * MiB)) "size of the restored image"
check_same_file "$WORK/a.img" "$WORK/restored.img" "device volume restored to a file"
used=$(du -B1 "$WORK/restored.img" 2>/dev/null | cut -f1 || echo 0)
check "the restored image keeps the holes sparse ($used bytes allocated)" test "${used:-0}" -lt $((16 * MiB))

vm restore --store "$STORE" latest "$VOL" --to "$WORK/restored.img"
expect_rc 2 "restore to an existing image file without --force"
expect_err "$WORK/restored.img" "existing image file: message names it"

echo "junk" >"$WORK/junk.img"
vm restore --store "$STORE" latest "$VOL" --to "$WORK/junk.img" --force
expect_rc 0 "restore over an existing small file with --force"
check_same_file "$WORK/a.img" "$WORK/junk.img" "device volume restored over an existing file"

vm restore --store "$STORE" latest --to "$WORK/whole"
expect_rc 0 "restore of the whole point"
check_same_file "$WORK/a.img" "$WORK/whole/$VOL" "whole-point restore: the device volume as a file"

# ---------------------------------------------------------------------------
section "change the device, back up again, restore both versions"
cp "$WORK/a.img" "$WORK/a-v1.img"
rand_file "$WORK/patch" 100000
dd if="$WORK/patch" of="$LA" bs=100000 count=1 seek=$((20 * MiB + 5000)) oflag=seek_bytes conv=notrunc,fsync status=none
dd if="$WORK/patch" of="$LA" bs=4096 count=1 seek=$((50 * MiB / 4096)) conv=notrunc,fsync status=none
A2_SUM=$(devsum "$LA")
check "the device content changed" test "$A2_SUM" != "$A_SUM"
sleep 1.1
vm backup --store "$STORE" --json "$LA"
expect_rc 0 "second backup of the changed device"
check "second backup reads the whole device and stores only the changed blocks" python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))["volumes"][0]
assert v["bytes_read"] == 64 * 2**20, f"a device has no useful mtime, it must be read in full: {v}"
assert 2 <= v["new_blocks"] <= 4, f"new blocks {v}"' "$VM_OUT"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 2 "points after the second device backup"
if [ "${#POINTS[@]}" -eq 2 ]; then
  vm restore --store "$STORE" "${POINTS[0]}" "$VOL" --to "$WORK/v1.img"
  expect_rc 0 "restore of the first version of the device"
  check_same_file "$WORK/a-v1.img" "$WORK/v1.img" "first version of the device"

  vm restore --store "$STORE" "${POINTS[0]}" "$VOL" --to "$LB" --force
  expect_rc 0 "restore of the first version onto $LB"
  check_same_file "$WORK/a-v1.img" "$LB" "first version of the device on $LB"

  vm restore --store "$STORE" latest "$VOL" --to "$LB" --force
  expect_rc 0 "restore of the second version onto $LB (over the first)"
  check_same_file "$LA" "$LB" "second version of the device on $LB"
fi

# ---------------------------------------------------------------------------
section "a symlink to a block device as the source"
ln -s "$LA" "$WORK/vm-disk"
vm backup --store "$STORE" --json "$WORK/vm-disk"
expect_rc 0 "backup of a symlink to $LA"
check "the volume is named after the link (vm-disk)" python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))["volumes"]
assert [x["name"] for x in v] == ["vm-disk"], [x["name"] for x in v]' "$VM_OUT"
vm restore --store "$STORE" latest vm-disk --to "$WORK/via-link.img"
expect_rc 0 "restore of the volume backed up through a symlink"
check_same_file "$LA" "$WORK/via-link.img" "device backed up through a symlink"
check "the symlink itself is left alone" test -L "$WORK/vm-disk"

section "restore onto a symlink to a block device (as /dev/VG/LV and /dev/mapper/* are)"
ln -s "$LB" "$WORK/lv-link"
if [ "${#POINTS[@]}" -ge 1 ]; then
  vm restore --store "$STORE" "${POINTS[0]}" "$VOL" --to "$LB" --force   # put other data there first
fi
vm restore --store "$STORE" latest vm-disk --to "$WORK/lv-link" --force
expect_rc 0 "restore --force onto a symlink to the block device $LB"
check_same_file "$LA" "$LB" "device content restored through a symlink to $LB"
check "the symlink to the target device is still a symlink" test -L "$WORK/lv-link"

# ---------------------------------------------------------------------------
section "an image file volume restored onto a device: the device node keeps its owner and mode"
rand_file "$WORK/image.raw" $((8 * MiB))
chown 1234:5678 "$WORK/image.raw"
chmod 0640 "$WORK/image.raw"
vm backup --store "$STORE" "$WORK/image.raw"
expect_rc 0 "backup of an 8 MiB image file"
LB_META=$(stat -c '%u:%g %a' "$LB")
vm restore --store "$STORE" latest image.raw --to "$LB" --force
expect_rc 0 "restore of an image file volume onto the (larger) device $LB"
check "the image's 8 MiB are on $LB" cmp -n $((8 * MiB)) "$WORK/image.raw" "$LB"
check_eq "$(stat -c '%u:%g %a' "$LB")" "$LB_META" \
  "owner and mode of the device node $LB after restoring an image file (owned 1234:5678, mode 0640) onto it"

vm verify --store "$STORE" --json
expect_rc 0 "verify at the end"
check "verify --json: ok, 4 points" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["points"] == 4, r' "$VM_OUT"

finish
