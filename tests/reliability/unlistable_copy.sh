#!/usr/bin/env bash
# A copy of the store that cannot be listed never leads to the deletion of
# anything. The mirror B lives on its own ext4 (a loop device in the test's
# temp directory). With B made unlistable in turn:
#
#   packs/, points/ or index/ of B replaced by a regular file (ENOTDIR; the
#   way a broken disk or a half-copied directory shows, and one that chmod
#   cannot make as root), or points/ of the primary A likewise:
#     every command (verify, backup, prune, store sync, restore) either
#     succeeds or fails with exit 1 naming the path, never exit 3 (an I/O
#     error is not damage), and afterwards no file of either copy is gone
#     or changed, none is kept aside as damaged;
#   B's file system unmounted, B a directory inside it (so B is not there),
#   and B the mount point itself (so B is an empty directory):
#     backup and prune go on with A alone (exit 5, naming B); nothing but
#     the points the policy deletes goes; when B is mounted again, store
#     sync brings it in step, verify exits 0, the copies are identical and
#     every kept point restores from each copy alone.
#
# Usage: bash tests/reliability/unlistable_copy.sh /path/to/vmback   (root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=rlib.sh
source "$(dirname -- "$0")/rlib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mount)"
SEED=${VMBACK_SEED:-3}
NOWHERE=$WORK/nowhere
SAVED=$WORK/saved
mkdir -p "$SAVED"

# new_disk NAME: a 32 MiB ext4 on a loop device, mounted at $WORK/NAME.
# Sets DEV_NAME to the loop device.
new_disk() {
  local img=$WORK/$1.img dev
  truncate -s 32M "$img"
  attach_loop "$img" "DEV_$1"
  dev=$(eval "echo \$DEV_$1")
  mkfs.ext4 -q -F -m 0 "$dev"
  mkdir -p "$WORK/$1"
  mount -t ext4 "$dev" "$WORK/$1"
  register_mount "$WORK/$1"
}

# make_pair A B SRC: a mirrored store with four points, sources saved.
make_pair() {
  local a=$1 b=$2 src=$3 g p before
  vm store init "$a" --mirror "$b" --block-size 16K
  [ "$VM_RC" -eq 0 ] || die "store init $a --mirror $b failed: $(cat "$VM_ERR")"
  for g in 1 2 3 4; do
    change_tree "$src" $((SEED * 100 + g))
    fast_points --store "$a"
    before=" ${POINTS[*]:-} "
    vm backup --store "$a" "$src"
    [ "$VM_RC" -eq 0 ] || die "backup failed: $(cat "$VM_ERR")"
    fast_points --store "$a"
    for p in "${POINTS[@]}"; do [[ "$before" == *" $p "* ]] || cp -a -- "$src" "$SAVED/$p"; done
  done
}

_RN=0
restores_ok() { # POINT WHAT STORE-ARGS...
  local point=$1 what=$2 dest
  shift 2
  _RN=$((_RN + 1))
  dest=$WORK/r/$_RN
  mkdir -p "$WORK/r"
  vm restore "$point" src --to "$dest" "$@"
  _count_check
  if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
    _fail "$what: restore of $point failed"
    _vm_context
  else
    check_same_tree "$SAVED/$point" "$dest" "$what: point $point"
  fi
  rm -rf -- "$dest"
}

# check_nothing_lost BEFORE-DIGEST DIR WHAT: every file of the digest is
# still there, unchanged; nothing kept aside as damaged.
check_nothing_lost() {
  local missing
  _count_check
  missing=$(comm -23 <(sort "$1") <(store_digest "$2" | sort))
  [ -z "$missing" ] || _fail "$3: gone or changed in $2: $(echo "$missing" | awk '{print $2}' | head -5 | tr '\n' ' ')"
  check_eq "$(cd "$2" && find . -name '*.bad-*' | head -3)" "" "$3: files kept aside as damaged in $2"
  check "$3: no damage list in $2" test ! -e "$2/damaged"
}

RUNS=0 FAULTS=0 FAILED=0

# ---------------------------------------------------------------------------
section "a directory of a copy replaced by a file"
new_disk d1
A=$WORK/A
B=$WORK/d1/copy
SRC=$WORK/src
make_pair "$A" "$B" "$SRC"
fast_points --store "$A"
ALL=("${POINTS[@]}")
for broken in "$B/packs" "$B/points" "$B/index" "$A/points"; do
  run_begin
  RUNS=$((RUNS + 1))
  what="$(basename "$(dirname "$broken")")/$(basename "$broken") unlistable"
  store_digest "$A" >"$WORK/a.digest"
  store_digest "$B" >"$WORK/b.digest"
  mv -- "$broken" "$broken.real"
  echo "not a directory" >"$broken"
  change_tree "$SRC" $((SEED * 100 + 50 + RUNS))
  rcs=""
  for cmd in "verify" "backup $SRC" "prune --keep-last 1 --repack-below 0.9" "store sync" "restore latest --to $WORK/r/x"; do
    mkdir -p "$WORK/r"
    read -r -a argv <<<"$cmd"
    if [ "${argv[0]}" = store ]; then vm store sync --store "$A"; else vm "${argv[@]}" --store "$A"; fi
    FAULTS=$((FAULTS + 1))
    rcs+=" ${argv[0]}=$VM_RC"
    _count_check
    case $VM_RC in
      0 | 1 | 5) ;;
      *) _fail "$what: vmback $cmd exited $VM_RC (want 0, 1 or 5: an unreadable copy is not damage)"; _vm_context ;;
    esac
    if [ "$VM_RC" -eq 1 ]; then expect_err "$broken" "$what: vmback $cmd names the unlistable directory"; fi
    rm -rf -- "$WORK/r/x"
  done
  echo "    $what: exit statuses:$rcs"
  rm -f -- "$broken"
  mv -- "$broken.real" "$broken"
  check_nothing_lost "$WORK/a.digest" "$A" "$what"
  check_nothing_lost "$WORK/b.digest" "$B" "$what"
  # Once listable again: in step, whole, and nothing lost.
  vm store sync --store "$A"
  expect_rc 0 "$what: store sync once it is back"
  vm verify --store "$A"
  expect_rc 0 "$what: verify once it is back"
  check_copies_identical "$A" "$B" "$what: once it is back"
  fast_points --store "$A"
  for p in "${ALL[@]}"; do
    _count_check
    [[ " ${POINTS[*]} " == *" $p "* ]] || _fail "$what: point $p is gone"
  done
  run_end
  FAILED=$((FAILED + RUN_FAILED))
done
for p in "${ALL[@]}"; do restores_ok "$p" "after the unlistable directories" --store "$A"; done
summary_row "copy directory unlistable (ENOTDIR)" "$RUNS" "$FAULTS" "$FAILED"

# ---------------------------------------------------------------------------
section "the mirror's file system unmounted"
new_disk d2
new_disk d3
RUNS2=0 FAULTS2=0 FAILED2=0
# B inside the file system (gone when unmounted), and B the mount point
# itself (an empty directory when unmounted).
# shellcheck disable=SC2154  # DEV_d2, DEV_d3: set by new_disk
for layout in inside mountpoint; do
  run_begin
  RUNS2=$((RUNS2 + 1))
  if [ "$layout" = inside ]; then
    A=$WORK/A2 MNT=$WORK/d2 B=$WORK/d2/copy SRC=$WORK/s2/src DEV=$DEV_d2
  else
    A=$WORK/A3 MNT=$WORK/d3 B=$WORK/d3 SRC=$WORK/s3/src DEV=$DEV_d3
    rmdir -- "$B/lost+found"
  fi
  what="B $layout an unmounted file system"
  make_pair "$A" "$B" "$SRC"
  fast_points --store "$A"
  before=("${POINTS[@]}")
  store_digest "$A" >"$WORK/a.digest"
  store_digest "$B" >"$WORK/b.digest"
  umount -- "$MNT"
  FAULTS2=$((FAULTS2 + 1))

  change_tree "$SRC" $((SEED * 100 + 90))
  vm backup --store "$A" "$SRC"
  expect_rc 5 "$what: backup with A alone (warnings)"
  expect_err "$B" "$what: backup names the missing mirror"
  fast_points --store "$A"
  newest=${POINTS[${#POINTS[@]}-1]}
  cp -a -- "$SRC" "$SAVED/$newest"
  if [ "$layout" = mountpoint ] && [ -e "$B/config.json" ]; then
    echo "    NOTE: with its file system unmounted, the empty mount point $B was initialized as a new" \
      "copy of the store (store sync's 'replacement disk'), on the file system underneath" >&2
  fi
  vm prune --store "$A" --keep-last 2 --repack-below 0.9
  _count_check
  case $VM_RC in
    0 | 5) ;;
    *) _fail "$what: prune exited $VM_RC"; _vm_context ;;
  esac
  fast_points --store "$A"
  check_eq "${POINTS[*]}" "${before[${#before[@]}-1]} $newest" "$what: the points prune kept"
  for p in "${POINTS[@]}"; do restores_ok "$p" "$what, unmounted" --store "$A"; done
  kept=("${POINTS[@]}")

  # Back: mounted again (over whatever was made in the empty mount point).
  if [ "$layout" = mountpoint ]; then
    find "$B" -mindepth 1 -delete
  fi
  mount -t ext4 "$DEV" "$MNT"
  check_nothing_lost "$WORK/b.digest" "$B" "$what: B as it was before"
  vm store sync --store "$A"
  expect_rc 0 "$what: store sync once B is back"
  vm prune --store "$A" --keep-last 2 --repack-below 0.9
  expect_rc 0 "$what: prune once B is back"
  vm verify --store "$A"
  expect_rc 0 "$what: verify once B is back"
  check_copies_identical "$A" "$B" "$what: once B is back"
  for p in "${kept[@]}"; do
    restores_ok "$p" "$what: A alone" --store "$A" --mirror "$NOWHERE"
    restores_ok "$p" "$what: B alone" --store "$B" --mirror "$NOWHERE"
  done
  run_end
  FAILED2=$((FAILED2 + RUN_FAILED))
done
summary_row "mirror's file system unmounted" "$RUNS2" "$FAULTS2" "$FAILED2"

summary_print "a copy that cannot be listed deletes nothing"
finish
