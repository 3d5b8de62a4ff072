#!/usr/bin/env bash
# What the config's defaults mean to `vmback run`, `plan` and `backup -c`
# (issue 12, "No lost nights"), through the CLI. libvirt's in-process test
# driver is the hypervisor (test:///$WORK/node.xml: domains whose disks are
# this test's files); tests/helpers/fake_lvm is "lvm" (this kernel has no
# device-mapper: a regular file stands for /dev/VG/LV, and lvcreate -s
# copies it).
#
#   vms default   a volume without 'vms' quiesces the VMs with a disk on it
#                 ("auto"), also a disk file on the file system of a block
#                 device source; vms = [] means none; a [[vm]] on no volume
#                 is a config error (plan and run, exit 2); a [[vm]] that is
#                 shut off is not
#   live reads    snapshot = "none" is a choice: said in plan and in the
#                 report, no warning (exit 0); snapshot unset with a running
#                 VM on the volume warns (exit 5)
#   backup -c     takes the snapshots and mounts the config asks for, with
#                 the run's journal (a crashed one is cleaned up by the next),
#                 and leaves the VMs alone
#   the example   packaging/vmback.toml.example, its paths moved into $WORK,
#                 runs with exit 0 on a host where nothing is wrong
#
# Usage: bash tests/integration/job_config.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount, losetup)"
for tool in mkfs.ext4 mkfs.xfs losetup mount umount cmp python3; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
REPO=$(cd -- "$(dirname -- "$0")/../.." && pwd)
EXAMPLE=$REPO/packaging/vmback.toml.example
[ -f "$EXAMPLE" ] || die "no $EXAMPLE"
use_fake_lvm
unmount_work_on_exit "$WORK/vg"

VG=$WORK/vg
TREE=$WORK/tree
STORE=$WORK/store
STATE=$WORK/state
mkdir -p "$VG" "$TREE/sub" "$WORK/fsrc/etc" "$WORK/r" "$WORK/lvmnt" "$WORK/xfs"

# A sparse image (an LV in mode block), an ext4 image (an LV in mode
# filesystem), a directory tree holding a guest's disk.
truncate -s 4M "$VG/disk"
rand_file "$WORK/chunk" 1M
dd if="$WORK/chunk" of="$VG/disk" bs=1M count=1 conv=notrunc status=none
echo "hello from inside the LV" >"$WORK/fsrc/hello.txt"
rand_file "$WORK/fsrc/etc/conf" 20000
truncate -s 16M "$VG/fsimg"
mkfs.ext4 -q -F -d "$WORK/fsrc" "$VG/fsimg"
rand_file "$TREE/db.qcow2" 300000
echo alpha >"$TREE/a.txt"
rand_file "$TREE/sub/b.bin" 70000
# A block device with a file system whose files are a guest's disk, as an LV
# holding image files is: the disk's path is not under the device's.
truncate -s 16M "$WORK/lv.img"
mkfs.ext4 -q -F "$WORK/lv.img"
attach_loop "$WORK/lv.img" LV_LOOP
mount -- "$LV_LOOP" "$WORK/lvmnt"
register_mount "$WORK/lvmnt"
: >"$WORK/lvmnt/guest.img"

# web: its disk is the "disk" LV; db: its disk is in the tree; idle: shut
# off, its disk in the tree; guest: its disk on the loop device's file
# system; MySQL: the example's, its disk among the reflinked images.
domain() { # NAME DISK [RUNSTATE]
  printf "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
  printf "  <name>%s</name><memory>65536</memory><os><type>hvm</type></os>\n" "$1"
  printf "  <devices><disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk></devices>\n" "$2"
  [ -n "${3:-}" ] && printf "  <test:runstate>%s</test:runstate>\n" "$3"
  printf "</domain>\n"
}
{
  echo "<node>"
  domain web "$VG/disk"
  domain db "$TREE/db.qcow2"
  domain idle "$TREE/idle.img" 5
  domain guest "$WORK/lvmnt/guest.img"
  domain MySQL "$WORK/xfs/images/mysql.raw"
  echo "</node>"
} >"$WORK/node.xml"

head_toml() {
  printf '[target]\npath = "%s"\n\n[retention]\nkeep_last = 100\n\n[libvirt]\nuri = "test://%s"\n\n[run]\nstate_dir = "%s"\n\n' \
    "$STORE" "$WORK/node.xml" "$STATE"
}
vm_toml() { # NAME QUIESCE
  printf '[[vm]]\nname = "%s"\nquiesce = "%s"\n\n' "$1" "$2"
}
tree_toml() { # EXTRA-LINES...
  printf '[[volume]]\nname = "tree"\nsource = "%s"\n' "$TREE"
  local l
  for l in "$@"; do printf '%s\n' "$l"; done
  printf '\n'
}
disk_toml() { # EXTRA-LINES...
  printf '[[volume]]\nname = "disk"\nsource = "%s"\nsnapshot = "lvm"\nsnapshot_size = "64M"\nmode = "block"\n' "$VG/disk"
  local l
  for l in "$@"; do printf '%s\n' "$l"; done
  printf '\n'
}
fs_toml() {
  printf '[[volume]]\nname = "fs"\nsource = "%s"\nsnapshot = "lvm"\nsnapshot_size = "64M"\nmode = "filesystem"\nvms = ["web"]\n\n' "$VG/fsimg"
}

snapshots_left() { find "$VG" "$WORK/xfs" -mindepth 1 -maxdepth 1 \( -name 'vmback-*' -o -name '.vmback-*' \) | sort; }
mounts_under() { awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts; }
not_warned() { ! grep -qi 'warning' "$VM_ERR"; }
no_lvm_change() { ! grep -qE '^lvm (lvcreate|lvremove)' "$FAKE_LVM_LOG" 2>/dev/null; }
# The run's JSON report (on stdout with --json) answers a python assertion.
report_says() { # WHAT PYTHON (r: the report)
  check "$1" python3 -c "import json, sys
r = json.load(open(sys.argv[1]))
$2" "$VM_OUT"
}

vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

# ---------------------------------------------------------------------------
section "a volume without vms quiesces the VMs with a disk on it"
{ head_toml; vm_toml db agent; tree_toml 'snapshot = "none"'; } >"$WORK/c1.toml"
vm plan -c "$WORK/c1.toml"
expect_rc 0 "plan: [[vm]] db, volume tree without vms"
check "plan: db is quiesced (agent)" grep -qF "db: agent" "$VM_OUT"
vm run -c "$WORK/c1.toml" --json
expect_rc 0 "run: [[vm]] db, volume tree without vms"
report_says "run: the report names db, quiesced by the agent" '
assert [(v["name"], v["method"]) for v in r["vms"]] == [("db", "agent")], r["vms"]'

# A disk file on the file system of a block device source counts as on it.
{ head_toml; vm_toml guest agent
  printf '[[volume]]\nname = "lv"\nsource = "%s"\nsnapshot = "lvm"\nsnapshot_size = "8M"\n\n' "$LV_LOOP"
} >"$WORK/c1b.toml"
rm -f -- "$FAKE_LVM_LOG"
vm plan -c "$WORK/c1b.toml"
expect_rc 0 "plan: guest's disk file on the file system of the volume's device"
check "plan: guest is quiesced for the volume on $LV_LOOP" grep -qF "guest: agent" "$VM_OUT"
check "plan: no lvm command that changes anything" no_lvm_change

# vms = [] means none.
{ head_toml; tree_toml 'snapshot = "none"' 'vms = []'; } >"$WORK/c1c.toml"
vm run -c "$WORK/c1c.toml" --json
expect_rc 0 "run: vms = [] on the volume holding db's disk"
report_says "run with vms = []: no VM quiesced" 'assert r["vms"] == [], r["vms"]'

# A [[vm]] that is shut off: nothing to quiesce, and no error.
{ head_toml; vm_toml idle agent; tree_toml 'snapshot = "none"'; } >"$WORK/c1d.toml"
vm run -c "$WORK/c1d.toml" --json
expect_rc 0 "run: [[vm]] idle (shut off), its disk in the tree"
report_says "run with idle shut off: idle not quiesced" 'assert "idle" not in [v["name"] for v in r["vms"]], r["vms"]'

# refused WHAT FILE TEXT: plan and run both exit 2 naming TEXT, and do nothing.
refused() {
  local what=$1 file=$2 text=$3 cmd
  for cmd in plan run; do
    rm -f -- "$FAKE_LVM_LOG"
    vm "$cmd" -c "$file"
    expect_rc 2 "$cmd with $what"
    expect_err "$text" "$cmd with $what: the message"
    check "$cmd with $what: no lvm command that changes anything" no_lvm_change
    check_eq "$(snapshots_left)" "" "$cmd with $what: snapshots"
    check "$cmd with $what: no journal" test ! -e "$STATE/journal"
  done
}
{ head_toml; vm_toml web suspend; vm_toml db agent; disk_toml; } >"$WORK/bad.toml"
refused "[[vm]] db on no volume (auto finds web only)" "$WORK/bad.toml" "[[vm]] 'db'"
{ head_toml; vm_toml db agent; tree_toml 'snapshot = "none"' 'vms = []'; } >"$WORK/bad.toml"
refused "[[vm]] db and vms = [] on its volume" "$WORK/bad.toml" "[[vm]] 'db'"

# ---------------------------------------------------------------------------
section "snapshot = \"none\" is a choice; unset, with a running VM, a warning"
vm plan -c "$WORK/c1.toml"
expect_rc 0 "plan with snapshot = none"
check "plan says tree is read live, by choice" grep -qF "tree: no snapshot (snapshot = \"none\"): $TREE is read live, by choice" "$VM_OUT"
vm run -c "$WORK/c1.toml" --json
expect_rc 0 "run with snapshot = none (no warning)"
check "run with snapshot = none: no warning on stderr" not_warned
report_says "run with snapshot = none: the report says tree is read live by choice" '
s = {v["volume"]: v for v in r["sources"]}
assert s["tree"]["snapshot"] == "none" and s["tree"]["read_live"] is True and s["tree"]["by_choice"] is True, s
assert r["warnings"] == [], r["warnings"]'

{ head_toml; vm_toml db agent; tree_toml; } >"$WORK/c8.toml"
vm run -c "$WORK/c8.toml" --json
expect_rc 5 "run with snapshot unset and db running with its disk on the volume"
expect_err "volume 'tree': no snapshot is set" "run with snapshot unset: the warning"
expect_err "VM db" "run with snapshot unset: the warning names db"
report_says "run with snapshot unset: the report says tree is read live, not by choice" '
s = {v["volume"]: v for v in r["sources"]}
assert s["tree"]["read_live"] is True and s["tree"]["by_choice"] is False, s'

# vms = [] does not make a live read of a running VM's disk a choice.
{ head_toml; tree_toml 'vms = []'; } >"$WORK/c8b.toml"
vm run -c "$WORK/c8b.toml"
expect_rc 5 "run with snapshot unset and vms = [], db running with its disk on the volume"
expect_err "volume 'tree': no snapshot is set" "run with snapshot unset and vms = []: the warning"
# No VM's disk on it: read live without a word.
{ head_toml; printf '[[volume]]\nname = "sub"\nsource = "%s"\n\n' "$TREE/sub"; } >"$WORK/c8c.toml"
vm run -c "$WORK/c8c.toml"
expect_rc 0 "run with snapshot unset and no VM's disk on the volume"
check "run with snapshot unset and no VM's disk on it: no warning on stderr" not_warned

# ---------------------------------------------------------------------------
section "backup -c takes the snapshots and mounts of the config, VMs left alone"
{ head_toml; vm_toml web suspend; disk_toml; fs_toml; } >"$WORK/c2.toml"
rm -f -- "$FAKE_LVM_LOG"
vm backup -c "$WORK/c2.toml"
expect_rc 0 "backup -c with an lvm block and an lvm filesystem volume"
check "backup -c: lvcreate for disk" grep -qF "lvm lvcreate -s -n vmback-disk-" "$FAKE_LVM_LOG"
check "backup -c: lvcreate for fs" grep -qF "lvm lvcreate -s -n vmback-fs-" "$FAKE_LVM_LOG"
check_eq "$(grep -c '^lvm lvremove' "$FAKE_LVM_LOG" || true)" 2 "backup -c: lvremove for both"
vm restore -c "$WORK/c2.toml" latest --to "$WORK/r/b1"
expect_rc 0 "restore of the backup -c point"
check_same_file "$VG/disk" "$WORK/r/b1/disk" "backup -c: the disk volume"
check "backup -c: the fs volume is a tree, not an image" test -d "$WORK/r/b1/fs"
check_same_file "$WORK/fsrc/hello.txt" "$WORK/r/b1/fs/hello.txt" "backup -c: fs/hello.txt"
check_same_file "$WORK/fsrc/etc/conf" "$WORK/r/b1/fs/etc/conf" "backup -c: fs/etc/conf"
check_eq "$(snapshots_left)" "" "backup -c: snapshots left"
check "backup -c: no journal left" test ! -e "$STATE/journal"
check_eq "$(mounts_under "$STATE")" "" "backup -c: mounts left"

{ VMBACK_TEST_CRASH_AT=sync vm backup -c "$WORK/c2.toml"; } 2>/dev/null
expect_rc 137 "backup -c killed by SIGKILL at the sync"
check "the crashed backup left its journal" test -e "$STATE/journal"
check "the crashed backup left a snapshot" test -n "$(snapshots_left)"
check "the crashed backup left its mount" test -n "$(mounts_under "$STATE")"
vm backup -c "$WORK/c2.toml"
expect_rc 5 "the backup -c after a crash (recovered: warnings)"
expect_err "dropped snapshot" "the backup -c after a crash says it dropped the snapshots"
expect_err "unmounted $STATE/mnt-fs" "the backup -c after a crash says it unmounted"
check_eq "$(snapshots_left)" "" "after the recovering backup -c: snapshots left"
check "after the recovering backup -c: no journal" test ! -e "$STATE/journal"
check_eq "$(mounts_under "$STATE")" "" "after the recovering backup -c: mounts left"

vm backup --help
check "backup --help says what -c does with snapshots" grep -qF "snapshot" "$VM_OUT"

# ---------------------------------------------------------------------------
section "the example config runs with exit 0"
# Its paths moved into $WORK: the LV of images is an ext4 image (fake_lvm),
# the reflinked images lie on an XFS, the host's root is a small tree.
truncate -s 320M "$WORK/xfs.img"
mkfs.xfs -q "$WORK/xfs.img"
attach_loop "$WORK/xfs.img" XFS_LOOP
mount -- "$XFS_LOOP" "$WORK/xfs"
register_mount "$WORK/xfs"
mkdir -p "$WORK/xfs/images" "$WORK/root/etc" "$WORK/usb1" "$WORK/usb2" "$WORK/reports"
rand_file "$WORK/xfs/images/mysql.raw" 200000
echo "the host's fstab" >"$WORK/root/etc/fstab"
cp -- "$VG/fsimg" "$VG/VM.images"
python3 - "$EXAMPLE" "$WORK/example.toml" "$WORK" <<'EOF'
import sys
src, dst, work = sys.argv[1:4]
text = open(src).read()
for old, new in [
    ('"/mnt/usb1/vmback"', '"%s/usb1/vmback"' % work),
    ('"/mnt/usb2/vmback"', '"%s/usb2/vmback"' % work),
    ('uri = "qemu:///system"', 'uri = "test://%s/node.xml"' % work),
    ('state_dir = "/var/lib/vmback"', 'state_dir = "%s/state-example"' % work),
    ('dir = "/var/lib/vmback/reports"', 'dir = "%s/reports"' % work),
    ('source = "/dev/raid5/VM.images"', 'source = "%s/vg/VM.images"' % work),
    ('source = "/var/lib/libvirt/images"', 'source = "%s/xfs/images"' % work),
    ('source = "/"', 'source = "%s/root"' % work),
]:
    if text.count(old) != 1:
        sys.exit("the example has %d of %s (expected one)" % (text.count(old), old))
    text = text.replace(old, new)
open(dst, "w").write(text)
EOF
vm store init "$WORK/usb1/vmback" --mirror "$WORK/usb2/vmback"
expect_rc 0 "store init for the example"
vm plan -c "$WORK/example.toml"
expect_rc 0 "plan of the example"
vm run -c "$WORK/example.toml" --json
expect_rc 0 "run of the example"
vm restore -c "$WORK/example.toml" latest --to "$WORK/r/example"
expect_rc 0 "restore of the example's point"
check_same_file "$WORK/fsrc/hello.txt" "$WORK/r/example/images/hello.txt" "the example: images/hello.txt"
check_same_file "$WORK/xfs/images/mysql.raw" "$WORK/r/example/vm-disks/mysql.raw" "the example: vm-disks/mysql.raw"
check_same_file "$WORK/root/etc/fstab" "$WORK/r/example/root/etc/fstab" "the example: root/etc/fstab"
check_eq "$(snapshots_left)" "" "the example: snapshots left"

finish
