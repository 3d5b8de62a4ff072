# shellcheck shell=bash
# Helpers for the forged-input tests, on top of tests/integration/lib.sh:
#
#   source "$(dirname "$0")/seclib.sh" "$@"
#
# sentinel_make DIR      a tree of files (one setuid-free, one 0600, a subdir)
#                        that no test may change
# tree_state DIR         one line per object under DIR: path, type, mode,
#                        owner, size, link target, content hash
# expect_unchanged DIR STATE WHAT
#                        DIR's tree_state is still STATE
# sentinel_and_store     SENT=$WORK/sent made, BEFORE its tree_state, and
#                        STORE=$WORK/store a new store of 4 KiB blocks
# forge_point STORE SPEC.json [NAME]
#                        adds a forged point (tests/security/forge.py)

# shellcheck source=../integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$@"
SEC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

sentinel_make() {
  mkdir -p "$1/sub"
  echo "sentinel file" >"$1/file"
  echo "secret" >"$1/secret"
  chmod 600 "$1/secret"
  echo "deep" >"$1/sub/deep"
}

tree_state() {
  (cd "$1" && find . -printf '%p %y %m %u:%g %s %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}

expect_unchanged() {
  local now
  now=$(tree_state "$1")
  _count_check
  if [ "$now" != "$2" ]; then
    _fail "$3: $1 changed"
    diff <(printf '%s\n' "$2") <(printf '%s\n' "$now") | head -20 | sed 's/^/    /' >&2
  fi
}

forge_point() { python3 "$SEC_DIR/forge.py" point "$@" >/dev/null; }

sentinel_and_store() {
  SENT=$WORK/sent
  sentinel_make "$SENT"
  BEFORE=$(tree_state "$SENT")
  STORE=$WORK/store
  vm store init "$STORE" --block-size 4K
  [ "$VM_RC" -eq 0 ] || die "store init failed"
}
