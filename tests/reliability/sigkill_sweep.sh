#!/usr/bin/env bash
# SIGKILL at seeded random moments of the real binary, on a store mirrored
# over two copies (A, the primary, and B): `vmback backup`, `vmback prune`
# (with its garbage collection) and `vmback store sync` (B catching up after
# it was away for a backup, sometimes also a prune). 18 kills in the short
# run, 1000 with VMBACK_LONG_TESTS=1 (VMBACK_SIGKILL_RUNS=N: N kills);
# VMBACK_SEED picks the seed (default 7).
#
# The moment of each kill is uniform between 0 and the duration of the last
# complete run of the same command, so kills land everywhere in it: opening
# the store, reading, writing packs, index files and manifests, deleting
# points and packs, copying packs between the copies. After each kill:
#
#   * each copy alone lists only whole points (the newest one restores from
#     that copy alone),
#   * verify is clean (it may heal: exit 0 or 5, "ok": true),
#   * every point committed before the kill restores bit-identical; a point
#     the killed backup was making is absent or restores bit-identical; a
#     prune lost nothing it was told to keep,
#   * the same command run again succeeds (exit 0) without manual repair,
#     after which verify exits 0 and the copies are byte-identical.
#
# Usage: bash tests/reliability/sigkill_sweep.sh /path/to/vmback
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=rlib.sh
source "$(dirname -- "$0")/rlib.sh"

RUNS=18
[ "$LONG" = 1 ] && RUNS=1000
[ -n "${VMBACK_SIGKILL_RUNS:-}" ] && RUNS=$VMBACK_SIGKILL_RUNS
SEED=${VMBACK_SEED:-7}
RANDOM=$SEED

A=$WORK/A
B=$WORK/B
SRC=$WORK/src
SAVED=$WORK/saved
PENDING=$WORK/pending
NOWHERE=$WORK/nowhere
mkdir -p "$SAVED"

vm store init "$A" --mirror "$B" --block-size 16K
[ "$VM_RC" -eq 0 ] || die "store init failed: $(cat "$VM_ERR")"

# Points whose content is known: SAVED/<point> holds the sources as backed up.
GEN=0
next_gen() { GEN=$((GEN + 1)); change_tree "$SRC" "$((SEED * 100000 + GEN))"; }

# points_of DIR [ARGS]: POINTS from vmback list (oldest first).
points_of() { fast_points --store "$@"; }

# known_points: the names in SAVED, in the store's order (by list).
saved_has() { [ -d "$SAVED/$1" ]; }

# backup_ok [EXPECTED_RC]: a complete backup of the current sources; saves them
# under the new point's name.
backup_ok() {
  local rc=${1:-0} before p
  points_of "$A"
  before=" ${POINTS[*]:-} "
  vm backup --store "$A" "$SRC"
  expect_rc "$rc" "setup backup"
  points_of "$A"
  for p in "${POINTS[@]}"; do
    if [[ "$before" != *" $p "* ]]; then
      rm -rf -- "${SAVED:?}/$p"
      cp -a -- "$SRC" "$SAVED/$p"
    fi
  done
}

# restores_as STORE_ARGS... -- POINT SAVED_TREE WHAT
_RN=0
restores_as() {
  local args=() point saved what dest
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  point=$1 saved=$2 what=$3
  _RN=$((_RN + 1))
  dest=$WORK/r/$_RN
  mkdir -p "$WORK/r"
  # (--mirror takes several values: it goes last)
  vm restore "$point" --to "$dest" "${args[@]}"
  _count_check
  if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
    _fail "$what: restore of point $point failed"
    _vm_context
  else
    check_same_tree "$saved" "$dest/src" "$what: point $point"
  fi
  rm -rf -- "$dest"
}

# Milliseconds of the last complete run of each command (first guesses).
declare -A EST=([backup]=400 [prune]=300 [sync]=300)

next_gen
backup_ok
next_gen
backup_ok

declare -A RUNS_OF=() KILLS_OF=() FAILED_OF=()
for op in backup prune sync; do RUNS_OF[$op]=0 KILLS_OF[$op]=0 FAILED_OF[$op]=0; done

# Runs until RUNS kills hit a running process (a run that ended before its
# kill is checked the same way, and counted as a run without a fault).
section "$RUNS kills, seed $SEED"
KILLS=0
for ((i = 1; KILLS < RUNS && i <= 3 * RUNS; i++)); do
  ops=(backup prune sync)
  op=${ops[RANDOM % 3]}
  run_begin
  keep_n=0
  case $op in
    backup)
      next_gen
      rm -rf -- "$PENDING"
      cp -a -- "$SRC" "$PENDING"
      args=(backup --store "$A" "$SRC")
      ;;
    prune)
      points_of "$A"
      while [ "${#POINTS[@]}" -lt 4 ]; do
        next_gen
        backup_ok
        points_of "$A"
      done
      keep_n=$((2 + RANDOM % 2))
      args=(prune --store "$A" --keep-last "$keep_n" --repack-below 0.8)
      ;;
    sync)
      mv -- "$B" "$B.away"
      next_gen
      backup_ok 5
      if [ $((RANDOM % 2)) -eq 0 ]; then
        vm prune --store "$A" --keep-last 2 --repack-below 0.8
        expect_rc 5 "setup prune with B away"
      fi
      mv -- "$B.away" "$B"
      args=(store sync --store "$A")
      ;;
  esac
  points_of "$A"
  before=("${POINTS[@]}")

  est=${EST[$op]}
  delay_ms=$((RANDOM * 32768 + RANDOM))
  delay_ms=$((delay_ms % (est + 1)))
  delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
  kill_after "$delay" "${args[@]}"
  RUNS_OF[$op]=$((RUNS_OF[$op] + 1))
  if [ "$KILLED" -eq 1 ]; then
    KILLS=$((KILLS + 1))
    KILLS_OF[$op]=$((KILLS_OF[$op] + 1))
  else
    expect_rc 0 "run $i: $op, not killed (it ended within ${delay}s)"
  fi
  what="run $i: $op killed after ${delay}s"

  # Each copy alone: only points that are known (or the one being made).
  for copy in "$A" "$B"; do
    fast_points --store "$copy" --mirror "$NOWHERE"
    for p in "${POINTS[@]}"; do
      _count_check
      if ! saved_has "$p" && [ "$op" != backup ]; then _fail "$what: $(basename "$copy") alone lists unknown point $p"; fi
    done
    if [ "${#POINTS[@]}" -gt 0 ]; then
      newest=${POINTS[${#POINTS[@]}-1]}
      if saved_has "$newest"; then
        restores_as --store "$copy" --mirror "$NOWHERE" -- "$newest" "$SAVED/$newest" "$what: $(basename "$copy") alone"
      else
        restores_as --store "$copy" --mirror "$NOWHERE" -- "$newest" "$PENDING" "$what: $(basename "$copy") alone, the interrupted point"
      fi
    fi
  done

  # Verify heals what the kill left uneven, and finds nothing wrong.
  vm verify --store "$A" --json
  _count_check
  if { [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; } || ! json_ok "$VM_OUT"; then
    _fail "$what: verify after the kill"
    _vm_context
  fi

  # Every point: known ones restore as saved; a new one only from a backup.
  points_of "$A"
  after=("${POINTS[@]}")
  for p in "${after[@]}"; do
    if saved_has "$p"; then
      restores_as --store "$A" -- "$p" "$SAVED/$p" "$what"
    elif [ "$op" = backup ]; then
      restores_as --store "$A" -- "$p" "$PENDING" "$what: the interrupted point"
      cp -a -- "$PENDING" "$SAVED/$p"
    else
      _count_check
      _fail "$what: unknown point $p appeared"
    fi
  done
  # Nothing lost: every earlier point is there, but those a prune may delete.
  n=${#before[@]}
  for ((k = 0; k < n; k++)); do
    p=${before[k]}
    if [ "$op" = prune ] && [ "$k" -lt $((n - keep_n)) ]; then continue; fi
    _count_check
    [[ " ${after[*]} " == *" $p "* ]] || _fail "$what: point $p is gone"
  done

  # The same command again: it succeeds, and leaves the copies identical.
  t0=$(now_ms)
  vm "${args[@]}"
  t1=$(now_ms)
  expect_rc 0 "$what: the next $op"
  EST[$op]=$((t1 - t0))
  points_of "$A"
  for p in "${POINTS[@]}"; do
    if ! saved_has "$p"; then
      if [ "$op" = backup ]; then
        cp -a -- "$PENDING" "$SAVED/$p"
        restores_as --store "$A" -- "$p" "$SAVED/$p" "$what: the next backup's point"
      else
        _count_check
        _fail "$what: unknown point $p after the next $op"
      fi
    fi
  done
  if [ "$op" = prune ]; then
    check_eq "${#POINTS[@]}" "$keep_n" "$what: points after the next prune --keep-last $keep_n"
    # Forget the pruned points.
    for d in "$SAVED"/*; do
      [ -e "$d" ] || continue
      [[ " ${POINTS[*]} " == *" $(basename "$d") "* ]] || rm -rf -- "$d"
    done
  fi
  vm verify --store "$A"
  expect_rc 0 "$what: verify after the next $op"
  check_copies_identical "$A" "$B" "$what: after the next $op"
  run_end
  [ "$RUN_FAILED" -eq 1 ] && FAILED_OF[$op]=$((FAILED_OF[$op] + 1))
  if [ $((i % 10)) -eq 0 ] || [ "$RUN_FAILED" -eq 1 ]; then
    echo "    run $i: $op; kills so far: backup ${KILLS_OF[backup]}, prune ${KILLS_OF[prune]}, sync ${KILLS_OF[sync]}; failures $FAILURES"
  fi
  # Keep the store small: bound the number of points.
  points_of "$A"
  if [ "${#POINTS[@]}" -gt 5 ]; then
    vm prune --store "$A" --keep-last 3
    expect_rc 0 "housekeeping prune"
    points_of "$A"
    for d in "$SAVED"/*; do
      [[ " ${POINTS[*]} " == *" $(basename "$d") "* ]] || rm -rf -- "$d"
    done
  fi
done

summary_row "SIGKILL of vmback backup (mirrored)" "${RUNS_OF[backup]}" "${KILLS_OF[backup]}" "${FAILED_OF[backup]}"
summary_row "SIGKILL of vmback prune (mirrored)" "${RUNS_OF[prune]}" "${KILLS_OF[prune]}" "${FAILED_OF[prune]}"
summary_row "SIGKILL of vmback store sync" "${RUNS_OF[sync]}" "${KILLS_OF[sync]}" "${FAILED_OF[sync]}"
summary_print "SIGKILL at random moments, seed $SEED"
finish
