#!/usr/bin/env bash
# restore --format qcow2, through the real binary and the real qemu-img, from
# a store and from a dir target: the qcow2 holds exactly what the raw restore
# holds (qemu-img compare), with the image's mode; no temporary is left, also
# when qemu-img fails or the restore is interrupted while it converts; a
# directory, a whole point and a block device are refused with a clear error
# before anything is written.
#
# Usage: bash tests/integration/qcow2_restore.sh /path/to/vmback   (as root: losetup)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup)"
for tool in losetup qemu-img cmp; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

# Only the restored image and what the test made may be in $1.
check_only() {
  local dir=$1 what=$2
  shift 2
  check_eq "$(find "$dir" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | paste -sd' ')" "$*" "$what"
}

section "a volume holding a sparse guest disk, backed up into a store and a dir target"
mkdir -p "$WORK/vms"
truncate -s 8M "$WORK/vms/web.img"
rand_file "$WORK/chunk" 300000
dd if="$WORK/chunk" of="$WORK/vms/web.img" bs=300000 count=1 conv=notrunc status=none
dd if="$WORK/chunk" of="$WORK/vms/web.img" bs=100000 count=1 seek=$((5 * 1024 * 1024 + 777)) oflag=seek_bytes \
  conv=notrunc status=none
chmod 0640 "$WORK/vms/web.img"
vm store init "$WORK/store"
expect_rc 0 "store init"
vm backup --store "$WORK/store" "$WORK/vms"
expect_rc 0 "backup into the store"
mkdir "$WORK/target"
vm backup --dir "$WORK/target" "$WORK/vms"
expect_rc 0 "backup into the dir target"

for t in store dir; do
  if [ "$t" = store ]; then
    TARGET=(--store "$WORK/store")
    POINT=latest
  else
    TARGET=(--dir "$WORK/target")
    POINT=current
  fi
  OUT=$WORK/out-$t
  mkdir "$OUT"

  section "$t: raw (the default) and qcow2 restores of the same image"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/web.raw"
  expect_rc 0 "$t: raw restore"
  check_same_file "$WORK/vms/web.img" "$OUT/web.raw" "$t: the raw restore is the image"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/web.raw2" --format raw
  expect_rc 0 "$t: --format raw"
  check_same_file "$WORK/vms/web.img" "$OUT/web.raw2" "$t: --format raw is the default"
  rm -f -- "$OUT/web.raw2"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/web.qcow2" --format qcow2
  expect_rc 0 "$t: --format qcow2"
  check_eq "$(qemu-img info --output=json "$OUT/web.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" \
    qcow2 "$t: qemu-img info says qcow2"
  check "$t: qemu-img compare finds the qcow2 and the raw restore identical" \
    qemu-img compare -f raw -F qcow2 "$OUT/web.raw" "$OUT/web.qcow2"
  check_eq "$(stat -c %a "$OUT/web.qcow2")" 640 "$t: the qcow2 has the image's mode"
  check_only "$OUT" "$t: no temporary left" web.qcow2 web.raw

  section "$t: refusals, before anything is written"
  vm restore "${TARGET[@]}" "$POINT" vms --to "$OUT/vms.qcow2" --format qcow2
  expect_rc 2 "$t: qcow2 of a directory"
  expect_err "--format qcow2 converts one image file, and 'vms' in point" "$t: says a directory is not one image"
  expect_err "is a directory: name one image (VOLUME/path/to/disk.img), or restore with --format raw" \
    "$t: says what to do instead"
  vm restore "${TARGET[@]}" "$POINT" --to "$OUT/all.qcow2" --format qcow2
  expect_rc 2 "$t: qcow2 of a whole point"
  expect_err "--format qcow2 converts one image file, not the whole point" "$t: says a whole point is not one image"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/web.qcow2" --format qcow2
  expect_rc 2 "$t: qcow2 over an existing file without --force"
  expect_err "web.qcow2 exists; restore refuses to overwrite it without --force" "$t: names the existing file"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/web.vmdk" --format vmdk
  expect_nonzero "$t: an unknown format"
  check_only "$OUT" "$t: nothing written by the refused restores" web.qcow2 web.raw

  section "$t: qcow2 over an existing file with --force"
  echo old >"$OUT/old.qcow2"
  vm restore "${TARGET[@]}" "$POINT" vms/web.img --to "$OUT/old.qcow2" --format qcow2 --force
  expect_rc 0 "$t: qcow2 with --force"
  check "$t: the replaced file is the image" qemu-img compare -f raw -F qcow2 "$OUT/web.raw" "$OUT/old.qcow2"
  rm -f -- "$OUT/old.qcow2"
done

section "a block device as --to is refused for qcow2"
rand_file "$WORK/dev.img" $((8 * 1024 * 1024))
attach_loop "$WORK/dev.img" LOOP
before=$(sha256sum <"$LOOP")
vm restore --store "$WORK/store" latest vms/web.img --to "$LOOP" --format qcow2 --force
expect_rc 2 "qcow2 onto a block device"
expect_err "--format qcow2 writes an image file, and $LOOP is a block device: restore onto it with --format raw (the default)" \
  "names the device and says what to do"
check_eq "$(sha256sum <"$LOOP")" "$before" "the device is untouched"

section "qemu-img failing or interrupted: no temporary, no image"
mkdir -p "$WORK/bin" "$WORK/out-fail"
cat >"$WORK/bin/qemu-img" <<'SH'
#!/bin/sh
if [ -n "${FAKE_QEMU_IMG_HANG:-}" ]; then echo $$ >"$FAKE_QEMU_IMG_HANG"; exec sleep 3600; fi
echo "qemu-img: Could not create: No space left on device" >&2
exit 1
SH
chmod 755 "$WORK/bin/qemu-img"
PATH="$WORK/bin:$PATH" vm restore --store "$WORK/store" latest vms/web.img --to "$WORK/out-fail/web.qcow2" --format qcow2
expect_rc 1 "a failing qemu-img"
expect_err "converting the restored image to qcow2: qemu-img convert -f raw -O qcow2 -- " "names the command"
expect_err "failed (exit 1): qemu-img: Could not create: No space left on device" "gives qemu-img's error"
check_only "$WORK/out-fail" "nothing left after a failed conversion"

PATH="$WORK/bin:$PATH" FAKE_QEMU_IMG_HANG="$WORK/hang.pid" \
  "$VMBACK" restore --store "$WORK/store" latest vms/web.img --to "$WORK/out-fail/web.qcow2" --format qcow2 \
  >"$WORK/int.out" 2>"$WORK/int.err" &
vpid=$!
register_pid "$vpid"
for _ in $(seq 100); do [ -s "$WORK/hang.pid" ] && break; sleep 0.1; done
[ -s "$WORK/hang.pid" ] || die "the fake qemu-img did not start"
hpid=$(cat "$WORK/hang.pid")
# While qemu-img runs: the raw image and the qcow2 lie in a private directory.
tmpdir=$(find "$WORK/out-fail" -mindepth 1 -maxdepth 1 -name 'web.qcow2.tmp-*')
check_eq "$(stat -c %a -- "$tmpdir" 2>&1)" 700 "the temporary directory beside --to is private"
check_eq "$(stat -c %a -- "$tmpdir/web.qcow2.qcow2" 2>&1)" 600 "the qcow2 qemu-img writes was created 0600"
check "the raw image is in it" test -f "$tmpdir/web.qcow2.raw"
kill -TERM "$vpid"
rc=0
wait "$vpid" || rc=$?
check "an interrupted restore fails" test "$rc" -ne 0
check "the interrupted qemu-img is gone" bash -c "! kill -0 $hpid 2>/dev/null"
check_only "$WORK/out-fail" "nothing left after an interrupted conversion"

finish
