#!/usr/bin/env bash
# Damaged copies a repair set aside (*.bad-<ns>, beside the file they
# replaced) are reported by verify and stats (how many, their bytes, the
# oldest) and removed by prune once older than [store] keep_bad (default
# 30d), prune (and run's prune) saying which; younger ones stay.
#
# Usage: bash tests/integration/set_aside.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

SRC=$WORK/tree
mkdir -p "$SRC"
head -c 300000 /dev/urandom >"$SRC/a.bin"
STORE=$WORK/store
vm store init "$STORE"
expect_rc 0 "store init"
vm backup --store "$STORE" "$SRC"
expect_rc 0 "backup"

# Two set-aside files as heal leaves them: an old pack copy (40 days) and a
# recent index file (an hour).
PACK=$(find "$STORE/packs" -name '*.pack' | head -1)
[ -n "$PACK" ] || die "no pack in the store"
NOW_NS=$(date +%s%N)
OLD_NS=$((NOW_NS - 40 * 86400 * 1000000000))
NEW_NS=$((NOW_NS - 3600 * 1000000000))
OLD=$PACK.bad-$OLD_NS
head -c 5000 /dev/urandom >"$OLD"
NEW=$STORE/index/old-index.bad-$NEW_NS
head -c 1000 /dev/urandom >"$NEW"
OLD_DATE=$(date -u -d "@$((OLD_NS / 1000000000))" +%Y-%m-%d)

section "verify reports what is set aside"
vm verify --store "$STORE"
expect_rc 0 "verify of a sound store with files set aside"
check "verify: how many and their bytes" grep -qF "2 damaged files set aside (*.bad-*): 5.9 KiB" "$VM_OUT"
check "verify: the oldest" grep -qF "the oldest from $OLD_DATE" "$VM_OUT"
check "verify: what prune does with them" grep -qF "keep_bad" "$VM_OUT"
vm verify --store "$STORE" --json
expect_rc 0 "verify --json"
check_eq "$(json_field "$VM_OUT" 'd["set_aside"]["count"]')" 2 "verify --json: set_aside.count"
check_eq "$(json_field "$VM_OUT" 'd["set_aside"]["bytes"]')" 6000 "verify --json: set_aside.bytes"

section "stats reports what is set aside"
vm stats --store "$STORE"
expect_rc 0 "stats"
check "stats: how many and their bytes" grep -qF "2 damaged files set aside (*.bad-*): 5.9 KiB" "$VM_OUT"
vm stats --store "$STORE" --json
expect_rc 0 "stats --json"
check_eq "$(json_field "$VM_OUT" 'd["set_aside"]["oldest_ns"]')" "$OLD_NS" "stats --json: set_aside.oldest_ns"

section "prune removes those older than keep_bad (30d by default)"
vm prune --store "$STORE" --keep-last 1 --dry-run
expect_rc 0 "prune --dry-run"
check "prune --dry-run: names the old file" grep -qF "$OLD" "$VM_OUT"
check "prune --dry-run: removes nothing" test -f "$OLD"
vm prune --store "$STORE" --keep-last 1
expect_rc 0 "prune"
check "prune: says what it removed" grep -qF "removed 1 damaged file set aside more than 30d ago (4.9 KiB)" "$VM_OUT"
check "prune: names it" grep -qF "$OLD" "$VM_OUT"
check "prune: the old file is gone" test ! -e "$OLD"
check "prune: the recent one stays" test -f "$NEW"
vm verify --store "$STORE"
expect_rc 0 "verify after prune"

section "[store] keep_bad"
cat >"$WORK/vmback.toml" <<TOML
[target]
path = "$STORE"

[[volume]]
name = "tree"
source = "$SRC"

[store]
keep_bad = "30m"

[retention]
keep_last = 1
TOML
vm prune -c "$WORK/vmback.toml"
expect_rc 0 "prune with keep_bad = 30m"
check "keep_bad = 30m: the hour-old file goes" test ! -e "$NEW"
check "prune: says what it removed" grep -qF "more than 30m ago" "$VM_OUT"
printf '[target]\npath = "%s"\n[[volume]]\nname = "tree"\nsource = "%s"\n[store]\nkeep_bad = "soon"\n' "$STORE" "$SRC" >"$WORK/bad.toml"
vm prune -c "$WORK/bad.toml" --keep-last 1
expect_rc 2 "a keep_bad that is not a duration"
expect_err "keep_bad" "the error names the key"
section "run's prune removes them too"
OLD2=$PACK.bad-$OLD_NS
head -c 100 /dev/urandom >"$OLD2"
mkdir -p "$WORK/state"
cat >"$WORK/run.toml" <<TOML
[target]
path = "$STORE"

[[volume]]
name = "tree"
source = "$SRC"
snapshot = "none"
vms = []

[retention]
keep_last = 1

[run]
state_dir = "$WORK/state"
TOML
vm run -c "$WORK/run.toml"
expect_rc 0 "run"
check "run: the prune after the backup removed the old file set aside" test ! -e "$OLD2"
expect_err "removed $OLD2" "run: its log names the file removed"
# The store's removals during run went to the exports' Env and were lost
# (a pruned point's manifest stayed beside its tombstone, packs stayed).
check_eq "$(find "$STORE/points" -name '*.json' | wc -l)" 1 "run: the pruned points' manifests are gone"

vm verify --store "$STORE"
expect_rc 0 "verify with nothing set aside"
check "verify: nothing set aside, nothing said" bash -c "! grep -q 'set aside' '$VM_OUT'"

finish
