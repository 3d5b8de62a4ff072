#!/usr/bin/env bash
# Issue 12, case 4: a mirrored store whose first copy (the config's
# [target] path, or --store) is absent is served by the copy that is there,
# by every command, with the warning and exit status of an absent mirror.
# Two directories are the copies, A (the path) and B (the mirror):
#
#   A not there, the store given by a config (path A, mirrors [B]) or by
#     --store A --mirror B: list (0), backup, restore, verify, prune,
#     store sync and run (5: done with warnings), plan (0); each names A as
#     absent, none suggests making a new store; nothing is written where A
#     belongs
#   A an empty directory (an unmounted disk's mount point): the same, and A
#     stays empty
#   the store given by --store A alone, with A not there: refused (1),
#     naming A and saying to mount its disk; by --store B: served by B (5)
#   neither copy there: refused (1), naming both
#   A back: store sync brings it in step; the copies are identical and
#     every point restores from A alone
#
# Usage: bash tests/integration/copy_primary_absent.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
for tool in python3 rsync; do command -v "$tool" >/dev/null || die "needs $tool"; done

A=$WORK/usb1/vmback
B=$WORK/usb2/vmback
SRC=$WORK/src
mkdir -p "$WORK/usb1" "$WORK/usb2" "$SRC"
rand_file "$SRC/a" 200000
echo first >"$SRC/b"

mirrored_store "$A" "$B" "$SRC"
vm backup -c "$CFG"
expect_rc 0 "a first backup with both copies"

# no_init_hint WHAT: the last command did not suggest making a new store.
no_init_hint() {
  _count_check
  if grep -q "store init" "$VM_ERR"; then
    _fail "$1: suggests making a new store while a copy of it is there"
    _vm_context
  fi
}

# every_command WHAT STORE-ARGS...: each command, served by B alone. With
# --store, backup is given the source ($PATHS).
PATHS=()
RN=0
every_command() {
  local what=$1
  shift
  vm list "$@"
  expect_rc 0 "$what: list"
  expect_err "copy $A" "$what: list names the absent copy"
  no_init_hint "$what: list"
  echo "changed $RN" >"$SRC/b"
  vm backup "$@" --json "${PATHS[@]}"
  expect_rc 5 "$what: backup (done with warnings)"
  expect_err "copy $A" "$what: backup names the absent copy"
  no_init_hint "$what: backup"
  RN=$((RN + 1))
  vm restore latest src --to "$WORK/r/$RN" "$@"
  expect_rc 5 "$what: restore"
  check_same_tree "$SRC" "$WORK/r/$RN" "$what: restore of the point just made"
  vm verify "$@"
  expect_rc 5 "$what: verify"
  expect_err "copy $A" "$what: verify names the absent copy"
  vm prune "$@" --keep-last 20
  expect_rc 5 "$what: prune"
  vm store sync "$@"
  expect_rc 5 "$what: store sync"
  expect_err "copy $A" "$what: store sync names the absent copy"
  no_init_hint "$what: store sync"
}

mkdir -p "$WORK/r"

section "A not there, the store given by a config"
mv -- "$A" "$A.away"
every_command "config, A not there" -c "$CFG"
vm plan -c "$CFG"
expect_rc 0 "plan with A not there"
check "plan opens the store at B" grep -q "open the store $B" "$VM_OUT"
expect_err "$A" "plan names the absent copy"
no_init_hint "plan"
echo "run $RN" >"$SRC/b"
vm run -c "$CFG"
expect_rc 5 "run with A not there (done with warnings)"
expect_err "copy $A" "run names the absent copy"
no_init_hint "run"
check "nothing was written where A belongs" test ! -e "$A"

section "A not there, the store given by --store A --mirror B"
PATHS=("$SRC")
every_command "--store A --mirror B, A not there" --store "$A" --mirror "$B"
PATHS=()
check "nothing was written where A belongs" test ! -e "$A"

section "A an empty directory (its disk not mounted)"
mkdir -m 0755 "$A"
every_command "config, A empty" -c "$CFG"
check "the empty directory A is left empty" test -z "$(ls -A "$A")"
rmdir -- "$A"

section "the store given by its path alone"
vm list --store "$A"
expect_rc 1 "list --store A with A not there"
expect_err "no vmback store at $A: it is not there" "the error names A"
expect_err "mount it" "the error says to mount its disk"
vm list --store "$B"
expect_rc 0 "list --store B with A not there"
expect_err "copy $A is not there" "list --store B names the absent copy"
vm backup --store "$B" "$SRC"
expect_rc 5 "backup --store B with A not there"

section "neither copy there"
mv -- "$B" "$B.away"
vm list -c "$CFG"
expect_rc 1 "list with no copy there"
expect_err "no copy of the store is there: $A is not there; $B is not there" "the error names both copies"
mv -- "$B.away" "$B"

section "A back"
mv -- "$A.away" "$A"
vm store sync -c "$CFG"
expect_rc 0 "store sync with A back"
check "the copies are identical" diff <(copy_listing "$A") <(copy_listing "$B")
vm verify -c "$CFG"
expect_rc 0 "verify with both copies"
list_points --store "$B"
NB=${#POINTS[@]}
check "the backups made without A made points ($NB)" test "$NB" -ge 4
vm restore latest src --to "$WORK/r/last" --store "$A" --mirror "$WORK/nowhere"
expect_rc 5 "restore from A alone"
check_same_tree "$SRC" "$WORK/r/last" "the newest point, restored from A alone"

finish
