#!/usr/bin/env bash
# An encrypted store (issue 18) end to end with the real binary: init with a
# key file, backup, restore, verify; each key source (key file, passphrase
# file, systemd credentials) and the exit 2 naming them when none opens it;
# key add / list / remove / passwd; export --paper then import after every
# wrapped key is deleted; prune and GC; a flipped bit in a pack is damage (exit 3); a
# mirror heals without anything in the clear; and a scan of every byte of
# the store for the plain text and the plain SHA-256 of known blocks, and
# for the file and volume names.
#
# Usage: bash tests/integration/encrypted_store.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
for tool in python3 sha256sum; do command -v "$tool" >/dev/null || die "needs $tool"; done

S=$WORK/store
K=$WORK/store.key
mkdir -p "$WORK/src/tree-secret-dir"
rand_file "$WORK/src/tree-secret-dir/known-block-file" 262144   # 4 blocks of 64 KiB, random
rand_file "$WORK/src/tree-secret-dir/other" 100000

section "init and a round trip"
vm store init "$S" --encrypt --key-file "$K" --mirror "$WORK/mirror"
expect_rc 0 "store init --encrypt"
check "the key file was made" test -s "$K"
check "config.json says version 2" grep -q '"version": 2' "$S/config.json"
vm backup --store "$S" --key-file "$K" "$WORK/src/tree-secret-dir"
expect_rc 0 "a backup into the encrypted store"
vm restore --store "$S" --key-file "$K" latest --to "$WORK/back"
expect_rc 0 "a restore"
back=$(find "$WORK/back" -name known-block-file | head -n 1)
check_same_file "$WORK/src/tree-secret-dir/known-block-file" "$back" "the restored file"
vm verify --store "$S" --key-file "$K"
expect_rc 0 "a clean verify"

section "prune and garbage collection rewrite sealed packs"
rand_file "$WORK/src/tree-secret-dir/other" 100000
vm backup --store "$S" --key-file "$K" "$WORK/src/tree-secret-dir"
expect_rc 0 "a second backup"
vm prune --store "$S" --key-file "$K" --keep-last 1 --repack-below 1
expect_rc 0 "prune --keep-last 1 with repacking"
vm verify --store "$S" --key-file "$K"
expect_rc 0 "verify after the prune"
vm restore --store "$S" --key-file "$K" latest --to "$WORK/back2"
expect_rc 0 "restore after the prune"
back=$(find "$WORK/back2" -name other | head -n 1)
check_same_file "$WORK/src/tree-secret-dir/other" "$back" "the restored changed file"

section "nothing in the clear"
check "no plain text, plain SHA-256 or name in any file of either copy" python3 - "$S" "$WORK/mirror" \
  "$WORK/src/tree-secret-dir/known-block-file" <<'PY'
import hashlib, os, sys
store, mirror, known = sys.argv[1:4]
data = open(known, "rb").read()
blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
needles = []
for b in blocks:
    needles += [b[o:o + 32] for o in range(0, len(b) - 32, 4096)]
    h = hashlib.sha256(b).digest()
    needles += [h, h.hex().encode()]
needles += [b"tree-secret-dir", b"known-block-file"]
bad = 0
for top in (store, mirror):
    for root, _, files in os.walk(top):
        for f in files:
            content = open(os.path.join(root, f), "rb").read()
            for n in needles:
                if n in content:
                    print(os.path.join(root, f), "holds", n[:16])
                    bad += 1
sys.exit(1 if bad else 0)
PY

section "exit 2 naming the sources when no key opens it"
vm list --store "$S"
expect_rc 2 "no key given"
expect_err "is encrypted" "says the store is encrypted"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | { printf 'vmback-key 1\n'; cat; printf '\n'; } >"$WORK/wrong.key"
printf 'not the passphrase\n' >"$WORK/wrong.pass"
VMBACK_PASSPHRASE_FILE=$WORK/wrong.pass vm list --store "$S" --key-file "$WORK/wrong.key"
expect_rc 2 "wrong key file and wrong passphrase"
expect_err "wrong.key: opens none" "names the key file tried"
expect_err "VMBACK_PASSPHRASE_FILE" "names the passphrase file tried"
vm list --store "$S" --key-file "$WORK/missing.key"
expect_rc 2 "a missing key file"
expect_err "missing.key: not there" "says the key file is not there"

section "copies kept in step without the key"
# A copy away during a backup is caught up by store sync, which copies the
# sealed files as they are: no key given, none in the environment.
mv "$WORK/mirror" "$WORK/mirror-away"
rand_file "$WORK/src/tree-secret-dir/third" 70000
vm backup --store "$S" --key-file "$K" "$WORK/src/tree-secret-dir"
expect_rc 5 "a backup with the mirror away (a warning)"
mv "$WORK/mirror-away" "$WORK/mirror"
env -u VMBACK_PASSPHRASE_FILE -u CREDENTIALS_DIRECTORY "$VMBACK" store sync --store "$S" </dev/null \
  >"$WORK/sync.out" 2>"$WORK/sync.err" && sync_rc=0 || sync_rc=$?
check_eq "$sync_rc" 0 "store sync with no key at all"
check "it copied the missed pack and point" grep -q "copied [1-9][0-9]* pack" "$WORK/sync.out"
check "the mirror has the same packs as the primary" diff <(cd "$S" && find packs index points -type f | sort) \
  <(cd "$WORK/mirror" && find packs index points -type f | sort)
vm key list --store "$WORK/mirror"
expect_rc 0 "key list with no key (labels are not secret)"
check "key list names the key" grep -q "^initial" "$VM_OUT"
vm verify --store "$WORK/mirror" --key-file "$K" --mirror "$WORK/mirror"
expect_rc 0 "the mirror alone verifies with the key"
vm verify --store "$WORK/mirror" --mirror "$WORK/mirror"
expect_rc 2 "verify without the key is refused (exit 2)"

section "keys: add a passphrase, use it, credentials, remove, passwd"
printf 'correct horse battery staple\n' >"$WORK/pass"
VMBACK_NEW_PASSPHRASE_FILE=$WORK/pass vm key add --store "$S" --key-file "$K" --label admin --kdf-memory 1M --kdf-ops 1
expect_rc 0 "key add"
vm key list --store "$S" --key-file "$K"
expect_rc 0 "key list"
check "key list names both keys" grep -q "admin" "$VM_OUT"
VMBACK_PASSPHRASE_FILE=$WORK/pass vm list --store "$S"
expect_rc 0 "the passphrase opens the store"
mkdir -p "$WORK/creds"
cp "$WORK/pass" "$WORK/creds/vmback.passphrase"
CREDENTIALS_DIRECTORY=$WORK/creds vm list --store "$S"
expect_rc 0 "a systemd credential opens the store"
VMBACK_PASSPHRASE_FILE=$WORK/pass vm key remove --store "$S" initial
expect_rc 0 "remove the initial key, opened with the passphrase"
vm list --store "$S" --key-file "$K"
expect_rc 2 "the removed key file no longer opens the store"
VMBACK_PASSPHRASE_FILE=$WORK/pass vm key remove --store "$S" admin
expect_rc 2 "the last key cannot be removed"
printf 'a new passphrase\n' >"$WORK/pass2"
VMBACK_PASSPHRASE_FILE=$WORK/pass VMBACK_NEW_PASSPHRASE_FILE=$WORK/pass2 vm key passwd --store "$S" admin --kdf-memory 1M --kdf-ops 1
expect_rc 0 "key passwd"
VMBACK_PASSPHRASE_FILE=$WORK/pass vm list --store "$S"
expect_rc 2 "the old passphrase no longer opens it"
VMBACK_PASSPHRASE_FILE=$WORK/pass2 vm list --store "$S"
expect_rc 0 "the new passphrase opens it"

section "paper key: export, lose every key, import"
VMBACK_PASSPHRASE_FILE=$WORK/pass2 vm key export --paper --store "$S"
expect_rc 0 "key export --paper"
cp "$VM_OUT" "$WORK/paper.txt"
check "the paper form has its header" grep -q "vmback paper key 1" "$WORK/paper.txt"
python3 - "$S/config.json" "$WORK/mirror/config.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    c = json.load(open(path))
    c["encryption"]["keys"] = []
    json.dump(c, open(path, "w"), indent=2)
PY
VMBACK_PASSPHRASE_FILE=$WORK/pass2 vm list --store "$S"
expect_rc 2 "no wrapped key left"
vm key import --store "$S" "$WORK/paper.txt" --new-key-file "$WORK/recovered.key"
expect_rc 0 "key import"
vm list --store "$S" --key-file "$WORK/recovered.key"
expect_rc 0 "the recovered key opens the store"

section "damage: exit 3 naming the pack; the mirror heals it"
pack=$(find "$S/packs" -name '*.pack' -type f | head -n 1)
flip_bit "$pack" 200 >/dev/null
vm verify --store "$S" --key-file "$WORK/recovered.key"
expect_rc 5 "verify heals the primary's pack from the mirror"
vm verify --store "$S" --key-file "$WORK/recovered.key"
expect_rc 0 "then verify is clean"
while IFS= read -r -d '' p; do
  flip_bit "$p" 200 >/dev/null
done < <(find "$S/packs" "$WORK/mirror/packs" -name '*.pack' -type f -print0)
vm verify --store "$S" --key-file "$WORK/recovered.key"
expect_rc 3 "a pack damaged on every copy is damage"

finish
