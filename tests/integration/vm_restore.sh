#!/usr/bin/env bash
# A whole VM back from a point: `vmback run` records each VM whose disks it
# backs up (its domain XML, and where the point holds each disk); `ls --vms`
# lists them and `restore --vm NAME` writes every disk of one into a
# directory, and with --define defines the domain on them. libvirt's
# in-process test driver is the hypervisor (test:///$WORK/node.xml: each
# vmback process gets its own copy of these domains, so a domain defined by
# one run is not seen by the next; the real definition under libvirtd is
# checked in tests/e2e/guest.sh).
#
# For the store and a dir target alike:
#   ls --vms      text and JSON: web's two disks (one in a directory volume,
#                 one a whole-file volume), db's disk not in the point
#   restore --vm  each disk byte-identical as NAME-TARGET.img; a disk not in
#                 the point is a warning (exit 5); --format qcow2 converts
#   --define      an existing name is refused before anything is written;
#                 --name NEW defines a copy; a VM with a disk not in the
#                 point is refused, nothing written
#   refusals      an unknown VM names the VMs the point holds; --vm with a
#                 PATH; --name without --define; --to a symlink; a point
#                 made by 'vmback backup' records no VMs
#
# Usage: bash tests/integration/vm_restore.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

for tool in python3 qemu-img cmp; do command -v "$tool" >/dev/null || die "needs $tool"; done

# shellcheck source=vm_fixture.sh
source "$(dirname -- "$0")/vm_fixture.sh"

one_destination() {
  local kind=$1 cfg=$2 out=$WORK/out-$1
  section "$kind: run records the VMs"
  vm run -c "$cfg"
  expect_rc 0 "$kind: run"
  vm ls -c "$cfg" latest --vms
  expect_rc 0 "$kind: ls --vms"
  check "$kind: ls --vms shows web's disks where the point holds them" grep -qE '^  vda  raw  images/sub/web\.img  was ' "$VM_OUT"
  check "$kind: ls --vms shows web's whole-file volume" grep -qE '^  vdb  raw  data  was ' "$VM_OUT"
  check "$kind: ls --vms shows db's disk outside the volumes as not in the point" \
    grep -qE '^  vdb  \?  \(not in the point\)  was .*/other/db\.img$' "$VM_OUT"
  vm ls -c "$cfg" latest --vms --json
  expect_rc 0 "$kind: ls --vms --json"
  check "$kind: the JSON holds each VM's disks and domain XML" python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
vms = {v['name']: v for v in j['vms']}
assert sorted(vms) == ['db', 'web'], vms
web = {d['target']: d for d in vms['web']['disks']}
assert web['vda']['volume'] == 'images' and web['vda']['path'] == 'sub/web.img', web
assert web['vdb']['volume'] == 'data' and web['vdb']['path'] == '', web
assert '<name>web</name>' in vms['web']['domain_xml']
db = {d['target']: d for d in vms['db']['disks']}
assert 'volume' not in db['vdb'] and db['vda']['path'] == 'db-root.img', db
" "$VM_OUT"

  section "$kind: restore --vm"
  vm restore -c "$cfg" latest --vm web --to "$out/web"
  expect_rc 0 "$kind: restore --vm web"
  check_same_file "$WORK/web.expect" "$out/web/web-vda.img" "$kind: web's vda"
  check_same_file "$WORK/data.expect" "$out/web/web-vdb.img" "$kind: web's vdb (a whole-file volume)"
  check "$kind: the new directory is private" test "$(stat -c %a "$out/web")" = 700
  vm restore -c "$cfg" latest --vm web --to "$out/web"
  expect_nonzero "$kind: restore --vm into files that exist"
  check_same_file "$WORK/web.expect" "$out/web/web-vda.img" "$kind: web's vda untouched by the refused restore"
  vm restore -c "$cfg" latest --vm db --to "$out/db"
  expect_rc 5 "$kind: restore --vm db, one disk not in the point"
  expect_err "disk vdb: $WORK/other/db.img is not in the point" "$kind: the warning names the disk left out"
  check_same_file "$WORK/images/db-root.img" "$out/db/db-vda.img" "$kind: db's vda"
  vm restore -c "$cfg" latest --vm web --to "$out/q" --format qcow2
  expect_rc 0 "$kind: restore --vm --format qcow2"
  check "$kind: qcow2 disks" bash -c "qemu-img info --output=json '$out/q/web-vda.qcow2' | grep -q '\"format\": \"qcow2\"'"
  check "$kind: the qcow2 holds the image" qemu-img compare -f qcow2 -F raw "$out/q/web-vda.qcow2" "$WORK/web.expect"

  section "$kind: restore --vm --define"
  vm restore -c "$cfg" latest --vm web --to "$out/d1" --define
  expect_rc 2 "$kind: --define over the existing web"
  expect_err "a domain named web exists already" "$kind: the refusal names the domain"
  check "$kind: nothing written before the refusal" test ! -e "$out/d1"
  vm restore -c "$cfg" latest --vm web --to "$out/d2" --define --name web-copy
  expect_rc 0 "$kind: --define --name web-copy"
  check "$kind: says what it defined" grep -q "defined VM web-copy on them" "$VM_OUT"
  check_same_file "$WORK/web.expect" "$out/d2/web-vda.img" "$kind: the defined copy's vda"
  vm restore -c "$cfg" latest --vm db --to "$out/d3" --define --name db-copy
  expect_rc 2 "$kind: --define of a VM with a disk not in the point"
  expect_err "cannot be defined on restored disks; nothing restored" "$kind: says why"
  check "$kind: nothing written for the refused db" test ! -e "$out/d3"

  section "$kind: refusals"
  vm restore -c "$cfg" latest --vm mail --to "$out/x"
  expect_rc 1 "$kind: an unknown VM"
  expect_err "holds no VM named mail (it holds db, web)" "$kind: names the VMs held"
  vm restore -c "$cfg" latest images --vm web --to "$out/x"
  expect_rc 2 "$kind: --vm with a PATH"
  vm restore -c "$cfg" latest --vm web --to "$out/x" --name other
  expect_rc 2 "$kind: --name without --define"
  ln -s "$WORK/other" "$out-link"
  vm restore -c "$cfg" latest --vm web --to "$out-link"
  expect_rc 2 "$kind: --to a symlink"
  check "$kind: nothing written through the symlink" test ! -e "$WORK/other/web-vda.img"
  vm ls -c "$cfg" latest images --vms
  expect_rc 2 "$kind: ls --vms with a PATH"
}

STORE=$WORK/store
vm store init "$STORE"
expect_rc 0 "store init"
vm_config "$WORK/store.toml" store "$STORE"
one_destination store "$WORK/store.toml"

section "store: a point made by 'vmback backup' records no VMs"
vm backup --store "$STORE" "$WORK/images"
expect_rc 0 "backup"
vm ls --store "$STORE" latest --vms
expect_rc 0 "ls --vms of a backup's point"
check "says the point records no VMs" grep -q "records no VMs" "$VM_OUT"
vm restore --store "$STORE" latest --vm web --to "$WORK/out-none"
expect_rc 1 "restore --vm from a point without VMs"
expect_err "records no VMs" "says why"

mkdir -p "$WORK/target"
vm_config "$WORK/dir.toml" dir "$WORK/target"
one_destination dir "$WORK/dir.toml"

finish
