#!/usr/bin/env bash
# Retention per volume set and tags through the real binary (issue 12, case 7):
#
# Nightly backups of etc and images, a tagged backup of the same two before an
# upgrade, and a one-off backup of etc alone. `prune --keep-last 1` then
# keeps the newest nightly point, the tagged one and the one-off (each is the
# newest of its own group: host, volume set, tags) and deletes the older
# nightly points; before groups, it deleted the nightly point and kept the
# one-off. --dry-run and --json show each decision's group; list shows tags;
# a bad tag is refused before anything is read.
#
# Usage: bash tests/integration/retention_groups.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

STORE=$WORK/store
SRC=$WORK/src
mkdir -p "$SRC/etc" "$SRC/images"
text_file "$SRC/etc/hosts" 20
rand_file "$SRC/images/vm.img" 300000

vm store init "$STORE"
expect_rc 0 "store init"
[ "$VM_RC" -eq 0 ] || die "cannot go on without a store"

nightly() {
  echo "$1" >>"$SRC/etc/hosts"
  vm backup --store "$STORE" "$SRC/etc" "$SRC/images"
  expect_rc 0 "nightly backup $1"
}

section "nightly, nightly, tagged, nightly, one-off"
nightly 1
nightly 2
vm backup --store "$STORE" --tag before-upgrade --tag ticket-42 "$SRC/etc" "$SRC/images"
expect_rc 0 "tagged backup"
nightly 3
vm backup --store "$STORE" "$SRC/etc"
expect_rc 0 "one-off backup of etc"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 5 "points before prune"
N1=${POINTS[0]} N2=${POINTS[1]} TAGGED=${POINTS[2]} N3=${POINTS[3]} ONEOFF=${POINTS[4]}

vm list --store "$STORE"
expect_rc 0 "list"
check "list shows the tags of the tagged point" grep -qE "^$TAGGED .*#before-upgrade  #ticket-42\$" "$VM_OUT"

section "a bad tag is refused, naming it"
vm backup --store "$STORE" --tag 'no spaces' "$SRC/etc"
expect_rc 2 "backup --tag 'no spaces'"
expect_err "bad tag 'no spaces'" "the refusal names the tag"
list_points --store "$STORE"
check_eq "${#POINTS[@]}" 5 "no point made by the refused backup"

section "prune --keep-last 1 --dry-run shows the groups"
vm prune --store "$STORE" --keep-last 1 --dry-run
expect_rc 0 "prune --dry-run"
check "the newest nightly point is kept, as last 1 of its group" \
  grep -qF "KEEP   $N3  last 1  [{\"host\":" "$VM_OUT"
check "the one-off is kept in its own group" grep -qF "KEEP   $ONEOFF  last 1  [{\"host\":" "$VM_OUT"
check "the older nightly points would go" grep -qF "DELETE $N1" "$VM_OUT"
check "the one-off's group is its volume set" grep -qE "^KEEP   $ONEOFF .*\"volumes\":\\[\"etc\"\\]\\}\\]\$" "$VM_OUT"
check "the tagged point's group has its tags" \
  grep -qE "^KEEP   $TAGGED .*\"tags\":\\[\"before-upgrade\",\"ticket-42\"\\]\\}\\]\$" "$VM_OUT"

section "prune --keep-last 1 deletes only older nightly points"
vm prune --store "$STORE" --keep-last 1 --json
expect_rc 0 "prune --keep-last 1"
check_eq "$(json_field "$VM_OUT" 'sorted(x["name"] for x in d["decisions"] if not x["keep"])')" \
  "$(python3 -c 'import sys; print(sorted(sys.argv[1:]))' "$N1" "$N2")" "deleted points"
check_eq "$(json_field "$VM_OUT" '[x["group"]["volumes"] for x in d["decisions"] if x["name"] == "'"$ONEOFF"'"][0]')" \
  "['etc']" "--json gives each decision's group"
list_points --store "$STORE"
check_eq "${POINTS[*]}" "$TAGGED $N3 $ONEOFF" "points after prune"

section "latest images is the newest nightly point, latest etc the one-off"
vm restore --store "$STORE" latest images --to "$WORK/r-images"
expect_rc 0 "restore latest images"
check_same_tree "$SRC/images" "$WORK/r-images" "images from the newest nightly point"
vm restore --store "$STORE" latest etc --to "$WORK/r-etc"
expect_rc 0 "restore latest etc"
check_same_tree "$SRC/etc" "$WORK/r-etc" "etc from the one-off"

finish
