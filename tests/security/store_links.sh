#!/usr/bin/env bash
# Symlinks, fifos and device nodes planted in a store (issue 11, "Following
# links planted in a store"). A store lives on a removable disk anyone may
# have handled: `lock -> /etc/x` must not truncate /etc/x, a dangling `lock`
# must not create its target, `tmp -> DIR` must not empty DIR, and a
# symlinked packs/, packs/XX/, index/, points/, config.json, damaged or
# manifest must not be read or written through. Every case starts from a
# real store made by the binary, plants the link, runs the binary, and
# checks the exit status, that the message names the planted entry, and that
# a sentinel tree (holding every link target) is byte for byte unchanged.
# Mirrors go through the same code: a copy with a planted link is left out
# (exit 5, named), nothing written into it.
#
# usage: bash store_links.sh /path/to/vmback
set -euo pipefail
source "$(dirname "$0")/../integration/lib.sh" "$@"

SRC=$WORK/src
SENT=$WORK/sentinel
mkdir -p "$SRC/sub" "$SENT/victimdir" "$SENT/pts" "$SENT/packs" "$SENT/idx"
text_file "$SRC/a.txt" 200
rand_file "$SRC/sub/b.bin" 300000
echo "root:precious" >"$SENT/victim"
echo "keep me" >"$SENT/victimdir/one"
echo "keep me too" >"$SENT/victimdir/two"
echo "not a manifest" >"$SENT/pts/x.json"

# tree_state DIR: one line per entry (type, mode, size, link target, hash),
# so that any write, truncation, creation or deletion shows.
tree_state() {
  (cd "$1" && find . -printf '%y %m %s %l %p\n' | sort &&
    find . -type f -print0 | sort -z | xargs -0r sha256sum)
}
tree_state "$SENT" >"$WORK/sentinel.before"

sentinel_unchanged() {
  _count_check
  tree_state "$SENT" >"$WORK/sentinel.after"
  if ! cmp -s "$WORK/sentinel.before" "$WORK/sentinel.after"; then
    _fail "$1: the sentinel tree (the links' targets) changed"
    diff "$WORK/sentinel.before" "$WORK/sentinel.after" | head -20 >&2 || true
  fi
}

# new_store NAME [--mirror DIR]: a store with two points; sets S.
new_store() {
  S=$WORK/$1
  shift
  vm store init "$S" "$@"
  expect_rc 0 "store init $S"
  vm backup --store "$S" "$SRC"
  expect_rc 0 "first backup into $S"
  echo more >>"$SRC/a.txt"
  vm backup --store "$S" "$SRC"
  expect_rc 0 "second backup into $S"
}

# refused WHAT ENTRY ARGS...: runs vmback ARGS; it must fail, name ENTRY as a
# symbolic link, and leave the sentinel alone.
refused() {
  local what=$1 entry=$2
  shift 2
  vm "$@"
  expect_nonzero "$what"
  expect_err "$entry" "$what names the planted entry"
  expect_err "symbolic link" "$what says it is a symbolic link"
  sentinel_unchanged "$what"
}

# ---------------------------------------------------------------------------
section "lock -> a file outside: never truncated or written"
new_store lockln
rm -f -- "$S/lock"
ln -s -- "$SENT/victim" "$S/lock"
refused "backup with lock -> victim" "$S/lock" backup --store "$S" "$SRC"
refused "list with lock -> victim" "$S/lock" list --store "$S"
refused "verify with lock -> victim" "$S/lock" verify --store "$S"
refused "prune with lock -> victim" "$S/lock" prune --store "$S" --keep-last 1
refused "store sync with lock -> victim" "$S/lock" store sync --store "$S"
refused "restore with lock -> victim" "$S/lock" restore --store "$S" latest --to "$WORK/out-lockln"
check "restore wrote nothing" test ! -e "$WORK/out-lockln"

section "write.lock -> a file outside: never truncated or written"
new_store wlockln
rm -f -- "$S/write.lock"
ln -s -- "$SENT/victim" "$S/write.lock"
refused "backup with write.lock -> victim" "$S/write.lock" backup --store "$S" "$SRC"
refused "prune with write.lock -> victim" "$S/write.lock" prune --store "$S" --keep-last 1

section "a dangling lock symlink does not create its target"
new_store lockdangle
rm -f -- "$S/lock"
ln -s -- "$SENT/created-by-vmback" "$S/lock"
refused "backup with a dangling lock" "$S/lock" backup --store "$S" "$SRC"
refused "list with a dangling lock" "$S/lock" list --store "$S"
check "the dangling lock's target was not created" test ! -e "$SENT/created-by-vmback"

section "tmp -> a directory outside: nothing in it deleted"
new_store tmpln
rmdir -- "$S/tmp"
ln -s -- "$SENT/victimdir" "$S/tmp"
refused "backup with tmp -> victimdir" "$S/tmp" backup --store "$S" "$SRC"
refused "prune with tmp -> victimdir" "$S/tmp" prune --store "$S" --keep-last 1
refused "list with tmp -> victimdir" "$S/tmp" list --store "$S"

section "packs, packs/XX, index, points as symlinks"
for sub in packs index points; do
  new_store "sub-$sub"
  mv -- "$S/$sub" "$WORK/real-$sub"
  ln -s -- "$WORK/real-$sub" "$S/$sub"
  tree_state "$WORK/real-$sub" >"$WORK/real-$sub.before"
  refused "backup with $sub -> outside" "$S/$sub" backup --store "$S" "$SRC"
  refused "list with $sub -> outside" "$S/$sub" list --store "$S"
  refused "restore with $sub -> outside" "$S/$sub" restore --store "$S" latest --to "$WORK/out-$sub"
  tree_state "$WORK/real-$sub" >"$WORK/real-$sub.after"
  check "nothing written into the real $sub/ through the link" cmp -s "$WORK/real-$sub.before" "$WORK/real-$sub.after"
done
new_store packsxx
xx=$(cd "$S/packs" && ls | head -1)
mv -- "$S/packs/$xx" "$WORK/real-xx"
ln -s -- "$WORK/real-xx" "$S/packs/$xx"
refused "backup with packs/$xx -> outside" "$S/packs/$xx" backup --store "$S" "$SRC"
refused "verify with packs/$xx -> outside" "$S/packs/$xx" verify --store "$S"

section "config.json, damaged and a manifest as symlinks"
new_store cfgln
mv -- "$S/config.json" "$WORK/real-config.json"
ln -s -- "$WORK/real-config.json" "$S/config.json"
refused "backup with config.json -> outside" "$S/config.json" backup --store "$S" "$SRC"
refused "list with config.json -> outside" "$S/config.json" list --store "$S"

new_store damagedln
ln -s -- "$SENT/victim" "$S/damaged"
refused "backup with damaged -> victim" "$S/damaged" backup --store "$S" "$SRC"
refused "verify with damaged -> victim" "$S/damaged" verify --store "$S"

new_store manifestln
pt=$(cd "$S/points" && ls | head -1)
rm -f -- "$S/points/$pt"
ln -s -- "$SENT/pts/x.json" "$S/points/$pt"
refused "list with a manifest -> outside" "$S/points/$pt" list --store "$S"
refused "prune with a manifest -> outside" "$S/points/$pt" prune --store "$S" --keep-last 1

section "a fifo as the lock or config.json: refused, no hang"
new_store fifo
rm -f -- "$S/lock"
mkfifo -- "$S/lock"
VM_RC=0
vm_start=$SECONDS
timeout 20 "$VMBACK" list --store "$S" >"$WORK/fifo.out" 2>"$WORK/fifo.err" || VM_RC=$?
VM_ERR=$WORK/fifo.err
check "list with a fifo as lock returned within 20 s" test "$VM_RC" -ne 124
check "list with a fifo as lock failed" test "$VM_RC" -ne 0
expect_err "$S/lock" "the fifo lock is named"
check "took under 10 s" test $((SECONDS - vm_start)) -lt 10

section "a mirror with a planted link is left out, nothing written into it"
new_store mirr --mirror "$WORK/mirr-b"
B=$WORK/mirr-b
rm -f -- "$B/lock"
ln -s -- "$SENT/victim" "$B/lock"
rmdir -- "$B/tmp" && ln -s -- "$SENT/victimdir" "$B/tmp"
tree_state "$B" >"$WORK/mirr-b.before"
vm backup --store "$S" "$SRC"
expect_rc 5 "backup with a planted link in the mirror (exit 5: a copy absent)"
expect_err "$B" "the mirror is named"
expect_err "symbolic link" "the mirror's planted link is called one"
sentinel_unchanged "backup with links planted in the mirror"
tree_state "$B" >"$WORK/mirr-b.after"
check "nothing written into the mirror" cmp -s "$WORK/mirr-b.before" "$WORK/mirr-b.after"
vm store sync --store "$S"
expect_rc 5 "store sync with a planted link in the mirror"
sentinel_unchanged "store sync with links planted in the mirror"
vm list --store "$B"
expect_nonzero "list with the mirror as primary"
expect_err "symbolic link" "list of the mirror says why"
sentinel_unchanged "list of the mirror"

section "the store path the user gives may be a symlink"
new_store real
ln -s -- "$S" "$WORK/via-link"
vm backup --store "$WORK/via-link" "$SRC"
expect_rc 0 "backup through a symlink to the store"
vm list --store "$WORK/via-link"
expect_rc 0 "list through a symlink to the store"
vm restore --store "$WORK/via-link" latest --to "$WORK/out-via-link"
expect_rc 0 "restore through a symlink to the store"
check_same_tree "$SRC" "$WORK/out-via-link/src" "restored through the link"

sentinel_unchanged "the whole test"
finish
