#!/usr/bin/env bash
# A tree planted deep (issue 17, review of the mirror scan): any local user
# can make a directory 1,500 levels deep under a backed-up tree (a loop of
# mkdir). The walks hold a descriptor per level (the source's, the mirror's,
# the scan's), so under the usual soft limit of 1,024 open files such a tree
# made every backup of it fail with EMFILE, and took the rest of its
# subtree with it. vmback raises its soft limit to the hard one at start, so
# the tree is backed up, mirrored and restored whole, as rsync does with it.
# The test runs vmback under `ulimit -Sn 1024` (the hard limit left as it is)
# and skips where the hard limit itself is too low to hold such a tree.
#
# usage: bash deep_tree.sh /path/to/vmback
set -euo pipefail
source "$(dirname "$0")/seclib.sh" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root"
DEPTH=1500
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((DEPTH * 5)) ]; then
  echo "SKIP: the hard limit on open files is $hard, too low for a tree $DEPTH levels deep"
  exit 0
fi

SRC=$WORK/src
mkdir -p "$SRC/top"
echo "beside the deep tree" >"$SRC/top/near"
# Made through relative steps: the path is longer than PATH_MAX.
python3 - "$SRC/top" "$DEPTH" <<'EOF'
import os, sys
os.chdir(sys.argv[1])
for _ in range(int(sys.argv[2])):
    os.mkdir("d", 0o755)
    os.chdir("d")
with open("bottom", "w") as f:
    f.write("at the bottom\n")
EOF

# deepest DIR: the content of the file at the bottom of DIR/top's chain.
deepest() {
  python3 - "$1/top" "$DEPTH" <<'EOF'
import os, sys
try:
    os.chdir(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        os.chdir("d")
    print(open("bottom").read(), end="")
except OSError as e:
    print(e)
EOF
}

# vmback under a soft limit of 1,024 open files, the hard one as it is.
printf '#!/bin/sh\nulimit -Sn 1024 || exit 99\nexec %q "$@"\n' "$VMBACK" >"$WORK/vmback-low"
chmod 700 "$WORK/vmback-low"
VMBACK=$WORK/vmback-low

section "into the store"
STORE=$WORK/store
vm store init "$STORE" --block-size 4K
expect_rc 0 "store init"
vm -q backup --store "$STORE" "$SRC/top"
expect_rc 0 "backup of a tree $DEPTH levels deep"
vm -q restore --store "$STORE" latest --to "$WORK/restored"
expect_rc 0 "restore of it"
check_eq "$(deepest "$WORK/restored" 2>&1)" "at the bottom" "the restored tree has the file at the bottom"
check_eq "$(cat "$WORK/restored/top/near" 2>&1)" "beside the deep tree" "and the file beside the chain"

section "into a dir target"
mkdir -p "$WORK/mirror"
for day in 1 2; do
  vm -q backup --dir "$WORK/mirror" "$SRC/top"
  expect_rc 0 "backup $day of a tree $DEPTH levels deep"
done
check_eq "$(deepest "$WORK/mirror" 2>&1)" "at the bottom" "the mirror has the file at the bottom"
vm -q verify --dir "$WORK/mirror"
expect_rc 0 "verify of the mirror"

finish
