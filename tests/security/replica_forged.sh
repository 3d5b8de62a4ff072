#!/usr/bin/env bash
# A hostile replica host ([[replicate]] host = ...): what it prints is not
# trusted. The host is a stand-in ssh program (this machine runs no sshd)
# that answers vmback's zfs commands with forged output and writes down
# every command it is given; the source is a real zfs target (zfs-fuse).
#
#   forged names   snapshot names with shell words (; $( ` ../ blanks) or a
#                  name a prefix away from vmback's: none is taken for a
#                  point, none reaches a command vmback sends (the remote
#                  shell would run them); the dataset is taken as holding no
#                  point of vmback, so it is set aside and sent in full
#   flood          a listing of 80 MiB: the command is killed past 64 MiB,
#                  the replica fails with that said (exit 5), vmback's
#                  memory stays bounded, the point on the source stands
#   stall          a receiver that stops reading: the send is ended after
#                  the stall bound (VMBACK_TEST_PIPE_STALL_MS), both ends
#                  killed, the replica named
#   bad config     a host or dataset with shell words is refused at load
#                  (exit 2) before anything runs
#
# Usage: bash tests/security/replica_forged.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/../integration/lib.sh" "$@"
source "$(dirname -- "$0")/../integration/zfs_lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (zfs-fuse)"
for tool in zpool zfs python3; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

A=vmsa$$x$RANDOM
zfs_start
zfs_make_pool "$A" 128M "$WORK/a"
zfs create "$A/vmback"

mkdir -p "$WORK/bin"
cat >"$WORK/bin/ssh" <<EOF
#!/bin/bash
while [ \$# -gt 0 ] && [ "\$1" != "--" ]; do shift; done
shift 2   # -- and the host
echo "\$*" >>"$WORK/remote.log"
mode=\$(cat "$WORK/mode")
case "\$*" in
  "zfs list -H -o name "*) exit 0 ;;
  "zfs list -H -t snapshot"*)
    if [ "\$mode" = flood ]; then
      head -c \$((80 << 20)) /dev/zero | tr '\\0' 'x'
      exit 0
    fi
    d=\${*: -1}
    # Single quotes: the words reach vmback as they are, unexpanded here.
    printf '%s\\n' "\$d"'@vmback-2026-01-01T000000Z;touch $WORK/pwned' \\
      "\$d"'@vmback-2026-01-02T000000Z \$(touch $WORK/pwned)' \\
      "\$d"'@vmback-2026-01-03T000000Z\`touch $WORK/pwned\`' \\
      "\$d@vmback-../../etc" "\$d@vmback-2026-01-04T000000Z.1x" \\
      "other/ds@vmback-2026-01-05T000000Z" "\$d@xvmback-2026-01-06T000000Z"
    exit 0 ;;
  "zfs recv"*)
    if [ "\$mode" = stall ]; then sleep 3600; fi
    cat >/dev/null; exit 0 ;;
  *) exit 0 ;;
esac
EOF
chmod 0755 "$WORK/bin/ssh"
export PATH="$WORK/bin:$PATH"

mkdir -p "$WORK/src"
rand_file "$WORK/src/img" $((1 << 20))
write_config() {
  cat >"$WORK/vmback.toml" <<EOF
[target]
type = "zfs"
dataset = "$A/vmback"

[[volume]]
name = "img"
source = "$WORK/src/img"

[[replicate]]
dataset = "$1"
host = "$2"
EOF
}

section "forged names from the replica host"
echo names >"$WORK/mode"
write_config "off/vmback" "evil"
vm backup -c "$WORK/vmback.toml" --json
expect_rc 5 "backup with a replica host that forges names (done; the set-aside is a warning)"
check "no forged word was run here" test ! -e "$WORK/pwned"
check "no forged word went back to the host" bash -c "! grep -E 'touch|\\.\\./|1x|other/ds|xvmback' '$WORK/remote.log'"
check_eq "$(json_field "$VM_OUT" 'd["replicas"][0]["chain_broken"]')" "the dataset exists but holds no point of vmback" \
  "none of the forged names is taken for a point"
check "the dataset is set aside, then sent in full" grep -q "^zfs rename off/vmback off/vmback-vmback-aside-" "$WORK/remote.log"
check "the full stream went to zfs recv" grep -qx "zfs recv off/vmback" "$WORK/remote.log"

section "a listing flood"
echo flood >"$WORK/mode"
: >"$WORK/remote.log"
/usr/bin/time -f '%M' -o "$WORK/rss" "$VMBACK" backup -c "$WORK/vmback.toml" >"$WORK/flood.out" 2>"$WORK/flood.err" &&
  rc=0 || rc=$?
check_eq "$rc" 5 "a flooding replica: the point stands, exit 5"
check "the flood is named" grep -q "printed more than 64 MiB" "$WORK/flood.err"
check "the replica is named" grep -q "replica evil:off/vmback" "$WORK/flood.err"
rss_kib=$(tail -1 "$WORK/rss")
check "vmback's peak memory ($rss_kib KiB) stays under 400 MiB" test "$rss_kib" -lt $((400 * 1024))
check_eq "$(zfs list -H -t snapshot -o name -r "$A/vmback" | grep -c @vmback-)" 2 "both points stand on the source"

section "a receiver that stops reading"
echo stall >"$WORK/mode"
start=$(date +%s)
VMBACK_TEST_PIPE_STALL_MS=1500 vm target replicate -c "$WORK/vmback.toml"
took=$(($(date +%s) - start))
expect_rc 5 "a stalled receiver"
expect_err "moved no byte for 1.5 s" "the stall is said"
check "the stalled send is ended within 20 s ($took s)" test "$took" -le 20
check "no zfs send is left running" bash -c "! pgrep -f '[z]fs send $A/vmback@' >/dev/null"

section "shell words in the config"
for bad in 'evil;id' '-oProxyCommand=id' 'a b' 'h$(id)'; do
  write_config "off/vmback" "$bad"
  vm backup -c "$WORK/vmback.toml"
  expect_rc 2 "host \"$bad\" refused"
  expect_err "must be an ssh destination" "host \"$bad\": the error says why"
done
for bad in 'off/vm;id' 'off/$(id)' '-F' 'off/../x y'; do
  write_config "$bad" "evil"
  vm backup -c "$WORK/vmback.toml"
  expect_rc 2 "dataset \"$bad\" refused"
done
check_eq "$(zfs list -H -t snapshot -o name -r "$A/vmback" | grep -c @vmback-)" 2 "no point made from a refused config"

finish
