#!/usr/bin/env bash
# Corruption sweep on a store mirrored over two copies (A, the primary, and
# B), through the real binary. Each round starts from the same five points
# and damages, by a seeded plan, some packs, index files and manifests:
# one bit flipped (XOR, never an overwrite), truncated to a random length,
# or cut to zero length. Rounds alternate between damage on one copy (A or
# B) and the same files damaged on every copy; round 3 always cuts a pack to
# nothing and damages every index file on A. 8 rounds in the short run,
# 60 with VMBACK_LONG_TESTS=1; VMBACK_SEED picks the seed (default 11).
#
# One copy damaged:
#   before any verify, every point restores bit-identical from the pair, and
#   from the damaged copy alone gives the right bytes or an error;
#   verify exits 5 (repaired, reported), says "ok"; every damaged pack and
#   manifest is counted as repaired on that copy; afterwards the copies are
#   byte-identical, a second verify exits 0, and every point restores
#   bit-identical from the pair and from each copy alone.
# Every copy damaged:
#   verify exits 3, names every damaged pack and the point of every damaged
#   manifest; a damaged index file is named and rebuilt when the store is
#   opened (it is a cache: nothing is lost); restore of every point gives
#   either the right bytes or an error, never a wrong byte: every file it
#   leaves is bit-identical to the original, and an error is exit 1 or 3.
#
# Usage: bash tests/reliability/corruption_sweep.sh /path/to/vmback
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=rlib.sh
source "$(dirname -- "$0")/rlib.sh"

ROUNDS=8
[ "$LONG" = 1 ] && ROUNDS=60
SEED=${VMBACK_SEED:-11}

A=$WORK/A
B=$WORK/B
SRC=$WORK/src
SAVED=$WORK/saved
TMPL=$WORK/tmpl
NOWHERE=$WORK/nowhere
mkdir -p "$SAVED" "$TMPL"

vm store init "$A" --mirror "$B" --block-size 16K
[ "$VM_RC" -eq 0 ] || die "store init failed"
for g in 1 2 3 4 5; do
  change_tree "$SRC" "$((SEED * 100 + g))"
  vm backup --store "$A" "$SRC"
  [ "$VM_RC" -eq 0 ] || die "backup $g failed: $(cat "$VM_ERR")"
done
fast_points --store "$A"
ALL_POINTS=("${POINTS[@]}")
[ "${#ALL_POINTS[@]}" -eq 5 ] || die "expected 5 points"
# What each point holds: restored once from the healthy store.
for p in "${ALL_POINTS[@]}"; do
  vm restore --store "$A" "$p" --to "$SAVED/$p"
  [ "$VM_RC" -eq 0 ] || die "restore of $p from the healthy store failed"
done
vm verify --store "$A"
[ "$VM_RC" -eq 0 ] || die "the healthy store does not verify"
cp -a -- "$A" "$TMPL/A"
cp -a -- "$B" "$TMPL/B"
reset_store() {
  rm -rf -- "$A" "$B"
  cp -a -- "$TMPL/A" "$A"
  cp -a -- "$TMPL/B" "$B"
}

# damage SEED MODE DIR...: plans the damage on the first DIR and does it on
# each; prints the plan, one "KIND FILE-KIND RELPATH" line each (KIND: flip,
# trunc, zero; FILE-KIND: pack, index, manifest).
damage() {
  python3 - "$@" <<'EOF'
import os, random, sys
seed, mode, dirs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
rng = random.Random(seed)
first = dirs[0]
def files(sub, ext):
    return sorted(os.path.relpath(os.path.join(dp, f), first)
                  for dp, _, fs in os.walk(os.path.join(first, sub)) for f in fs if f.endswith(ext))
packs, idx, mans = files("packs", ".pack"), files("index", ".idx"), files("points", ".json")
plan = []
if mode == "table":
    # A pack cut to nothing and every index file damaged on the same copy:
    # the index must be rebuilt from the other copy's whole pack.
    plan = [("zero", "pack", rng.choice(packs))] + [("flip", "index", i) for i in idx]
while not any(k in ("pack", "manifest") for _, k, _ in plan):
    plan = []
    for kind, pool, most in (("pack", packs, 3), ("index", idx, 1), ("manifest", mans, 2)):
        for rel in rng.sample(pool, rng.randint(0, min(most, len(pool)))):
            plan.append((rng.choice(["flip", "flip", "trunc", "zero"]), kind, rel))
for how, kind, rel in plan:
    size = os.path.getsize(os.path.join(first, rel))
    off, bit, cut = rng.randrange(size), 1 << rng.randrange(8), rng.randrange(1, size)
    for d in dirs:
        p = os.path.join(d, rel)
        if how == "flip":
            with open(p, "r+b") as f:
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ bit]))
        elif how == "trunc":
            os.truncate(p, cut)
        else:
            os.truncate(p, 0)
    print(how, kind, rel)
EOF
}

# restore_checked STORE_ARGS -- POINT PATH WHAT: restores PATH of POINT
# ("" = all); every file it leaves must be bit-identical to the original;
# exit 0 needs the whole tree. Sets RESTORE_OK.
_RN=0
restore_checked() {
  local args=() point path what dest want rel
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  point=$1 path=$2 what=$3
  _RN=$((_RN + 1))
  dest=$WORK/r/$_RN
  mkdir -p "$WORK/r"
  if [ -n "$path" ]; then
    vm restore "$point" "$path" --to "$dest" "${args[@]}"
    want=$SAVED/$point/$path
  else
    # The whole point: its one volume, src (the point's own directory is
    # made by restore, with no metadata of its own to compare).
    vm restore "$point" src --to "$dest" "${args[@]}"
    want=$SAVED/$point/src
  fi
  RESTORE_OK=0
  if [ "$VM_RC" -eq 0 ] || [ "$VM_RC" -eq 5 ]; then
    RESTORE_OK=1
    if [ -d "$want" ]; then
      check_same_tree "$want" "$dest" "$what: restore of $point ${path:-(all)}"
    else
      check_same_file "$want" "$dest" "$what: restore of $point $path"
    fi
  else
    _count_check
    if [ "$VM_RC" -ne 1 ] && [ "$VM_RC" -ne 3 ]; then
      _fail "$what: restore of $point ${path:-(all)} failed with exit $VM_RC"
      _vm_context
    fi
    # What it left must be right, byte for byte, except the ranges it
    # listed as damaged (left zero, exit 3): a differing file must be named.
    if [ -d "$dest" ]; then
      while IFS= read -r -d '' rel; do
        _count_check
        cmp -s -- "$dest/$rel" "$want/$rel" || grep -qF -- "damaged: $dest/${rel#./}: bytes" "$VM_ERR" ||
          _fail "$what: restore of $point left a wrong file $rel, not listed as damaged"
      done < <(cd "$dest" && find . -type f -print0)
    elif [ -f "$dest" ]; then
      _count_check
      cmp -s -- "$dest" "$want" || grep -qF -- "damaged: $dest: bytes" "$VM_ERR" ||
        _fail "$what: restore of $point $path left a wrong file, not listed as damaged"
    fi
  fi
  rm -rf -- "$dest"
}

ONE_RUNS=0 ONE_FAULTS=0 ONE_FAILED=0
ALL_RUNS=0 ALL_FAULTS=0 ALL_FAILED=0
for ((r = 1; r <= ROUNDS; r++)); do
  reset_store
  rseed=$((SEED * 1000 + r))
  if [ $((r % 2)) -eq 1 ]; then
    mode=one
    if [ $(((r / 2) % 2)) -eq 0 ]; then victim=$B; else victim=$A; fi
    dirs=("$victim")
  else
    mode=all
    dirs=("$A" "$B")
  fi
  how=$mode
  # Round 3: a pack cut to nothing and every index file damaged, on A.
  if [ "$r" -eq 3 ]; then how=table victim=$A dirs=("$A"); fi
  run_begin
  damage "$rseed" "$how" "${dirs[@]}" >"$WORK/plan" || die "cannot damage the store"
  nd=$(wc -l <"$WORK/plan")
  what="round $r ($mode copy: $(tr '\n' ',' <"$WORK/plan" | sed 's/,$//'))"
  [ "$mode" = one ] && what="round $r (damage on $(basename "$victim"): $(tr '\n' ',' <"$WORK/plan" | sed 's/,$//'))"
  echo "    $what"
  # Damage that verify must find in the pack and manifest files.
  n_store=$(grep -c -E ' (pack|manifest) ' "$WORK/plan" || true)

  if [ "$mode" = one ]; then
    # Before any verify: restores from the pair give the right bytes (read
    # from the good copy); from the damaged copy alone, the right bytes or
    # an error. Then the same damage again, for verify to find.
    for p in "${ALL_POINTS[@]}"; do
      restore_checked --store "$A" -- "$p" "" "$what: pair, before verify"
      _count_check
      [ "$RESTORE_OK" -eq 1 ] || _fail "$what: point $p does not restore from the pair before verify"
      restore_checked --store "$victim" --mirror "$NOWHERE" -- "$p" "" "$what: the damaged copy alone"
    done
    reset_store
    damage "$rseed" "$how" "${dirs[@]}" >"$WORK/plan.again" || die "cannot damage the store"
    cmp -s "$WORK/plan" "$WORK/plan.again" || die "the same seed gave another plan"
  fi

  vm verify --store "$A" --json
  cp -- "$VM_OUT" "$WORK/verify.json"
  cp -- "$VM_ERR" "$WORK/verify.err"
  # An index file is a cache: damage to it is named (by the open that
  # rebuilds it, or by verify that heals it from the other copy).
  while read -r _ kind rel; do
    [ "$kind" = index ] || continue
    _count_check
    grep -qF -- "$(basename "$rel")" "$WORK/verify.err" || _fail "$what: the damaged index file $rel was not named"
  done <"$WORK/plan"
  if [ "$mode" = one ]; then
    ONE_RUNS=$((ONE_RUNS + 1))
    ONE_FAULTS=$((ONE_FAULTS + 2 * nd))  # the same plan twice: for restore, for verify
    expect_rc 5 "$what: verify (healed: exit 5)"
    check "$what: verify says ok" json_ok "$WORK/verify.json"
    vi=0
    [ "$victim" = "$B" ] && vi=1
    check "$what: verify counts every damaged pack and manifest as repaired on the damaged copy" python3 - "$WORK/verify.json" "$vi" "$n_store" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["copies"][int(sys.argv[2])]
assert c["repaired"] >= int(sys.argv[3]), (c, sys.argv[3])
assert c["unrepairable"] == 0, c
EOF
    check_copies_identical "$A" "$B" "$what: after verify healed"
    vm verify --store "$A"
    expect_rc 0 "$what: a second verify"
    for p in "${ALL_POINTS[@]}"; do
      restore_checked --store "$A" -- "$p" "" "$what: pair"
      _count_check
      [ "$RESTORE_OK" -eq 1 ] || _fail "$what: point $p does not restore after the repair"
    done
    for copy in "$A" "$B"; do
      p=${ALL_POINTS[RANDOM % 5]}
      restore_checked --store "$copy" --mirror "$NOWHERE" -- "$p" "" "$what: $(basename "$copy") alone"
      _count_check
      [ "$RESTORE_OK" -eq 1 ] || _fail "$what: point $p does not restore from $(basename "$copy") alone"
    done
  else
    ALL_RUNS=$((ALL_RUNS + 1))
    ALL_FAULTS=$((ALL_FAULTS + nd * 2))
    expect_rc 3 "$what: verify (damage on every copy: exit 3)"
    check "$what: verify names every damaged pack and manifest" python3 - "$WORK/verify.json" "$WORK/plan" <<'EOF'
import json, os, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is False and r["repaired"] == 0, (r["ok"], r["repaired"])
text = json.dumps(r["problems"])
missing = []
for line in open(sys.argv[2]):
    how, kind, rel = line.split()
    name = os.path.basename(rel).rsplit(".", 1)[0]
    if kind == "pack" and name not in text:
        missing.append(rel)
    if kind == "manifest" and not any(p["point"] == name for p in r["problems"]):
        missing.append(rel)
assert not missing, "not named: " + ", ".join(missing)
EOF
    for p in "${ALL_POINTS[@]}"; do
      restore_checked --store "$A" -- "$p" "" "$what"
      if [ "$RESTORE_OK" -eq 0 ]; then
        # Piece by piece: what can be restored is right.
        restore_checked --store "$A" -- "$p" src/disk.img "$what"
        restore_checked --store "$A" -- "$p" src/etc "$what"
      fi
    done
  fi
  run_end
  if [ "$mode" = one ]; then ONE_FAILED=$((ONE_FAILED + RUN_FAILED)); else ALL_FAILED=$((ALL_FAILED + RUN_FAILED)); fi
done

summary_row "damage on one copy: verify heals, restore right" "$ONE_RUNS" "$ONE_FAULTS" "$ONE_FAILED"
summary_row "damage on all copies: verify exit 3, no wrong byte" "$ALL_RUNS" "$ALL_FAULTS" "$ALL_FAILED"
summary_print "corruption (bit flips, truncation, zero length), seed $SEED"
finish
