# shellcheck shell=bash
# Shared helpers of the reliability sweeps written in shell. A sweep does:
#
#   set -euo pipefail
#   source "$(dirname "$0")/../integration/lib.sh" "$@"
#   source "$(dirname "$0")/rlib.sh"
#   ...
#   summary_row "what" RUNS FAULTS FAILED_RUNS
#   summary_print "title"
#   finish
#
# lib.sh gives the private $WORK, the clean-up traps (mounts, loop devices,
# background processes) and the check_* helpers; this file adds the summary
# table, seeded data and store comparisons.

# LONG=1 with VMBACK_LONG_TESTS=1.
LONG=0
[ "${VMBACK_LONG_TESTS:-0}" = 1 ] && LONG=1

_SUMMARY=()
# summary_row TEST RUNS FAULTS FAILURES
summary_row() { _SUMMARY+=("$1|$2|$3|$4"); }

# summary_print TITLE: the table of every row, and a TOTAL line.
summary_print() {
  local title=$1 row name runs faults fails w=4 tr=0 tf=0 tx=0
  for row in "${_SUMMARY[@]}"; do
    name=${row%%|*}
    [ "${#name}" -gt "$w" ] && w=${#name}
  done
  echo
  if [ "$LONG" = 1 ]; then
    echo "=== reliability summary: $title (long run) ==="
  else
    echo "=== reliability summary: $title (short run) ==="
  fi
  printf "%-${w}s  %8s  %15s  %8s\n" test runs "faults injected" failures
  for row in "${_SUMMARY[@]}"; do
    IFS='|' read -r name runs faults fails <<<"$row"
    printf "%-${w}s  %8s  %15s  %8s\n" "$name" "$runs" "$faults" "$fails"
    tr=$((tr + runs))
    tf=$((tf + faults))
    tx=$((tx + fails))
  done
  printf "%-${w}s  %8s  %15s  %8s\n" TOTAL "$tr" "$tf" "$tx"
}

# A run of a sweep counts as failed when any check failed during it:
#   run_begin; ...checks...; run_end  -> RUN_FAILED is 1 if a check failed.
run_begin() { _RUN_FAILURES0=$FAILURES; }
run_end() {
  # shellcheck disable=SC2034  # RUN_FAILED is for the caller
  RUN_FAILED=0
  # shellcheck disable=SC2034
  [ "$FAILURES" -gt "$_RUN_FAILURES0" ] && RUN_FAILED=1
  return 0
}

# seeded_file PATH SIZE SEED: SIZE deterministic pseudo-random bytes.
seeded_file() {
  python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    while size > 0:
        n = min(size, 1 << 20)
        f.write(r.randbytes(n))
        size -= n
EOF
}

# change_tree DIR SEED [SCALE]: a seeded generation of changes to a source
# tree: a 4 MiB (times SCALE) image patched in a few places, files edited,
# one added, one removed; fixed mtimes from the seed. Creates the tree on
# first use.
change_tree() {
  python3 - "$1" "$2" "${3:-1}" <<'EOF'
import os, random, sys
root, seed, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
t = 1600000000 + seed
os.makedirs(os.path.join(root, "etc/sub"), exist_ok=True)
img = os.path.join(root, "disk.img")
size = (4 << 20) * scale
if not os.path.exists(img):
    with open(img, "wb") as f:
        f.write(random.Random(seed * 7 + 1).randbytes(size))
with open(img, "r+b") as f:
    for _ in range(3):
        n = r.randint(4096, 256 << 10)
        off = r.randrange(0, size - n)
        f.seek(off)
        f.write(r.randbytes(n))
os.utime(img, (t, t))
files = sorted(os.path.join(dp, n) for dp, _, ns in os.walk(os.path.join(root, "etc")) for n in ns)
while len(files) < 12:
    p = os.path.join(root, "etc", "sub" if len(files) % 2 else "", f"f{len(files)}-{seed}.conf")
    open(p, "wb").write(r.randbytes(r.randint(100, 60000)))
    files.append(p)
for p in r.sample(files, 3):
    open(p, "wb").write(r.randbytes(r.randint(100, 60000)))
    os.utime(p, (t, t))
gone = r.choice(files)
os.remove(gone)
new = os.path.join(root, "etc", "sub" if seed % 2 else "", f"n{seed}.conf")
open(new, "wb").write(r.randbytes(r.randint(100, 90000)))
os.utime(new, (t, t))
for d in ("etc/sub", "etc"):
    os.utime(os.path.join(root, d), (t, t))
EOF
}

# store_digest DIR: the store's content files (packs, index files,
# manifests, tombstones, the damage list) with their SHA-256, sorted;
# without config.json, the lock, tmp/ and files kept aside as *.bad-*.
store_digest() {
  (cd "$1" && find packs index points -type f ! -name '*.bad-*' ! -name '*.tmp-*' -print0 2>/dev/null |
    sort -z | xargs -0 -r sha256sum
   [ -f damaged ] && sha256sum damaged
   true)
}

# check_copies_identical A B WHAT
check_copies_identical() {
  local out
  _count_check
  if ! out=$(diff <(store_digest "$1") <(store_digest "$2")); then
    _fail "$3: the copies $1 and $2 differ:"
    printf '%s\n' "$out" | head -20 | sed 's/^/    /' >&2
  fi
  return 0
}

# json_ok FILE: the JSON report in FILE (as vmback prints it) says "ok": true.
json_ok() { grep -q '^  "ok": true' "$1"; }

# fast_points ARGS... (e.g. --store DIR): like lib.sh's list_points (sets
# POINTS, oldest first), from the plain listing, without starting python.
fast_points() {
  POINTS=()
  vm list "$@"
  _count_check
  if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
    _fail "vmback list failed"
    _vm_context
    return 0
  fi
  grep -q '^no points yet' "$VM_OUT" && return 0
  # shellcheck disable=SC2034  # POINTS is for the caller
  mapfile -t POINTS < <(awk '{print $1}' "$VM_OUT")
  return 0
}

# json_get FILE EXPR: prints EXPR over j = the JSON in FILE.
json_get() { json_field "$@"; }

# kill_after SECONDS CMD...: runs vmback with CMD in the background and
# sends it SIGKILL after SECONDS (if still running). Sets KILL_RC (its exit
# status; 137 when killed), KILLED (1 when the signal hit a running
# process), and VM_OUT/VM_ERR/VM_CMD like vm.
kill_after() {
  local delay=$1 pid
  shift
  _VM_N=$((_VM_N + 1))
  VM_OUT="$WORK/.vm/$_VM_N.out"
  VM_ERR="$WORK/.vm/$_VM_N.err"
  mkdir -p "$WORK/.vm"
  # shellcheck disable=SC2034  # VM_CMD is for _vm_context
  VM_CMD="vmback$(printf ' %q' "$@")"
  "$VMBACK" "$@" >"$VM_OUT" 2>"$VM_ERR" &
  pid=$!
  register_pid "$pid"
  sleep "$delay"
  KILLED=0
  if running "$pid"; then
    kill -KILL "$pid" 2>/dev/null && KILLED=1
  fi
  KILL_RC=0
  wait "$pid" 2>/dev/null || KILL_RC=$?
  forget_pid "$pid"
  # A signal that arrived as the process was exiting did not kill it.
  # shellcheck disable=SC2034  # KILLED is for the caller
  [ "$KILL_RC" -ne 137 ] && KILLED=0
  VM_RC=$KILL_RC
  return 0
}

# now_ms: a monotonic-enough clock in milliseconds.
now_ms() { date +%s%3N; }
