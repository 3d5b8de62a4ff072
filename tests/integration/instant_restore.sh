#!/usr/bin/env bash
# `vmback instant-restore` without a real guest: libvirt's in-process test
# driver (test:///$WORK/node.xml) defines and "starts" the domain, so what is
# checked here is vmback's side; tests/e2e/guest.sh boots a real guest from a
# point and migrates it.
#   refusals     a domain of that name exists; a disk not in the point; an
#                unknown VM; nothing made for any of them
#   serving      the mount shows the VM's images alone, read-only to
#                --qemu-user, byte-identical to the sources; each overlay is
#                a qcow2 whose backing file is the image in the mount (raw);
#                the work directory is 0711; a second one of that name is
#                refused while it runs
#   --cleanup    unmounts, the serving command exits 0, the work directory
#                goes
#   kill -9      of the serving command leaves a dead mount; --cleanup
#                unmounts it and removes the work directory
#   mount fails  (in a private mount namespace whose /dev/fuse is /dev/null):
#                the error says so, and no work directory is left behind
#
# Usage: bash tests/integration/instant_restore.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE with allow_other)"
[ -e /dev/fuse ] || die "needs /dev/fuse"
for tool in qemu-img python3 cmp unshare; do command -v "$tool" >/dev/null || die "needs $tool"; done
id nobody >/dev/null 2>&1 || die "needs the user nobody"

# shellcheck source=vm_fixture.sh
source "$(dirname -- "$0")/vm_fixture.sh"
mkdir -p "$WORK/iw"
URI="test://$WORK/node.xml"
STORE=$WORK/store
vm_config "$WORK/c.toml" store "$STORE"
vm store init "$STORE"
expect_rc 0 "store init"
vm run -c "$WORK/c.toml"
expect_rc 0 "run"
BASE=$WORK/iw/vmback-instant-web-i
MNT=$BASE/mnt

section "refusals"
vm instant-restore -c "$WORK/c.toml" --vm web --work-dir "$WORK/iw"
expect_rc 2 "a domain named web exists"
expect_err "a domain named web exists already" "names it"
vm instant-restore -c "$WORK/c.toml" --vm db --name db-i --work-dir "$WORK/iw"
expect_rc 2 "a disk not in the point"
expect_err "disk vdb ($WORK/other/db.img) is not in the point" "names the disk"
vm instant-restore --store "$STORE" --connect "$URI" --vm nosuch --name x --work-dir "$WORK/iw"
expect_rc 1 "an unknown VM"
check "nothing made for the refusals" test -z "$(ls -A "$WORK/iw")"

section "a FUSE mount that fails leaves nothing behind"
# unshare -m: the bind mount over /dev/fuse is seen by this one command alone.
RC=0
unshare -m sh -c 'mount --bind /dev/null /dev/fuse && exec "$@"' sh \
  "$VMBACK" instant-restore -c "$WORK/c.toml" --vm web --name web-f --work-dir "$WORK/iw" \
  >"$WORK/fail.out" 2>"$WORK/fail.err" || RC=$?
check "instant-restore failed" test "$RC" -ne 0
check "the error names the mount" grep -q "vmback-instant-web-f/mnt" "$WORK/fail.err"
check "no work directory left" test -z "$(ls -A "$WORK/iw")"

section "serving the images"
chmod 711 "$WORK" "$WORK/iw"  # so that nobody can reach the mount, as QEMU reaches its work directory
# serve OUT ARGS...: instant-restore web as web-i in the background
# (SERVER), until it says the VM runs (or ends).
serve() {
  local out=$1
  shift
  "$VMBACK" instant-restore -c "$WORK/c.toml" --vm web --name web-i --work-dir "$WORK/iw" "$@" >"$out" 2>&1 &
  SERVER=$!
  register_pid "$SERVER"
  for _ in $(seq 1 100); do
    grep -q "runs from point" "$out" && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.2
  done
}
register_mount "$MNT"
serve "$WORK/serve.out" --qemu-user nobody
check "the VM was defined and started on the overlays" grep -q "runs from point" "$WORK/serve.out"
check "the work directory is 0711" test "$(stat -c %a "$BASE")" = 711
check "the mount is a vmback-instant FUSE mount" bash -c "grep -qF ' $MNT fuse.vmback ' /proc/self/mounts"
check_eq "$(cd "$MNT" && find . -mindepth 1 | sort | tr '\n' ' ')" "./data ./images ./images/sub ./images/sub/web.img " \
  "the mount shows the VM's images alone"
check "the image reads back" cmp "$MNT/images/sub/web.img" "$WORK/web.expect"
check "the whole-file volume reads back" cmp "$MNT/data" "$WORK/data.expect"
check_eq "$(stat -c '%U %a' "$MNT/images/sub/web.img")" "nobody 400" "images read-only to --qemu-user alone"
check "nobody reads the image through the mount" runuser -u nobody -- cmp "$MNT/data" "$WORK/data.img"
check "the overlay's backing file is the image in the mount, raw" python3 -c "
import json, subprocess, sys
info = json.loads(subprocess.check_output(['qemu-img', 'info', '-U', '--output=json', sys.argv[1]]))
assert info['format'] == 'qcow2', info
assert info['backing-filename'] == sys.argv[2], info
assert info['backing-filename-format'] == 'raw', info
" "$BASE/web-i-vda.qcow2" "$MNT/images/sub/web.img"
check "the overlay reads as the image" qemu-img compare -U -f qcow2 -F raw "$BASE/web-i-vda.qcow2" "$WORK/images/sub/web.img"
vm instant-restore -c "$WORK/c.toml" --vm web --name web-i --work-dir "$WORK/iw"
expect_rc 2 "a second instant restore of that name"
expect_err "runs or was not cleaned up" "says why"

section "--cleanup"
vm instant-restore -c "$WORK/c.toml" --cleanup web-i --work-dir "$WORK/iw"
expect_rc 0 "--cleanup"
RC=0
for _ in $(seq 1 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
wait "$SERVER" || RC=$?
release_pid "$SERVER"
check_eq "$RC" 0 "the serving command ended, exit status"
check "the work directory is gone" test ! -e "$BASE"
check "no mount left" bash -c "! grep -qF '$WORK/iw' /proc/self/mounts"

section "kill -9 of the serving command, then --cleanup"
serve "$WORK/serve2.out"
kill -KILL "$SERVER"
wait "$SERVER" 2>/dev/null || true
release_pid "$SERVER"
vm instant-restore -c "$WORK/c.toml" --cleanup web-i --work-dir "$WORK/iw"
expect_rc 0 "--cleanup after kill -9"
check "the work directory is gone" test ! -e "$BASE"
check "no mount left" bash -c "! grep -qF '$WORK/iw' /proc/self/mounts"
vm instant-restore -c "$WORK/c.toml" --cleanup web-i --work-dir "$WORK/iw"
expect_rc 1 "--cleanup of what is not there"
expect_err "no instant restore named web-i" "says so"

finish
