#!/usr/bin/env bash
# Damage on every copy of a mirrored store, through the real binary
# (issue 12, case 9). Each section on a fresh pair of copies (A, B):
#   healed   a block damaged in its pack on both copies; verify exits 3,
#            says what it costs and "next step: run 'vmback repair' ...";
#            a full-read backup writes the block afresh; verify still exits
#            3 but says the bad blob is healed (nothing lost); repair
#            --dry-run changes nothing; repair (exit 0) drops the bad copy;
#            verify is clean (exit 0); the old point restores bit-identical
#   lost     a block no copy and no newer backup has: repair (exit 5) names
#            the point and file and records it lost (the file "lost" on
#            both copies); verify says so as a note (exit 5, not 3);
#            restore leaves it zero and says it was recorded lost (exit 3);
#            a second repair has nothing to do (exit 0)
# Source data is seeded (deterministic).
#
# Usage: bash tests/integration/repair.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

command -v python3 >/dev/null || die "needs python3"

# seeded_file PATH SEED SIZE...: concatenated seeded random parts.
seeded_file() {
  python3 - "$@" <<'EOF'
import random, sys
path, seed, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
with open(path, "wb") as f:
    for i, n in enumerate(sizes):
        f.write(random.Random(seed * 100 + i).randbytes(n))
EOF
}

new_pair() {  # new_pair NAME: $A and $B, a fresh store with a mirror
  A=$WORK/$1-a
  B=$WORK/$1-b
  vm store init "$A" --mirror "$B" --block-size 4K
  expect_rc 0 "store init $1"
}

expect_out() {  # expect_out TEXT WHAT: stdout contains TEXT
  _count_check
  if ! grep -qF -- "$1" "$VM_OUT"; then
    _fail "$2: stdout does not contain $(_show "$1")"
    _vm_context
  fi
}

# ---------------------------------------------------------------------------
section "healed: a backup rewrote the block, repair drops the bad copy"
new_pair healed
mkdir "$WORK/img"
IMG=$WORK/img/disk.img
seeded_file "$IMG" 1 4096 4096 3000
vm backup --store "$A" "$IMG"
expect_rc 0 "first backup"
list_points --store "$A"
P1=${POINTS[0]:-none}
check "the block is damaged in A's pack" damage_block "$A" "$IMG" 4096
check "the block is damaged in B's pack" damage_block "$B" "$IMG" 4096

vm verify --store "$A"
expect_rc 3 "verify of a block damaged on both copies"
cat "$VM_OUT" "$VM_ERR"
expect_err "$P1: disk.img: 1 bad or missing block (bytes 4096..8192)" "verify names the point, file and bytes"
expect_err "is damaged on every copy: 1 bad blob, 1 with no good copy anywhere (the files named above lose them)" \
  "verify says what the damaged pack costs"
expect_out "next step: run 'vmback repair' to rewrite the 1 pack damaged on every copy" "verify gives the next step"
expect_out "recorded as lost" "verify says what repair would lose"

sleep 1.1
vm backup --store "$A" --full-read "$IMG"
expect_rc 0 "a full-read backup writes the damaged block afresh"
vm verify --store "$A"
expect_rc 3 "verify: the old pack is still damaged on every copy"
cat "$VM_OUT" "$VM_ERR"
expect_err "is damaged on every copy: 1 bad blob, 1 of them with a newer good copy in another pack (nothing lost)" \
  "verify says the bad blob is healed"
check "verify names no blob without a good copy" bash -c '! grep -q "no good copy anywhere" "$1"' _ "$VM_ERR"
expect_out "(nothing is lost: every bad blob has a good copy in another pack)" "verify's next step says nothing is lost"
vm restore --store "$A" "$P1" disk.img --to "$WORK/r1.img"
expect_rc 0 "the old point restores (from the newer copy of the block)"
check "the old point restores bit-identical" cmp "$IMG" "$WORK/r1.img"

PACKS_BEFORE=$(find "$A/packs" "$B/packs" -name '*.pack' | sort)
vm repair --store "$A" --dry-run
expect_rc 3 "repair --dry-run (the damage is still there)"
cat "$VM_OUT" "$VM_ERR"
expect_out "would rewrite 1 pack damaged on every copy" "repair --dry-run says what it would do"
check_eq "$(find "$A/packs" "$B/packs" -name '*.pack' | sort)" "$PACKS_BEFORE" "repair --dry-run changes no pack"

vm repair --store "$A"
expect_rc 0 "repair of a healed pack"
cat "$VM_OUT" "$VM_ERR"
expect_out "rewrote 1 pack damaged on every copy" "repair says what it rewrote"
expect_out "1 bad blob dropped (a good copy is in another pack), 0 recorded lost" "repair drops the healed blob"
expect_out "nothing was lost; 'vmback verify' is clean again" "repair says nothing was lost"
vm verify --store "$A"
expect_rc 0 "verify after repair is clean"
expect_out "all good" "verify after repair: all good"
vm restore --store "$A" "$P1" disk.img --to "$WORK/r2.img"
expect_rc 0 "the old point restores after repair"
check "the old point restores bit-identical after repair" cmp "$IMG" "$WORK/r2.img"
check_eq "$(test -e "$A/lost" && echo yes || echo no)" no "nothing recorded lost"

# ---------------------------------------------------------------------------
section "lost: a block no copy has is recorded lost"
new_pair lost
SRC=$WORK/src
mkdir "$SRC"
seeded_file "$SRC/a" 2 4096 4096 100
seeded_file "$SRC/b" 3 5000
cp "$SRC/a" "$WORK/a.orig"
vm backup --store "$A" "$SRC"
expect_rc 0 "backup"
list_points --store "$A"
P=${POINTS[0]:-none}
check "the block is damaged in A's pack" damage_block "$A" "$SRC/a" 4096
check "the block is damaged in B's pack" damage_block "$B" "$SRC/a" 4096
seeded_file "$SRC/a" 4 9000  # the data is gone from the source too

vm repair --store "$A" --dry-run
expect_rc 3 "repair --dry-run of a block no copy has"
cat "$VM_OUT"
expect_out "would lose: $P: src/a: 1 bad or missing block (bytes 4096..8192)" "repair --dry-run names what would be lost"
expect_out "1 would be recorded lost" "repair --dry-run counts it"
check "repair --dry-run records nothing" test ! -e "$A/lost"

vm repair --store "$A"
expect_rc 5 "repair that records a block lost"
cat "$VM_OUT" "$VM_ERR"
expect_out "lost: $P: src/a: 1 block recorded lost by 'vmback repair' (bytes 4096..8192; a restore leaves them zero)" \
  "repair names the point, file and bytes lost"
expect_out "0 bad blobs dropped (a good copy is in another pack), 1 recorded lost" "repair counts the lost blob"
check "the file 'lost' is on A" test -f "$A/lost"
check "the file 'lost' is on B" test -f "$B/lost"

vm verify --store "$A"
expect_rc 5 "verify after repair: a note, not damage"
cat "$VM_OUT" "$VM_ERR"
expect_out "all good" "verify after repair: all good"
expect_err "note: $P: src/a: 1 block recorded lost by 'vmback repair' (bytes 4096..8192" "verify notes what was lost"
expect_out "note: 1 file in the points above hold blocks recorded lost" "verify's summary notes the loss"

vm restore --store "$A" "$P" src --to "$WORK/rl"
expect_rc 3 "restore of a point with a lost block"
cat "$VM_OUT" "$VM_ERR"
expect_err "bytes 4096..8192 lost, left zero" "restore names the zero-filled range"
expect_err "recorded lost by 'vmback repair'" "restore says the block was recorded lost by repair"
check "the rest of the file is restored, the lost block is zero" python3 -c '
import sys
a, r = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
assert r == a[:4096] + bytes(4096) + a[8192:], "restored file differs"' "$WORK/a.orig" "$WORK/rl/a"
check "the other file restores bit-identical" cmp "$WORK/rl/b" "$SRC/b"

vm repair --store "$A"
expect_rc 0 "a second repair"
expect_out "nothing to repair: no pack is damaged on every copy" "a second repair has nothing to do"

finish
