#!/usr/bin/env bash
# Excludes (issue 16), as a user meets them, on the store and on a dir
# target, with both living under the tree they back up:
#
#   dry run    backup -c --dry-run lists what would be read (files, bytes)
#              and every entry excluded with its reason (pattern,
#              CACHEDIR.TAG, vmback's own store); it creates no store, no
#              lock, no state directory, no report
#   store      backup -c with exclude = [...], exclude_caches = true and
#              --exclude-file: the point lacks exactly the excluded entries
#              (a cache directory keeps its CACHEDIR.TAG; a tag with a
#              wrong signature is no tag; "tmp/" leaves a file named tmp);
#              the store under the source is skipped with a notice
#   dir        backup --dir MIRROR SRC with MIRROR under SRC: the mirror is
#              skipped with a notice; a second backup with --exclude and
#              --exclude-caches deletes what became excluded from the
#              mirror (rsync --delete-excluded)
#   errors     a bad pattern in the config, in --exclude or in an exclude
#              file is a config error (exit 2) naming it (and the volume,
#              or the file and line)
#
# Usage: bash tests/integration/excludes.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

SRC=$WORK/src
mkdir -p "$SRC/data" "$SRC/var/cache/apt" "$SRC/var/lib" "$SRC/tmp" "$SRC/home/u/.cache/thumbs" \
  "$SRC/fakecache" "$SRC/backup" "$SRC/state"
printf 'keep\n' >"$SRC/keep.txt"
rand_file "$SRC/data/a.bin" 300K
printf 'scratch\n' >"$SRC/junk.tmp"
printf 'scratch\n' >"$SRC/data/b.tmp"
printf 'a file named tmp\n' >"$SRC/data/tmp"
rand_file "$SRC/var/cache/apt/pkg.deb" 200K
printf 'lib\n' >"$SRC/var/lib/state"
printf 'tmp\n' >"$SRC/tmp/t.txt"
printf 'Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n' >"$SRC/home/u/.cache/CACHEDIR.TAG"
rand_file "$SRC/home/u/.cache/thumbs/t1.png" 100K
printf 'Signature: 0000000000000000000000000000000\n' >"$SRC/fakecache/CACHEDIR.TAG"
printf 'not a cache\n' >"$SRC/fakecache/blob"
printf 'skip me\n' >"$SRC/data/skip-me"

STORE=$SRC/backup/store
CFG=$WORK/vmback.toml
cat >"$CFG" <<EOF
[target]
path = "$STORE"

[run]
state_dir = "$SRC/state"

[[volume]]
name = "src"
source = "$SRC"
exclude = ["/var/cache/*", "*.tmp", "tmp/"]
exclude_caches = true
EOF
printf '# patterns for the test\n\n/data/skip-me\n' >"$WORK/excludes.txt"

vm store init "$STORE"
expect_rc 0 "store init"
snapshot_of() { find "$1" -printf '%p %s %T@ %m\n' | sort; }
before=$(snapshot_of "$STORE")

section "dry run: lists, writes nothing"
vm backup -c "$CFG" --exclude-file "$WORK/excludes.txt" --dry-run
expect_rc 0 "backup --dry-run"
out=$(cat "$VM_OUT")
for want in \
  "excluded backup/store (vmback's own: the store $STORE)" \
  "excluded state (vmback's own: vmback's state directory $SRC/state)" \
  "excluded data/b.tmp (pattern *.tmp)" \
  "excluded junk.tmp (pattern *.tmp)" \
  "excluded tmp (pattern tmp/)" \
  "excluded var/cache/apt (pattern /var/cache/*)" \
  "excluded data/skip-me (pattern /data/skip-me)" \
  "excluded home/u/.cache/thumbs (CACHEDIR.TAG in home/u/.cache)" \
  "exclude pattern /var/cache/*" \
  "exclude caches: the entries of directories with a CACHEDIR.TAG (the tag kept)"; do
  check "dry run lists: $want" grep -qxF -- "  $want" "$VM_OUT"
done
# keep.txt, a.bin, data/tmp, var/lib/state, the two tags, fakecache/blob
check_eq "$(grep -c '^volume src' "$VM_OUT")" 1 "dry run: one line for the volume"
check "dry run: would read 7 files" grep -qE '^volume src \(.*\): would read 7 files, [0-9.]+ KiB; 8 excluded$' "$VM_OUT"
check "dry run: a total" grep -qE '^total: would read 7 files' "$VM_OUT"
check "dry run: no fakecache exclusion" bash -c "! grep -q fakecache '$VM_OUT'"
check_eq "$(snapshot_of "$STORE")" "$before" "dry run: the store unchanged (no lock, no file)"
check "dry run: nothing new in the state directory" test -z "$(ls -A "$SRC/state")"
vm backup -c "$CFG" --exclude-file "$WORK/excludes.txt" --dry-run --json
expect_rc 0 "backup --dry-run --json"
check "dry run --json: the figures and every exclusion with its reason" python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
v = d['volumes'][0]
assert d['dry_run'] is True and d['files'] == 7 and v['files'] == 7 and v['excluded'] == 8, d
by = {e['path']: (e['reason'], e['detail']) for e in v['excluded_entries']}
assert by['junk.tmp'] == ('pattern', '*.tmp'), by
assert by['home/u/.cache/thumbs'] == ('CACHEDIR.TAG', 'home/u/.cache'), by
assert by['backup/store'][0] == 'own', by
assert 'pattern /data/skip-me' in v['excludes'], v['excludes']" "$VM_OUT"
rmdir "$SRC/state"
vm backup -c "$CFG" --dry-run
expect_rc 0 "backup --dry-run, no state directory"
check "dry run: no state directory made" test ! -e "$SRC/state"
mkdir "$SRC/state"
printf 'journal-ish\n' >"$SRC/state/note"

section "store under the source: excludes applied, the store skipped"
vm backup -c "$CFG" --exclude-file "$WORK/excludes.txt"
expect_rc 0 "backup -c with excludes"
expect_err "$STORE: left out, not backed up: it is the store $STORE" "the store is skipped with a notice"
expect_err "$SRC/state: left out, not backed up: it is vmback's state directory" "the state dir is skipped with a notice"
expect_err "$SRC/home/u/.cache: a cache directory (CACHEDIR.TAG)" "the cache directory is named"
vm restore -c "$CFG" latest --to "$WORK/r"
expect_rc 0 "restore the point"
R=$WORK/r/src
for p in keep.txt data/a.bin data/tmp var/lib/state var/cache home/u/.cache/CACHEDIR.TAG fakecache/blob \
  fakecache/CACHEDIR.TAG backup; do
  check "restored: $p" test -e "$R/$p"
done
for p in junk.tmp data/b.tmp tmp var/cache/apt home/u/.cache/thumbs data/skip-me backup/store state; do
  check "not in the point: $p" test ! -e "$R/$p"
done
check_same_file "$SRC/data/a.bin" "$R/data/a.bin" "a kept file is whole"
check "the point is small (the store was not read into itself)" test "$(du -sk "$STORE" | cut -f1)" -lt 2000

section "errors name the pattern"
vm backup -c "$CFG" --exclude '[abc' --dry-run
expect_rc 2 "a bad --exclude"
expect_err '--exclude "[abc": a '"'"'['"'"' is not closed by '"'"']'"'" "the bad --exclude named"
printf 'ok\n!negated\n' >"$WORK/bad.txt"
vm backup -c "$CFG" --exclude-file "$WORK/bad.txt"
expect_rc 2 "a bad exclude file"
expect_err "$WORK/bad.txt:2: exclude pattern \"!negated\": negation" "the file and line named"
sed 's|"tmp/"]|"tmp/", "a//b"]|' "$CFG" >"$WORK/bad.toml"
vm backup -c "$WORK/bad.toml" --dry-run
expect_rc 2 "a bad pattern in the config"
expect_err "volume 'src': exclude pattern \"a//b\": it holds an empty component" "the volume and pattern named"

section "dir target under the source: skipped; --delete-excluded"
MIRROR=$SRC/backup/mirror
mkdir "$MIRROR"
vm backup --dir "$MIRROR" "$SRC"
expect_rc 0 "backup into a dir target under the source"
expect_err "$MIRROR: left out, not backed up: it is the dir target $MIRROR" "the target is skipped with a notice"
check "no mirror of the mirror" test ! -e "$MIRROR/src/backup/mirror"
check "the store is mirrored (not this target's own)" test -e "$MIRROR/src/backup/store"
for p in junk.tmp data/b.tmp tmp/t.txt home/u/.cache/thumbs/t1.png; do
  check "mirrored without excludes: $p" test -e "$MIRROR/src/$p"
done
vm backup --dir "$MIRROR" --exclude '*.tmp' --exclude /tmp/ --exclude /backup/store --exclude-caches "$SRC"
expect_rc 0 "backup into the dir target with excludes"
for p in junk.tmp data/b.tmp tmp home/u/.cache/thumbs backup/store; do
  check "deleted from the mirror once excluded: $p" test ! -e "$MIRROR/src/$p"
done
for p in keep.txt data/a.bin data/tmp home/u/.cache/CACHEDIR.TAG fakecache/blob var/cache/apt/pkg.deb; do
  check "still mirrored: $p" test -e "$MIRROR/src/$p"
done
check_same_file "$SRC/data/a.bin" "$MIRROR/src/data/a.bin" "the mirror's copy is whole"
vm verify --dir "$MIRROR"
expect_rc 0 "the dir target verifies after the deletions (blockmaps in line)"
vm ls --dir "$MIRROR" current src -R
expect_rc 0 "ls of the dir target"
check "ls shows no excluded entry" bash -c "! grep -qE '(\.tmp|thumbs|backup/store)\$' '$VM_OUT'"
vm backup --dir "$MIRROR" --exclude '*.tmp' --dry-run "$SRC"
expect_rc 0 "dry run into a dir target"
check "dry run names the target as own" grep -qF "  excluded backup/mirror (vmback's own: the dir target $MIRROR)" "$VM_OUT"

finish
