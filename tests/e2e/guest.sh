#!/usr/bin/env bash
# End to end: a real libvirt/QEMU guest (software emulation) writes numbered
# records to an ext4 disk image that lives on XFS; `vmback run` quiesces it,
# takes a reflink snapshot, resumes the guest and backs the snapshot up.
# Three runs, three points:
#   1. quiesce = "agent" (guest-agent fsfreeze); the volume is the image file
#      (mode = "block"), the guest named on it (vms)
#   2. quiesce = "sysrq" (Alt+SysRq+S and suspend); the same volume
#   3. quiesce = "agent"; the volume is the images directory, which is the
#      XFS's mount point, backed up as a file tree (the snapshot is made
#      inside it, as .vmback-VOLUME-RUNID, and left out of the point); no vms
#      key, so the default "auto" must find and quiesce the guest by its disk
#      under the directory (run --json: the one VM, on that volume, method
#      agent, no warnings; the point holds the image only)
# After each run the guest must be running and writing again and no
# .vmback-* snapshot be left on the XFS. The image is restored from each
# point (from the third, the single file out of the tree) and must be a
# consistent file system (e2fsck; clean, without journal recovery, after the
# agent's freeze) whose records run 1, 2, ..., N with no gap or torn line, N
# at least the last record the guest had reported synced before the run
# began. Then the guest moves to a qcow2 image in a plain directory and four
# more runs read it with snapshot = "libvirt" (pull-mode backup over NBD):
# the first in full, the second only the dirty extents, the third after a
# restart of the guest still only the dirty extents (the bitmaps persist in
# the qcow2), the fourth after its checkpoint was deleted by hand in full,
# saying why; each point restores to a raw image checked as above, and no
# backup job, socket directory or older checkpoint is left. Prints the
# freeze windows and the bytes each libvirt run read.
#
# Needs root and the packages scripts/setup installs (libvirt daemon, QEMU,
# a Debian kernel in /boot with its modules, busybox-static, qemu-guest-agent,
# cpio). Starts virtlogd and libvirtd unless a libvirtd answers already, and
# stops exactly the daemons it started.
#
# Usage: bash tests/e2e/guest.sh /path/to/vmback   (as root)
set -euo pipefail
# shellcheck source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount, libvirtd)"
for tool in losetup mkfs.xfs mkfs.ext4 e2fsck dumpe2fs cpio gzip python3 timeout \
  virsh virtlogd libvirtd qemu-system-x86_64 busybox; do
  command -v "$tool" >/dev/null || die "needs $tool (see scripts/setup)"
done
QEMU_GA=$(command -v qemu-ga || echo /usr/sbin/qemu-ga)
[ -x "$QEMU_GA" ] || die "needs qemu-ga (package qemu-guest-agent)"
BUSYBOX=$(command -v busybox)
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked; needs busybox-static"

URI=qemu:///system
DOM="vmback-e2e-$$"
XFS=$WORK/xfs
CONSOLE=$WORK/console.log
IMG=$XFS/disk.img
STORE=$WORK/store
CFG=$WORK/cfg.toml
T0=$SECONDS

# ---------------------------------------------------------------------------
# Cleanup, in this order whatever happened: the domain, then the daemons this
# test started (lib.sh then unmounts and detaches the loop devices).
LIBVIRTD_PID=""
VIRTLOGD_PID=""
DOM_DEFINED=""

# stop_daemon PID NAME: SIGTERM, then SIGKILL after 15 s; only if the PID is
# still that daemon.
stop_daemon() {
  local pid=$1 name=$2 i
  [ -n "$pid" ] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 75; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # Exited, not yet reaped by its parent (init).
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.2
  done
  echo "$TEST_NAME: warning: $name ($pid) ignored SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

e2e_cleanup() {
  local d
  for d in "$DOM-instant" "$DOM-instant2" "$DOM-restored"; do  # instant restores (their own cleanup ran first, if it could)
    timeout 60 virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1
    timeout 60 virsh -q -c "$URI" undefine "$d" >/dev/null 2>&1
  done
  if [ -n "$DOM_DEFINED" ]; then
    local qpid
    qpid=$(cat "/run/libvirt/qemu/$DOM.pid" 2>/dev/null || true)
    timeout 60 virsh -q -c "$URI" destroy "$DOM" >/dev/null 2>&1
    # (with the metadata of its checkpoints, which libvirt keeps otherwise)
    timeout 60 virsh -q -c "$URI" undefine --checkpoints-metadata "$DOM" >/dev/null 2>&1 ||
      timeout 60 virsh -q -c "$URI" undefine "$DOM" >/dev/null 2>&1 ||
      echo "$TEST_NAME: warning: could not undefine domain $DOM" >&2
    # The QEMU process itself, should libvirt have failed to end it.
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$qpid/cmdline" 2>/dev/null | grep -qF "guest=$DOM,"; then
      echo "$TEST_NAME: warning: QEMU ($qpid) of $DOM still running; killing it" >&2
      kill -KILL "$qpid" 2>/dev/null
    fi
    # libvirt's log of this test's own domain (shown by guest_diag on failure).
    rm -f "/var/log/libvirt/qemu/$DOM.log"
  fi
  stop_daemon "$LIBVIRTD_PID" libvirtd
  stop_daemon "$VIRTLOGD_PID" virtlogd
}
register_cleanup e2e_cleanup

# Shows what the guest and QEMU said, for a failure.
guest_diag() {
  echo "    guest console (last 40 lines of $CONSOLE):" >&2
  tail -n 40 "$CONSOLE" 2>/dev/null | tr -d '\r' | sed 's/^/      /' >&2 || true
  if [ -f "/var/log/libvirt/qemu/$DOM.log" ]; then
    echo "    /var/log/libvirt/qemu/$DOM.log (last 15 lines):" >&2
    tail -n 15 "/var/log/libvirt/qemu/$DOM.log" | sed 's/^/      /' >&2
  fi
}
die_guest() {
  guest_diag
  die "$@"
}

# Like lib.sh's vm, bounded by a timeout (exit status 124 when it expires).
vm_timed() {
  local secs=$1
  shift
  _VM_N=$((_VM_N + 1))
  VM_OUT="$WORK/.vm/$_VM_N.out"
  VM_ERR="$WORK/.vm/$_VM_N.err"
  mkdir -p "$WORK/.vm"
  # shellcheck disable=SC2034  # read by lib.sh (_vm_context)
  VM_CMD="vmback$(printf ' %q' "$@")"
  VM_RC=0
  timeout "$secs" "$VMBACK" "$@" >"$VM_OUT" 2>"$VM_ERR" || VM_RC=$?
}

virsh_() { timeout 60 virsh -q -c "$URI" "$@"; }

# The number in the guest's last "E2E: synced N" line (0 if none yet).
last_synced() {
  local n
  n=$(grep -ao 'E2E: synced [0-9]*' "$CONSOLE" 2>/dev/null | tail -n 1 | awk '{print $3}')
  echo "${n:-0}"
}

# wait_synced_above N SECS: waits until the guest reports a record above N.
wait_synced_above() {
  local n=$1 secs=$2 start=$SECONDS
  while [ $((SECONDS - start)) -lt "$secs" ]; do
    [ "$(last_synced)" -gt "$n" ] && return 0
    grep -aq 'E2E: FAIL' "$CONSOLE" 2>/dev/null && return 1
    sleep 0.5
  done
  return 1
}

# ---------------------------------------------------------------------------
section "XFS with reflink on a loop device"
truncate -s 512M "$WORK/xfs.img"
attach_loop "$WORK/xfs.img" XFS_LOOP
mkfs.xfs -q -m reflink=1 "$XFS_LOOP"
mkdir -p "$XFS"
mount "$XFS_LOOP" "$XFS"
register_mount "$XFS"
truncate -s 64M "$IMG"
# 24 MiB of data the guest never writes again: what a full read must read
# and an incremental one must not.
mkdir -p "$WORK/fsroot"
head -c 24M /dev/urandom >"$WORK/fsroot/ballast"
mkfs.ext4 -q -F -L e2e -E lazy_itable_init=0,lazy_journal_init=0 -d "$WORK/fsroot" "$IMG"
echo "XFS on $XFS_LOOP at $XFS; guest disk $IMG"

# ---------------------------------------------------------------------------
section "kernel and busybox initramfs"
KVER=""
for k in $(printf '%s\n' /boot/vmlinuz-* | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  if [ -f "/lib/modules/$v/modules.dep" ]; then
    KVER=$v
    break
  fi
done
[ -n "$KVER" ] || die "no kernel in /boot with modules in /lib/modules (package linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
echo "kernel $KERNEL"

R=$WORK/initramfs
mkdir -p "$R"/{bin,dev,proc,sys,mnt,tmp,run,var/run,etc,modules}
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$R/bin/$applet"
done
ln -s bin "$R/sbin"

# The modules, with their dependencies from modules.dep, in load order.
python3 - "/lib/modules/$KVER" virtio_pci virtio_blk virtio_console crc32c_generic ext4 \
  >"$WORK/modules.list" <<'EOF'
import os, re, sys
root, wanted = sys.argv[1], sys.argv[2:]
deps, by_name = {}, {}
for line in open(os.path.join(root, "modules.dep")):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
    name = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", os.path.basename(path)).replace("-", "_")
    by_name[name] = path
order, seen = [], set()
def add(path):
    if path in seen:
        return
    seen.add(path)
    for d in deps.get(path, []):
        add(d)
    order.append(path)
for w in wanted:
    if w not in by_name:
        # Built into the kernel is fine.
        builtin = open(os.path.join(root, "modules.builtin")).read()
        if re.search(r"/%s\.ko$" % re.escape(w), builtin, re.M):
            continue
        sys.exit("module %s not found in %s/modules.dep" % (w, root))
    add(by_name[w])
print("\n".join(order))
EOF
: >"$R/modules/order"
while read -r m; do
  [ -n "$m" ] || continue
  src=/lib/modules/$KVER/$m
  base=$(basename "$m")
  case "$base" in
    *.ko.xz) xz -dc "$src" >"$R/modules/${base%.xz}"; base=${base%.xz} ;;
    *.ko.zst) zstd -qdc "$src" >"$R/modules/${base%.zst}"; base=${base%.zst} ;;
    *.ko.gz) gzip -dc "$src" >"$R/modules/${base%.gz}"; base=${base%.gz} ;;
    *) cp "$src" "$R/modules/$base" ;;
  esac
  echo "$base" >>"$R/modules/order"
done <"$WORK/modules.list"
echo "modules: $(tr '\n' ' ' <"$R/modules/order")"

# qemu-ga with the libraries ldd names and the dynamic loader.
cp "$QEMU_GA" "$R/bin/qemu-ga"
for lib in $(ldd "$QEMU_GA" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
[ -e "$R/lib64/ld-linux-x86-64.so.2" ] || die "ldd named no /lib64/ld-linux-x86-64.so.2 for qemu-ga"

cat >"$R/init" <<'EOF'
#!/bin/sh
# PID 1 of the test guest: load the drivers, mount the disk, start the guest
# agent, then append numbered records to the disk for ever.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "E2E: $*" >/dev/console; }
halt_here() { say "FAIL: $*"; while :; do sleep 3600; done; }
echo 1 >/proc/sys/kernel/sysrq
for m in $(cat /modules/order); do
  insmod "/modules/$m" || say "insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
[ -b /dev/vda ] || halt_here "no block device /dev/vda (virtio_blk)"
mount -t ext4 /dev/vda /mnt || halt_here "cannot mount /dev/vda"
grep -q '^/dev/vda /mnt ext4 ' /proc/mounts || halt_here "/dev/vda is not mounted as ext4 on /mnt"
say "DISK-OK"
i=0
while [ ! -e /dev/vport0p1 ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
[ -e /dev/vport0p1 ] || halt_here "no /dev/vport0p1 (virtio_console)"
LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu \
  qemu-ga -d -m virtio-serial -p /dev/vport0p1 -l /tmp/qemu-ga.log || halt_here "qemu-ga did not start"
say "AGENT-STARTED"
# After a restart, the records go on from the last one on the disk.
n=0
[ -f /mnt/records ] && n=$(wc -l </mnt/records)
while :; do
  n=$((n + 1))
  echo "record $n" >>/mnt/records
  sync
  [ $((n % 5)) -eq 0 ] && say "synced $n"
done
EOF
chmod 755 "$R/init"
(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$WORK/initramfs.gz"
echo "initramfs $(du -h "$WORK/initramfs.gz" | cut -f1)"

# ---------------------------------------------------------------------------
section "libvirt daemons"
if timeout 15 virsh -q -c "$URI" version >/dev/null 2>&1; then
  echo "a libvirtd answers on $URI already; using it (and not stopping it)"
else
  if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' \
    /run/libvirt/virtlogd-sock 2>/dev/null; then
    echo "virtlogd runs already; using it"
  else
    virtlogd -d -p "$WORK/virtlogd.pid"
    for ((i = 0; i < 50; i++)); do [ -s "$WORK/virtlogd.pid" ] && break; sleep 0.1; done
    VIRTLOGD_PID=$(cat "$WORK/virtlogd.pid" 2>/dev/null || true)
    [ -n "$VIRTLOGD_PID" ] || die "virtlogd -d wrote no pid file"
    echo "started virtlogd ($VIRTLOGD_PID)"
  fi
  libvirtd -d -p "$WORK/libvirtd.pid"
  for ((i = 0; i < 50; i++)); do [ -s "$WORK/libvirtd.pid" ] && break; sleep 0.1; done
  LIBVIRTD_PID=$(cat "$WORK/libvirtd.pid" 2>/dev/null || true)
  [ -n "$LIBVIRTD_PID" ] || die "libvirtd -d wrote no pid file"
  echo "started libvirtd ($LIBVIRTD_PID)"
  for ((i = 0; i < 60; i++)); do
    timeout 15 virsh -q -c "$URI" version >/dev/null 2>&1 && break
    sleep 0.5
  done
  timeout 15 virsh -q -c "$URI" version >/dev/null 2>&1 || die "libvirtd does not answer on $URI"
fi

# ---------------------------------------------------------------------------
section "the guest $DOM"
# QEMU runs as root here (static DAC label, no relabelling): it reads the
# test's own files in place and changes none of their owners.
cat >"$WORK/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$WORK/initramfs.gz</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$IMG'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <serial type='file'>
      <source path='$CONSOLE'/>
      <target port='0'/>
    </serial>
    <input type='keyboard' bus='ps2'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'>
    <label>+0:+0</label>
  </seclabel>
</domain>
EOF
virsh_ define "$WORK/domain.xml" >/dev/null || die "virsh define failed"
DOM_DEFINED=1
virsh_ start "$DOM" >/dev/null || die_guest "virsh start $DOM failed"
BOOT0=$SECONDS
wait_synced_above 9 180 || die_guest "the guest did not report 10 synced records within 180 s"
echo "guest writing records $((SECONDS - BOOT0)) s after start (synced $(last_synced))"
check "guest: disk is a real virtio block device mounted as ext4" grep -aq 'E2E: DISK-OK' "$CONSOLE"
wait_agent() {
  local agent_ok="" i
  for ((i = 0; i < 60; i++)); do
    if virsh_ qemu-agent-command "$DOM" '{"execute":"guest-ping"}' --timeout 5 >/dev/null 2>&1; then
      agent_ok=1
      break
    fi
    sleep 1
  done
  [ -n "$agent_ok" ] || die_guest "the guest agent does not answer guest-ping"
  echo "guest agent answers"
}
wait_agent

# ---------------------------------------------------------------------------
vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

# write_config METHOD SHAPE: the run's config, the guest quiesced by METHOD,
# with one volume of SHAPE:
#   image  the guest's image file, copied block by block, the guest named on
#          the volume (vms)
#   tree   the images directory, the mount point of the XFS, backed up as a
#          file tree; no vms key, so the default "auto" must find the guest by
#          its disk under the directory
# Sets IN_POINT to the image's path in a point (restore's PATH).
write_config() {
  local volume
  case $2 in
    image)
      volume="name = \"disk\"
source = \"$IMG\"
snapshot = \"reflink\"
mode = \"block\"
vms = [\"$DOM\"]"
      IN_POINT=disk
      ;;
    tree)
      volume="name = \"images\"
source = \"$XFS\"
snapshot = \"reflink\""
      IN_POINT=images/$(basename -- "$IMG")
      ;;
    qcow2)
      volume="name = \"vmimages\"
source = \"$QDIR\"
snapshot = \"libvirt\""
      IN_POINT=vmimages/$(basename -- "$QCOW")
      ;;
    *) die "write_config: unknown volume shape $2" ;;
  esac
  cat >"$CFG" <<EOF
[libvirt]
uri = "$URI"

[run]
state_dir = "$WORK/state"
nbd_dir = "$WORK/nbd"

[target]
path = "$STORE"

[[vm]]
name = "$DOM"
quiesce = "$1"

[[volume]]
$volume
EOF
}

# check_records FILE MIN WHAT: FILE holds "record 1" ... "record N", one per
# line, nothing else, N >= MIN. Sets RECORDS to N.
check_records() {
  local out rc=0
  RECORDS=0
  _count_check
  out=$(python3 - "$1" "$2" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
if not data:
    sys.exit("no records at all")
if not data.endswith(b"\n"):
    sys.exit("the last line is torn: %r" % data[-40:])
lines = data[:-1].split(b"\n")
for i, line in enumerate(lines, 1):
    if line != b"record %d" % i:
        sys.exit("line %d is %r, expected %r" % (i, line[:60], b"record %d" % i))
n = len(lines)
if n < int(sys.argv[2]):
    sys.exit("only %d records, but the guest had reported %s synced before the run" % (n, sys.argv[2]))
print(n)
EOF
) || rc=$?
  if [ "$rc" -ne 0 ]; then
    _fail "$3: $out"
    return 0
  fi
  RECORDS=$out
}

FREEZES=()
# one_point METHOD SHAPE: a run with quiesce = METHOD and a volume of SHAPE
# (see write_config), then the guest's image restored from its point and
# checked.
one_point() {
  local method=$1 shape=$2 what="quiesce = $1"
  case $shape in
    tree) what="$what, the images directory" ;;
    qcow2) what="$what, snapshot = libvirt, qcow2 (${3:-})" ;;
  esac
  section "vmback run with $what"
  write_config "$method" "$shape"
  local sysrq_before before point
  sysrq_before=$(grep -ac 'Emergency Sync' "$CONSOLE" || true)
  before=$(last_synced)
  vm_timed 180 run -c "$CFG" --json
  local after
  after=$(last_synced)
  expect_rc 0 "vmback run ($what)"
  cp "$VM_OUT" "$WORK/last-run.json"
  if [ "$VM_RC" -ne 0 ]; then
    guest_diag
    return 0
  fi
  # The VM quiesced is the one the volume's source holds (named, or found
  # by "auto"); a tree volume holds the image and no snapshot directory.
  check "run --json ($what): one VM, method $method, found on volume ${IN_POINT%%/*}, a point, no errors" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
dom, method, volume, shape = sys.argv[2:]
assert r["point"], r
assert [v["name"] for v in r["vms"]] == [dom], r["vms"]
assert r["vms"][0]["method"] == method, r["vms"][0]
assert [(s["volume"], s["vms"]) for s in r["sources"]] == [(volume, [dom])], r["sources"]
assert r["backup"]["errors"] == 0, r["backup"]
if shape == "tree":
    assert r["backup"]["volumes"][0]["files"] == 1, r["backup"]["volumes"]
assert r["warnings"] == [], r["warnings"]' "$VM_OUT" "$DOM" "$method" "${IN_POINT%%/*}" "$shape"
  point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["point"])' "$VM_OUT" 2>/dev/null) || true
  local freeze
  freeze=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%s: freeze_ms %d (freeze_window_ms %d)" % (sys.argv[2], r["vms"][0]["freeze_ms"], r["freeze_window_ms"]))' "$VM_OUT" "$what" 2>/dev/null) ||
    freeze="$what: (no freeze window in the report)"
  FREEZES+=("$freeze")
  echo "point $point; $freeze; guest had synced $before before, $after after the run"

  check_eq "$(virsh_ domstate "$DOM" 2>&1 | head -n 1)" running "domain state after the run ($what)"
  local left
  left=$(find "$XFS" -maxdepth 1 -name '.vmback-*' | head -n 5)
  check_eq "$left" "" "no reflink snapshot left in $XFS after the run ($what)"
  if [ "$method" = sysrq ]; then
    check "the guest saw Alt+SysRq+S (\"Emergency Sync\" on its console)" \
      test "$(grep -ac 'Emergency Sync' "$CONSOLE" || true)" -gt "$sysrq_before"
  fi
  _count_check
  if ! wait_synced_above "$after" 60; then
    _fail "the guest does not write records any more after the run ($what): last synced $(last_synced)"
    guest_diag
  fi

  # Restore the point's image and look inside.
  [ -n "$point" ] || return 0
  local n=${#FREEZES[@]}
  local img=$WORK/restored-$method-$shape-$n.img mnt=$WORK/mnt-$method-$shape-$n
  vm_timed 120 restore -c "$CFG" "$point" "$IN_POINT" --to "$img"
  expect_rc 0 "restore of $IN_POINT from point $point ($what)"
  [ "$VM_RC" -eq 0 ] || return 0
  check_eq "$(stat -c %s "$img")" $((64 * 1024 * 1024)) "size of the restored image ($what)"
  local features
  features=$(dumpe2fs -h "$img" 2>/dev/null | grep -a '^Filesystem features:' || true)
  if [ "$method" = agent ]; then
    # ext4 freeze flushes the journal: the snapshot is a clean file system.
    # shellcheck disable=SC2016  # $1 is for the inner bash
    check "agent point: the image needs no journal recovery ($what)" \
      bash -c '! grep -qw needs_recovery <<<"$1"' _ "$features"
  elif grep -qw needs_recovery <<<"$features"; then
    # A synced but still mounted file system, as after a power cut: replay
    # the journal (as mount would) before the read-only check.
    echo "sysrq point: the journal needs recovery (expected); replaying it"
    check "sysrq point: journal replay" e2fsck -E journal_only -y "$img"
  fi
  check "e2fsck -fn of the restored image ($what)" e2fsck -fn "$img"
  local loop
  attach_loop "$img" loop
  mkdir -p "$mnt"
  if ! mount -o ro "$loop" "$mnt"; then
    _count_check
    _fail "cannot mount the restored image ($what) read-only"
    return 0
  fi
  register_mount "$mnt"
  check_records "$mnt/records" "$before" "records in the restored image ($what)"
  echo "restored image holds records 1..$RECORDS (guest had synced $before when the run began)"
  umount "$mnt"
}

one_point agent image
one_point sysrq image
one_point agent tree

section "the three points are there"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 3 "number of points after three runs"

# ---------------------------------------------------------------------------
# The same guest on a qcow2 image in a plain directory (no LVM, no reflink),
# read through libvirt's pull-mode backup: full, then only what the dirty
# bitmap marks; a restart between the second and the third run (the qcow2
# bitmaps persist); a deleted checkpoint makes the next run a full read that
# says why. After each run: one checkpoint of vmback's, no backup job, no
# socket directory left.
section "the guest moves to a qcow2 image"
QDIR=$WORK/images
QCOW=$QDIR/disk.qcow2
mkdir -p "$QDIR"
# A clean stop: the file system frozen (everything on the disk) before the
# power goes.
virsh_ domfsfreeze "$DOM" >/dev/null || die_guest "domfsfreeze failed"
virsh_ destroy "$DOM" >/dev/null || die_guest "virsh destroy failed"
qemu-img convert -f raw -O qcow2 "$IMG" "$QCOW" || die "qemu-img convert to qcow2 failed"
sed -e "s|<driver name='qemu' type='raw'/>|<driver name='qemu' type='qcow2'/>|" \
  -e "s|<source file='$IMG'/>|<source file='$QCOW'/>|" <(virsh_ dumpxml --inactive "$DOM") >"$WORK/domain-qcow2.xml"
grep -q "type='qcow2'" "$WORK/domain-qcow2.xml" && grep -qF "<source file='$QCOW'/>" "$WORK/domain-qcow2.xml" ||
  die "domain XML: the disk is not the qcow2 image"
virsh_ define "$WORK/domain-qcow2.xml" >/dev/null || die "virsh define (qcow2) failed"

# restart_guest: a clean stop (frozen, then destroyed) and a start; waits
# until it writes records again.
start_guest() {
  local before=$1
  virsh_ start "$DOM" >/dev/null || die_guest "virsh start $DOM failed"
  wait_synced_above "$before" 180 || die_guest "the guest did not write records after its start"
  wait_agent
}
RECORDS_BEFORE=$(last_synced)
start_guest "$RECORDS_BEFORE"

# libvirt_run WHAT METHOD [WHY]: a point with snapshot = libvirt whose report
# says change_method METHOD (and WHY in change_why); sets READ to its bytes_read.
READS=()
libvirt_run() {
  local what=$1 method=$2 why=${3:-}
  one_point agent qcow2 "$what"
  READ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup"]["volumes"][0]["bytes_read"])' \
    "$WORK/last-run.json" 2>/dev/null || echo -1)
  check "libvirt run ($what): change_method $method${why:+, why: $why}" python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))["backup"]["volumes"][0]
assert v["change_method"] == sys.argv[2], v
assert sys.argv[3] in v.get("change_why", ""), v' "$WORK/last-run.json" "$method" "$why"
  local cps
  cps=$(virsh_ checkpoint-list "$DOM" --name 2>&1 | grep -c '^vmback-' || true)
  check_eq "$cps" 1 "vmback checkpoints of $DOM after the run ($what)"
  check_eq "$(find "$WORK/nbd" -mindepth 1 -maxdepth 1 | head -n 3)" "" "no NBD socket directory left ($what)"
  check "no backup job left on $DOM ($what)" bash -c \
    "timeout 60 virsh -q -c '$URI' domjobinfo '$DOM' | grep -Eq 'Job type: +None'"
  local ms
  ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup"]["volumes"][0]["seconds_ms"])' \
    "$WORK/last-run.json" 2>/dev/null || echo "?")
  READS+=("$what: read $READ bytes ($method) in $ms ms")
  echo "bytes read: $READ"
}

libvirt_run "first" full-read "no version in the parent point"
READ1=$READ
libvirt_run "second" dirty-bitmap
READ2=$READ
check "the second run read at most a quarter of the first ($READ2 of $READ1 bytes)" \
  test "$READ2" -ge 0 -a $((READ2 * 4)) -le "$READ1"

section "the guest restarts"
virsh_ domfsfreeze "$DOM" >/dev/null || die_guest "domfsfreeze failed"
virsh_ destroy "$DOM" >/dev/null || die_guest "virsh destroy failed"
start_guest "$(last_synced)"
libvirt_run "after a restart" dirty-bitmap
check "the run after the restart read at most a quarter of the first ($READ of $READ1 bytes)" \
  test "$READ" -ge 0 -a $((READ * 4)) -le "$READ1"

section "a checkpoint deleted by hand"
CP=$(virsh_ checkpoint-list "$DOM" --name | grep '^vmback-' | head -n 1)
virsh_ checkpoint-delete "$DOM" "$CP" >/dev/null || die "virsh checkpoint-delete $CP failed"
libvirt_run "checkpoint deleted" full-read "checkpoint $CP of VM $DOM is gone"

section "all points are there"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 7 "number of points after seven runs"

# ---------------------------------------------------------------------------
# Instant restore of the last point: the guest boots from the point (its
# image served through a FUSE mount under a qcow2 overlay), is copied onto a
# plain raw image while it runs and pivoted there; then the mount and the
# overlays are gone, the guest writes on, and its image passes e2fsck after
# a clean stop. A second one, without --migrate-to, boots and is undone by
# --cleanup. QEMU runs as root here: --qemu-user root.
LAST=${POINTS[6]}
IWORK=$WORK/instant
MIG=$WORK/migrated
mkdir -p "$IWORK" "$MIG"
virsh_ domfsfreeze "$DOM" >/dev/null || die_guest "domfsfreeze failed"
virsh_ destroy "$DOM" >/dev/null || die_guest "virsh destroy failed"

# instant_boot NAME ARGS...: starts vmback instant-restore in the background
# (INSTANT_PID), and waits until the guest NAME has mounted its disk (a
# DISK-OK line on the console, which QEMU empties when it starts; with
# --migrate-to, the command may end before that).
instant_boot() {
  local name=$1 i
  shift
  : >"$CONSOLE"
  "$VMBACK" instant-restore --store "$STORE" --point "$LAST" --vm "$DOM" --name "$name" --work-dir "$IWORK" \
    --connect "$URI" --qemu-user root "$@" >"$WORK/instant-$name.out" 2>&1 &
  INSTANT_PID=$!
  register_pid "$INSTANT_PID"
  register_mount "$IWORK/vmback-instant-$name/mnt"
  BOOT0=$SECONDS
  for ((i = 0; i < 180; i++)); do
    grep -aq 'E2E: DISK-OK' "$CONSOLE" && break
    sleep 1
  done
  check "instant restore $name: the guest booted from the point and mounted its disk" \
    grep -aq 'E2E: DISK-OK' "$CONSOLE"
  echo "instant restore $name: guest disk mounted $((SECONDS - BOOT0)) s after the command started"
}
# wait_instant NAME SECS: the background instant-restore ends, with status
# 0, within SECS (else it is stopped with SIGTERM, and that is a failure).
wait_instant() {
  local i rc=0
  for ((i = 0; i < $2 * 5; i++)); do
    kill -0 "$INSTANT_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$INSTANT_PID" 2>/dev/null; then
    _count_check
    _fail "instant restore $1: still running after $2 s; stopped"
    kill -TERM "$INSTANT_PID"
  fi
  wait "$INSTANT_PID" || rc=$?
  release_pid "$INSTANT_PID"
  check_eq "$rc" 0 "instant restore $1: exit status (output: $(tr '\n' '|' <"$WORK/instant-$1.out" | tail -c 600))"
}

section "instant restore, migrated while it runs"
IDOM=$DOM-instant
instant_boot "$IDOM" --migrate-to "$MIG"
wait_instant "$IDOM" 600
check "the VM runs on the migrated image" bash -c \
  "timeout 60 virsh -q -c '$URI' domblklist '$IDOM' | grep -qF '$MIG/$IDOM-vda.img'"
check "its persistent definition names the migrated image too" bash -c \
  "timeout 60 virsh -q -c '$URI' dumpxml --inactive '$IDOM' | grep -qF \"<source file='$MIG/$IDOM-vda.img'\""
check "the mount and the overlays are gone" test ! -e "$IWORK/vmback-instant-$IDOM"
check "no FUSE mount left" bash -c "! grep -qF '$IWORK' /proc/self/mounts"
wait_synced_above "$(last_synced)" 120 || die_guest "the migrated guest wrote no more records"
virsh_ domfsfreeze "$IDOM" >/dev/null || die_guest "domfsfreeze of $IDOM failed"
virsh_ destroy "$IDOM" >/dev/null || die_guest "virsh destroy $IDOM failed"
check "the migrated image is a clean ext4" e2fsck -fn "$MIG/$IDOM-vda.img"
virsh_ undefine "$IDOM" >/dev/null || true

section "instant restore, undone by --cleanup"
IDOM2=$DOM-instant2
instant_boot "$IDOM2"
check "it runs on its overlay" bash -c \
  "timeout 60 virsh -q -c '$URI' domblklist '$IDOM2' | grep -qF '$IWORK/vmback-instant-$IDOM2/$IDOM2-vda.qcow2'"
vm instant-restore --cleanup "$IDOM2" --work-dir "$IWORK" --connect "$URI"
expect_rc 0 "instant-restore --cleanup"
wait_instant "$IDOM2" 60
check "the domain is gone" bash -c "! timeout 60 virsh -q -c '$URI' dominfo '$IDOM2' >/dev/null 2>&1"
check "its work directory is gone" test ! -e "$IWORK/vmback-instant-$IDOM2"
check "no FUSE mount left" bash -c "! grep -qF '$IWORK' /proc/self/mounts"

section "restore --vm --define under libvirtd"
RDOM=$DOM-restored
vm restore --store "$STORE" "$LAST" --vm "$DOM" --to "$WORK/vmr" --define --name "$RDOM" --connect "$URI"
expect_rc 0 "restore --vm --define --name"
check "the restored domain's disk is the restored image" bash -c \
  "timeout 60 virsh -q -c '$URI' dumpxml --inactive '$RDOM' | grep -qF \"<source file='$WORK/vmr/$DOM-vda.img'\""
check "it is shut off" bash -c "timeout 60 virsh -q -c '$URI' domstate '$RDOM' | grep -q 'shut off'"
check "the restored image is a clean ext4" e2fsck -fn "$WORK/vmr/$DOM-vda.img"
vm restore --store "$STORE" "$LAST" --vm "$DOM" --to "$WORK/vmr2" --define --connect "$URI"
expect_rc 2 "restore --vm --define over the existing domain"
check "the original's definition is unchanged" bash -c \
  "timeout 60 virsh -q -c '$URI' dumpxml --inactive '$DOM' | grep -qF \"<source file='$QCOW'/>\""
virsh_ undefine "$RDOM" >/dev/null || true
section "bytes read through libvirt"
for r in "${READS[@]}"; do echo "  $r"; done

section "freeze windows"
for f in "${FREEZES[@]}"; do echo "  $f"; done
echo "total $((SECONDS - T0)) s"
finish
