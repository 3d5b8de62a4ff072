#!/usr/bin/env bash
# The Debian package, built as an administrator would (cpack -G DEB from the
# build directory, here into this test's own directory) and unpacked into a
# private root with dpkg -x:
#
#   control   name, version (= vmback --version), section admin, a maintainer,
#             Depends from dpkg-shlibdeps and libnbd0, the Recommends
#             (qemu-utils for restore --format qcow2); no conffiles and
#             nothing under /etc (an administrator's configuration is never
#             touched); maintainer scripts that parse
#   binary    <root>/usr/sbin/vmback --version runs and prints the version;
#             every shared library it needs is found
#   units     vmback.service and vmback.timer pass systemd-analyze verify
#             (with the man page they name found in the package), when
#             systemd-analyze is installed
#   README    mentions every long option of every command and has every
#             config key in its key table
#   man page  present, renders without a groff warning, names the version,
#             and mentions every option of every command's --help
#   completion present, parses, and offers exactly the commands and options
#             that each command's --help lists
#   example   the example configuration is in the package
#
# Usage: bash tests/integration/package.sh /path/to/build/vmback
# (the build directory, with CPackConfig.cmake, is the binary's directory)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

BUILD=$(dirname -- "$VMBACK")
SRC_DIR=$(cd "$(dirname -- "$0")/../.." && pwd)
README=$SRC_DIR/README.md
[ -f "$BUILD/CPackConfig.cmake" ] || die "no CPackConfig.cmake in $BUILD (is it a configured build directory?)"
CPACK=$(sed -n 's/^CMAKE_CPACK_COMMAND:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
[ -n "$CPACK" ] || CPACK=$(command -v cpack || true)
if [ -z "$CPACK" ] || [ ! -x "$CPACK" ]; then die "needs cpack (cmake)"; fi
for tool in dpkg-deb dpkg-shlibdeps file groff ldd zcat; do
  command -v "$tool" >/dev/null || die "needs $tool (scripts/setup installs dpkg-dev, file, groff-base)"
done

VERSION=$("$VMBACK" --version | sed -n 's/^vmback //p')
[ -n "$VERSION" ] || die "vmback --version printed no version"

# ---------------------------------------------------------------------------
section "cpack -G DEB"
OUT=$WORK/cpack
if ! "$CPACK" -G DEB --config "$BUILD/CPackConfig.cmake" -B "$OUT" >"$WORK/cpack.log" 2>&1; then
  sed 's/^/    /' "$WORK/cpack.log" >&2
  die "cpack -G DEB failed"
fi
mapfile -t debs < <(find "$OUT" -maxdepth 1 -name 'vmback_*.deb')
[ "${#debs[@]}" -eq 1 ] || die "expected one vmback_*.deb in $OUT, found ${#debs[@]}"
DEB=${debs[0]}
echo "built $(basename -- "$DEB") ($(du -k -- "$DEB" | cut -f1) KiB)"
check_eq "$(basename -- "$DEB")" "vmback_${VERSION}_$(dpkg --print-architecture).deb" "package file name"

# ---------------------------------------------------------------------------
section "control fields and scripts"
field() { dpkg-deb -f "$DEB" "$1"; }
# has_package LIST NAME: the control field LIST ("a (>= 1), b | c") names NAME.
has_package() { tr ',|' '\n' <<<"$1" | sed 's/(.*//; s/ //g' | grep -qxF -- "$2"; }
check_eq "$(field Package)" vmback "Package"
check_eq "$(field Version)" "$VERSION" "Version (vmback --version says $VERSION)"
check_eq "$(field Section)" admin "Section"
check "Maintainer is 'Name <email>'" grep -qE '^.+ <[^>]+@[^>]+>$' <<<"$(field Maintainer)"
DEPENDS=$(field Depends)
# libnbd0: vmback reads libvirt's pull-mode NBD exports with libnbd.
for lib in libc6 libstdc++6 libvirt0 libzstd1 libssl3 libnbd0; do
  check "Depends (from dpkg-shlibdeps) names $lib: $DEPENDS" has_package "$DEPENDS" "$lib"
done
RECOMMENDS=$(field Recommends)
# qemu-utils: qemu-img, for restore --format qcow2.
for p in libvirt-clients btrfs-progs zfs-fuse qemu-utils; do
  check "Recommends names $p: $RECOMMENDS" has_package "$RECOMMENDS" "$p"
done
CTRL=$WORK/control
dpkg-deb -e "$DEB" "$CTRL"
_count_check
[ ! -e "$CTRL/conffiles" ] || _fail "the package has conffiles: $(tr '\n' ' ' <"$CTRL/conffiles")"
for s in postinst prerm postrm; do
  _count_check
  if [ ! -x "$CTRL/$s" ]; then
    _fail "no executable $s in the package"
  else
    check "$s parses" sh -n "$CTRL/$s"
  fi
done

# ---------------------------------------------------------------------------
section "contents"
dpkg-deb -c "$DEB" | awk '{ print $NF }' | sed 's|^\./|/|' >"$WORK/contents"
for f in /usr/sbin/vmback \
  /usr/lib/systemd/system/vmback.service /usr/lib/systemd/system/vmback.timer \
  /usr/lib/systemd/system/vmback-verify.service /usr/lib/systemd/system/vmback-verify.timer \
  /usr/share/man/man8/vmback.8.gz \
  /usr/share/bash-completion/completions/vmback \
  /usr/share/doc/vmback/examples/vmback.toml.example; do
  check "the package holds $f" grep -qxF -- "$f" "$WORK/contents"
done
_count_check
if grep -q '^/etc/' "$WORK/contents"; then
  _fail "the package installs into /etc: $(grep '^/etc/' "$WORK/contents" | tr '\n' ' ')"
fi

ROOT=$WORK/root
dpkg -x "$DEB" "$ROOT"

# ---------------------------------------------------------------------------
section "the binary"
rc=0
out=$("$ROOT/usr/sbin/vmback" --version 2>&1) || rc=$?
check_eq "$rc" 0 "<root>/usr/sbin/vmback --version exit status"
check_eq "$out" "vmback $VERSION" "<root>/usr/sbin/vmback --version"
_count_check
if ldd "$ROOT/usr/sbin/vmback" | grep -q 'not found'; then
  _fail "shared libraries not found: $(ldd "$ROOT/usr/sbin/vmback" | grep 'not found' | tr '\n' ' ')"
fi

# ---------------------------------------------------------------------------
section "systemd units"
UNITS=$ROOT/usr/lib/systemd/system
check "ExecStart runs vmback run -c /etc/vmback/vmback.toml" \
  grep -qxF 'ExecStart=/usr/sbin/vmback run -c /etc/vmback/vmback.toml' "$UNITS/vmback.service"
for key in Type=oneshot Nice=10 IOSchedulingClass=idle; do
  check "vmback.service has $key" grep -qx -- "$key" "$UNITS/vmback.service"
done
for key in Persistent=true 'RandomizedDelaySec=.*' 'OnCalendar=.*' WantedBy=timers.target; do
  check "vmback.timer has $key" grep -qx -- "$key" "$UNITS/vmback.timer"
  check "vmback-verify.timer has $key" grep -qx -- "$key" "$UNITS/vmback-verify.timer"
done
check "the weekly verify reads this week's part of the data" \
  grep -qxF 'ExecStart=/usr/sbin/vmback verify -c /etc/vmback/vmback.toml --read-data-subset auto/4 --lock-wait 21600' \
  "$UNITS/vmback-verify.service"
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart exists and (through man) that the
  # Documentation= page exists: point both into the unpacked package.
  mkdir -p "$WORK/units"
  for u in vmback vmback-verify; do
    sed "s|^ExecStart=/usr/sbin/vmback |ExecStart=$ROOT/usr/sbin/vmback |" "$UNITS/$u.service" \
      >"$WORK/units/$u.service"
    cp -- "$UNITS/$u.timer" "$WORK/units/$u.timer"
  done
  man_check=--man=yes
  command -v man >/dev/null || { man_check=--man=no; echo "no man(1): systemd-analyze verify skips the man page check"; }
  rc=0
  out=$(cd "$WORK/units" && MANPATH=$ROOT/usr/share/man systemd-analyze verify "$man_check" \
    "$WORK/units/vmback.service" "$WORK/units/vmback.timer" \
    "$WORK/units/vmback-verify.service" "$WORK/units/vmback-verify.timer" 2>&1) || rc=$?
  _count_check
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    _fail "systemd-analyze verify (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
else
  echo "SKIPPED: systemd-analyze is not installed; the units are not verified"
fi

# ---------------------------------------------------------------------------
section "man page"
MAN=$WORK/vmback.8
zcat "$ROOT/usr/share/man/man8/vmback.8.gz" >"$MAN"
rc=0
out=$(groff -man -ww -z "$MAN" 2>&1) || rc=$?
_count_check
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  _fail "groff -man -ww -z warns (exit $rc):"
  printf '%s\n' "$out" | sed 's/^/    /' >&2
fi
check "the man page names version $VERSION in .TH" grep -qE "^\.TH VMBACK 8 .*\"vmback $VERSION\"" "$MAN"

# ---------------------------------------------------------------------------
section "bash completion"
COMPLETION=$ROOT/usr/share/bash-completion/completions/vmback
check "the completion parses" bash -n "$COMPLETION"

# Options ("-c", "--config", ...) and subcommands of "vmback PATH --help".
help_options() {
  # shellcheck disable=SC2086  # the command path is words
  "$VMBACK" $1 --help | awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 }
    on && /^  -/ { split($1, names, ","); for (i in names) print names[i] }' | sort -u
}
help_subcommands() {
  # shellcheck disable=SC2086
  "$VMBACK" $1 --help | awk '/^Subcommands:/ { on = 1; next } /^[^ ]/ { on = 0 }
    on && /^  [a-z]/ { print $1 }' | sort -u
}
# The same from the completion's tables.
completion_words() {
  bash -c 'source "$1"; "$2" "$3" | tr " " "\n" | sed "/^$/d" | sort -u' _ "$COMPLETION" "$1" "$2"
}

paths=("")
for ((i = 0; i < ${#paths[@]}; i++)); do
  p=${paths[i]}
  shown=${p:-vmback}
  want=$(help_subcommands "$p")
  have=$(completion_words _vmback_subcommands "$p")
  check_eq "$have" "$want" "completion: subcommands of '$shown' (as in its --help)"
  want=$(help_options "$p")
  have=$(completion_words _vmback_options "$p")
  check_eq "$have" "$want" "completion: options of '$shown' (as in its --help)"
  for o in $want; do
    # In roff source every '-' of an option is written '\-'.
    check "the man page mentions $o of '$shown'" grep -qF -- "${o//-/\\-}" "$MAN"
    case $o in --*) check "README mentions $o of '$shown'" grep -qF -- "$o" "$README" ;; esac
  done
  # Its examples name the one config path the README installs.
  check "the examples of '$shown' --help use /etc/vmback/vmback.toml" \
    bash -c '! "$1" $2 --help | grep -E -- "-c /etc/" | grep -vF -- "-c /etc/vmback/vmback.toml"' _ "$VMBACK" "$p"
  for s in $(help_subcommands "$p"); do paths+=("${p:+$p }$s"); done
done
echo "checked ${#paths[@]} commands against their --help"

# Every key the config reader takes (its CheckKeys lists) is in README's key
# table as TABLE.KEY (the retention periods share one row).
section "README: every config key"
python3 - "$SRC_DIR/src/config/config.cpp" >"$WORK/keys" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
tables = {"tr": "target", "vr": "volume", "lr": "libvirt", "vmr": "vm", "sr": "store", "s3r": "s3", "rep": "replicate"}
for var, keys in re.findall(r"(\w+)\.CheckKeys\(\{([^}]*)\}\)", text):
    names = re.findall(r'"(\w+)"', keys)
    if var == "top":
        continue
    if var == "rr":  # three tables use this name: told apart by their keys
        table = "retention" if "keep_last" in names else "run" if "state_dir" in names else "report"
    else:
        table = tables[var]
    for k in names:
        print(f"{table}.{k}")
EOF
check "the config's keys were found" test "$(wc -l <"$WORK/keys")" -gt 30
while read -r key; do
  case $key in retention.daily | retention.weekly | retention.monthly | retention.yearly) key=retention.hourly ;; esac
  check "README's key table has $key" grep -qE -- "^\| (.*, )?\`${key//./\\.}\`" "$README"
done <"$WORK/keys"

finish
