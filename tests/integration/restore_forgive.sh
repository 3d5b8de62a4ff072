#!/usr/bin/env bash
# Restore paths that forgive (issue 16), on a store and on a dir target:
# - point names: the time `vmback list` shows in its second column and
#   latest~N are accepted by restore, dump, ls, diff and find --point; a
#   name that is not there is refused with the nearest names listed;
# - restore --to - writes one file to standard output (a directory is
#   refused, saying so);
# - restore --force onto an existing tree merges (extra.txt stays), --delete
#   makes it exactly the point (extra.txt and a planted symlink go; what the
#   symlink points to is untouched);
# - an interrupted restore (SIGINT, SIGTERM) exits 130 (143), leaves nothing
#   under the final name and no temporary, and the next attempt succeeds;
#   backup and run interrupted by SIGINT exit 130 too, committing nothing.
#
# Usage: bash tests/integration/restore_forgive.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

command -v python3 >/dev/null || die "needs python3"
cd "$WORK"  # a restore --to - that made a file would make it here

SRC=$WORK/tree
mkdir -p "$SRC/sub"
printf 'one\n' >"$SRC/a.txt"
printf 'leaf\n' >"$SRC/sub/c.txt"

STORE=$WORK/store
vm store init "$STORE" --block-size 4K
expect_rc 0 "store init"
vm backup --store "$STORE" "$SRC"
expect_rc 0 "first backup"
sleep 1.1
printf 'two\n' >"$SRC/a.txt"
vm backup --store "$STORE" "$SRC"
expect_rc 0 "second backup"
list_points --store "$STORE"
[ "${#POINTS[@]}" -eq 2 ] || die "expected 2 points, got ${#POINTS[@]}"
FIRST=${POINTS[0]}

section "store: the time list shows is a point name"
vm list --store "$STORE"
expect_rc 0 "list"
TIME1=$(head -1 "$VM_OUT" | awk '{print $2}')
[[ $TIME1 == *T*:*Z ]] || die "list's second column is not a time: $TIME1"
vm dump --store "$STORE" "$TIME1" tree/a.txt
expect_rc 0 "store: dump with the time of the first point"
check_eq "$(cat "$VM_OUT")" one "store: the time names the first point"
vm restore --store "$STORE" "$TIME1" tree/a.txt --to "$WORK/by-time.txt"
expect_rc 0 "store: restore with the time of the first point"
check_eq "$(cat "$WORK/by-time.txt" 2>&1)" one "store: restore by time gives the first point's file"
vm ls --store "$STORE" "$TIME1" tree
expect_rc 0 "store: ls with a time"
vm find --store "$STORE" --point "$TIME1" 'tree/*.txt'
expect_rc 0 "store: find --point with a time"
check "store: find --point with a time names the first point" grep -qF "$FIRST" "$VM_OUT"

section "store: latest~N"
vm dump --store "$STORE" 'latest~1' tree/a.txt
expect_rc 0 "store: dump latest~1"
check_eq "$(cat "$VM_OUT")" one "store: latest~1 is the point before the newest"
vm dump --store "$STORE" 'latest~0' tree/a.txt
expect_rc 0 "store: dump latest~0"
check_eq "$(cat "$VM_OUT")" two "store: latest~0 is the newest"
vm diff --store "$STORE" 'latest~1' latest
expect_rc 0 "store: diff latest~1 latest"
check "store: diff latest~1 latest shows the changed file" grep -q 'a.txt' "$VM_OUT"
vm restore --store "$STORE" 'latest~2' --to "$WORK/nope"
expect_rc 2 "store: latest~2 of two points"
expect_err "latest~2" "store: the refusal names latest~2"
expect_err "2 points" "store: the refusal says how many points there are"
vm restore --store "$STORE" 'latest~x' --to "$WORK/nope"
expect_nonzero "store: latest~x"

section "store: a point not there lists the nearest names"
vm restore --store "$STORE" 2020-01-01T000000Z --to "$WORK/nope"
expect_rc 1 "store: a point not there"
expect_err "point '2020-01-01T000000Z' not found" "store: the refusal names the point"
expect_err "$FIRST" "store: the refusal lists the nearest names"
check "store: nothing restored for a point not there" test ! -e "$WORK/nope"

section "store: restore --to - writes one file to standard output"
vm restore --store "$STORE" latest tree/sub/c.txt --to -
expect_rc 0 "store: restore --to -"
check_eq "$(cat "$VM_OUT")" leaf "store: --to - gives the file's bytes"
check "store: no file named - made" test ! -e ./-
vm restore --store "$STORE" latest tree/sub --to -
expect_rc 2 "store: restore of a directory --to -"
expect_err "--to - writes one file to standard output" "store: the refusal says what --to - is for"
expect_err "directory" "store: the refusal says it is a directory"

# merge_and_delete KIND DEST...: --force merges; --delete makes it exact.
merge_and_delete() {
  local kind=$1
  shift
  local dest=("$@") D=$WORK/merge-$kind
  section "$kind: restore --force merges, --delete makes the tree exactly the point"
  mkdir -p "$D/sub" "$WORK/victim-$kind"
  printf 'extra\n' >"$D/extra.txt"
  printf 'precious\n' >"$WORK/victim-$kind/keep.txt"
  vm restore "${dest[@]}" latest tree --to "$D" --force
  expect_rc 0 "$kind: restore --force onto a tree"
  check "$kind: --force merges: extra.txt stays" test -f "$D/extra.txt"
  check_eq "$(cat "$D/a.txt" 2>&1)" two "$kind: --force restored the point's file"
  ln -s "$WORK/victim-$kind" "$D/planted"
  ln -s "$WORK/victim-$kind" "$D/sub/planted2"
  vm restore "${dest[@]}" latest tree --to "$D" --delete
  expect_rc 0 "$kind: restore --delete onto a tree"
  check "$kind: --delete removes extra.txt" test ! -e "$D/extra.txt"
  check "$kind: --delete removes a planted symlink" test ! -L "$D/planted"
  check "$kind: --delete removes a planted symlink below" test ! -L "$D/sub/planted2"
  check "$kind: what the symlink pointed to is untouched" test -f "$WORK/victim-$kind/keep.txt"
  check_same_tree "$SRC" "$D" "$kind: after --delete the tree is exactly the point"
}
merge_and_delete store --store "$STORE"

section "dir target"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR" "$WORK/bigmirror"
vm backup --dir "$MIRROR" "$SRC"
expect_rc 0 "dir: backup"
vm list --dir "$MIRROR"
expect_rc 0 "dir: list"
DTIME=$(head -1 "$VM_OUT" | awk '{print $2}')
vm dump --dir "$MIRROR" "$DTIME" tree/a.txt
expect_rc 0 "dir: dump with the time list shows"
check_eq "$(cat "$VM_OUT")" two "dir: the time names the point"
vm dump --dir "$MIRROR" 'latest~0' tree/a.txt
expect_rc 0 "dir: dump latest~0"
vm ls --dir "$MIRROR" 'latest~1'
expect_rc 2 "dir: latest~1 of one point"
expect_err "1 point" "dir: the refusal says how many points there are"
vm ls --dir "$MIRROR" curent
expect_nonzero "dir: a misspelt point"
expect_err "current" "dir: the refusal lists the nearest name"
vm restore --dir "$MIRROR" latest tree/sub/c.txt --to -
expect_rc 0 "dir: restore --to -"
check_eq "$(cat "$VM_OUT")" leaf "dir: --to - gives the file's bytes"
merge_and_delete dir --dir "$MIRROR"

# interrupt KIND SIGNAL CODE DEST...: a restore of big.bin stopped by SIGNAL
# exits CODE, leaves neither the file nor a temporary; a rerun succeeds.
interrupt() {
  local kind=$1 sig=$2 code=$3
  shift 3
  local dest=("$@") D=$WORK/int-$kind-$sig
  section "$kind: restore interrupted by SIG$sig"
  mkdir -p "$D"
  "$VMBACK" restore "${dest[@]}" latest big/big.bin --to "$D/big.bin" >"$WORK/int.out" 2>"$WORK/int.err" &
  local pid=$!
  register_pid "$pid"
  for _ in $(seq 400); do
    [ -n "$(ls -A "$D")" ] && break
    sleep 0.02
  done
  check "$kind: the restore still ran when SIG$sig came" kill -"$sig" "$pid"
  local rc=0
  wait "$pid" || rc=$?
  forget_pid "$pid"
  check_eq "$rc" "$code" "$kind: restore stopped by SIG$sig exits $code"
  check "$kind: no partial file under the final name" test ! -e "$D/big.bin"
  check_eq "$(ls -A "$D")" "" "$kind: no temporary left behind"
  vm restore "${dest[@]}" latest big/big.bin --to "$D/big.bin"
  expect_rc 0 "$kind: the next restore succeeds"
  check_same_file "$WORK/big/big.bin" "$D/big.bin" "$kind: the rerun restored the whole file"
  check_eq "$(stat -c %a "$D/big.bin")" "$(stat -c %a "$WORK/big/big.bin")" "$kind: the file has its mode"
}

mkdir -p "$WORK/big"
rand_file "$WORK/big/big.bin" 400M
chmod 644 "$WORK/big/big.bin"
BIGSTORE=$WORK/bigstore
vm store init "$BIGSTORE"
vm backup --store "$BIGSTORE" "$WORK/big"
expect_rc 0 "store: backup of a big file"
interrupt store INT 130 --store "$BIGSTORE"
interrupt store TERM 143 --store "$BIGSTORE"
vm backup --dir "$WORK/bigmirror" "$WORK/big"
expect_rc 0 "dir: backup of a big file"
interrupt dir INT 130 --dir "$WORK/bigmirror"

# sigint_after WHAT ARGS...: vmback ARGS in the background, stopped by
# SIGINT after 1.5 s while it reads big.bin (20M/s): it exits 130 and
# commits no point.
sigint_after() {
  local what=$1
  shift
  touch "$WORK/big/big.bin"  # read again, slowly
  "$VMBACK" "$@" >"$WORK/sigint.out" 2>"$WORK/sigint.err" &
  local pid=$!
  register_pid "$pid"
  sleep 1.5
  check "the $what still ran when SIGINT came" kill -INT "$pid"
  local rc=0
  wait "$pid" || rc=$?
  forget_pid "$pid"
  check_eq "$rc" 130 "$what stopped by SIGINT exits 130"
  list_points --store "$BIGSTORE"
  check_eq "${#POINTS[@]}" 1 "an interrupted $what commits no point"
}

section "backup and run interrupted by SIGINT exit 130"
sigint_after backup backup --store "$BIGSTORE" --read-limit 20M "$WORK/big"
mkdir -p "$WORK/state"
cat >"$WORK/run.toml" <<TOML
[target]
path = "$BIGSTORE"

[[volume]]
name = "big"
source = "$WORK/big"
snapshot = "none"
vms = []

[run]
state_dir = "$WORK/state"
read_limit = "20M"
TOML
sigint_after run run -c "$WORK/run.toml"

finish
