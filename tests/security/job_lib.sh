# shellcheck shell=bash
# Shared by the job_*.sh and journal_*.sh security tests, sourced after
# tests/integration/lib.sh (whose use_fake_lvm they use):
#
#   write_node_xml DISK  $WORK/node.xml for libvirt's test driver
#                        (test://$WORK/node.xml): one running domain "web"
#                        whose disk is DISK
#   job_config STATE MAX_FREEZE SOURCE
#                        prints a config: the store $WORK/store, state_dir
#                        STATE, the VM web (suspend), the LVM volume "disk"
#                        on SOURCE (mode block, vms = "auto")

write_node_xml() {
  cat >"$WORK/node.xml" <<XML
<node>
<domain type='test'>
  <name>web</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='$1'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
</node>
XML
}

job_config() {
  cat <<TOML
[target]
path = "$WORK/store"

[libvirt]
uri = "test://$WORK/node.xml"

[run]
state_dir = "$1"
max_freeze = $2

[[vm]]
name = "web"
quiesce = "suspend"

[[volume]]
name = "disk"
source = "$3"
snapshot = "lvm"
snapshot_size = "64M"
mode = "block"
vms = "auto"
TOML
}
