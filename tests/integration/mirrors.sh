#!/usr/bin/env bash
# Mirrors through the real binary: a store with two copies (A primary, B
# mirror), each section on a fresh pair.
#   one-copy damage   flipped bits, a truncated and a deleted pack, and a
#                     flipped, a truncated and a deleted manifest (seeded
#                     choice) on A: verify repairs all (exit 5), the copies
#                     end byte-identical, the bad files are kept as *.bad-*,
#                     every point restores bit-identical, a second verify is
#                     clean (exit 0)
#   both-copy damage  the same damage on A and B: verify exits 3 and names the
#                     points and files; exactly those fail to restore (exit
#                     3), every other file restores bit-identical
#   absent copy       B away during two backups (exit 5, warning), then back:
#                     store sync catches it up; verify clean on both; B alone
#                     restores every point
#   prune             B away during prune --keep-last 1; back; sync: the
#                     pruned points are gone from both
#   read repair       a damaged blob in a pack on A only: restoring the file
#                     gives the right bytes and repairs A's pack
#   replacement disk  B emptied (rm -rf B/*): store sync makes it a full
#                     copy; verify clean on both; B alone restores
#   cp -a             a copy of a store directory is not a mirror of its
#                     original: backups to it leave the original alone
# Source data is seeded (deterministic); every mtime is set explicitly.
#
# Usage: bash tests/integration/mirrors.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

for tool in python3 rsync cmp diff; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

SRC=$WORK/src   # backed up as volume "src"
GEN=$WORK/gen   # GEN/N: the source tree of generation N
NGEN=6
RN=0            # restore destinations: $WORK/r/N

# ---------------------------------------------------------------------------
# Helpers.

# The source generations: base/ never changes; changing.bin changes every
# time; gen-N.bin (about 200 KB, so it dominates its backup's pack) is new
# in generation N and gone two generations later.
python3 - "$GEN" "$NGEN" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
T0 = 1700000000 * 10**9
def put(path, size, seed, mtime):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(random.Random(seed).randbytes(size))
    os.utime(path, ns=(mtime, mtime))
for g in range(n):
    d = os.path.join(root, str(g))
    for i in range(3):
        put(f"{d}/base/f{i}", 30000 + 7000 * i, 100 + i, T0 + i * 10**9 + 1)
    put(f"{d}/base/deep/leaf", 5000, 110, T0 + 10 * 10**9)
    put(f"{d}/changing.bin", 20000 + 100 * g, 200 + g, T0 + (1000 + g) * 10**9 + 11)
    for k in range(max(0, g - 1), g + 1):
        put(f"{d}/gen-{k}.bin", 200000 + 1000 * k, 300 + k, T0 + (2000 + k) * 10**9 + 12)
    for sub, t in (("base/deep", 20), ("base", 21), ("", 3000 + g)):
        p = os.path.join(d, sub) if sub else d
        os.utime(p, ns=(T0 + t * 10**9, T0 + t * 10**9))
EOF

# new_pair NAME: a store NAME-a with the mirror NAME-b; sets A, B, PTS (the
# file of "POINT GENERATION" lines of its backups).
new_pair() {
  A=$WORK/$1-a
  B=$WORK/$1-b
  PTS=$WORK/$1.points
  : >"$PTS"
  vm store init "$A" --mirror "$B"
  expect_rc 0 "store init $A --mirror $B"
  [ "$VM_RC" -eq 0 ] || die "cannot go on without a store"
}

# backup_gen STORE_DIR G EXPECTED_RC: backs up generation G, records the point.
backup_gen() {
  rsync -a --delete -- "$GEN/$2/" "$SRC/"
  vm backup --store "$1" --json "$SRC"
  expect_rc "$3" "backup of generation $2 to $1"
  local point
  point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["point"])' "$VM_OUT" 2>/dev/null) ||
    { _vm_context; die "backup of generation $2 to $1 did not print a point (exit $VM_RC)"; }
  echo "$point $2" >>"$PTS"
}

# make_points N: backs up generations 0..N-1 to the pair, expecting exit 0.
make_points() {
  local g
  for ((g = 0; g < $1; g++)); do backup_gen "$A" "$g" 0; done
}

# store_listing DIR: "sha256 path" of every pack, index and point file of a
# copy, leaving out files kept aside (*.bad-*), temp files and the lock.
# Tombstones count by presence only (their text is a time, or "synced").
store_listing() {
  python3 - "$1" <<'EOF'
import hashlib, os, sys
root = sys.argv[1]
for sub in ("packs", "index", "points"):
    for dp, dns, fns in os.walk(os.path.join(root, sub)):
        dns.sort()
        for fn in sorted(fns):
            if ".bad-" in fn or ".tmp-" in fn:
                continue
            rel = os.path.relpath(os.path.join(dp, fn), root)
            if fn.endswith(".deleted"):
                print("tombstone", rel)
            else:
                print(hashlib.sha256(open(os.path.join(dp, fn), "rb").read()).hexdigest(), rel)
EOF
}

# check_same_copies X Y WHAT: byte-identical packs, index files, manifests.
check_same_copies() {
  local out
  _count_check
  if ! out=$(diff <(store_listing "$1") <(store_listing "$2")); then
    _fail "$3: the copies $1 and $2 differ (< only or different in the first, > in the second):"
    printf '%s\n' "$out" | head -30 | sed 's/^/    /' >&2
  fi
  return 0
}

# check_unchanged DIR LISTING_FILE WHAT: the copy is as listed before.
check_unchanged() {
  local out
  _count_check
  if ! out=$(diff "$2" <(store_listing "$1")); then
    _fail "$3: $1 changed (< before, > now):"
    printf '%s\n' "$out" | head -30 | sed 's/^/    /' >&2
  fi
  return 0
}

bad_files() { (cd "$1" && find . -name '*.bad-*' | sed 's|^\./||' | sort); }

# kept_aside DIR REL: the files REL was kept aside as (REL.bad-*), relative.
kept_aside() { (cd "$1" && find "$(dirname -- "$2")" -maxdepth 1 -name "$(basename -- "$2").bad-*" | sort); }

# check_no_bad_files DIR WHAT
check_no_bad_files() {
  local bad
  bad=$(bad_files "$1")
  check_eq "$bad" "" "$2: files kept aside as damaged in $1"
}

# restore_all STORE_DIR WHAT: every recorded point restores bit-identical.
restore_all() {
  local point g dest
  while read -r point g <&3; do
    RN=$((RN + 1))
    dest=$WORK/r/$RN
    mkdir -p "$WORK/r"
    vm restore --store "$1" "$point" --to "$dest"
    _count_check
    if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
      _fail "$2: restore of point $point from $1 failed"
      _vm_context
      continue
    fi
    check_same_tree "$GEN/$g" "$dest/src" "$2: restore of point $point (generation $g) from $1"
  done 3<"$PTS"
}

# verify_json STORE_DIR EXPECTED_RC WHAT: runs verify --json; keeps the
# report in $WORK/verify.json.
verify_json() {
  vm verify --store "$1" --json
  expect_rc "$2" "$3"
  cp "$VM_OUT" "$WORK/verify.json"
}

# damage SEED MODE DIR...: a seeded choice of damage, planned on the first
# DIR and done the same on each. MODE "one": a pack with 3 flipped bits, a
# truncated and a deleted pack, a manifest with a flipped bit, a truncated
# and a deleted one. MODE "both": the three packs and the flipped manifest
# (a manifest deleted from every copy leaves nothing to report). Writes the
# plan ("KIND RELPATH" lines) to $WORK/plan and each damaged file that is
# still there to $WORK/damaged/<dir name>/RELPATH.
damage() {
  python3 - "$WORK" "$@" <<'EOF'
import os, random, shutil, sys
work, seed, mode, dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rng = random.Random(seed)
first = dirs[0]
packs = sorted(os.path.relpath(os.path.join(dp, f), first)
               for dp, _, fs in os.walk(os.path.join(first, "packs")) for f in fs if f.endswith(".pack"))
points = sorted(f for f in os.listdir(os.path.join(first, "points")) if f.endswith(".json"))
assert len(packs) >= 4, f"only {len(packs)} packs"
assert len(points) >= 3, f"only {len(points)} points"
chosen = rng.sample(packs, 3)
mans = rng.sample(points, 3)
size = os.path.getsize(os.path.join(first, chosen[0]))
flips = [(rng.randrange(size), 1 << rng.randrange(8)) for _ in range(3)]
tsize = os.path.getsize(os.path.join(first, chosen[1]))
trunc = tsize // 4 + rng.randrange(tsize // 2)
mflip_rel = "points/" + mans[0]
mflip = rng.randrange(os.path.getsize(os.path.join(first, mflip_rel)))
plan = [("flip", chosen[0]), ("trunc", chosen[1]), ("del", chosen[2]), ("mflip", mflip_rel)]
if mode == "one":
    plan += [("mtrunc", "points/" + mans[1]), ("mdel", "points/" + mans[2])]
with open(os.path.join(work, "plan"), "w") as f:
    for kind, rel in plan:
        f.write(f"{kind} {rel}\n")
for d in dirs:
    for kind, rel in plan:
        p = os.path.join(d, rel)
        if kind in ("flip", "mflip"):
            with open(p, "r+b") as f:
                for off, mask in (flips if kind == "flip" else [(mflip, 0x20)]):
                    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ mask]))
        elif kind == "trunc":
            os.truncate(p, trunc)
        elif kind == "mtrunc":
            os.truncate(p, os.path.getsize(p) // 2)
        else:
            os.remove(p)
        if os.path.exists(p):
            keep = os.path.join(work, "damaged", os.path.basename(d), rel)
            os.makedirs(os.path.dirname(keep), exist_ok=True)
            shutil.copyfile(p, keep)
EOF
}

# ---------------------------------------------------------------------------
section "damage on one copy: verify repairs it from the other"
new_pair one
make_points "$NGEN"
check_same_copies "$A" "$B" "after $NGEN backups"
verify_json "$A" 0 "verify of a healthy mirrored store"
check "verify --json of a healthy store reports both copies, nothing repaired" python3 - "$WORK/verify.json" "$A" "$B" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["repaired"] == 0 and r["problems"] == [], r
assert [c["dir"] for c in r["copies"]] == sys.argv[2:], r["copies"]
EOF
store_listing "$A" >"$WORK/one.before"

damage 20260101 one "$A" || die "cannot damage the store"
sed 's/^/    damaged: /' "$WORK/plan"
check "the damage is there" test -n "$(diff <(store_listing "$A") <(store_listing "$B") || true)"
verify_json "$A" 5 "verify of a store damaged on one copy (repaired: exit 5)"
check "verify --json: ok, the damaged copy repaired (2 packs, 2 manifests), the other untouched" \
  python3 - "$WORK/verify.json" "$A" "$B" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, b = r["copies"]
assert r["ok"] is True and r["problems"] == [], r["problems"]
assert a["dir"] == sys.argv[2] and b["dir"] == sys.argv[3], r["copies"]
assert a["repaired"] >= 4 and a["packs_damaged"] >= 2 and a["manifests_damaged"] >= 2, a
assert a["unrepairable"] == 0, a
assert b["repaired"] == 0 and b["packs_damaged"] == 0 and b["unrepairable"] == 0, b
assert r["repaired"] == a["repaired"] + b["repaired"], r
EOF
check_same_copies "$A" "$B" "after verify repaired A"
check_unchanged "$A" "$WORK/one.before" "after verify repaired A (compared with before the damage)"
while read -r kind rel; do
  case $kind in
    del | mdel) continue ;;
  esac
  mapfile -t kept < <(kept_aside "$A" "$rel")
  check_eq "${#kept[@]}" 1 "number of kept-aside copies of the damaged $rel"
  if [ "${#kept[@]}" -eq 1 ]; then
    check_same_file "$WORK/damaged/one-a/$rel" "$A/${kept[0]}" "kept-aside $rel holds the damaged bytes"
  fi
done <"$WORK/plan"
check_no_bad_files "$B" "the undamaged mirror"
restore_all "$A" "after repair"
verify_json "$A" 0 "a second verify after the repair"

# ---------------------------------------------------------------------------
section "the same damage on both copies: reported, nothing else harmed"
new_pair both
make_points "$NGEN"
store_listing "$A" >"$WORK/both.before"
damage 424242 both "$A" "$B" || die "cannot damage the store"
sed 's/^/    damaged on both: /' "$WORK/plan"
store_listing "$A" >"$WORK/both.damaged"
verify_json "$A" 3 "verify of a store with the same damage on both copies"
check "verify did not crash and printed a JSON report" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/verify.json"
check "verify --json: not ok, nothing repaired, the damaged packs and the point of the bad manifest named" \
  python3 - "$WORK/verify.json" "$WORK/plan" <<'EOF'
import json, os, sys
r = json.load(open(sys.argv[1]))
plan = dict(reversed(l.split()) for l in open(sys.argv[2]))   # rel -> kind
kind_of = {v: k for k, v in plan.items()}
assert r["ok"] is False and r["problems"], r
assert r["repaired"] == 0, r
for c in r["copies"]:
    assert c["repaired"] == 0 and c["unrepairable"] >= 3, c
text = json.dumps(r["problems"])
for kind in ("flip", "trunc"):
    pack = os.path.basename(kind_of[kind])[:-5]
    assert pack in text, f"damaged pack {pack} ({kind}) not named"
point = os.path.basename(kind_of["mflip"])[:-5]
assert any(p["point"] == point for p in r["problems"]), f"point {point} with the bad manifest not named"
assert any(p["point"] and p["path"].startswith("src") for p in r["problems"]), "no file of a point named"
EOF
check_unchanged "$A" "$WORK/both.damaged" "verify of the doubly damaged store (A)"
check_unchanged "$B" "$WORK/both.damaged" "verify of the doubly damaged store (B)"
check_no_bad_files "$A" "nothing could be repaired"
check_no_bad_files "$B" "nothing could be repaired"
# Every file of every point: reported (itself, a directory above it, or its
# point's manifest) and restore refuses it with exit 3, or not reported and
# it restores bit-identical.
python3 - "$WORK/verify.json" "$PTS" "$GEN" >"$WORK/both.files" <<'EOF'
import json, os, sys
r = json.load(open(sys.argv[1]))
for line in open(sys.argv[2]):
    point, g = line.split()
    root = os.path.join(sys.argv[3], g)
    for dp, _, fs in os.walk(root):
        for f in fs:
            rel = "src/" + os.path.relpath(os.path.join(dp, f), root)
            named = any(p["point"] == point and (p["path"] == rel or rel.startswith(p["path"] + "/")
                                                   or p["path"].endswith(".json"))
                        for p in r["problems"])
            print(point, g, rel, "named" if named else "fine")
EOF
affected=0
fine=0
while read -r point g rel state <&3; do
  RN=$((RN + 1))
  dest=$WORK/r/$RN
  mkdir -p "$WORK/r"
  vm restore --store "$A" "$point" "$rel" --to "$dest"
  if [ "$state" = named ]; then
    affected=$((affected + 1))
    expect_rc 3 "restore of $rel from point $point, which verify reported damaged"
    if [ "$VM_RC" -eq 0 ]; then check_same_file "$GEN/$g/${rel#src/}" "$dest" "restore of a reported file"; fi
  else
    fine=$((fine + 1))
    expect_rc 0 "restore of $rel from point $point, which verify did not report"
    if [ "$VM_RC" -eq 0 ]; then check_same_file "$GEN/$g/${rel#src/}" "$dest" "restore of $rel from point $point"; fi
  fi
done 3<"$WORK/both.files"
echo "    $affected file(s) reported damaged, $fine restorable"
check "some files are affected by the damage" test "$affected" -gt 0
check "some files are not affected by the damage" test "$fine" -gt 0
check_no_bad_files "$A" "restores of the doubly damaged store"

# ---------------------------------------------------------------------------
section "a copy absent during two backups catches up through store sync"
new_pair absent
make_points 2
mv -- "$B" "$B.away"
backup_gen "$A" 2 5
expect_err "$B" "backup with the mirror absent names it"
backup_gen "$A" 3 5
check "nothing was written where the absent copy belongs" test ! -e "$B"
list_points --store "$A"
check_eq "${#POINTS[@]}" 4 "points on A after two backups without B"
mv -- "$B.away" "$B"
vm store sync --store "$A"
expect_rc 0 "store sync with both copies present"
check "store sync says what it copied" grep -qE 'copied [1-9][0-9]* pack' "$VM_OUT"
check_same_copies "$A" "$B" "after store sync"
vm store sync --store "$A"
expect_rc 0 "a second store sync"
check "a second store sync copies nothing" grep -q 'copied 0 packs and 0 files' "$VM_OUT"
verify_json "$A" 0 "verify after sync (A primary)"
verify_json "$B" 0 "verify after sync (B primary)"
mv -- "$A" "$A.away"
list_points --store "$B"
check_eq "${#POINTS[@]}" 4 "points on B alone"
restore_all "$B" "the returned copy alone"
mv -- "$A.away" "$A"

# ---------------------------------------------------------------------------
section "a point pruned while a copy was absent does not come back"
new_pair prune
make_points 3
mapfile -t before < <(cut -d' ' -f1 "$PTS")
mv -- "$B" "$B.away"
vm prune --store "$A" --keep-last 1
expect_rc 5 "prune --keep-last 1 with the mirror absent (exit 5: success with warnings, a mirror absent)"
mv -- "$B.away" "$B"
vm store sync --store "$A"
expect_rc 0 "store sync after the prune"
check "store sync reports the pruned points it removed" grep -q 'removed 2 pruned point' "$VM_OUT"
for dir in "$A" "$B"; do
  list_points --store "$dir"
  check_eq "${POINTS[*]}" "${before[2]}" "points of $dir after prune and sync"
  for p in "${before[0]}" "${before[1]}"; do
    check "pruned point $p: no manifest in $dir" test ! -e "$dir/points/$p.json"
    check "pruned point $p: a tombstone in $dir" test -e "$dir/points/$p.deleted"
  done
done
check_same_copies "$A" "$B" "after prune and sync"
vm store sync --store "$B"
expect_rc 0 "store sync from B's side"
list_points --store "$B"
check_eq "${POINTS[*]}" "${before[2]}" "points of B after a sync from its side"
verify_json "$A" 0 "verify after prune and sync"
tail -n 1 "$PTS" >"$PTS.last" && mv -- "$PTS.last" "$PTS"
restore_all "$A" "the point kept by prune"

# ---------------------------------------------------------------------------
section "a read repairs a damaged pack on the primary"
new_pair read
make_points 3
read -r point1 g1 < <(sed -n 2p "$PTS")
# The tree of the "src" volume in point 1, which the restore reads first: a
# backup writes its trees into a metadata pack of their own, and a pack range
# stays on the copy first read from (store/read_balance.h), the primary when
# no copy has read yet; so the restore meets the harm and must repair it.
python3 - "$A" "$point1" >"$WORK/read.target" <<'EOF'
import json, os, struct, sys
root, point = sys.argv[1], sys.argv[2]
manifest = json.loads(open(os.path.join(root, "points", point + ".json")).readline())
vol = [v for v in manifest["volumes"] if v["name"] == "src"]
assert len(vol) == 1, "no volume src in point " + point
want = bytes.fromhex(vol[0]["root"]["subtree"])
for dp, _, fs in os.walk(os.path.join(root, "packs")):
    for f in fs:
        p = os.path.join(dp, f)
        data = open(p, "rb").read()
        count, _, table = struct.unpack_from("<I32sQ", data, len(data) - 52)
        for i in range(count):
            e = data[table + 52 * i: table + 52 * (i + 1)]
            bid, typ, comp, _, stored, raw, off = struct.unpack("<32sBBHIIQ", e)
            if bid == want:
                print(os.path.relpath(p, root), off + stored // 2)
                sys.exit(0)
sys.exit("no pack holds the tree of volume src")
EOF
read -r rel offset <"$WORK/read.target"
echo "    flipping a bit of the src tree of point $point1 in A/$rel at offset $offset"
flip_bit "$A/$rel" "$offset" >/dev/null
cp -- "$A/$rel" "$WORK/read.damaged"
vm restore --store "$A" "$point1" src/gen-1.bin --to "$WORK/read.restored"
_count_check
if [ "$VM_RC" -ne 0 ] && [ "$VM_RC" -ne 5 ]; then
  _fail "restore of a file whose block is damaged on the primary only"
  _vm_context
fi
check_same_file "$GEN/$g1/gen-1.bin" "$WORK/read.restored" "restored file (damaged tree read from the mirror)"
check_same_file "$B/$rel" "$A/$rel" "the primary's pack after the read repaired it"
mapfile -t kept < <(kept_aside "$A" "$rel")
check_eq "${#kept[@]}" 1 "number of kept-aside copies of the damaged pack"
if [ "${#kept[@]}" -eq 1 ]; then
  check_same_file "$WORK/read.damaged" "$A/${kept[0]}" "kept-aside pack holds the damaged bytes"
fi
check_no_bad_files "$B" "the mirror"
check_same_copies "$A" "$B" "after the read repair"
verify_json "$A" 0 "verify after the read repair"

# ---------------------------------------------------------------------------
section "verify's text after a repair"
new_pair textv
make_points "$NGEN"
damage 20260102 one "$A" || die "cannot damage the store"
vm verify --store "$A"
expect_rc 5 "verify (text) of a store damaged on one copy"
check "the text says what was repaired, not only 'all good'" \
  grep -qE "files: all good after repairing [0-9]+ damaged or missing files? from another copy" "$VM_OUT"
check "the text says the bytes were read from both copies" grep -qE "read from 2 copies, " "$VM_OUT"
check_same_copies "$A" "$B" "after the text verify repaired A"

section "a copy holding a different store"
new_pair other
make_points 1
vm store init "$WORK/elsewhere"
expect_rc 0 "another store"
vm list --store "$A" --mirror "$WORK/elsewhere"
expect_rc 0 "list with a copy that holds another store (it lists from the present copy)"
expect_err "holds a different store" "names what is there"
expect_err "it is not a copy of this one" "says what is true"
check "no advice to bring it back with store sync" bash -c "! grep -q 'brings it up to date' '$VM_ERR'"

section "an empty replacement disk becomes a full copy"
new_pair repl
make_points 3
rm -rf -- "${B:?}"/* "${B:?}"/.[!.]*
check "the replacement disk is empty" test -z "$(ls -A "$B")"
vm store sync --store "$A"
expect_rc 5 "store sync with the replacement disk only recorded in config.json"
check "a disk's config.json alone does not make a copy" test -z "$(ls -A "$B")"
vm store sync --store "$A" --mirror "$B"
expect_rc 0 "store sync onto an empty replacement disk named with --mirror"
check "no warning that it goes on without the copy it is making" bash -c "! grep -q 'warning' '$VM_ERR'"
expect_err "it is made a new copy of the store" "says it makes the copy"
check_eq "$(grep -cE 'copies in step|synced the copies' "$VM_OUT" "$VM_ERR" | awk -F: '{ n += $2 } END { print n }')" 1 \
  "the summary is printed once"
check "the replacement disk is a store now" test -f "$B/config.json"
check_same_copies "$A" "$B" "after store sync onto the replacement disk"
check "the replacement disk has the same store_id" python3 -c '
import json, sys
a, b = (json.load(open(p + "/config.json")) for p in sys.argv[1:])
assert a["store_id"] == b["store_id"], (a, b)
assert a["copy_id"] != b["copy_id"], "the new copy has the primary'"'"'s copy_id"' "$A" "$B"
backup_gen "$A" 3 0
check_same_copies "$A" "$B" "a backup after the replacement"
verify_json "$A" 0 "verify after the replacement (A primary)"
check "verify reports both copies" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["copies"]) == 2, r["copies"]' "$WORK/verify.json"
verify_json "$B" 0 "verify after the replacement (B primary)"
mv -- "$A" "$A.away"
restore_all "$B" "the replacement disk alone"
mv -- "$A.away" "$A"

# ---------------------------------------------------------------------------
section "cp -a of a store directory is not a mirror of its original"
SOLO=$WORK/solo
vm store init "$SOLO"
expect_rc 0 "store init $SOLO"
PTS=$WORK/solo.points
: >"$PTS"
backup_gen "$SOLO" 0 0
cp -a -- "$SOLO" "$SOLO-clone"
store_listing "$SOLO" >"$WORK/solo.before"
backup_gen "$SOLO-clone" 1 0
check_unchanged "$SOLO" "$WORK/solo.before" "a backup to a cp -a clone of a single-copy store"
list_points --store "$SOLO"
check_eq "${#POINTS[@]}" 1 "points of the original after a backup to its clone"
list_points --store "$SOLO-clone"
check_eq "${#POINTS[@]}" 2 "points of the clone"

new_pair clone
make_points 1
cp -a -- "$A" "$A-clone"
store_listing "$A" >"$WORK/clone-a.before"
store_listing "$B" >"$WORK/clone-b.before"
# Exit 5: the clone's recorded mirrors are not used, with a warning.
backup_gen "$A-clone" 1 5
check_unchanged "$A" "$WORK/clone-a.before" "a backup to a cp -a clone of the primary (the primary)"
check_unchanged "$B" "$WORK/clone-b.before" "a backup to a cp -a clone of the primary (the original's mirror)"
vm store sync --store "$A"
expect_rc 0 "store sync of the original store"
list_points --store "$A"
check_eq "${#POINTS[@]}" 1 "points of the original store after a backup to a clone of its primary"

finish
