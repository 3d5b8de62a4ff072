# shellcheck shell=bash
# Helpers shared by the forged-target tests (target_*.sh), sourced after
# tests/integration/lib.sh.

# tree_state DIR: one line per entry below DIR (type, mode, owner, size, link
# target), then the SHA-256 of every file, sorted: what "nothing changed"
# compares. Stays on DIR's file system.
tree_state() {
  (cd -- "$1" && find . -xdev -printf '%y %m %U:%G %s %p -> %l\n' | sort &&
    find . -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum)
}
