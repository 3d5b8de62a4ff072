# shellcheck shell=bash
# The VMs of tests/integration/vm_restore.sh and instant_restore.sh, for
# libvirt's in-process test driver (test://$WORK/node.xml), sourced after
# lib.sh:
#   web  vda: $WORK/images/sub/web.img (8 MiB, 3 MiB of data), in volume
#        "images"; vdb: $WORK/data.img (1 MiB), the whole volume "data"
#   db   vda: $WORK/images/db-root.img, in "images"; vdb: $WORK/other/db.img,
#        on no volume (not in a point)
# $WORK/web.expect and data.expect hold the disks' bytes.
# vm_config FILE TYPE PATH writes a config of both volumes (read live by
# choice) and both VMs into target TYPE ("store", "dir") at PATH.

mkdir -p "$WORK/images/sub" "$WORK/state" "$WORK/other"
rand_file "$WORK/images/sub/web.img" 3M
truncate -s 8M "$WORK/images/sub/web.img"
rand_file "$WORK/data.img" 1M
rand_file "$WORK/other/db.img" 64K
cp "$WORK/images/sub/web.img" "$WORK/web.expect"
cp "$WORK/data.img" "$WORK/data.expect"

cat >"$WORK/node.xml" <<EOF
<node>
<domain type='test'>
  <name>web</name><uuid>6f1c4b2e-3c1a-4d7e-9a55-0123456789ab</uuid><memory>65536</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$WORK/images/sub/web.img'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$WORK/data.img'/><target dev='vdb' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>
  </devices>
</domain>
<domain type='test'>
  <name>db</name><memory>65536</memory><os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='$WORK/images/db-root.img'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><source file='$WORK/other/db.img'/><target dev='vdb' bus='virtio'/></disk>
  </devices>
</domain>
</node>
EOF
rand_file "$WORK/images/db-root.img" 128K

vm_config() {
  cat >"$1" <<EOF
[target]
type = "$2"
path = "$3"

[libvirt]
uri = "test://$WORK/node.xml"

[run]
state_dir = "$WORK/state"

[[volume]]
name = "images"
source = "$WORK/images"
snapshot = "none"

[[volume]]
name = "data"
source = "$WORK/data.img"
snapshot = "none"

[[vm]]
name = "web"
quiesce = "suspend"

[[vm]]
name = "db"
quiesce = "suspend"
EOF
}

