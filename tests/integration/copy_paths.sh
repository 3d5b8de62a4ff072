#!/usr/bin/env bash
# Issue 12, case 5: the paths of a store's copies do not depend on the
# working directory. Copies are made and named with relative paths from one
# directory and used from "/" (systemd's working directory):
#
#   store init usb1/store --mirror usb2/store: config.json records both
#     absolutely, and the output names them so
#   store sync --store usb1/store --mirror usb2/store --mirror usb3/store:
#     usb3 (an empty directory) and usb4 (not there yet, named relative)
#     become copies and every copy's config.json records them
#   from "/": a backup given the store by path alone (either copy) reaches
#     every copy; verify checks all four
#   a config with a relative [target] path or mirrors entry is refused
#     (exit 2), naming file, line and key
#
# Usage: bash tests/integration/copy_paths.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
command -v python3 >/dev/null || die "needs python3"

SRC=$WORK/src
mkdir -p "$SRC" "$WORK/usb1" "$WORK/usb2" "$WORK/usb3/store" "$WORK/usb4"
rand_file "$SRC/a" 100000

# recorded DIR: the copies config.json in DIR records, one path a line.
recorded() {
  python3 -c 'import json, sys
for c in json.load(open(sys.argv[1] + "/config.json"))["copies"]: print(c["path"])' "$1"
}

section "store init with relative paths"
cd "$WORK"
vm store init usb1/store --mirror usb2/store
expect_rc 0 "store init usb1/store --mirror usb2/store"
check "store init names the copies by absolute path" \
  grep -qF "created store $WORK/usb1/store (block size 64.0 KiB), mirrored on $WORK/usb2/store" "$VM_OUT"
for c in usb1 usb2; do
  check_eq "$(recorded "$WORK/$c/store" | tr '\n' ' ')" "$WORK/usb1/store $WORK/usb2/store " \
    "the copies recorded in $c/store/config.json"
done

section "store sync --mirror with relative paths records the new copies"
vm store sync --store usb1/store --mirror usb2/store --mirror usb3/store --mirror usb4/store
expect_rc 0 "store sync naming the new copies usb3/store (empty) and usb4/store (not there)"
check "usb3/store is a copy" test -f "$WORK/usb3/store/config.json"
check "usb4/store is a copy" test -f "$WORK/usb4/store/config.json"
want="$WORK/usb1/store $WORK/usb2/store $WORK/usb3/store $WORK/usb4/store "
for c in usb1 usb2 usb3 usb4; do
  check_eq "$(recorded "$WORK/$c/store" | tr '\n' ' ')" "$want" "the copies recorded in $c/store/config.json"
done

section "used from /"
cd /
vm backup --store "$WORK/usb1/store" "$SRC"
expect_rc 0 "backup from / with the store given by its path"
for c in usb1 usb2 usb3 usb4; do
  list_points --store "$WORK/$c/store" --mirror "$WORK/nowhere"
  check_eq "${#POINTS[@]}" 1 "points in $c/store after a backup from /"
done
echo more >>"$SRC/a"
vm backup --store "$WORK/usb3/store" "$SRC"
expect_rc 0 "backup from / with a new copy as the primary"
list_points --store "$WORK/usb1/store" --mirror "$WORK/nowhere"
check_eq "${#POINTS[@]}" 2 "points in usb1/store after a backup given usb3/store"
vm verify --store "$WORK/usb2/store" --json
expect_rc 0 "verify from /"
check "verify checked all four copies" python3 -c 'import json, sys
assert len(json.load(open(sys.argv[1]))["copies"]) == 4' "$VM_OUT"

section "relative paths in a config are refused"
VOL='[[volume]]\nname = "src"\nsource = "'"$SRC"'"\n'
printf '[target]\npath = "usb1/store"\n'"$VOL" >"$WORK/rel-path.toml"
vm list -c "$WORK/rel-path.toml"
expect_rc 2 "a config with a relative store path"
expect_err "rel-path.toml:2: 'path' in [target] must be an absolute path for a store" "names file, line and key"
printf '[target]\npath = "%s"\nmirrors = ["usb2/store"]\n'"$VOL" "$WORK/usb1/store" >"$WORK/rel-mirror.toml"
vm list -c "$WORK/rel-mirror.toml"
expect_rc 2 "a config with a relative mirror"
expect_err "rel-mirror.toml:3: 'mirrors' in [target] must hold absolute paths, not \"usb2/store\"" \
  "names file, line and key"

finish
