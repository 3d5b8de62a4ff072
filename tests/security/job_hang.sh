#!/usr/bin/env bash
# An external command that hangs while a VM is quiet must not keep it quiet:
# with max_freeze = 1 and an lvcreate that never returns (the stand-in
# tests/helpers/fake_lvm with FAKE_LVM_HANG=lvcreate: this kernel has no
# device-mapper), `vmback run` kills the command's process group at the end
# of max_freeze, resumes the VM, drops what the command may have made, names
# the command, and leaves no journal; and SIGTERM during the hang is acted on
# at once (not when the command returns). The hypervisor is libvirt's
# in-process test driver (test:///$WORK/node.xml), whose state lives in the
# vmback process: that the VM really runs again is checked by the unit test
# JobTest.HangingSnapshotCommandIsKilledAtMaxFreeze; here, from outside, the
# run says it resumed the VM after at most max_freeze + 1 s of quiet.
#
#   deadline  max_freeze = 1, lvcreate hangs: web resumed after <= 2 s quiet
#             (as logged), the run over within 5 s, "lvm lvcreate" named,
#             "max_freeze" said, its process group gone, no journal, no
#             mount, no snapshot; the next run succeeds
#   sigterm   max_freeze = 30, lvcreate hangs, SIGTERM once it hangs: exit
#             within 1 s of the signal, "interrupted", its process group
#             gone, no journal; the next run succeeds
#
# Usage: bash tests/security/job_hang.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"

source "$(dirname -- "$0")/job_lib.sh"
use_fake_lvm

VG=$WORK/vg
STATE=$WORK/state
mkdir -p "$VG"
truncate -s 4M "$VG/disk"
rand_file "$WORK/chunk" 256K
dd if="$WORK/chunk" of="$VG/disk" bs=256K count=1 conv=notrunc status=none
write_node_xml "$VG/disk"
job_config "$STATE" 1 "$VG/disk" >"$WORK/fast.toml"
job_config "$STATE" 30 "$VG/disk" >"$WORK/slow.toml"
vm store init "$WORK/store"
expect_rc 0 "store init"

now_ms() { date +%s%3N; }
group_gone() { # PGID WHAT: no live process (zombies for init to reap aside) in it
  _count_check
  local left
  left=$(ps -e -o pgid=,stat=,pid=,args= | awk -v g="$1" '$1 == g && $2 !~ /^Z/')
  if [ -n "$left" ]; then
    _fail "$2: process group $1 of the hung command still has: $left"
    kill -KILL -- "-$1" 2>/dev/null || true
  fi
}
nothing_left() { # WHAT
  check_eq "$(find "$VG" -mindepth 1 -name 'vmback-*' | wc -l)" 0 "$1: no snapshot left"
  check_eq "$(awk -v d="$STATE" 'index($2, d) == 1' /proc/self/mounts | wc -l)" 0 "$1: no mount left"
  _count_check
  [ ! -e "$STATE/journal" ] || _fail "$1: the journal is left: $(cat "$STATE/journal")"
}

section "deadline: lvcreate hangs, max_freeze = 1"
rm -f "$WORK/lvm.log.hang"
t0=$(now_ms)
FAKE_LVM_HANG=lvcreate vm run -c "$WORK/fast.toml"
t1=$(now_ms)
echo "run took $((t1 - t0)) ms"
expect_nonzero "a run whose lvcreate hangs fails"
expect_err "lvm lvcreate" "names the hung command"
expect_err "max_freeze" "says the freeze reached max_freeze"
expect_err "resumed" "says the VMs were resumed"
# How long web was quiet, as vmback measured it from its quiesce to its
# resume: within max_freeze + 1 s. (The whole process, with its start, the
# store and the clean-up after the resume, gets some more.)
quiet=$(sed -n 's/.*VM web resumed after \([0-9.]*\) s quiet.*/\1/p' "$VM_ERR")
echo "web was quiet for $quiet s"
_count_check
if [ -z "$quiet" ] || ! awk -v q="$quiet" 'BEGIN { exit !(q <= 2.0) }'; then
  _fail "web was not resumed within max_freeze + 1 s (quiet for '${quiet:-?}' s)"
  _vm_context
fi
_count_check
[ $((t1 - t0)) -le 5000 ] || _fail "the run took $((t1 - t0)) ms with max_freeze = 1 (at most 5000 expected)"
[ -s "$WORK/lvm.log.hang" ] || die "the stand-in lvcreate never hung"
group_gone "$(cat "$WORK/lvm.log.hang")" "deadline"
nothing_left "deadline"
vm run -c "$WORK/fast.toml"
expect_rc 0 "the next run succeeds"

section "sigterm: lvcreate hangs, max_freeze = 30, SIGTERM"
rm -f "$WORK/lvm.log.hang"
VM_OUT=$WORK/term.out VM_ERR=$WORK/term.err VM_CMD="vmback run -c slow.toml (SIGTERM)"
FAKE_LVM_HANG=lvcreate "$VMBACK" run -c "$WORK/slow.toml" >"$VM_OUT" 2>"$VM_ERR" &
pid=$!
register_pid "$pid"
for _ in $(seq 1 200); do
  [ -s "$WORK/lvm.log.hang" ] && break
  sleep 0.05
done
[ -s "$WORK/lvm.log.hang" ] || die "the stand-in lvcreate never hung"
sleep 0.3
t0=$(now_ms)
kill -TERM "$pid"
VM_RC=0
wait "$pid" || VM_RC=$?
t1=$(now_ms)
forget_pid "$pid"
echo "acted on SIGTERM after $((t1 - t0)) ms"
expect_nonzero "a run stopped by SIGTERM fails"
expect_err "lvm lvcreate" "names the command it stopped"
expect_err "interrupted" "says it was interrupted"
_count_check
[ $((t1 - t0)) -le 1000 ] || _fail "SIGTERM acted on after $((t1 - t0)) ms (at most 1000 expected)"
group_gone "$(cat "$WORK/lvm.log.hang")" "sigterm"
nothing_left "sigterm"
vm run -c "$WORK/fast.toml"
expect_rc 0 "the next run succeeds"

finish
