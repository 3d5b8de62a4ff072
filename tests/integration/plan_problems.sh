#!/usr/bin/env bash
# `vmback plan` finds every problem before anything runs (issue 16): each
# problem is listed with what to do about it, all of them in one go, and the
# plan exits 2 if there is any. `vmback run` with the same config refuses
# before it touches a VM or takes a snapshot, naming every problem that
# would fail it.
#
# The config below has seven problems at once:
#   - a reflink volume on a file system that cannot clone (a tmpfs),
#   - an LVM volume with no lvm program on PATH (this kernel has no
#     device-mapper: lvm is never run here, its absence is the point),
#   - a volume whose source does not exist,
#   - a VM libvirt does not know (libvirt's in-process test driver),
#   - a [report] dir whose parent does not exist,
#   - a metrics_file not ending in .prom,
#   - a store that was never initialised.
# Then: an LVM snapshot larger than the volume group's free space
# (tests/helpers/fake_lvm stands in for lvm: no device-mapper here), and a
# config with nothing wrong (exit 0, no problem listed).
#
# Usage: bash tests/integration/plan_problems.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount)"

mkdir -p "$WORK/tmpfs" "$WORK/vg" "$WORK/tree" "$WORK/nobin"
mount -t tmpfs -o size=4M tmpfs "$WORK/tmpfs"
register_mount "$WORK/tmpfs"
mkdir "$WORK/tmpfs/src"
echo hello >"$WORK/tmpfs/src/a.txt"
echo tree >"$WORK/tree/t.txt"
truncate -s 4M "$WORK/vg/disk"

cat >"$WORK/node.xml" <<EOF
<node>
<domain type='test'><name>web</name><memory>65536</memory><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='$WORK/vg/disk'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
</node>
EOF

# The target, libvirt and state_dir of both configs; the LVM volume "disk"
# with VM web on it.
HEAD=$(cat <<EOF
[target]
path = "$WORK/store"

[libvirt]
uri = "test://$WORK/node.xml"

[run]
state_dir = "$WORK/state"
EOF
)
DISK=$(cat <<EOF
[[volume]]
name = "disk"
source = "$WORK/vg/disk"
snapshot = "lvm"
snapshot_size = "64M"
mode = "block"
vms = ["web"]
EOF
)

cat >"$WORK/bad.toml" <<EOF
$HEAD

[report]
dir = "$WORK/no/such/reports"
metrics_file = "$WORK/metrics.txt"

[[vm]]
name = "web"

[[vm]]
name = "ghost"

[[volume]]
name = "cloned"
source = "$WORK/tmpfs/src"
snapshot = "reflink"
vms = []

$DISK

[[volume]]
name = "gone"
source = "$WORK/vg/gone"
vms = ["ghost"]
EOF

# vmback with an empty PATH: no lvm anywhere (the plan runs nothing else).
printf '#!/bin/sh\nPATH=%q exec %q "$@"\n' "$WORK/nobin" "$VMBACK" >"$WORK/vmback-nopath"
chmod 755 "$WORK/vmback-nopath"
REAL_VMBACK=$VMBACK
VMBACK=$WORK/vmback-nopath

section "plan lists every problem, each with its fix"
vm plan -c "$WORK/bad.toml"
expect_rc 2 "plan with seven problems"
expect_err "7 problems" "plan: counts the problems"
expect_err "volume 'cloned'" "plan: the reflink volume"
expect_err "cannot make reflink copies" "plan: why the reflink volume fails"
expect_err "volume 'disk': lvm is not installed" "plan: the missing lvm"
expect_err "install lvm2" "plan: the fix for the missing lvm"
expect_err "volume 'gone': source $WORK/vg/gone does not exist" "plan: the missing source"
expect_err "'ghost'" "plan: the unknown VM"
expect_err "$WORK/no/such/reports" "plan: the report dir"
expect_err "mkdir -p" "plan: the fix for the report dir"
expect_err "metrics_file $WORK/metrics.txt" "plan: the metrics file"
expect_err "end in .prom" "plan: the fix for the metrics file"
expect_err "vmback store init $WORK/store" "plan: the fix for the missing store"
check "plan: the steps are still printed" grep -qF "4. snapshot each volume:" "$VM_OUT"
check "plan: made no state dir" test ! -e "$WORK/state"
check "plan: made no store" test ! -e "$WORK/store"
check "plan: made no report dir" test ! -e "$WORK/no"

section "run refuses with the same problems, before anything is done"
vm run -c "$WORK/bad.toml"
expect_nonzero "run with seven problems"
expect_err "cannot make reflink copies" "run: the reflink volume"
expect_err "lvm is not installed" "run: the missing lvm"
expect_err "'ghost'" "run: the unknown VM"
check "run: no snapshot directory in the tmpfs source" \
  bash -c "! ls -A '$WORK/tmpfs/src' | grep -q vmback"
check "run: made no store" test ! -e "$WORK/store"

VMBACK=$REAL_VMBACK

section "an LVM snapshot larger than the free space"
use_fake_lvm
vm store init "$WORK/store"
expect_rc 0 "store init"
cat >"$WORK/space.toml" <<EOF
$HEAD

[[vm]]
name = "web"

$DISK

[[volume]]
name = "tree"
source = "$WORK/tree"
vms = []
exclude = ["*.tmp", "/cache/"]
EOF
FAKE_LVM_FREE=$((32 * 1024 * 1024)) vm plan -c "$WORK/space.toml"
expect_rc 2 "plan with a snapshot larger than the free space"
expect_err "1 problem" "plan: one problem"
expect_err "larger than the free space" "plan: the free space"
check "plan ran no lvm command that changes anything" \
  bash -c "! grep -qE '^lvm (lvcreate|lvremove)' '$FAKE_LVM_LOG'"

section "nothing wrong: exit 0, no problem listed"
vm plan -c "$WORK/space.toml"
expect_rc 0 "plan with nothing wrong"
check "plan: no problem listed" bash -c "! grep -qi problem '$VM_ERR'"
check "plan: the tree's excludes are listed" grep -qF "left out: pattern *.tmp" "$VM_OUT"
check "plan: the tree's excludes are listed (anchored)" grep -qF "left out: pattern /cache/" "$VM_OUT"

finish
