#!/usr/bin/env bash
# scripts/check_layers.py can fail: on a forged src/ where the store includes
# the command line, or with a folder in no layer, it exits 1 naming the file
# and line; on the order it writes down it exits 0.
# Usage: bash tests/lint/check_layers_test.sh
set -euo pipefail
here=$(cd "$(dirname -- "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/src/store" "$work/src/cli" "$work/src/util"
printf '#include "util/error.h"\n' >"$work/src/store/pack.cpp"
printf '#include "store/pack.h"\n#include "util/log.h"\n' >"$work/src/cli/cli.cpp"
printf '#include "cli/cli.h"\n' >"$work/src/store/pack_test.cpp"  # tests may include anything
python3 "$here/scripts/check_layers.py" "$work/src" >/dev/null || { echo "FAIL: a sound tree was refused"; exit 1; }
printf '#include "util/error.h"\n#include "cli/cli.h"\n' >"$work/src/store/pack.cpp"
mkdir "$work/src/newthing"
rc=0
python3 "$here/scripts/check_layers.py" "$work/src" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] || { echo "FAIL: exit $rc on a forged tree"; exit 1; }
grep -q "src/store/pack.cpp:2: store/ (layer 2) includes cli/" "$work/err" || { echo "FAIL: no file:line"; cat "$work/err"; exit 1; }
grep -q "src/newthing: folder is in no layer" "$work/err" || { echo "FAIL: new folder not named"; exit 1; }
echo "check_layers_test: passed"
