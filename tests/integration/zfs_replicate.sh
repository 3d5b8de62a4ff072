#!/usr/bin/env bash
# ZFS replication ([[replicate]]) between real pools (zfs-fuse): a zfs
# target on pool A, its points sent to pool B on this host and to pool C
# "over ssh". The ssh here is a stand-in program (this machine runs no
# sshd): it checks vmback's options (BatchMode, --, the host) and runs the
# remote words locally with sh -c, as sshd would hand them to a shell; a
# flag file makes it fail as an unreachable host does (exit 255).
#
#   first and later runs   backup -c sends a full stream the first time,
#                          then one zfs send -I per run; the receivers'
#                          data equal the source's, snapshot for snapshot
#   receiver retention     [replicate.retention] keep_last 2 on C; B keeps
#                          by the target's [retention] (keep_last 3)
#   host down              the run commits its point, names the replica, exit
#                          5; prune on the source keeps C's base (held); the
#                          next run sends every point C missed in one stream
#   broken chain           C's newest point destroyed on the source (hold
#                          released): C is renamed aside (its points kept)
#                          and a full stream starts a new chain
#   dry run                target replicate --dry-run says what it would send
#                          and changes nothing
#   planted names          a snapshot on the receiver without vmback's name
#                          is left alone; made after the receiver's newest
#                          point (an incremental receive would destroy it),
#                          it blocks that replica, named in the warning, until
#                          it is gone
#
# zfs-fuse (pool version 23) has holds and send -I, no resumable receive and
# no bookmarks; it renames no mounted dataset (vmback unmounts first).
#
# Usage: bash tests/integration/zfs_replicate.sh /path/to/vmback   (as root)
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
source "$(dirname -- "$0")/zfs_lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (zfs-fuse)"
for tool in python3 cmp zpool zfs; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

A=vmra$$x$RANDOM
B=vmrb$$x$RANDOM
C=vmrc$$x$RANDOM
zfs_start
zfs_make_pool "$A" 256M "$WORK/a"
zfs_make_pool "$B" 256M "$WORK/b"
zfs_make_pool "$C" 256M "$WORK/c"
zfs create "$A/vmback"

# The stand-in ssh.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/ssh" <<EOF
#!/bin/bash
echo "\$*" >>"$WORK/ssh.log"
[ -e "$WORK/host-down" ] && { echo "ssh: connect to host backuphost port 22: Connection refused" >&2; exit 255; }
saw_batch=
while [ \$# -gt 0 ] && [ "\$1" != "--" ]; do
  [ "\$1" = "BatchMode=yes" ] && saw_batch=1
  shift
done
[ -n "\$saw_batch" ] || { echo "stand-in ssh: no BatchMode=yes" >&2; exit 254; }
shift
[ "\$1" = "backuphost" ] || { echo "stand-in ssh: unexpected host \$1" >&2; exit 254; }
shift
exec sh -c "\$*"
EOF
chmod 0755 "$WORK/bin/ssh"
export PATH="$WORK/bin:$PATH"

SRC=$WORK/src
mkdir -p "$SRC/tree"
rand_file "$SRC/img" $((6 << 20))
text_file "$SRC/tree/notes.txt" 200000
cat >"$WORK/vmback.toml" <<EOF
[target]
type = "zfs"
dataset = "$A/vmback"

[retention]
keep_last = 3

[[volume]]
name = "img"
source = "$SRC/img"

[[volume]]
name = "tree"
source = "$SRC/tree"

[[replicate]]
dataset = "$B/vmback"

[[replicate]]
dataset = "$C/offsite"
host = "backuphost"
[replicate.retention]
keep_last = 2
EOF

# The points of dataset $1 with vmback's prefix, oldest first.
points_of() { zfs list -H -t snapshot -o name -r "$1" 2>/dev/null | grep -F "$1@vmback-" | sed 's/.*@//' | sort; }
# The replica's newest point (read by vmback through a clone of it, as a
# restore from it alone would) holds the sources as they are now.
same_data() {
  rm -rf "$WORK/same"
  "$VMBACK" restore --zfs "$1" latest --to "$WORK/same" -q &&
    cmp "$SRC/img" "$WORK/same/img" && cmp "$SRC/tree/notes.txt" "$WORK/same/tree/notes.txt"
}

# ---------------------------------------------------------------------------
section "plan names the replicas"
vm plan -c "$WORK/vmback.toml"
expect_rc 0 "plan"
check "plan: the replicate step" grep -q "send the new points to each \[\[replicate\]\]" "$VM_OUT"
check "plan: C over ssh, with its own retention" \
  grep -q "backuphost:$C/offsite over ssh; it keeps what its \[replicate.retention\] keeps" "$VM_OUT"
check "plan: the prune keeps the replicas' bases" grep -q "prune by \[retention\], keeping each replica's base" "$VM_OUT"
check "plan: nothing sent" bash -c "! zfs list -H -o name $B/vmback"

section "first run: a full stream to each replica"
vm backup -c "$WORK/vmback.toml" --json
expect_rc 0 "first backup with two replicas"
check_eq "$(json_field "$VM_OUT" '[r["mode"] for r in d["replicas"]]')" "['full', 'full']" "first sends are full"
check_eq "$(points_of "$B/vmback")" "$(points_of "$A/vmback")" "B has the point"
check_eq "$(points_of "$C/offsite")" "$(points_of "$A/vmback")" "C has the point"
check "B's data equal the source's" same_data "$B/vmback"
check "C's data equal the source's" same_data "$C/offsite"
# (zfs-fuse shows readonly as "off, temporary" from the mount, yet refuses writes.)
check "a received copy is read-only" bash -c "! touch '$WORK/b/mnt/vmback/probe' 2>/dev/null"
check "the ssh stand-in was used with BatchMode" grep -q "BatchMode=yes -o ConnectTimeout=30 .* -- backuphost zfs recv $C/offsite" "$WORK/ssh.log"
first=$(points_of "$A/vmback")
check_eq "$(zfs get -H -o value userrefs "$A/vmback@$first")" 2 "the source holds the point for both replicas"

section "later runs: one incremental stream each"
for run in 1 2 3; do
  change_blocks "$SRC/img" "$run" 3 >/dev/null
  echo "run $run" >>"$SRC/tree/notes.txt"
  vm backup -c "$WORK/vmback.toml" --json
  expect_rc 0 "backup $run"
  check_eq "$(json_field "$VM_OUT" '[r["mode"] for r in d["replicas"]]')" "['incremental', 'incremental']" \
    "run $run: incremental sends"
  bytes=$(json_field "$VM_OUT" 'd["replicas"][0]["bytes"]')
  check "run $run: the incremental stream ($bytes bytes) is far below the 6 MiB image" test "$bytes" -lt $((2 << 20))
done
check_eq "$(points_of "$B/vmback" | wc -l)" 3 "B keeps 3 (no retention of its own: the target's [retention])"
check_eq "$(points_of "$A/vmback" | wc -l)" 4 "the source keeps every point (backup -c does not prune)"
check "B's data equal the source's after the increments" same_data "$B/vmback"
check "C's data equal the source's after the increments" same_data "$C/offsite"
check_eq "$(points_of "$C/offsite" | wc -l)" 2 "C keeps 2 (its [replicate.retention])"
check_eq "$(points_of "$C/offsite" | tail -1)" "$(points_of "$A/vmback" | tail -1)" "C's newest is the source's newest"
old_hold=$(points_of "$A/vmback" | head -1)
check_eq "$(zfs get -H -o value userrefs "$A/vmback@$old_hold")" 0 "older holds are released"

section "restore from the replica alone"
vm list --zfs "$B/vmback" --json
expect_rc 0 "list the replica as a target"
check_eq "$(json_field "$VM_OUT" 'len(d)')" 3 "the replica lists its 3 points"
vm restore --zfs "$B/vmback" latest img --to "$WORK/from-replica.img"
expect_rc 0 "restore the image from the replica"
check_same_file "$WORK/from-replica.img" "$SRC/img" "the image restored from the replica"

section "up to date; a snapshot of someone else's on the receiver"
zfs snapshot "$B/vmback@manual-keep"
vm target replicate -c "$WORK/vmback.toml"
expect_rc 0 "target replicate when up to date"
check "it says up to date" grep -q "replica $B/vmback: up to date" "$VM_OUT"
check_eq "$(points_of "$B/vmback" | wc -l)" 3 "B still keeps 3"
check "a snapshot without vmback's name on the receiver is left alone" zfs list -t snapshot "$B/vmback@manual-keep"

section "host down: the point stands, prune keeps C's base, the next run catches up"
# B meanwhile has someone else's snapshot after its newest point: an
# incremental receive (zfs recv -F) would destroy it, so B is refused.
touch "$WORK/host-down"
base_c=$(points_of "$C/offsite" | tail -1)
for run in 4 5; do
  change_blocks "$SRC/img" "$run" 3 >/dev/null
  vm backup -c "$WORK/vmback.toml" --json
  expect_rc 5 "backup $run with the replica's host down"
  expect_err "replica backuphost:$C/offsite" "the error names the replica"
  expect_err "Connection refused" "the error gives ssh's words"
  check_eq "$(json_field "$VM_OUT" 'd["replicas"][0]["ok"]')" False \
    "run $run: B is refused (someone else's snapshot is newer than its newest point)"
  expect_err "replica $B/vmback: snapshots were made on it after its newest point $base_c (manual-keep)" \
    "run $run: the warning names B and the snapshot in the way"
done
check "someone else's snapshot on the receiver was not destroyed" zfs list -t snapshot "$B/vmback@manual-keep"
vm prune -c "$WORK/vmback.toml" --keep-last 1
expect_rc 0 "prune the source to one point"
check "the source kept C's (and B's) base (held)" zfs list -t snapshot "$A/vmback@$base_c"
check_eq "$(points_of "$A/vmback" | wc -l)" 2 "the source kept the newest and the held base"
rm "$WORK/host-down"
zfs destroy "$B/vmback@manual-keep"   # as the warning says
vm target replicate -c "$WORK/vmback.toml" --json
expect_rc 0 "catch up"
check_eq "$(json_field "$VM_OUT" '[r["mode"] for r in d["replicas"]]')" "['incremental', 'incremental']" \
  "B and C catch up incrementally"
check_eq "$(json_field "$VM_OUT" 'd["replicas"][1]["base"]')" "$base_c" "from their base"
check "B's data equal the source's after catching up" same_data "$B/vmback"
check "C's data equal the source's after catching up" same_data "$C/offsite"
vm prune -c "$WORK/vmback.toml" --keep-last 1
expect_rc 0 "prune again"
check_eq "$(points_of "$A/vmback" | wc -l)" 1 "with every replica up to date, the old base goes"

section "dry run changes nothing"
change_blocks "$SRC/img" 9 3 >/dev/null
vm backup -c "$WORK/vmback.toml"   # with the replicas
zfs list -H -t snapshot -o name -r "$B" "$C" | sort >"$WORK/before"
newest=$(points_of "$A/vmback" | tail -1)
zfs destroy "$C/offsite@$newest"   # C is now one point behind
zfs list -H -t snapshot -o name -r "$B" "$C" | sort >"$WORK/before"
vm target replicate -c "$WORK/vmback.toml" --dry-run
expect_rc 0 "dry run"
check "dry run: says it would send to C" grep -q "replica backuphost:$C/offsite: would send 1 point (incremental from " "$VM_OUT"
zfs list -H -t snapshot -o name -r "$B" "$C" | sort >"$WORK/after"
check "dry run: no snapshot made or destroyed" cmp "$WORK/before" "$WORK/after"

section "broken chain: set aside, then a full stream"
newest_c=$(points_of "$C/offsite" | tail -1)
for p in $(points_of "$A/vmback"); do
  for tag in $(python3 -c 'import hashlib,sys; [print("vmback-replica-" + hashlib.sha256(w.encode()).hexdigest()[:12]) for w in sys.argv[1:]]' "$B/vmback" "backuphost:$C/offsite"); do
    zfs release "$tag" "$A/vmback@$p" 2>/dev/null || true
  done
done
zfs destroy "$A/vmback@$newest_c"
change_blocks "$SRC/img" 10 3 >/dev/null
vm backup -c "$WORK/vmback.toml" --json
expect_rc 5 "backup after the chain broke: done, with the broken chain as a warning"
check_eq "$(json_field "$VM_OUT" 'd["replicas"][1]["mode"]')" "full (chain broken)" "C gets a full stream"
aside=$(json_field "$VM_OUT" 'd["replicas"][1]["set_aside"]')
check "the old copy is kept as $aside with its points" zfs list -t snapshot "$aside@$newest_c"
check_eq "$(points_of "$C/offsite")" "$(points_of "$A/vmback" | tail -1)" "C's new chain starts at the newest point"
check "C's data equal the source's after the full send" same_data "$C/offsite"
expect_err "chain" "the broken chain is said"

finish
