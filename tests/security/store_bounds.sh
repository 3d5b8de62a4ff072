#!/usr/bin/env bash
# Forged lengths in a store (issue 11, "Resource exhaustion"): an index entry
# or a pack that claims a blob of 4 GiB, or a pack table of 2^32 entries, must
# be refused as corruption, named, before anything of that size is allocated.
# Each case starts from a real store made by the binary, forges bytes as
# docs/FORMAT.md lays them out (with correct checksums, so that only the
# length is wrong), runs restore and verify under /usr/bin/time -v, and checks
# the exit status, the message and the peak resident memory.
#
# usage: bash store_bounds.sh /path/to/vmback
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh" "$@"

command -v python3 >/dev/null || die "python3 is needed to forge the store"
[ -x /usr/bin/time ] || die "/usr/bin/time (package time) is needed to measure peak memory"

MAX_RSS_KB=$((256 * 1024))

# vm_timed ARGS...: like vm (VM_RC, VM_OUT, VM_ERR, VM_CMD for lib.sh's
# checks), under /usr/bin/time -v; sets VM_RSS_KB to the
# peak resident set size. The address space is capped at 8 GiB so that a
# regression fails this test instead of exhausting the machine running it.
vm_timed() {
  _VM_N=$((_VM_N + 1))
  VM_OUT="$WORK/.vm/$_VM_N.out"
  VM_ERR="$WORK/.vm/$_VM_N.err"
  local tfile="$WORK/.vm/$_VM_N.time"
  mkdir -p "$WORK/.vm"
  # shellcheck disable=SC2034  # read by lib.sh's expect_* and _vm_context
  VM_CMD="vmback$(printf ' %q' "$@")"
  VM_RC=0
  (ulimit -v $((8 << 20)) && exec /usr/bin/time -v -o "$tfile" "$VMBACK" "$@") \
    >"$VM_OUT" 2>"$VM_ERR" || VM_RC=$?
  VM_RSS_KB=$(awk -F': *' '/Maximum resident set size/ {print $2}' "$tfile")
  if grep -q 'terminated by signal' "$tfile"; then
    sed 's/^/      /' "$tfile" | head -3 >>"$VM_ERR"
  fi
}

# check_rss WHAT: the last vm_timed run stayed under MAX_RSS_KB.
check_rss() {
  _count_check
  if [ -z "${VM_RSS_KB:-}" ] || [ "$VM_RSS_KB" -ge "$MAX_RSS_KB" ]; then
    _fail "$1: peak RSS ${VM_RSS_KB:-unknown} KiB, limit $MAX_RSS_KB KiB"
    _vm_context
    return 0
  fi
  echo "    $1: peak RSS $VM_RSS_KB KiB"
}

# forge STORE WHAT: rewrites bytes of the store's one index file or of its
# data pack per docs/FORMAT.md and prints the path of the file it forged (for
# an index forgery, on a second line, the name of the pack its entry is in).
#   index-huge     the first data blob's index entry: stored_len 0xFFFFFFFF,
#                  raw_len 4 GiB-1 (checksum and file name recomputed)
#   index-past-end the same entry: stored raw, 16 MiB (within the format's
#                  maximum for a data blob, beyond the end of its pack)
#   pack-huge      the pack's footer claims 2^32-1 entries and its first blob
#                  header claims stored_len and raw_len 4 GiB-1; the index
#                  files are removed so that the pack itself must be read
forge() {
  python3 - "$1" "$2" <<'EOF'
import glob, hashlib, os, struct, sys

store, what = sys.argv[1], sys.argv[2]
ENTRY = 52

def only(pattern):
    files = sorted(glob.glob(os.path.join(store, pattern)))
    if len(files) != 1:
        sys.exit("expected one file matching %s, found %d" % (pattern, len(files)))
    return files[0]

if what.startswith("index-"):
    path = only("index/*.idx")
    data = bytearray(open(path, "rb").read())
    assert data[:8] == b"VMBINDX\n", "not an index file"
    body = data[:-32]
    assert hashlib.sha256(body).digest() == bytes(data[-32:]), "index checksum"
    (npacks,) = struct.unpack_from("<I", body, 12)
    pos, target, pack = 16, None, None
    for _ in range(npacks):
        pack_id = bytes(body[pos:pos + 32]).hex()
        (n,) = struct.unpack_from("<I", body, pos + 32)
        pos += 36
        for k in range(n):
            if body[pos + 32] == 0 and target is None:  # type 0: data
                target, pack = pos, pack_id
            pos += ENTRY
    assert target is not None, "no data blob in the index"
    if what == "index-huge":
        body[target + 33] = 1  # zstd
        struct.pack_into("<II", body, target + 36, 0xFFFFFFFF, 0xFFFFFFFF)
    elif what == "index-past-end":
        body[target + 33] = 0  # stored raw
        struct.pack_into("<II", body, target + 36, 16 << 20, 16 << 20)
    else:
        sys.exit("unknown forgery " + what)
    out = bytes(body) + hashlib.sha256(body).digest()
    new = os.path.join(os.path.dirname(path), hashlib.sha256(out).hexdigest() + ".idx")
    os.remove(path)
    with open(new, "wb") as f:
        f.write(out)
    print(new)
    print(pack + ".pack")
elif what == "pack-huge":
    # A backup writes its data blobs and its metadata into separate packs:
    # the forged one is the data pack, the largest.
    path = max(glob.glob(os.path.join(store, "packs/*/*.pack")), key=os.path.getsize)
    data = bytearray(open(path, "rb").read())
    assert data[:8] == b"VMBPACK\n" and data[-8:] == b"VMBPEND\n", "not a pack"
    struct.pack_into("<I", data, len(data) - 52, 0xFFFFFFFF)   # footer: entry count
    struct.pack_into("<II", data, 12 + 4, 0xFFFFFFFF, 0xFFFFFFFF)  # first blob header
    with open(path, "wb") as f:
        f.write(data)
    for idx in glob.glob(os.path.join(store, "index/*.idx")):
        os.remove(idx)
    print(path)
else:
    sys.exit("unknown forgery " + what)
EOF
}

section "a real store with one small backup"
SRC="$WORK/src"
mkdir -p "$SRC"
rand_file "$SRC/data.bin" 300K
text_file "$SRC/notes.txt" 200000
STORE="$WORK/store"
vm store init "$STORE"
expect_rc 0 "store init"
vm backup --store "$STORE" "$SRC"
expect_rc 0 "backup of a small tree"
vm restore --store "$STORE" latest --to "$WORK/r-pristine"
expect_rc 0 "restore of the unforged store"
check_same_tree "$SRC" "$WORK/r-pristine/src" "restore of the unforged store"

section "index entry: stored_len 0xFFFFFFFF, raw_len 4 GiB-1"
cp -a "$STORE" "$WORK/s-huge"
IDX=$(forge "$WORK/s-huge" index-huge | sed -n 1p)  # sed reads it all: no broken pipe for the forger
vm_timed restore --store "$WORK/s-huge" latest --to "$WORK/r-huge"
check_rss "restore with a forged index entry"
# The index is a cache: the entry is refused, the index file named, and the
# pack's own table read instead, so the restore itself comes out whole.
expect_err "$(basename "$IDX")" "restore names the forged index file"
expect_rc 0 "restore with a forged index entry (the packs are intact)"
[ -d "$WORK/r-huge/src" ] && check_same_tree "$SRC" "$WORK/r-huge/src" "restore with a forged index entry"
vm_timed verify --store "$WORK/s-huge"
check_rss "verify with a forged index entry"
expect_err "$(basename "$IDX")" "verify names the forged index file"

section "index file: 150 MiB that is no index at all"
# Only the file itself may be held (it is read whole, under its cap): room
# for the entries it could name is made only once it has passed every check.
# Made room for first (as once), the table of 4 million slots alone would
# have put the peak well past MAX_RSS_KB.
cp -a "$STORE" "$WORK/s-junk"
JUNK="$WORK/s-junk/index/$(printf 'f%.0s' $(seq 64)).idx"
truncate -s 150M "$JUNK"
chmod 600 "$JUNK"
vm_timed restore --store "$WORK/s-junk" latest --to "$WORK/r-junk"
check_rss "restore beside a 150 MiB index file of zeros"
expect_rc 0 "restore beside an index file that is no index (the real one is whole)"
expect_err "$(basename "$JUNK")" "restore names the file that is no index"
[ -d "$WORK/r-junk/src" ] && check_same_tree "$SRC" "$WORK/r-junk/src" "restore beside a junk index file"

section "index entry: 16 MiB stored raw, past the end of its pack"
cp -a "$STORE" "$WORK/s-end"
FORGED=$(forge "$WORK/s-end" index-past-end)
IDX=$(sed -n 1p <<<"$FORGED")
PACK=$(sed -n 2p <<<"$FORGED")  # the pack the forged entry points into
vm_timed restore --store "$WORK/s-end" latest --to "$WORK/r-end"
check_rss "restore with an index entry past the end of its pack"
expect_nonzero "restore with an index entry past the end of its pack"
expect_err "$(basename "$PACK")" "restore names the pack the entry does not fit in"
# verify re-reads the packs themselves, not through the index: it finds them
# whole. Only its memory is checked here.
vm_timed verify --store "$WORK/s-end"
check_rss "verify with an index entry past the end of its pack"

section "pack: footer claims 2^32-1 entries, first blob header 4 GiB-1, no index"
cp -a "$STORE" "$WORK/s-pack"
PACK=$(forge "$WORK/s-pack" pack-huge)
vm_timed restore --store "$WORK/s-pack" latest --to "$WORK/r-pack"
check_rss "restore from a pack with forged lengths"
expect_nonzero "restore from a pack with forged lengths"
expect_err "$(basename "$PACK")" "restore names the forged pack"
vm_timed verify --store "$WORK/s-pack"
check_rss "verify of a pack with forged lengths"
expect_nonzero "verify of a pack with forged lengths"
expect_err "$(basename "$PACK")" "verify names the forged pack"

# An encrypted store (issue 18): the pack table and the index files are
# sealed, but the blob headers and the footer are read before anything is
# opened, so the same forged lengths must be refused on their own, before
# any allocation beyond the file's size; a sealed object that does not open
# is damage, named.
section "encrypted store: pack footer 2^32-1 entries, first blob header 4 GiB-1, no index"
KEY="$WORK/store.key"
ESTORE="$WORK/estore"
vm store init "$ESTORE" --encrypt --key-file "$KEY"
expect_rc 0 "store init --encrypt"
vm backup --store "$ESTORE" --key-file "$KEY" "$SRC"
expect_rc 0 "backup into the encrypted store"
cp -a "$ESTORE" "$WORK/e-pack"
PACK=$(forge "$WORK/e-pack" pack-huge)
vm_timed restore --store "$WORK/e-pack" --key-file "$KEY" latest --to "$WORK/r-epack"
check_rss "restore from an encrypted pack with forged lengths"
expect_nonzero "restore from an encrypted pack with forged lengths"
expect_err "$(basename "$PACK")" "restore names the forged pack"
vm_timed verify --store "$WORK/e-pack" --key-file "$KEY"
check_rss "verify of an encrypted pack with forged lengths"
expect_rc 3 "verify of an encrypted pack with forged lengths is damage"
expect_err "$(basename "$PACK")" "verify names the forged pack"

section "encrypted store: a sealed manifest cut short"
cp -a "$ESTORE" "$WORK/e-man"
MAN=$(ls "$WORK/e-man"/points/*.json)
head -c 30 "$MAN" >"$MAN.cut" && mv "$MAN.cut" "$MAN"
vm_timed restore --store "$WORK/e-man" --key-file "$KEY" latest --to "$WORK/r-eman"
check_rss "restore of a cut sealed manifest"
expect_rc 3 "a cut sealed manifest is damage"
expect_err "$(basename "$MAN")" "names the manifest"

section "encrypted store: a paper key of 64 MiB on standard input"
# key import - reads a paper key (a few lines) from standard input: the
# read is bounded, a forged endless one is refused without holding it.
set +o pipefail
head -c $((64 << 20)) /dev/zero | tr '\0' 'a' >"$WORK/huge-paper"
set -o pipefail
vm_timed key import --store "$ESTORE" --new-key-file "$WORK/never.key" - <"$WORK/huge-paper"
check_rss "key import of a 64 MiB paper key"
expect_rc 2 "a 64 MiB paper key is refused (exit 2)"
expect_err "longer than 4096 bytes" "says it is too long"
check "no key file was made" test ! -e "$WORK/never.key"

finish
