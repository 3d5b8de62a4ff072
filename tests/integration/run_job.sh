#!/usr/bin/env bash
# `vmback run` and `vmback plan` through the CLI, with libvirt's in-process
# test driver as the hypervisor (test:///$WORK/node.xml: a domain whose disk
# is this test's image file) and tests/helpers/fake_lvm as "lvm" (this kernel
# has no device-mapper: a regular file stands for /dev/VG/LV, and lvcreate -s
# copies it). The volumes: "disk" (lvm, mode block) and "fs" (lvm, mode
# filesystem: an ext4 image whose snapshot the run fscks and mounts).
#
#   plan        prints every external command and changes nothing
#   run --json  reports each VM's method and freeze_ms, and the point; every
#               point of several incremental runs restores bit-identical
#   crash sweep VMBACK_TEST_CRASH_AT=<each step>: the process dies by SIGKILL
#               and leaves its journal, snapshots and mount; the next run
#               recovers (says so), leaves nothing behind, and succeeds;
#               earlier points stay intact
#   bad input   refused (unknown VM, missing source, no space for the
#               snapshot, duplicate volume names, unknown quiesce method)
#   tree        a directory with a tmpfs and a loop-mounted ext4 inside:
#               one_file_system (default) keeps the mount point directories
#               but not what is mounted on them; one_file_system = false
#               takes it all
#
# Usage: bash tests/integration/run_job.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount, losetup)"
for tool in mkfs.ext4 losetup mount umount cmp python3 rsync; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
# The stand-in lvm, first on PATH; every call it gets is logged. Whatever a
# crashed run leaves mounted under $WORK goes before lib.sh's own clean-up.
use_fake_lvm
unmount_work_on_exit "$WORK/vg"

VG=$WORK/vg
STORE=$WORK/store
STATE=$WORK/state
CFG=$WORK/vmback.toml
mkdir -p "$VG" "$WORK/expect" "$WORK/r" "$WORK/fsrc/etc"

# A sparse 4 MiB image with random data here and there.
truncate -s 4M "$VG/disk"
rand_file "$WORK/chunk" 1M
dd if="$WORK/chunk" of="$VG/disk" bs=1M count=1 conv=notrunc status=none
dd if="$WORK/chunk" of="$VG/disk" bs=4096 count=64 seek=700 conv=notrunc status=none
# An ext4 image with a few files.
echo "hello from inside the LV" >"$WORK/fsrc/hello.txt"
rand_file "$WORK/fsrc/etc/conf" 20000
truncate -s 16M "$VG/fsimg"
mkfs.ext4 -q -F -d "$WORK/fsrc" "$VG/fsimg"

# A domain of the test driver whose disk is the image (found by vms = "auto").
cat >"$WORK/node.xml" <<EOF
<node>
<domain type='test'>
  <name>web</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='$VG/disk'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
</node>
EOF

head_toml() { # STORE STATE
  cat <<EOF
[target]
path = "$1"

[retention]
keep_last = 1000

[libvirt]
uri = "test://$WORK/node.xml"

[run]
state_dir = "$2"

EOF
}
vm_toml() {
  printf '[[vm]]\nname = "web"\nquiesce = "suspend"\n\n'
}
disk_toml() { # [SIZE]
  printf '[[volume]]\nname = "disk"\nsource = "%s"\nsnapshot = "lvm"\nsnapshot_size = "%s"\nmode = "block"\nvms = "auto"\n\n' \
    "$VG/disk" "${1:-64M}"
}
fs_toml() {
  printf '[[volume]]\nname = "fs"\nsource = "%s"\nsnapshot = "lvm"\nsnapshot_size = "64M"\nvms = ["web"]\n\n' "$VG/fsimg"
}
{ head_toml "$STORE" "$STATE"; vm_toml; disk_toml; fs_toml; } >"$CFG"
STEPS=(quiesce:web snapshot:disk snapshot:fs release mount:fs sync drop:disk drop:fs prune)

# Seeded random changes to the image, as the guest would make.
change_disk() { # SEED
  python3 - "$VG/disk" "$1" <<'EOF'
import os, random, sys
path, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
size = os.path.getsize(path)
with open(path, "r+b") as f:
    for _ in range(5):
        n = r.randint(1, 9000)
        off = r.randrange(0, size - n)
        f.seek(off)
        f.write(bytes(r.getrandbits(8) for _ in range(n)))
EOF
}

snapshots_left() { find "$VG" "$WORK" -mindepth 1 -maxdepth 1 \( -name 'vmback-*' -o -name '.vmback-*' \) | sort; }
mounts_under() { awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts; }
store_listing() { (cd "$1" && find . -printf '%p %y %s %T@\n' | sort); }

# Points committed so far, each with a copy of the image it must restore to.
declare -A EXPECT=()

# new_point BEFORE...: the point list now has one more than BEFORE;
# sets NEW_POINT.
new_point() {
  local before=("$@") p b found
  NEW_POINT=
  list_points -c "$CFG"
  for p in "${POINTS[@]}"; do
    found=0
    for b in "${before[@]}"; do [ "$p" = "$b" ] && found=1; done
    [ "$found" -eq 0 ] && NEW_POINT=$p
  done
  _count_check
  [ -n "$NEW_POINT" ] || _fail "no new point (points: ${POINTS[*]:-none})"
  return 0
}

# check_restores POINT WHAT: the point's image restores bit-identical, and
# the fs volume holds the files of the ext4 image.
_R=0
check_restores() {
  local point=$1 what=$2
  _R=$((_R + 1))
  vm restore -c "$CFG" "$point" --to "$WORK/r/$_R"
  expect_rc 0 "$what: restore of point $point"
  check_same_file "${EXPECT[$point]}" "$WORK/r/$_R/disk" "$what: image of point $point"
  check_same_file "$WORK/fsrc/hello.txt" "$WORK/r/$_R/fs/hello.txt" "$what: fs/hello.txt of point $point"
  check_same_file "$WORK/fsrc/etc/conf" "$WORK/r/$_R/fs/etc/conf" "$what: fs/etc/conf of point $point"
  rm -rf -- "$WORK/r/$_R"
}

# check_clean WHAT: nothing of a run is left, and the store is whole.
check_clean() {
  local what=$1 left
  left=$(snapshots_left)
  check_eq "$left" "" "$what: snapshots left"
  check "$what: no journal left" test ! -e "$STATE/journal"
  check_eq "$(mounts_under "$STATE")" "" "$what: mounts left in the state dir"
  vm verify -c "$CFG"
  expect_rc 0 "$what: verify"
}

# ---------------------------------------------------------------------------
section "plan"
vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"
listing=$(store_listing "$STORE")
vm plan -c "$CFG"
expect_rc 0 "plan"
for line in "lvm lvcreate -s -n vmback-disk-<run id> -L 64M -- $VG/disk" \
  "lvm lvremove -f -- $VG/vmback-disk-<run id>" \
  "lvm lvcreate -s -n vmback-fs-<run id> -L 64M -- $VG/fsimg" \
  "fsck -p -t ext4 $VG/vmback-fs-<run id>" \
  "mount -t ext4 -o ro,nosuid,nodev,noexec -- $VG/vmback-fs-<run id> $STATE/mnt-fs" \
  "umount -- $STATE/mnt-fs" \
  "lvm lvremove -f -- $VG/vmback-fs-<run id>" \
  "web: suspend"; do
  _count_check
  grep -qF -- "$line" "$VM_OUT" || { _fail "plan does not show: $line"; _vm_context; }
done
# The plan may ask lvm for the volume group's free space (lvm vgs, a
# query); it must not create or remove anything.
no_lvm_change() { ! grep -qE '^lvm (lvcreate|lvremove)' "$FAKE_LVM_LOG" 2>/dev/null; }
check "plan runs no lvm command that changes anything" no_lvm_change
check "plan makes no state dir" test ! -e "$STATE"
check_eq "$(store_listing "$STORE")" "$listing" "the store after plan"
check_eq "$(snapshots_left)" "" "snapshots after plan"

# ---------------------------------------------------------------------------
section "incremental runs with --json; every point restores bit-identical"
for seed in 1 2 3 4; do
  [ "$seed" -gt 1 ] && change_disk "$seed"
  list_points -c "$CFG"
  before=("${POINTS[@]}")
  cp --sparse=always "$VG/disk" "$WORK/expect/next.img"
  vm run -c "$CFG" --json
  expect_rc 0 "run $seed"
  check "run $seed --json: VM web by suspend with its freeze_ms, and the point" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
vms = r["vms"]
assert [v["name"] for v in vms] == ["web"], vms
assert vms[0]["method"] == "suspend", vms
assert isinstance(vms[0]["freeze_ms"], int) and 0 <= vms[0]["freeze_ms"] < 60000, vms
assert isinstance(r["point"], str) and r["point"], r
assert [v["name"] for v in r["backup"]["volumes"]] == ["disk", "fs"], r["backup"]
assert r["recovered"] == [], r
' "$VM_OUT"
  point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["point"])' "$VM_OUT" 2>/dev/null || true)
  new_point "${before[@]}"
  check_eq "$point" "$NEW_POINT" "run $seed: the point in the report is the new one in list"
  if [ -n "$NEW_POINT" ]; then
    mv "$WORK/expect/next.img" "$WORK/expect/$seed.img"
    EXPECT[$NEW_POINT]=$WORK/expect/$seed.img
  fi
  _count_check
  grep -qF -- "lvm lvcreate -s -n vmback-disk-" "$FAKE_LVM_LOG" || _fail "run $seed: no lvcreate in $FAKE_LVM_LOG"
done
list_points -c "$CFG"
check_eq "${#POINTS[@]}" 4 "points after four runs"
for p in "${POINTS[@]}"; do check_restores "$p" "after four runs"; done
check_clean "after four runs"
FIRST_POINT=${POINTS[0]}

# ---------------------------------------------------------------------------
section "crash sweep: SIGKILL at each step, then the next run recovers"
# The test driver lives inside the vmback process: whatever it did to the
# domain (web paused by the suspend) dies with that process, and the next
# run's connection starts from node.xml again, with web running. So web's
# pause state cannot be observed after a crash; what is checked is the
# journal, the snapshot files and the mount the crashed run left behind,
# and that the next run recovers from them (naming web as resumed when the
# journal says it was quiesced and not released).
seed=100
for step in "${STEPS[@]}"; do
  seed=$((seed + 1))
  change_disk "$seed"
  list_points -c "$CFG"
  before=("${POINTS[@]}")
  cp --sparse=always "$VG/disk" "$WORK/expect/next.img"

  # (bash's "Killed" notice for the child goes to /dev/null)
  { VMBACK_TEST_CRASH_AT=$step vm run -c "$CFG"; } 2>/dev/null
  expect_rc 137 "crash at $step: killed by SIGKILL"

  # What the crashed run left.
  want_snap=0 want_mount=0 want_vm=0 want_journal=1
  case $step in
    snapshot:disk) want_vm=1 ;;
    snapshot:fs | release) want_vm=1 want_snap=1 ;;
    mount:fs) want_snap=1 ;;
    sync | drop:disk | drop:fs) want_snap=1 want_mount=1 ;;
    prune) want_journal=0 ;;
  esac
  if [ "$want_journal" -eq 1 ]; then
    check "crash at $step: the journal is left" test -e "$STATE/journal"
  else
    check "crash at $step (after the commit): no journal" test ! -e "$STATE/journal"
  fi
  [ "$want_snap" -eq 1 ] && check "crash at $step: a snapshot is left" test -n "$(snapshots_left)"
  [ "$want_mount" -eq 1 ] && check "crash at $step: the snapshot is left mounted" test -n "$(mounts_under "$STATE")"
  list_points -c "$CFG"
  if [ "$step" = prune ]; then
    check_eq "${#POINTS[@]}" $((${#before[@]} + 1)) "crash at $step: the point was committed before"
    new_point "${before[@]}"
    if [ -n "$NEW_POINT" ]; then
      cp --sparse=always "$WORK/expect/next.img" "$WORK/expect/crash-$seed.img"
      EXPECT[$NEW_POINT]=$WORK/expect/crash-$seed.img
    fi
  else
    check_eq "${#POINTS[@]}" "${#before[@]}" "crash at $step: no point committed"
  fi

  # The next run recovers, says so, and backs up.
  list_points -c "$CFG"
  before=("${POINTS[@]}")
  vm run -c "$CFG"
  if [ "$want_snap" -eq 1 ] || [ "$want_mount" -eq 1 ] || [ "$want_vm" -eq 1 ]; then
    expect_rc 5 "the run after a crash at $step (recovered: warnings)"
  else
    expect_rc 0 "the run after a crash at $step"
  fi
  [ "$want_vm" -eq 1 ] && expect_err "resumed VM web" "the run after a crash at $step says it resumed web"
  [ "$want_snap" -eq 1 ] && expect_err "dropped snapshot" "the run after a crash at $step says it dropped the snapshot"
  [ "$want_mount" -eq 1 ] && expect_err "unmounted $STATE/mnt-fs" "the run after a crash at $step says it unmounted"
  new_point "${before[@]}"
  if [ -n "$NEW_POINT" ]; then
    mv "$WORK/expect/next.img" "$WORK/expect/$seed.img"
    EXPECT[$NEW_POINT]=$WORK/expect/$seed.img
    check_restores "$NEW_POINT" "the run after a crash at $step"
  fi
  check_clean "after a crash at $step and the next run"
  check_restores "$FIRST_POINT" "after a crash at $step"
done
list_points -c "$CFG"
for p in "${POINTS[@]}"; do check_restores "$p" "after the crash sweep"; done

# ---------------------------------------------------------------------------
section "bad input is refused before anything is done"
# refused NAME RC TEXT: vmback run with $WORK/bad.toml exits RC naming
# TEXT, plan exits 2 (it found a problem) naming it; neither runs an lvm
# command that changes anything nor leaves anything behind.
refused() {
  local what=$1 rc=$2 text=$3 cmd
  for cmd in plan run; do
    rm -f -- "$FAKE_LVM_LOG"
    vm "$cmd" -c "$WORK/bad.toml"
    if [ "$cmd" = plan ]; then expect_rc 2 "$cmd with $what"; else expect_rc "$rc" "$cmd with $what"; fi
    expect_err "$text" "$cmd with $what: the message"
    check "$cmd with $what: no lvm command that changes anything" no_lvm_change
    check_eq "$(snapshots_left)" "" "$cmd with $what: snapshots"
    check "$cmd with $what: no journal" test ! -e "$STATE/journal"
  done
}
{ head_toml "$STORE" "$STATE"; vm_toml; printf '[[vm]]\nname = "ghost"\n\n'; disk_toml
  printf '[[volume]]\nname = "other"\nsource = "%s"\nsnapshot = "lvm"\nmode = "block"\nvms = ["ghost"]\n' "$VG/fsimg"
} >"$WORK/bad.toml"
refused "a VM libvirt does not know" 1 "'ghost'"

{ head_toml "$STORE" "$STATE"; vm_toml; disk_toml
  printf '[[volume]]\nname = "gone"\nsource = "%s"\nsnapshot = "lvm"\nmode = "block"\n' "$VG/gone"
} >"$WORK/bad.toml"
refused "a missing source" 1 "$VG/gone"

{ head_toml "$STORE" "$STATE"; vm_toml; disk_toml; fs_toml
  printf '[[volume]]\nname = "disk"\nsource = "%s"\n' "$WORK/fsrc"
} >"$WORK/bad.toml"
refused "two volumes named disk" 2 "duplicate volume name 'disk'"

{ head_toml "$STORE" "$STATE"; printf '[[vm]]\nname = "web"\nquiesce = "hibernate"\n\n'; disk_toml; } >"$WORK/bad.toml"
refused "an unknown quiesce method" 2 "hibernate"

# More snapshot space than the volume group has (the plan's side of it is in
# plan_problems.sh): the run fails naming the lack of space, and leaves
# nothing behind.
{ head_toml "$STORE" "$STATE"; vm_toml; disk_toml 10G; } >"$WORK/bad.toml"
list_points -c "$CFG"
before=("${POINTS[@]}")
FAKE_LVM_FREE=$((32 * 1024 * 1024)) vm run -c "$WORK/bad.toml"
expect_rc 1 "run with a snapshot larger than the free space"
expect_err "larger than the free space" "run with a snapshot larger than the free space: the message"
check_eq "$(snapshots_left)" "" "no space for the snapshot: snapshots"
check "no space for the snapshot: no journal" test ! -e "$STATE/journal"
list_points -c "$CFG"
check_eq "${#POINTS[@]}" "${#before[@]}" "no space for the snapshot: no point"
vm run -c "$CFG"
expect_rc 0 "the run after the bad ones"
check_clean "after the bad input"
check_restores "$FIRST_POINT" "after the bad input"

# ---------------------------------------------------------------------------
section "a tree with a tmpfs and an ext4 mounted inside it"
TREE=$WORK/tree
mkdir -p "$TREE/sub" "$TREE/tmp" "$TREE/ext"
echo "top" >"$TREE/top.txt"
rand_file "$TREE/sub/data.bin" 100000
mount -t tmpfs -o size=8M tmpfs "$TREE/tmp"
register_mount "$TREE/tmp"
echo "in the tmpfs" >"$TREE/tmp/t.txt"
truncate -s 16M "$WORK/ext.img"
mkfs.ext4 -q -F "$WORK/ext.img"
attach_loop "$WORK/ext.img" EXT_LOOP
mount "$EXT_LOOP" "$TREE/ext"
register_mount "$TREE/ext"
mkdir -p "$TREE/ext/deep"
rand_file "$TREE/ext/deep/e.bin" 50000
check "the tmpfs is a mount point" mountpoint -q "$TREE/tmp"
check "the ext4 is a mount point" mountpoint -q "$TREE/ext"
# What rsync -x (one file system) copies: the mount point directories, empty.
rsync -aHAX -x -- "$TREE/" "$WORK/tree-x/"

for one_fs in default false; do
  store=$WORK/store-$one_fs
  vm store init "$store"
  expect_rc 0 "store init for one_file_system=$one_fs"
  {
    printf '[target]\npath = "%s"\n\n[run]\nstate_dir = "%s"\n\n' "$store" "$WORK/state-$one_fs"
    printf '[[volume]]\nname = "tree"\nsource = "%s"\nsnapshot = "none"\nvms = []\n' "$TREE"
    [ "$one_fs" = false ] && printf 'one_file_system = false\n'
  } >"$WORK/tree-$one_fs.toml"
  vm run -c "$WORK/tree-$one_fs.toml" --json
  # Read live by choice (snapshot = "none"), no VM (vms = []; libvirt not
  # asked): said in the report, no warning.
  expect_rc 0 "run of the tree (one_file_system $one_fs)"
  check "run of the tree: the report says it is read live, by choice" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["sources"]
assert [(v["volume"], v["read_live"], v["by_choice"]) for v in s] == [("tree", True, True)], s' "$VM_OUT"
  vm restore -c "$WORK/tree-$one_fs.toml" latest tree --to "$WORK/r/tree-$one_fs"
  expect_rc 0 "restore of the tree (one_file_system $one_fs)"
  if [ "$one_fs" = default ]; then
    check "mount point directory tmp kept" test -d "$WORK/r/tree-$one_fs/tmp"
    check "mount point directory ext kept" test -d "$WORK/r/tree-$one_fs/ext"
    check_eq "$(ls -A "$WORK/r/tree-$one_fs/tmp")" "" "the tmpfs's contents skipped"
    check_eq "$(ls -A "$WORK/r/tree-$one_fs/ext")" "" "the ext4's contents skipped"
    check_same_file "$TREE/sub/data.bin" "$WORK/r/tree-$one_fs/sub/data.bin" "a file beside the mounts"
    check_same_tree "$WORK/tree-x" "$WORK/r/tree-$one_fs" "one_file_system: as rsync -x copies it"
  else
    check_same_file "$TREE/tmp/t.txt" "$WORK/r/tree-$one_fs/tmp/t.txt" "the tmpfs's file included"
    check_same_file "$TREE/ext/deep/e.bin" "$WORK/r/tree-$one_fs/ext/deep/e.bin" "the ext4's file included"
    check "the ext4's lost+found included" test -d "$WORK/r/tree-$one_fs/ext/lost+found"
    check_same_tree "$TREE" "$WORK/r/tree-$one_fs" "one_file_system = false: the whole tree"
  fi
  check_eq "$(mounts_under "$WORK/state-$one_fs")" "" "tree run ($one_fs): mounts in the state dir"
  check "tree run ($one_fs): no journal" test ! -e "$WORK/state-$one_fs/journal"
done

finish
