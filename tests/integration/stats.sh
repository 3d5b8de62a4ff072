#!/usr/bin/env bash
# vmback stats on a store with 4 KiB blocks and two points of one seeded
# file that share most of their blocks (exact figures): the logical sizes,
# the distinct blocks (a zero block and a repeated block counted as saved),
# plain and stored sizes, the blocks unique to each point (what deleting it
# would free), the copies' sizes, one point asked for, a point not there;
# each volume of a point of two (its blocks in it alone);
# and on a dir target, the du of the point.
#
# Usage: bash tests/integration/stats.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

command -v python3 >/dev/null || die "needs python3"

# f: 40 blocks of 4 KiB, seeded random (incompressible: stored as is),
# block 20 all zeros, block 31 a repeat of block 30: 38 distinct blocks.
SRC=$WORK/src
mkdir -p "$SRC"
python3 - "$SRC/f" <<'PY'
import random, sys
r = random.Random(15)
blocks = [r.randbytes(4096) for _ in range(40)]
blocks[20] = bytes(4096)
blocks[31] = blocks[30]
open(sys.argv[1], "wb").write(b"".join(blocks))
PY

STORE=$WORK/store
vm store init "$STORE" --block-size 4K
expect_rc 0 "store init"
vm backup --store "$STORE" "$SRC"
expect_rc 0 "first backup"
sleep 1.1  # point names are to the second
# Blocks 3 and 10 of f rewritten, and g (2 new blocks) added.
python3 - "$SRC/f" "$SRC/g" <<'PY'
import random, sys
r = random.Random(16)
with open(sys.argv[1], "r+b") as f:
    for b in (3, 10):
        f.seek(b * 4096)
        f.write(r.randbytes(4096))
open(sys.argv[2], "wb").write(r.randbytes(8192))
PY
vm backup --store "$STORE" "$SRC"
expect_rc 0 "second backup"
list_points --store "$STORE"
P1=${POINTS[0]:-none}
P2=${POINTS[1]:-none}

# stats_check WHAT PYTHON: the JSON in $VM_OUT satisfies PYTHON (d: it;
# p: its points by name).
stats_check() {
  check "$1" python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
p = {x['name']: x for x in d['points']}
$2" "$VM_OUT"
}

section "store: every point"
vm stats --store "$STORE" --json
expect_rc 0 "stats --json"
stats_check "the logical sizes" "
assert p['$P1']['logical_bytes'] == 163840 and p['$P1']['files'] == 1, p
assert p['$P2']['logical_bytes'] == 172032 and p['$P2']['files'] == 2, p
assert d['logical_bytes'] == 335872, d"
stats_check "the distinct blocks: 38 + 2 rewritten + 2 of g" "
assert d['blocks'] == 42 and d['raw_bytes'] == 42 * 4096, d
assert d['stored_bytes'] == d['raw_bytes'], d  # random data is stored as is"
stats_check "the bytes unique to each point" "
assert p['$P1']['unique_blocks'] == 2 and p['$P1']['unique_raw_bytes'] == 8192, p['$P1']
assert p['$P1']['unique_stored_bytes'] == 8192, p['$P1']
assert p['$P2']['unique_blocks'] == 4 and p['$P2']['unique_raw_bytes'] == 16384, p['$P2']"
COPY_BYTES=$(find "$STORE/packs" "$STORE/index" "$STORE/points" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
stats_check "the copy's size: its packs, index and points" "
assert [c['bytes'] for c in d['copies']] == [$COPY_BYTES], d['copies']"

vm stats --store "$STORE"
expect_rc 0 "stats as text"
check "the text gives the ratios" grep -qxF "compression 1.00x, deduplication 1.95x" "$VM_OUT"
check "the text gives what deleting the first point frees" \
  grep -qF "$P1: 160.0 KiB in 1 file; unique to it 2 blocks, 8.0 KiB stored" "$VM_OUT"

section "store: one point"
vm stats --store "$STORE" "$P1" --json
expect_rc 0 "stats POINT"
stats_check "only that point, its own blocks, uniqueness against all points" "
assert list(p) == ['$P1'], list(p)
assert d['logical_bytes'] == 163840 and d['blocks'] == 38, d
assert p['$P1']['unique_blocks'] == 2, p"
vm stats --store "$STORE" latest --json
expect_rc 0 "stats latest"
stats_check "latest is the second point" "assert list(p) == ['$P2'], list(p)"
vm stats --store "$STORE" nope
expect_nonzero "stats of a point not there"
expect_err "nope" "the error names the point"

section "store: per volume"
# A third point of two volumes: src unchanged, and src2 whose h holds g's two
# blocks and one new one: in src2 alone is the new block only.
SRC2=$WORK/src2
mkdir -p "$SRC2"
python3 - "$SRC/g" "$SRC2/h" <<'PY'
import random, sys
g = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(g + random.Random(17).randbytes(4096))
PY
sleep 1.1
vm backup --store "$STORE" "$SRC" "$SRC2"
expect_rc 0 "backup of two volumes"
vm stats --store "$STORE" latest --json
expect_rc 0 "stats of the two-volume point"
stats_check "each volume's files, size and blocks in it alone" "
(q,) = p.values()
v = {x['name']: x for x in q['volumes']}
assert sorted(v) == ['src', 'src2'], v
assert v['src']['files'] == 2 and v['src']['logical_bytes'] == 172032, v
assert v['src']['unique_blocks'] == 0, v  # all in the second point too
assert v['src2']['files'] == 1 and v['src2']['logical_bytes'] == 12288, v
assert v['src2']['unique_blocks'] == 1 and v['src2']['unique_raw_bytes'] == 4096, v
assert q['unique_blocks'] == 1 and q['logical_bytes'] == 172032 + 12288, q"
vm stats --store "$STORE" latest
expect_rc 0 "stats of the two-volume point as text"
check "the text gives each volume" grep -qF "    src2: 12.0 KiB in 1 file; in this volume alone 1 block, 4.0 KiB stored" "$VM_OUT"

section "dir target: du of the point"
MIRROR=$WORK/mirror
mkdir -p "$MIRROR"
vm backup --dir "$MIRROR" "$SRC"
expect_rc 0 "backup into a dir target"
vm stats --dir "$MIRROR" --json
expect_rc 0 "stats of a dir target"
DU=$(du -s -x -B1 "$MIRROR" | cut -f1)
stats_check "the point's du" "assert [(x['name'], x['du_bytes']) for x in d['points']] == [('current', $DU)], d"
finish
