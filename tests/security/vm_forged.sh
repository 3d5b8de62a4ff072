#!/usr/bin/env bash
# Forged VM records (issue 15: `restore --vm`, `ls --vms`): what a point says
# about a VM is decoded as hostile and never acted on outside --to.
#   store   a disk path "../../..", a disk in a volume the point does not
#           hold, a VM named "../x", 2 MiB of domain XML: ls --vms and
#           restore --vm refuse them as damage (exit 3), nothing written
#   store   a disk whose path in the point is a symlink to a host file:
#           refused (not one image file), the host file not copied
#   store   a domain XML with a DOCTYPE declaring an entity that names a
#           host file: --define refuses it before any disk is written
#   store   a domain XML with qemu:commandline (QEMU arguments on the host):
#           --define and instant-restore refuse it, nothing made
#   dir     the same "../.." path in an in-place point's description
# In each case the sentinel tree is unchanged and nothing appears outside the
# test's --to directories.
#
# usage: bash vm_forged.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/seclib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root"

sentinel_and_store
echo '<node/>' >"$WORK/node.xml"

# spec NAME VMS_JSON: a point with volume "images" (web.img, and a link to
# the sentinel's secret) and the given VM records.
spec() {
  cat >"$WORK/$1.json" <<EOF
{"volumes": [
  {"name": "images", "root": {"type": "dir", "entries": [
    {"type": "file", "name": "web.img", "data": "disk bytes\n"},
    {"type": "symlink", "name": "link.img", "target": "$SENT/secret"}
  ]}}],
 "vms": $2}
EOF
}
disk() { printf '{"target": "vda", "source": "/x", "format": "raw", "volume": "%s", "path": "%s"}' "$1" "$2"; }
xml='<domain><name>web</name><devices><disk type=\"file\" device=\"disk\"><source file=\"/x\"/><target dev=\"vda\"/></disk></devices></domain>'
record() { printf '[{"name": "%s", "domain_xml": "%s", "disks": [%s]}]' "$1" "$2" "$3"; }

n=0
# forged WHAT VMS_JSON: a point with these records is refused by ls --vms
# and restore --vm as damage, nothing written.
forged() {
  local what=$1 point
  n=$((n + 1))
  point=$(printf '2026-01-%02dT000000Z' "$n")
  spec "f$n" "$2"
  forge_point "$STORE" "$WORK/f$n.json" "$point"
  vm ls --store "$STORE" "$point" --vms
  expect_rc 3 "$what: ls --vms"
  expect_err "its VM records" "$what: ls --vms names the VM records"
  vm restore --store "$STORE" "$point" --vm web --to "$WORK/out$n"
  expect_rc 3 "$what: restore --vm"
  check "$what: nothing restored" test ! -e "$WORK/out$n"
  expect_unchanged "$SENT" "$BEFORE" "$what"
  # Other points stay readable: the damage is this point's.
  rm -f "$STORE/points/$point.json"
}

section "store: forged records"
forged "a disk path leaving its volume" "$(record web "$xml" "$(disk images ../../../sent/file)")"
forged "an absolute disk path" "$(record web "$xml" "$(disk images "$SENT/file")")"
forged "a disk in a volume the point does not hold" "$(record web "$xml" "$(disk ../sent file)")"
forged "a VM named ../x" "$(record ../x "$xml" "$(disk images web.img)")"
big=$(python3 -c 'print("x" * (2 << 20))')
forged "2 MiB of domain XML" "$(record web "$big" "$(disk images web.img)")"

section "store: a disk that is a symlink in the point"
spec link "$(record web "$xml" "$(disk images link.img)")"
forge_point "$STORE" "$WORK/link.json" 2026-02-01T000000Z
vm restore --store "$STORE" 2026-02-01T000000Z --vm web --to "$WORK/outlink"
expect_rc 2 "a disk that is a symlink: refused"
expect_err "not a regular file" "says why"
check "the host file is not copied" bash -c "! grep -rqs secret '$WORK/outlink'"
expect_unchanged "$SENT" "$BEFORE" "a disk that is a symlink"

section "store: a domain XML declaring an entity"
evil="<!DOCTYPE domain [<!ENTITY e SYSTEM 'file://$SENT/secret'>]><domain><name>web</name><description>&e;</description><devices><disk type='file' device='disk'><source file='/x'/><target dev='vda'/></disk></devices></domain>"
spec evil "$(record web "$(printf '%s' "$evil" | sed 's/"/\\"/g')" "$(disk images web.img)")"
forge_point "$STORE" "$WORK/evil.json" 2026-03-01T000000Z
vm restore --store "$STORE" 2026-03-01T000000Z --vm web --to "$WORK/outevil" --define --name copy \
  --connect "test://$WORK/node.xml"
expect_nonzero "--define of a domain XML with a DOCTYPE"
expect_err "DOCTYPE" "says why"
check "no disk written before the refusal" test ! -e "$WORK/outevil"
expect_unchanged "$SENT" "$BEFORE" "a domain XML declaring an entity"

section "store: a domain XML that reaches into the host"
qxml='<domain xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\"><name>web</name><devices><disk type=\"file\" device=\"disk\"><source file=\"/x\"/><target dev=\"vda\"/></disk></devices><qemu:commandline><qemu:arg value=\"-readconfig\"/><qemu:arg value=\"'"$SENT/file"'\"/></qemu:commandline></domain>'
spec qemu "$(record web "$qxml" "$(disk images web.img)")"
forge_point "$STORE" "$WORK/qemu.json" 2026-04-01T000000Z
vm restore --store "$STORE" 2026-04-01T000000Z --vm web --to "$WORK/outqemu" --define --name copy \
  --connect "test://$WORK/node.xml"
expect_rc 2 "--define of a domain XML with qemu:commandline"
expect_err "reaches into this host" "says why"
check "no disk written before the refusal" test ! -e "$WORK/outqemu"
vm instant-restore --store "$STORE" --point 2026-04-01T000000Z --vm web --name copy --work-dir "$WORK" \
  --connect "test://$WORK/node.xml"
expect_rc 2 "instant-restore of a domain XML with qemu:commandline"
check "no work directory made" test ! -e "$WORK/vmback-instant-copy"
expect_unchanged "$SENT" "$BEFORE" "a domain XML that reaches into the host"

section "dir target: a forged point description"
mkdir -p "$WORK/src" "$WORK/target"
echo "disk bytes" >"$WORK/src/web.img"
vm backup --dir "$WORK/target" "$WORK/src"
expect_rc 0 "backup into a dir target"
python3 - "$WORK/target/.vmback-point.json" "$SENT" <<'EOF'
import json, sys
path = sys.argv[1]
info = json.load(open(path))
vol = info["volumes"][0]["name"]
info["vms"] = [{"name": "web", "domain_xml": "<domain/>", "disks": [
    {"target": "vda", "source": "/x", "format": "raw", "volume": vol, "path": "../../sent/file"}]}]
json.dump(info, open(path, "w"))
EOF
vm ls --dir "$WORK/target" current --vms
expect_rc 3 "dir: ls --vms of a forged description"
vm restore --dir "$WORK/target" current --vm web --to "$WORK/outdir"
expect_rc 3 "dir: restore --vm of a forged description"
check "dir: nothing restored" test ! -e "$WORK/outdir"
expect_unchanged "$SENT" "$BEFORE" "dir target"

finish
