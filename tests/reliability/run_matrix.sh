#!/usr/bin/env bash
# Fault matrix of `vmback run` through the real binary, with libvirt's test
# driver (test:///$WORK/node.xml) and tests/helpers/fake_lvm as "lvm" (this
# kernel has no device-mapper: a regular file stands for the LV, lvcreate -s
# copies it).
#
# What is covered elsewhere, and not repeated here:
#   src/run/job_test.cpp      an exception at every step (in-process, domain
#                             states observed), a cancel at 5 steps, failed
#                             resume/drop kept in the journal
#   tests/integration/run_job.sh
#                             SIGKILL at every step of a run with one VM
#                             (suspend) and two LVM volumes
# What this adds, with two VMs (web: suspend, db: agent) and three volumes
# (disk: LVM, block; fs: LVM, ext4 image fsck'ed and mounted; tree: a
# directory, no snapshot), i.e. the steps quiesce:web quiesce:db
# snapshot:disk snapshot:fs snapshot:tree release mount:fs sync drop:disk
# drop:fs drop:tree prune:
#   A  SIGKILL at every step (VMBACK_TEST_CRASH_AT)
#   B  a second SIGKILL in the run that recovers from the first: at a step
#      after its recovery, or at a random moment (often inside the recovery)
#   C  SIGTERM at random moments: the run cleans up by itself (no journal,
#      snapshot or mount is left; the journal going means every VM it had
#      quiesced was resumed)
#   D  SIGKILL at random moments (inside steps: a snapshot being copied, a
#      file system being checked or mounted, blocks being written, GC)
# After each fault: a crashed run left its journal; the next run recovers,
# names every VM the journal had quiesced and not released as resumed, and
# succeeds; then no snapshot, mount or journal is left, verify exits 0, no
# point but the one being made (absent or whole) appeared, and the oldest
# point and every point since the fault restore bit-identical.
#
# Short run: all of A, 3 of B, 4 of C, 6 of D (C and D: signals that reached
# a running process); VMBACK_LONG_TESTS=1: all of A, 36 of B, 40 of C, 60 of
# D. VMBACK_SEED picks the seed.
#
# Usage: bash tests/reliability/run_matrix.sh /path/to/vmback   (root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=rlib.sh
source "$(dirname -- "$0")/rlib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (mount, fsck)"
for tool in mkfs.ext4 mount umount python3 rsync; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
SEED=${VMBACK_SEED:-13}
RANDOM=$SEED

N_B=3 N_C=4 N_D=6
[ "$LONG" = 1 ] && N_B=36 N_C=40 N_D=60

# The stand-in lvm; mounts a crashed run leaves under $WORK, and the loop
# devices `mount -o ro IMAGE` attached for the snapshot images in $WORK/vg,
# go before lib.sh's clean-up.
use_fake_lvm
unmount_work_on_exit "$WORK/vg"
mkdir -p "$WORK/vg" "$WORK/tree/sub" "$WORK/fsrc/etc" "$WORK/expect" "$WORK/r"

VG=$WORK/vg
STORE=$WORK/store
STATE=$WORK/state
CFG=$WORK/vmback.toml

seeded_file "$VG/disk" $((6 << 20)) "$SEED"
seeded_file "$WORK/tree/db.qcow2" 400000 $((SEED + 1))
seeded_file "$WORK/tree/sub/data" 70000 $((SEED + 2))
echo "hello from the LV" >"$WORK/fsrc/hello.txt"
seeded_file "$WORK/fsrc/etc/conf" 30000 $((SEED + 3))
truncate -s 16M "$VG/fsimg"
mkfs.ext4 -q -F -d "$WORK/fsrc" "$VG/fsimg"

cat >"$WORK/node.xml" <<EOF
<node>
<domain type='test'>
  <name>web</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='$VG/disk'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
<domain type='test'>
  <name>db</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='$WORK/tree/db.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
</node>
EOF
cat >"$CFG" <<EOF
[target]
path = "$STORE"

[retention]
keep_last = 6

[libvirt]
uri = "test://$WORK/node.xml"

[run]
state_dir = "$STATE"

[[vm]]
name = "web"
quiesce = "suspend"

[[vm]]
name = "db"
quiesce = "agent"

[[volume]]
name = "disk"
source = "$VG/disk"
snapshot = "lvm"
snapshot_size = "64M"
mode = "block"
vms = "auto"

[[volume]]
name = "fs"
source = "$VG/fsimg"
snapshot = "lvm"
snapshot_size = "64M"
vms = ["db"]

[[volume]]
name = "tree"
source = "$WORK/tree"
snapshot = "none"
vms = ["db"]
EOF
STEPS=(quiesce:web quiesce:db snapshot:disk snapshot:fs snapshot:tree release mount:fs sync drop:disk drop:fs drop:tree prune)

# Seeded changes, as the guests would make them.
GEN=0
change_sources() {
  GEN=$((GEN + 1))
  python3 - "$VG/disk" "$WORK/tree" "$((SEED * 1000 + GEN))" <<'EOF'
import os, random, sys
disk, tree, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = random.Random(seed)
size = os.path.getsize(disk)
with open(disk, "r+b") as f:
    for _ in range(4):
        n = r.randint(1, 20000)
        f.seek(r.randrange(0, size - n))
        f.write(r.randbytes(n))
p = os.path.join(tree, "db.qcow2")
with open(p, "r+b") as f:
    f.seek(r.randrange(0, 390000))
    f.write(r.randbytes(5000))
os.utime(p, (1600000000 + seed, 1600000000 + seed))
with open(os.path.join(tree, "sub", "n%d.txt" % (seed % 5)), "w") as f:
    f.write("change %d\n" % seed)
EOF
}

# What the sources are now, for the point the next run makes.
save_expected() { # NAME
  rm -rf -- "${WORK:?}/expect/$1"
  mkdir -p "$WORK/expect/$1"
  cp --sparse=always -- "$VG/disk" "$WORK/expect/$1/disk"
  cp -a -- "$WORK/tree" "$WORK/expect/$1/tree"
}

snapshots_left() { find "$VG" "$WORK" -mindepth 1 -maxdepth 1 \( -name 'vmback-*' -o -name '.vmback-*' \) | sort; }
mounts_under() { awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts; }

# Point -> the expect/ entry it must restore to.
declare -A EXPECT=()
_RN=0
check_restores() { # POINT WHAT
  local p=$1 what=$2 dest
  _RN=$((_RN + 1))
  dest=$WORK/r/$_RN
  vm restore -c "$CFG" "$p" --to "$dest"
  expect_rc 0 "$what: restore of $p"
  if [ "$VM_RC" -eq 0 ]; then
    check_same_file "$WORK/expect/${EXPECT[$p]}/disk" "$dest/disk" "$what: image of $p"
    check_same_tree "$WORK/expect/${EXPECT[$p]}/tree" "$dest/tree" "$what: tree of $p"
    check_same_file "$WORK/fsrc/hello.txt" "$dest/fs/hello.txt" "$what: fs/hello.txt of $p"
    check_same_file "$WORK/fsrc/etc/conf" "$dest/fs/etc/conf" "$what: fs/etc/conf of $p"
  fi
  rm -rf -- "$dest"
}

# Records the points that appeared since BEFORE as holding expect/NAME.
note_new_points() { # NAME BEFORE...
  local name=$1 p
  shift
  fast_points -c "$CFG"
  NEW_POINTS=()
  for p in "${POINTS[@]}"; do
    if [[ " $* " != *" $p "* ]] && [ -z "${EXPECT[$p]:-}" ]; then
      EXPECT[$p]=$name
      NEW_POINTS+=("$p")
    fi
  done
}

# journal_vms: the VMs the journal has quiesced and not released (the ones
# the next run must resume), one per line.
journal_vms() {
  [ -f "$STATE/journal" ] || return 0
  python3 - "$STATE/journal" <<'EOF'
import json, sys
held = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("op") == "quiesce":
        held.append(r["vm"])
    elif r.get("op") == "released" and r.get("vm") in held:
        held.remove(r["vm"])
for v in held:
    print(v)
EOF
}

# check_clean WHAT: nothing of any run is left, the store is whole.
check_clean() {
  check_eq "$(snapshots_left)" "" "$1: snapshots left"
  check "$1: no journal left" test ! -e "$STATE/journal"
  check_eq "$(mounts_under "$STATE")" "" "$1: mounts left"
  vm verify -c "$CFG"
  expect_rc 0 "$1: verify"
}

# recover_and_check WHAT BEFORE-POINTS...: after a fault: the next run
# recovers, names the VMs it resumed, and succeeds; every check.
recover_and_check() {
  local what=$1 vms v
  shift
  local before=("$@")
  # A point the faulted run may have committed: whole (it holds "cur").
  note_new_points cur "${before[@]}"
  local faulted_new=("${NEW_POINTS[@]}")
  _count_check
  [ "${#faulted_new[@]}" -le 1 ] || _fail "$what: ${#faulted_new[@]} new points from one run"
  vms=$(journal_vms)
  change_sources
  save_expected "g$GEN"
  vm run -c "$CFG" --json
  _count_check
  if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
    _fail "$what: the next run failed (exit $VM_RC)"
    _vm_context
  fi
  for v in $vms; do
    check "$what: the next run resumed VM $v" grep -q "resumed VM $v" "$VM_OUT"
  done
  note_new_points "g$GEN" "${before[@]}" "${faulted_new[@]}"
  check_eq "${#NEW_POINTS[@]}" 1 "$what: points made by the next run"
  check_clean "$what, then the next run"
  for p in "${faulted_new[@]}" "${NEW_POINTS[@]}"; do check_restores "$p" "$what"; done
  fast_points -c "$CFG"
  [ "${#POINTS[@]}" -gt 0 ] && check_restores "${POINTS[0]}" "$what: the oldest point"
  # The faulted run's sources are kept as "cur"; rename for the next fault.
  if [ "${#faulted_new[@]}" -eq 1 ]; then
    rm -rf -- "$WORK/expect/c${faulted_new[0]}"
    mv -- "$WORK/expect/cur" "$WORK/expect/c${faulted_new[0]}"
    EXPECT[${faulted_new[0]}]="c${faulted_new[0]}"
  fi
  # Forget what prune deleted.
  fast_points -c "$CFG"
  for p in "${!EXPECT[@]}"; do
    [[ " ${POINTS[*]} " == *" $p "* ]] || unset "EXPECT[$p]"
  done
}

# A faulted run: sources changed and saved as "cur" first.
prepare_fault() {
  change_sources
  save_expected cur
  fast_points -c "$CFG"
  BEFORE=("${POINTS[@]}")
}

# ---------------------------------------------------------------------------
section "baseline"
vm store init "$STORE"
[ "$VM_RC" -eq 0 ] || die "store init failed"
save_expected g0
vm run -c "$CFG" --json
expect_rc 0 "the first run (the tree volume is read live by choice: no warning)"
note_new_points g0
[ "${#NEW_POINTS[@]}" -eq 1 ] || die "the first run made no point: $(cat "$VM_ERR")"
check_restores "${NEW_POINTS[0]}" "the first run"
check_clean "the first run"
# Timing of a whole run, for the random moments.
prepare_fault
t0=$(now_ms)
vm run -c "$CFG"
RUN_MS=$(($(now_ms) - t0))
note_new_points cur "${BEFORE[@]}"
for p in "${NEW_POINTS[@]}"; do
  rm -rf -- "$WORK/expect/c$p"
  mv -- "$WORK/expect/cur" "$WORK/expect/c$p"
  EXPECT[$p]="c$p"
done
echo "    a whole run takes about $RUN_MS ms"

# ---------------------------------------------------------------------------
section "A: SIGKILL at every step"
RUNS_A=0 FAULTS_A=0 FAILED_A=0
for step in "${STEPS[@]}"; do
  run_begin
  prepare_fault
  { VMBACK_TEST_CRASH_AT=$step vm run -c "$CFG"; } 2>/dev/null
  RUNS_A=$((RUNS_A + 1))
  [ "$VM_RC" -eq 137 ] && FAULTS_A=$((FAULTS_A + 1))
  expect_rc 137 "A: SIGKILL at $step"
  if [ "$step" = prune ]; then
    check "A: SIGKILL at $step (after the commit): no journal" test ! -e "$STATE/journal"
  else
    check "A: SIGKILL at $step: the journal is left" test -e "$STATE/journal"
  fi
  recover_and_check "A: SIGKILL at $step" "${BEFORE[@]}"
  run_end
  FAILED_A=$((FAILED_A + RUN_FAILED))
done
summary_row "run: SIGKILL at every step" "$RUNS_A" "$FAULTS_A" "$FAILED_A"

# ---------------------------------------------------------------------------
section "B: SIGKILL again in the run that recovers"
RUNS_B=0 FAULTS_B=0 FAILED_B=0
for ((i = 0; i < N_B; i++)); do
  run_begin
  first=${STEPS[(i * 5 + SEED) % ${#STEPS[@]}]}
  prepare_fault
  { VMBACK_TEST_CRASH_AT=$first vm run -c "$CFG"; } 2>/dev/null
  RUNS_B=$((RUNS_B + 1))
  [ "$VM_RC" -eq 137 ] && FAULTS_B=$((FAULTS_B + 1))
  note_new_points cur "${BEFORE[@]}"
  if [ "${#NEW_POINTS[@]}" -eq 1 ]; then
    mv -- "$WORK/expect/cur" "$WORK/expect/c${NEW_POINTS[0]}"
    EXPECT[${NEW_POINTS[0]}]="c${NEW_POINTS[0]}"
  fi
  prepare_fault
  if [ $((i % 2)) -eq 0 ]; then
    second=${STEPS[RANDOM % ${#STEPS[@]}]}
    { VMBACK_TEST_CRASH_AT=$second vm run -c "$CFG"; } 2>/dev/null
    label="B: SIGKILL at $first, then at $second"
  else
    delay_ms=$((RANDOM % (RUN_MS / 4 + 1)))
    kill_after "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))" run -c "$CFG"
    label="B: SIGKILL at $first, then after ${delay_ms} ms of the recovering run"
  fi
  [ "$VM_RC" -eq 137 ] && FAULTS_B=$((FAULTS_B + 1))
  recover_and_check "$label" "${BEFORE[@]}"
  run_end
  FAILED_B=$((FAILED_B + RUN_FAILED))
done
summary_row "run: SIGKILL again while recovering" "$RUNS_B" "$FAULTS_B" "$FAILED_B"

# ---------------------------------------------------------------------------
section "C: SIGTERM at random moments"
RUNS_C=0 FAULTS_C=0 FAILED_C=0
# Until N_C signals reached a run that was going (at most 3 N_C runs).
for ((i = 0; FAULTS_C < N_C && i < 3 * N_C; i++)); do
  run_begin
  prepare_fault
  delay_ms=$((RANDOM % (RUN_MS + 1)))
  delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
  "$VMBACK" run -c "$CFG" >"$WORK/term.out" 2>"$WORK/term.err" &
  pid=$!
  register_pid "$pid"
  sleep "$delay"
  signalled=0
  if running "$pid"; then kill -TERM "$pid" 2>/dev/null && signalled=1; fi
  rc=0
  wait "$pid" || rc=$?
  forget_pid "$pid"
  RUNS_C=$((RUNS_C + 1))
  label="C: SIGTERM after ${delay}s"
  # (143: the signal came before the handler was set, before anything was
  # done; the checks below hold all the same.)
  [ "$signalled" -eq 1 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && FAULTS_C=$((FAULTS_C + 1))
  if [ "$signalled" -eq 1 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && [ "$rc" -ne 143 ]; then
    _count_check
    grep -qi "interrupted" "$WORK/term.err" || {
      _fail "$label: the run failed (exit $rc) without saying it was interrupted"
      sed 's/^/    /' "$WORK/term.err" | head -20 >&2
    }
  fi
  # It cleaned up by itself: nothing left, the journal gone (every VM it
  # quiesced resumed), before any other run.
  check_eq "$(snapshots_left)" "" "$label: snapshots left"
  check "$label: no journal left" test ! -e "$STATE/journal"
  check_eq "$(mounts_under "$STATE")" "" "$label: mounts left"
  recover_and_check "$label" "${BEFORE[@]}"
  run_end
  FAILED_C=$((FAILED_C + RUN_FAILED))
done
summary_row "run: SIGTERM at random moments" "$RUNS_C" "$FAULTS_C" "$FAILED_C"

# ---------------------------------------------------------------------------
section "D: SIGKILL at random moments"
RUNS_D=0 FAULTS_D=0 FAILED_D=0
# Until N_D kills hit a run that was going (at most 3 N_D runs).
for ((i = 0; FAULTS_D < N_D && i < 3 * N_D; i++)); do
  run_begin
  prepare_fault
  delay_ms=$((RANDOM % (RUN_MS + 1)))
  kill_after "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))" run -c "$CFG"
  RUNS_D=$((RUNS_D + 1))
  [ "$KILLED" -eq 1 ] && FAULTS_D=$((FAULTS_D + 1))
  recover_and_check "D: SIGKILL after ${delay_ms} ms" "${BEFORE[@]}"
  run_end
  FAILED_D=$((FAILED_D + RUN_FAILED))
done
summary_row "run: SIGKILL at random moments" "$RUNS_D" "$FAULTS_D" "$FAILED_D"

fast_points -c "$CFG"
for p in "${POINTS[@]}"; do check_restores "$p" "at the end"; done
summary_print "vmback run fault matrix (libvirt test driver), seed $SEED"
finish
