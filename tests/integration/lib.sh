# shellcheck shell=bash
# Shared helpers for the vmback integration tests. A test script does:
#
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh" "$@"     # $1: the vmback binary
#   ...
#   finish
#
# lib.sh makes a private work directory ($WORK, from mktemp -d) and installs
# an EXIT trap that kills background processes the test registered, unmounts
# its mounts, detaches its loop devices and removes $WORK, also on failure.
#
# Checks (check_*, expect_*) record a failure with a clear message and carry
# on, so that one run reports every broken behaviour; `finish` exits 1 if any
# check failed. `die` stops at once (for broken setup, where continuing makes
# no sense). An unexpected failing command stops the test through set -e and
# the ERR trap, naming the line.

set -o errtrace
export LC_ALL=C

if [ $# -lt 1 ] || [ -z "${1:-}" ]; then
  echo "usage: bash $0 /path/to/vmback" >&2
  exit 2
fi
VMBACK=$(realpath -- "$1")
if [ ! -x "$VMBACK" ]; then
  echo "FAIL: vmback binary $1 is not executable" >&2
  exit 2
fi

TEST_NAME=$(basename -- "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmback-${TEST_NAME}.XXXXXX")
FAILURES=0
CHECKS=0
_PIDS=()
_CLEANUPS=()
_MOUNTS=()
_LOOPS=()

_cleanup() {
  local rc=$?
  set +e
  trap - ERR
  local pid child
  for pid in "${_PIDS[@]}"; do
    # Children first (e.g. the command flock(1) runs), by their ids.
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill "$child" 2>/dev/null; done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  local c
  for c in "${_CLEANUPS[@]}"; do eval "$c"; done
  local i m
  for ((i = ${#_MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${_MOUNTS[i]}
    if mountpoint -q -- "$m"; then
      umount -- "$m" 2>/dev/null || { sleep 1; umount -- "$m" 2>/dev/null; } || umount -l -- "$m"
    fi
  done
  local l
  for l in "${_LOOPS[@]}"; do
    losetup -d "$l" 2>/dev/null || { sleep 1; losetup -d "$l"; } ||
      echo "$TEST_NAME: warning: could not detach $l" >&2
  done
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    rm -rf --one-file-system -- "$WORK"
  fi
  if [ "$rc" -ne 0 ]; then
    echo "$TEST_NAME: FAILED (exit $rc; $FAILURES failed check(s) of $CHECKS)" >&2
  fi
  exit "$rc"
}
trap _cleanup EXIT
# Signals (Ctrl-C, a CTest timeout) end the test through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'echo "FAIL: $TEST_NAME: unexpected failure of command at line $LINENO: $BASH_COMMAND" >&2' ERR

# Registers a background process (by PID) to be killed in cleanup.
register_pid() { _PIDS+=("$1"); }
# Ends a registered background process now: its children, then itself, by
# PID; and forgets it, so cleanup will not signal a reused PID.
release_pid() {
  local pid=$1 child p keep=()
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null || true); do kill "$child" 2>/dev/null || true; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  _PIDS=("${keep[@]}")
}
# Registers a shell command to run in cleanup (before unmounting and
# detaching loop devices).
register_cleanup() { _CLEANUPS+=("$1"); }
# Registers a mount point to be unmounted in cleanup.
register_mount() { _MOUNTS+=("$1"); }

# attach_loop FILE VAR: attaches a loop device to FILE and stores its path in
# the variable VAR (not printed: dev=$(...) would register it in a subshell
# and cleanup would never detach it). Detached in cleanup.
attach_loop() {
  local file=$1 var=$2 dev
  dev=$(losetup -f --show -- "$file") || die "losetup -f --show $file failed"
  _LOOPS+=("$dev")
  printf -v "$var" '%s' "$dev"
}

# use_fake_lvm: puts tests/helpers/fake_lvm first on PATH as "lvm" (this
# kernel has no device-mapper: a regular file plays the LV), logging every
# call to $FAKE_LVM_LOG ($WORK/lvm.log), with no fault set.
use_fake_lvm() {
  local fake
  fake=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../helpers" && pwd)/fake_lvm
  [ -f "$fake" ] || die "no $fake"
  mkdir -p "$WORK/bin"
  printf '#!/bin/sh\nexec bash %q "$@"\n' "$fake" >"$WORK/bin/lvm"
  chmod 755 "$WORK/bin/lvm"
  export PATH="$WORK/bin:$PATH"
  export FAKE_LVM_LOG="$WORK/lvm.log"
  unset FAKE_LVM_FREE FAKE_LVM_BUSY_COUNT FAKE_LVM_HANG VMBACK_TEST_CRASH_AT
}

# unmount_work_on_exit DIR: in cleanup, before the mounts and loop devices
# registered here, unmounts whatever is still mounted under $WORK (deepest
# first: what a crashed vmback run left) and detaches the loop devices that
# `mount IMAGE` attached for images in DIR (snapshots of fake LVs).
unmount_work_on_exit() {
  _WORK_IMAGES=$1
  register_cleanup _unmount_work
}
_unmount_work() {
  local m l
  for m in $(awk -v w="$WORK" '$2 == w || index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -- "$m" 2>/dev/null || umount -l -- "$m" 2>/dev/null || true
  done
  for l in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v d="$_WORK_IMAGES/" 'index($2, d) == 1 { print $1 }'); do
    losetup -d "$l" 2>/dev/null || true
  done
}

die() {
  echo "FAIL: $TEST_NAME: $*" >&2
  FAILURES=$((FAILURES + 1))
  exit 1
}

section() { echo "--- $TEST_NAME: $*"; }

# Prints the text printable: control bytes and non-ASCII as escapes.
_show() { printf '%q' "$1"; }

_fail() {
  FAILURES=$((FAILURES + 1))
  echo "FAIL: $TEST_NAME: $*" >&2
}

# Every check counts itself. Checks always return 0 so that set -e does not
# stop the test at the first one.
_count_check() { CHECKS=$((CHECKS + 1)); }

# Runs vmback with the given arguments, never tripping set -e. Afterwards:
#   VM_RC   its exit status
#   VM_OUT  file holding its stdout
#   VM_ERR  file holding its stderr
#   VM_CMD  the command, for messages
_VM_N=0
vm() {
  _VM_N=$((_VM_N + 1))
  VM_OUT="$WORK/.vm/$_VM_N.out"
  VM_ERR="$WORK/.vm/$_VM_N.err"
  mkdir -p "$WORK/.vm"
  VM_CMD="vmback$(printf ' %q' "$@")"
  VM_RC=0
  "$VMBACK" "$@" >"$VM_OUT" 2>"$VM_ERR" || VM_RC=$?
}

# Shows what the last vmback run said, indented, for a failure message.
_vm_context() {
  echo "    command: $VM_CMD" >&2
  echo "    exit status: $VM_RC" >&2
  if [ -s "$VM_ERR" ]; then
    echo "    stderr:" >&2
    head -c 3000 "$VM_ERR" | sed 's/^/      /' >&2
  else
    echo "    stderr: (empty)" >&2
  fi
  if [ -s "$VM_OUT" ]; then
    echo "    stdout:" >&2
    head -c 1500 "$VM_OUT" | sed 's/^/      /' >&2
  fi
}

# expect_rc CODE WHAT: the last vmback run exited with CODE.
expect_rc() {
  _count_check
  if [ "$VM_RC" -ne "$1" ]; then
    _fail "$2: expected exit status $1, got $VM_RC"
    _vm_context
    return 0
  fi
}

# expect_nonzero WHAT: the last vmback run failed.
expect_nonzero() {
  _count_check
  if [ "$VM_RC" -eq 0 ]; then
    _fail "$1: expected a non-zero exit status, got 0"
    _vm_context
    return 0
  fi
}

# expect_err TEXT WHAT: the last vmback run's stderr contains TEXT (fixed
# string, case-insensitive).
expect_err() {
  _count_check
  if ! grep -qiF -- "$1" "$VM_ERR"; then
    _fail "$2: stderr does not contain $(_show "$1")"
    _vm_context
    return 0
  fi
}

# expect_err_re REGEX WHAT: stderr matches the extended regex (case-insensitive).
expect_err_re() {
  _count_check
  if ! grep -qiE -- "$1" "$VM_ERR"; then
    _fail "$2: stderr does not match /$1/"
    _vm_context
    return 0
  fi
}

# check WHAT CMD...: CMD succeeds.
check() {
  local what=$1
  shift
  _count_check
  local rc=0 out
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    _fail "$what (command$(printf ' %q' "$@") exited $rc)"
    [ -n "$out" ] && printf '%s\n' "$out" | head -40 | sed 's/^/    /' >&2
    return 0
  fi
}

# check_eq ACTUAL EXPECTED WHAT
check_eq() {
  _count_check
  if [ "$1" != "$2" ]; then
    _fail "$3: got $(_show "$1"), expected $(_show "$2")"
    return 0
  fi
}

# check_same_tree A B WHAT: rsync finds no difference at all between the
# trees A and B (content by checksum, hard links, ACLs, xattrs, owners, modes,
# mtimes, devices, symlinks; extra files in B count).
check_same_tree() {
  local a=$1 b=$2 what=$3 out rc=0
  _count_check
  out=$(rsync -ncaHAX --delete -i -- "$a/" "$b/" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    _fail "$what: rsync -ncaHAX --delete -i $a/ $b/ found differences (exit $rc):"
    # sed reads it all (no SIGPIPE under pipefail) and prints 60 lines.
    printf '%s\n' "$out" | cat -v | sed -n '1,60s/^/    /p' >&2
    return 0
  fi
}

# trees_same A B: succeeds when rsync finds no difference (as check_same_tree),
# counting and reporting nothing: for a test that accepts one of two trees.
trees_same() {
  local out
  out=$(rsync -ncaHAX --delete -i -- "$1/" "$2/" 2>&1) && [ -z "$out" ]
}

# check_same_file A B WHAT: byte-identical.
check_same_file() {
  local out
  _count_check
  if ! out=$(cmp -- "$1" "$2" 2>&1); then
    _fail "$3: $1 and $2 differ: $out"
    return 0
  fi
}

# list_points ARGS... (e.g. --store DIR): sets POINTS to the point names,
# oldest first, from vmback list --json; records a failure if list fails.
list_points() {
  POINTS=()
  vm list --json "$@"
  _count_check
  if [ "$VM_RC" -ne 0 ]; then
    _fail "vmback list --json failed"
    _vm_context
    return 0
  fi
  local names
  if ! names=$(python3 -c 'import json,sys; [print(p["name"]) for p in json.load(open(sys.argv[1]))]' "$VM_OUT"); then
    _fail "vmback list --json printed something that is not a JSON list of points"
    _vm_context
    return 0
  fi
  # shellcheck disable=SC2034  # POINTS is for the caller
  [ -n "$names" ] && mapfile -t POINTS <<<"$names"
  return 0
}

# check_point_names KIND PATH PREV ARGS... (ARGS name the target, e.g. -c
# FILE): with two points or more, `dump latest~1 PATH` gives the file PREV;
# the time `list` shows for the newest point names it (or, when another
# point shares that second, is refused asking for the name); latest~N past
# the oldest point is refused (exit 2) saying how many points there are.
check_point_names() {
  local kind=$1 path=$2 prev=$3
  shift 3
  list_points "$@"
  local n=${#POINTS[@]}
  vm dump "$@" 'latest~1' "$path"
  expect_rc 0 "$kind: dump latest~1"
  _count_check
  cmp -s -- "$VM_OUT" "$prev" || _fail "$kind: latest~1 is not the point before the newest"
  vm list "$@"
  local time shared
  time=$(tail -1 "$VM_OUT" | awk '{print $2}')
  shared=$(awk -v t="$time" '$2 == t' "$VM_OUT" | wc -l)
  vm ls "$@" "$time"
  if [ "$shared" -eq 1 ]; then
    expect_rc 0 "$kind: ls with the time list shows ($time)"
  else
    expect_rc 2 "$kind: ls with a time $shared points share"
    expect_err "give the name" "$kind: the refusal asks for the name"
  fi
  vm ls "$@" "latest~$n"
  expect_rc 2 "$kind: latest~$n of $n points"
  expect_err "has $n points" "$kind: the refusal says how many points there are"
}

# Random bytes: rand_file PATH SIZE (size as head -c understands: 3M, 12345).
rand_file() { head -c "$2" /dev/urandom >"$1"; }

# Compressible text: text_file PATH SIZE (in bytes).
text_file() {
  python3 -c 'import sys
line = b"a very compressible line of text, again and again\n"
n = int(sys.argv[2])
open(sys.argv[1], "wb").write((line * (n // len(line) + 1))[:n])' "$1" "$2"
}

# change_blocks FILE SEED N: overwrites N seeded 4 KiB-aligned pieces of FILE
# with random bytes; prints how many distinct 128 KiB blocks it touched.
change_blocks() {
  python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
blocks = set()
with open(path, "r+b") as f:
    for _ in range(n):
        off = r.randrange(0, os.path.getsize(path) // 4096) * 4096
        f.seek(off)
        f.write(r.randbytes(4096))
        blocks.add(off // (128 << 10))
print(len(blocks))
EOF
}

# json_field FILE EXPR: prints EXPR evaluated on the JSON in FILE (as d, or j).
json_field() { python3 -c 'import json,sys; d = j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# running PID: the process exists and is not a zombie.
running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# forget_pid PID: drops a background process that has been waited for from
# the cleanup list (release_pid would signal it again).
forget_pid() {
  local p keep=()
  for p in "${_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  _PIDS=("${keep[@]}")
}

# Flips one bit of the byte at OFFSET (default: the middle) of FILE.
flip_bit() {
  python3 - "$1" "${2:-}" <<'EOF'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
off = int(sys.argv[2]) if sys.argv[2] else size // 2
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x10]))
print(off)
EOF
}

# mirrored_store A B SOURCE: a store in A mirrored on B (16 KiB blocks), and
# a config $CFG naming both (path A, mirrors [B]), with one volume "src" of
# SOURCE and its run state in $WORK/state. Stops the test if init fails.
mirrored_store() {
  mkdir -p "$WORK/state"
  vm store init "$1" --mirror "$2" --block-size 16K
  expect_rc 0 "store init $1 --mirror $2"
  [ "$VM_RC" -eq 0 ] || die "cannot go on without a store"
  CFG=$WORK/vmback.toml
  printf '[target]\npath = "%s"\nmirrors = ["%s"]\n\n[run]\nstate_dir = "%s"\n\n[[volume]]\nname = "src"\nsource = "%s"\n' \
    "$1" "$2" "$WORK/state" "$3" >"$CFG"
}

# copy_listing DIR: "sha256 path" of each pack, index file and manifest of a
# store copy, for comparing copies.
copy_listing() {
  (cd "$1" && find packs index points -type f ! -name '*.tmp-*' -exec sha256sum {} + | sort -k2)
}

# damage_block STORE_COPY FILE OFFSET: flips a bit in the middle of the
# 4 KiB block at OFFSET of FILE, inside the pack of STORE_COPY that holds it
# (random data is stored as is).
damage_block() {
  python3 - "$@" <<'EOF'
import glob, sys
copy, src, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
block = open(src, "rb").read()[off:off + 4096]
for p in glob.glob(copy + "/packs/*/*.pack"):
    data = open(p, "rb").read()
    i = data.find(block)
    if i >= 0:
        with open(p, "r+b") as f:
            f.seek(i + 2048)
            f.write(bytes([data[i + 2048] ^ 0x10]))
        sys.exit(0)
sys.exit("block not found in " + copy)
EOF
}

finish() {
  if [ "$FAILURES" -ne 0 ]; then
    echo "$TEST_NAME: $FAILURES of $CHECKS check(s) FAILED" >&2
    exit 1
  fi
  echo "$TEST_NAME: all $CHECKS checks passed"
}

# start_mount NAME DIR ARGS...: `vmback mount ARGS... DIR` in the
# background, its stderr in $WORK/NAME.log; waits until DIR is a mount.
# Sets MOUNT_PID. Stops the test when it does not mount.
start_mount() {
  local name=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  "$VMBACK" mount "$@" "$dir" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  MOUNT_PID=$!
  register_pid "$MOUNT_PID"
  register_mount "$dir"
  local i
  for ((i = 0; i < 200; i++)); do
    mountpoint -q -- "$dir" && return 0
    running "$MOUNT_PID" || break
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  die "vmback mount $* $dir did not mount"
}

# stop_mount SIGNAL DIR: ends the mount as a user would (a signal to the
# command, or `umount DIR` for SIGNAL "umount") and checks that the command
# exits 0 and the mount is gone.
stop_mount() {
  local how=$1 dir=$2 rc=0 i
  if [ "$how" = umount ]; then umount -- "$dir"; else kill "-$how" "$MOUNT_PID"; fi
  for ((i = 0; i < 100; i++)); do running "$MOUNT_PID" || break; sleep 0.1; done
  wait "$MOUNT_PID" || rc=$?
  forget_pid "$MOUNT_PID"
  check_eq "$rc" 0 "$how: vmback mount exits 0"
  check "$how: nothing is left mounted on $dir" bash -c "! mountpoint -q '$dir'"
}
