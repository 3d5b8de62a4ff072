#!/usr/bin/env bash
# What a store's disk says about itself is checked (issue 11): the copies
# recorded in its config.json are used only where they hold the same store,
# and an empty directory becomes a new copy only when the user names it in
# this command, never because a disk records it; block_size and the sizes
# of the files read whole (config.json, manifests, index files) are bounded
# before anything is allocated; a store on read-only media can be listed,
# restored and verified (without a lock, saying so, when it has no lock file).
#
# usage: bash store_media.sh /path/to/vmback
set -euo pipefail
source "$(dirname "$0")/../integration/lib.sh" "$@"

command -v python3 >/dev/null || die "python3 is needed to forge config.json"
SRC=$WORK/src
mkdir -p "$SRC/sub"
text_file "$SRC/a.txt" 200
rand_file "$SRC/sub/b.bin" 300000

new_store() {
  S=$WORK/$1
  shift
  vm store init "$S" "$@"
  expect_rc 0 "store init $S"
  vm backup --store "$S" "$SRC"
  expect_rc 0 "backup into $S"
}

# forge_config STORE PYTHON: edits STORE/config.json with PYTHON (c is the dict).
forge_config() {
  python3 - "$1/config.json" "$2" <<'EOF'
import json, sys
path, code = sys.argv[1:3]
c = json.load(open(path))
exec(code)
open(path, "w").write(json.dumps(c, indent=2) + "\n")
EOF
}

# ---------------------------------------------------------------------------
section "a copy recorded in config.json is not made in an empty directory"
new_store rec --mirror "$WORK/rec-b"
rm -rf -- "${WORK:?}/rec-b"/*
mkdir -p "$WORK/planted-empty"
forge_config "$S" 'c["copies"].append({"path": "'"$WORK/planted-empty"'", "copy_id": "0123456789abcdef"})'
vm store sync --store "$S"
expect_rc 5 "store sync with only recorded copies absent (exit 5)"
expect_err "--mirror" "the message says how to make a new copy"
check "the recorded (emptied) mirror was not initialized" test -z "$(ls -A "$WORK/rec-b")"
check "the planted empty directory was not made a copy" test -z "$(ls -A "$WORK/planted-empty")"
vm backup --store "$S" "$SRC"
expect_rc 5 "backup with recorded copies absent"
check "the planted empty directory is still empty" test -z "$(ls -A "$WORK/planted-empty")"
vm store sync --store "$S" --mirror "$WORK/rec-b"
expect_rc 0 "store sync naming the empty mirror with --mirror"
check "the named empty directory became a copy" test -f "$WORK/rec-b/config.json"

section "a recorded copy holding another store is not used"
new_store other
O=$S
new_store main2
forge_config "$S" 'c["copies"].append({"path": "'"$O"'", "copy_id": "0123456789abcdef"})'
find "$O" -printf '%y %m %s %p\n' | sort >"$WORK/other.before"
vm backup --store "$S" "$SRC"
expect_rc 5 "backup with a recorded copy that is another store"
expect_err "different store" "the other store is named as such"
find "$O" -printf '%y %m %s %p\n' | sort >"$WORK/other.after"
check "nothing written into the other store" cmp -s "$WORK/other.before" "$WORK/other.after"

section "block_size out of bounds is refused at open"
for bs in 1073741824 33554432 65537 2048; do
  new_store "bs$bs"
  forge_config "$S" "c['block_size'] = $bs"
  vm list --store "$S"
  expect_nonzero "list with block_size $bs"
  expect_err "block_size" "block_size $bs is named"
done

section "files read whole are capped"
new_store bigcfg
python3 - "$S/config.json" <<'EOF'
import sys
p = sys.argv[1]
text = open(p).read()
open(p, "w").write(text.rstrip() + " " * (2 << 20) + "\n")  # still valid JSON, 2 MiB
EOF
vm list --store "$S"
expect_nonzero "list with a 2 MiB config.json"
expect_err "config.json" "the oversized config.json is named"
expect_err "more than" "the cap is stated"

new_store bigidx
idx=$(cd "$S/index" && ls | head -1)
truncate -s 3G -- "$S/index/$idx"  # sparse: no disk space, 3 GiB if read whole
(ulimit -v $((1 << 20)) && exec "$VMBACK" list --store "$S") >"$WORK/bigidx.out" 2>"$WORK/bigidx.err" && rc=0 || rc=$?
VM_ERR=$WORK/bigidx.err VM_RC=$rc
check "list with a 3 GiB index file succeeds under a 1 GiB address-space cap (index rebuilt from the packs)" test "$rc" -eq 0
expect_err "$idx" "the oversized index file is named"
expect_err "more than" "the index cap is stated"

new_store bigpt
pt=$(cd "$S/points" && ls | head -1)
truncate -s 100M -- "$S/points/$pt"
(ulimit -v $((1 << 20)) && exec "$VMBACK" restore --store "$S" "${pt%.json}" --to "$WORK/out-bigpt") \
  >"$WORK/bigpt.out" 2>"$WORK/bigpt.err" && rc=0 || rc=$?
VM_ERR=$WORK/bigpt.err VM_RC=$rc
check "restore of a 100 MiB manifest fails" test "$rc" -ne 0
expect_err "$pt" "the oversized manifest is named"
expect_err "more than" "the manifest cap is stated"

section "a store on read-only media"
new_store ro
mkdir -p "$WORK/ro-mnt"
mount --bind -- "$S" "$WORK/ro-mnt"
register_mount "$WORK/ro-mnt"
mount -o remount,ro,bind -- "$WORK/ro-mnt"
check "the bind mount is read-only" sh -c "! touch '$WORK/ro-mnt/x' 2>/dev/null"
vm list --store "$WORK/ro-mnt"
expect_rc 0 "list of a read-only store (lock file present)"
vm restore --store "$WORK/ro-mnt" latest --to "$WORK/out-ro"
expect_rc 0 "restore from a read-only store"
check_same_tree "$SRC" "$WORK/out-ro/src" "restored from the read-only store"
vm verify --store "$WORK/ro-mnt"
expect_rc 0 "verify of a read-only store"
vm backup --store "$WORK/ro-mnt" "$SRC"
expect_nonzero "backup into a read-only store fails"
umount -- "$WORK/ro-mnt"

rm -f -- "$S/lock"
mount --bind -- "$S" "$WORK/ro-mnt"
mount -o remount,ro,bind -- "$WORK/ro-mnt"
vm list --store "$WORK/ro-mnt"
expect_rc 0 "list of a read-only store without a lock file"
expect_err "without a lock" "list says it reads without a lock"
check "said in one line" test "$(grep -c 'without a lock' "$VM_ERR" || true)" -eq 1
vm restore --store "$WORK/ro-mnt" latest --to "$WORK/out-ro2"
expect_rc 0 "restore from a read-only store without a lock file"
check_same_tree "$SRC" "$WORK/out-ro2/src" "restored from the read-only store without a lock file"
vm verify --store "$WORK/ro-mnt"
expect_rc 0 "verify of a read-only store without a lock file"
umount -- "$WORK/ro-mnt"

finish
