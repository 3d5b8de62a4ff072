#!/usr/bin/env bash
# kill -9 of `vmback backup --dir` into a plain directory target, at seeded
# moments of a backup of a tree of 1,500 small files (day 1, then
# changed trees): the writes of the files, the barrier (syncfs) that makes
# them durable, the completion of their blockmaps, the commit of the point.
# A dir target keeps no history: a backup rewrites its one point in place.
# After each kill:
#
#   * list shows either no point (killed before the commit) or the point
#     "current" (killed after it), never anything else;
#   * when it shows "current", verify is clean and a restore is the tree the
#     killed run was given, or, when the kill came before the run began to
#     rewrite the target (a few milliseconds in), the tree of the last
#     complete backup: that point is left whole until the rewrite starts;
#   * the next backup succeeds without manual repair (exit 0, or 5 with a
#     warning for each map the kill left incomplete, rebuilt by a compare),
#     trusting no half-written file; the one after it exits 0 (every map
#     trusted again); then verify exits 0 and a restore is identical to the
#     source (rsync -caHAX finds no difference).
#
# Usage: bash tests/integration/dir_target_kill.sh /path/to/vmback
# VMBACK_SEED picks the seed (default 17), VMBACK_KILLS the number of kills
# (default 4).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh" "$@"

GEN=$(dirname -- "$0")/../../bench/gen_tree.py
SEED=${VMBACK_SEED:-17}
KILLS=${VMBACK_KILLS:-4}
RANDOM=$SEED
SRC=$WORK/src
PREV=$WORK/prev # the tree of the last complete backup
T=$WORK/target
mkdir -p "$T"

python3 "$GEN" create "$SRC" --files 1500 --bytes 20000000 --seed "$SEED" >/dev/null

# restored_same WHAT: the target's point restores to a tree identical to SRC.
restored_same() {
  rm -rf "$WORK/r"
  vm restore --dir "$T" current --to "$WORK/r"
  expect_rc 0 "$1: restore"
  check_same_tree "$SRC" "$WORK/r/src" "$1: restore of current"
}

section "day 1, complete"
t0=$(date +%s%N)
vm backup --dir "$T" "$SRC"
expect_rc 0 "day 1 backup"
full_ms=$((($(date +%s%N) - t0) / 1000000))
restored_same "day 1"

for ((k = 1; k <= KILLS; k++)); do
  section "kill $k of $KILLS"
  rsync -aHAX --delete -- "$SRC/" "$PREV/"
  # Odd kills: a day-1 backup of a tree the target never saw (every file
  # new); even ones: a day-2 change of the last tree.
  if ((k % 2)); then
    rm -rf "$SRC"
    python3 "$GEN" create "$SRC" --files 1500 --bytes 20000000 --seed "$((SEED + k))" >/dev/null
  else
    python3 "$GEN" modify "$SRC" --seed "$((SEED + k))" >/dev/null
  fi
  delay_ms=$((RANDOM % (full_ms + 1)))
  "$VMBACK" backup --dir "$T" "$SRC" >"$WORK/killed.out" 2>"$WORK/killed.err" &
  pid=$!
  register_pid "$pid"
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"

  list_points --dir "$T"
  case "${#POINTS[@]}:${POINTS[*]:-}" in
    0:) echo "    killed after ${delay_ms} ms: no point (a mirror being rewritten describes none)" ;;
    1:current)
      echo "    killed after ${delay_ms} ms: the point was committed"
      vm verify --dir "$T"
      expect_rc 0 "kill $k: verify of the point committed before the kill"
      rm -rf "$WORK/r"
      vm restore --dir "$T" current --to "$WORK/r"
      expect_rc 0 "kill $k: restore of the point committed before the kill"
      if trees_same "$PREV" "$WORK/r/src" && ! trees_same "$PREV" "$SRC"; then
        _count_check
        echo "    (the kill came before the rewrite began: the last complete point stands)"
      else
        check_same_tree "$SRC" "$WORK/r/src" "kill $k, committed before the kill: restore of current"
      fi
      ;;
    *) _count_check; _fail "kill $k: list shows ${POINTS[*]}" ;;
  esac

  # Maps the kill left incomplete are rebuilt by a compare, with a warning
  # (exit 5); then a backup of the same tree trusts every map (exit 0).
  vm backup --dir "$T" "$SRC"
  if [ "$VM_RC" -eq 5 ]; then
    expect_err "comparing with the target's data and rebuilding it" "kill $k: the warnings of the next backup"
  else
    expect_rc 0 "kill $k: the next backup"
  fi
  vm backup --dir "$T" "$SRC"
  expect_rc 0 "kill $k: the backup after that (every map trusted)"
  vm verify --dir "$T"
  expect_rc 0 "kill $k: verify after the next backup"
  restored_same "kill $k, after the next backup"
done

finish
