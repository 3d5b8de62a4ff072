#!/usr/bin/env bash
# A copy of the store in a bucket (s3://BUCKET/PREFIX), through the real
# binary, against a real gateway: a private single-node Ceph cluster with
# radosgw (ceph_lib.sh). Objects are forged and inspected with curl (SigV4),
# never through vmback.
#   bucket mirror      store init --mirror s3://; a backup writes the
#                      bucket; list, verify and restore from the bucket alone
#   config             [target] mirrors = ["s3://..."] and [s3] endpoint,
#                      with no AWS_ENDPOINT_URL; plan warns that the store
#                      with a bucket copy is not encrypted
#   sync               store sync --mirror s3:// makes a new copy; a second
#                      sync moves nothing; a day-2 sync moves the day-2 pack
#                      only; --upload-limit holds the rate
#   gateway killed     radosgw SIGKILLed by its pid during a sync and
#                      restarted: the next sync completes, the bucket alone
#                      verifies and restores bit-identical
#   damage             a pack object with a flipped bit: verify repairs it
#                      from the disk copy (exit 5), the bad object is set
#                      aside, the next verify is clean; and the other way:
#                      a disk pack repaired from the bucket
#   hostile objects    a config.json of 2 MiB is refused before it is read;
#                      a foreign lock object holds a writer off (naming its
#                      holder), an expired one is taken over; a lock object
#                      that is not vmback's is refused
#   prune              prune with the bucket: points and packs go from the
#                      bucket too
#   listing cut short  through a proxy that marks each listing truncated and
#                      fails the next page: prune goes on with the disk copy
#                      (a warning) and deletes nothing in the bucket; store
#                      sync later removes the pruned points there
#   gateway killed during a prune: the next prune and sync complete, both
#                      copies verify, the bucket alone restores
#
# Usage: bash tests/integration/s3_store.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
source "$(dirname -- "$0")/ceph_lib.sh"

for tool in python3 cmp curl; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done

section "start Ceph (mon, osd, mgr, radosgw)"
ceph_start
B=vmback-store
ceph_make_bucket "$B"
export AWS_ENDPOINT_URL=http://$S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
unset AWS_SHARED_CREDENTIALS_FILE AWS_PROFILE || true

# Raw S3 requests, signed by curl (the gateway needs the payload hash header).
_s3() {
  curl -s -m 60 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
s3_put() { [ "$(_s3 -o /dev/null -w '%{http_code}' -T "$2" "http://$S3_ENDPOINT/$B/$1")" = 200 ] || die "PUT $1 failed"; }
s3_get() { [ "$(_s3 -o "$2" -w '%{http_code}' "http://$S3_ENDPOINT/$B/$1")" = 200 ] || die "GET $1 failed"; }
# s3_keys PREFIX: every key below PREFIX, one per line (up to 1000).
s3_keys() {
  _s3 "http://$S3_ENDPOINT/$B?prefix=${1//\//%2F}" | grep -o '<Key>[^<]*</Key>' | sed 's/<Key>\(.*\)<\/Key>/\1/' || true
}
count_keys() { s3_keys "$1" | grep -c -- "$2" || true; }
# in_background ARGS...: vmback ARGS in the background, its pid in BG.
in_background() {
  "$VMBACK" "$@" >"$WORK/bg.out" 2>"$WORK/bg.err" &
  BG=$!
  register_pid "$BG"
}
# wait_background: waits for BG; its exit status in BG_RC.
wait_background() {
  BG_RC=0
  wait "$BG" || BG_RC=$?
  release_pid "$BG"
}
# wait_keys PREFIX REGEX: until an object below PREFIX matches (20 s at most).
wait_keys() {
  for _ in $(seq 200); do
    [ "$(count_keys "$1" "$2")" -ge 1 ] && return 0
    sleep 0.1
  done
}

SRC=$WORK/src
mkdir -p "$SRC/d"
rand_file "$SRC/a.bin" 3000000
text_file "$SRC/d/b.txt" 2000
ST=$WORK/st

section "bucket mirror"
vm store init "$ST" --mirror "s3://$B/h1"
expect_rc 0 "store init with a bucket copy"
vm backup "$SRC" --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "backup to the disk and the bucket"
check_eq "$(count_keys h1/points/ '\.json$')" 1 "one manifest in the bucket"
check_eq "$(count_keys h1/packs/ '\.pack$')" 2 "two packs in the bucket (the backup's data and its metadata)"
check_eq "$(count_keys h1/ '\.tmp-')" 0 "no temporary object left in the bucket"
check_eq "$(count_keys h1/ 'config.json$')" 1 "the bucket copy has its config.json"
# On a new host: the disk copy gone (its recorded path empty). Each
# command warns of it (exit 5) and works from the bucket.
mv "$ST" "$ST.away"
vm list --store "s3://$B/h1"
expect_rc 0 "list from the bucket alone (list reports, a copy away is a warning only)"
expect_err "copy $ST is not there" "the copy away is named"
check_eq "$(grep -c . "$VM_OUT")" 1 "the bucket alone lists the point"
vm verify --store "s3://$B/h1"
expect_rc 5 "verify of the bucket alone"
check "verify of the bucket alone finds it whole" grep -q "all good" "$VM_OUT"
vm restore --store "s3://$B/h1" latest --to "$WORK/r1"
expect_rc 5 "restore from the bucket alone"
check_same_tree "$SRC" "$WORK/r1/src" "restored from the bucket alone"
mv "$ST.away" "$ST"

section "config"
cat >"$WORK/c.toml" <<EOF
[target]
path = "$ST"
mirrors = ["s3://$B/h1"]
[s3]
endpoint = "http://$S3_ENDPOINT"
[[volume]]
name = "src"
source = "$SRC"
EOF
text_file "$SRC/d/c.txt" 3000
AWS_ENDPOINT_URL= vm backup -c "$WORK/c.toml"
expect_rc 0 "backup -c with [target] mirrors in a bucket and [s3] endpoint"
check_eq "$(count_keys h1/points/ '\.json$')" 2 "the second manifest reached the bucket"
printf '[libvirt]\nuri = "test:///default"\n' >>"$WORK/c.toml"
AWS_ENDPOINT_URL= vm plan -c "$WORK/c.toml"
expect_err "is not encrypted and has a copy in a bucket (s3://$B/h1)" "plan warns of a plain store with a bucket copy"
AWS_ENDPOINT_URL= vm list --store "s3://$B/h1"
expect_rc 2 "no endpoint anywhere"
expect_err "AWS_ENDPOINT_URL" "the error says how to give the endpoint"

section "sync"
vm store sync --store "$ST" --mirror "s3://$B/h1" --mirror "s3://$B/h2"
expect_rc 0 "store sync makes a new copy in the bucket"
expect_err "made s3://$B/h2 a new copy" "the new copy is named"
check_eq "$(count_keys h2/packs/ '\.pack$')" "$(count_keys h1/packs/ '\.pack$')" "the new copy has every pack"
vm store sync --store "$ST" --mirror "s3://$B/h1" --mirror "s3://$B/h2"
expect_rc 0 "a second sync"
check "a second sync copies nothing" grep -q "copied 0 packs and 0 files" "$VM_OUT"
rand_file "$SRC/e.bin" 4000000
vm backup "$SRC" --store "$ST"  # the disk copy only: recorded bucket copies are not used unnamed
expect_rc 0 "day 2 on the disk copy alone"
check_eq "$(count_keys h2/points/ '\.json$')" 2 "a backup that names no bucket leaves it alone"
START=$(date +%s.%N)
vm store sync --store "$ST" --mirror "s3://$B/h2" --upload-limit 1M
expect_rc 0 "day-2 sync with --upload-limit 1M"
ELAPSED=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$START" "$(date +%s.%N)")
check "the day-2 sync copies the two new packs (data, metadata) and their index file and manifest" \
  grep -q "copied 2 packs and 2 files" "$VM_OUT"
check "4 MB at 1 MB/s takes at least 2.5 s (took $ELAPSED s)" python3 -c "import sys; sys.exit(float(sys.argv[1]) < 2.5)" "$ELAPSED"

section "gateway killed"
rand_file "$SRC/big1.bin" 40000000
rand_file "$SRC/big2.bin" 40000000
vm backup "$SRC" --store "$ST"
expect_rc 0 "a larger day 3 on the disk copy"
in_background store sync --store "$ST" --mirror "s3://$B/h3" --upload-limit 20M
wait_keys h3/packs/ '\.pack$'
ceph_rgw_kill
wait_background
_count_check
[ "$BG_RC" -ne 0 ] || _fail "the sync cut off by the gateway's death did not fail (exit $BG_RC)"
ceph_rgw_start
vm store sync --store "$ST" --mirror "s3://$B/h3"
expect_rc 0 "the next sync completes"
check_eq "$(count_keys h3/packs/ '\.pack$')" "$(find "$ST/packs" -name '*.pack' | wc -l)" \
  "the bucket copy has every pack of the disk copy"
mv "$ST" "$ST.away"
vm verify --store "s3://$B/h3"
expect_rc 5 "verify of the bucket copy alone after the interrupted sync (the disk copy away: a warning)"
check "the bucket copy alone is whole after the interrupted sync" grep -q "all good" "$VM_OUT"
vm restore --store "s3://$B/h3" latest --to "$WORK/r3"
expect_rc 5 "restore from it"
mv "$ST.away" "$ST"
check_same_tree "$SRC" "$WORK/r3/src" "restored after the interrupted sync"

section "vmback killed holding the bucket's lock"
in_background store sync --store "$ST" --mirror "s3://$B/h4" --upload-limit 2M
wait_keys h4/ 'write.lock$'
check_eq "$(count_keys h4/ 'write.lock$')" 1 "the sync holds the bucket's lock object"
kill -9 "$BG"
wait_background
vm store sync --store "$ST" --mirror "s3://$B/h4"
expect_rc 0 "the next sync goes on at once: the holder's pid is gone on this host"
expect_err "ended without releasing it" "the takeover is said"
check_eq "$(count_keys h4/ 'write.lock$')" 0 "no lock object is left behind"

section "damage"
PACK=$(s3_keys h3/packs/ | grep '\.pack$' | head -1)
s3_get "$PACK" "$WORK/pack"
flip_bit "$WORK/pack" 100 >/dev/null
s3_put "$PACK" "$WORK/pack"
vm verify --store "$ST" --mirror "s3://$B/h3"
expect_rc 5 "verify repairs the damaged object in the bucket"
check_eq "$(count_keys h3/packs/ '\.bad-')" 1 "the damaged object is set aside"
vm verify --store "$ST" --mirror "s3://$B/h3"
expect_rc 0 "both copies whole again"
LOCAL=$(find "$ST/packs" -name '*.pack' | sort | head -1)
flip_bit "$LOCAL" 200 >/dev/null
vm verify --store "$ST" --mirror "s3://$B/h3"
expect_rc 5 "verify repairs the disk copy's damaged pack from the bucket"
check "the disk copy's damaged pack is set aside" test -n "$(find "$ST/packs" -name '*.bad-*')"
vm verify --store "$ST" --mirror "s3://$B/h3"
expect_rc 0 "both copies whole again after the repair from the bucket"

section "hostile objects"
head -c 2097152 /dev/zero >"$WORK/big.json"
s3_put forged/config.json "$WORK/big.json"
vm list --store "s3://$B/forged"
expect_nonzero "a config.json of 2 MiB"
expect_err "more than the" "it is refused by its size, before it is read"
NOW=$(date +%s)
# foreign_lock FILE EXPIRES: a lock object as another host's vmback writes it.
foreign_lock() {
  python3 -c 'import json, sys; json.dump({"vmback_lock": 1, "host": "otherhost", "pid": 4242, "token": "0" * 32,
  "expires_ns": int(sys.argv[2]) * 10**9, "expires": "(unused)"}, open(sys.argv[1], "w"))' "$1" "$2"
}
foreign_lock "$WORK/lock.json" "$((NOW + 3600))"
s3_put h1/write.lock "$WORK/lock.json"
vm backup "$SRC" --store "$ST" --mirror "s3://$B/h1"
expect_rc 4 "a writer held off by another host's lock object"
expect_err "otherhost pid 4242" "the holder is named"
foreign_lock "$WORK/lock.json" "$((NOW - 60))"
s3_put h1/write.lock "$WORK/lock.json"
vm backup "$SRC" --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "an expired lease is taken over"
expect_err "lease of otherhost pid 4242 ended" "the takeover is said"
check_eq "$(count_keys h1/ 'write.lock$')" 0 "the lock object is gone once the backup is done"
echo "not json" >"$WORK/lock.json"
s3_put h1/write.lock "$WORK/lock.json"
vm backup "$SRC" --store "$ST" --mirror "s3://$B/h1"
expect_rc 4 "a lock object vmback did not write"
expect_err "is not one vmback wrote" "it is named"
_s3 -o /dev/null -X DELETE "http://$S3_ENDPOINT/$B/h1/write.lock"

section "prune"
vm store sync --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "the bucket copy in step before the prune"
BEFORE=$(count_keys h1/packs/ '\.pack$')
vm prune --store "$ST" --mirror "s3://$B/h1" --keep-last 3
expect_rc 0 "prune with the bucket copy"
check_eq "$(count_keys h1/points/ '\.json$')" 3 "the bucket keeps the last 3 points"
AFTER=$(count_keys h1/packs/ '\.pack$')
check "garbage collection left no more packs in the bucket ($BEFORE before, $AFTER after)" test "$AFTER" -le "$BEFORE"
vm verify --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "both copies verify after the prune"

section "listing cut short"
# Through a proxy that answers every listing with a first page marked
# truncated and fails every page after it: the bucket cannot be listed.
echo cut >"$WORK/proxy.mode"
python3 "$(dirname -- "$0")/s3_cut_proxy.py" "$WORK/proxy.port" "$S3_ENDPOINT" "$WORK/proxy.mode" &
register_pid $!
for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
[ -s "$WORK/proxy.port" ] || die "the listing proxy did not start"
PROXY=http://127.0.0.1:$(cat "$WORK/proxy.port")
s3_keys h1/ >"$WORK/keys.before"
AWS_ENDPOINT_URL=$PROXY vm prune --store "$ST" --mirror "s3://$B/h1" --keep-last 2
expect_rc 5 "prune with a listing that cannot be finished goes on with the disk copy, a warning"
expect_err "cannot be read (S3 LIST" "the listing that failed is named"
s3_keys h1/ >"$WORK/keys.after"
check "nothing in the bucket was deleted or added on a cut listing" cmp -s "$WORK/keys.before" "$WORK/keys.after"
echo pass >"$WORK/proxy.mode"
AWS_ENDPOINT_URL=$PROXY vm store sync --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "store sync once listings are whole again"
check_eq "$(count_keys h1/points/ '\.json$')" 2 "the point pruned meanwhile is gone from the bucket"

section "gateway killed during a prune"
text_file "$SRC/d/f.txt" 5000
vm backup "$SRC" --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "one more point"
in_background prune --store "$ST" --mirror "s3://$B/h1" --keep-last 1
for _ in $(seq 300); do
  [ "$(count_keys h1/points/ '\.json$')" -lt 3 ] && break
  sleep 0.05
done
ceph_rgw_kill
wait_background
echo "    (the prune the gateway died under exited $BG_RC)"
ceph_rgw_start
vm prune --store "$ST" --mirror "s3://$B/h1" --keep-last 1
expect_rc 0 "the next prune completes"
vm store sync --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "and a sync"
check_eq "$(count_keys h1/points/ '\.json$')" 1 "the bucket keeps the last point"
vm verify --store "$ST" --mirror "s3://$B/h1"
expect_rc 0 "both copies verify after the prune the gateway died under"
mv "$ST" "$ST.away"
vm restore --store "s3://$B/h1" latest --to "$WORK/r4"
expect_rc 5 "the bucket alone restores the last point"
mv "$ST.away" "$ST"
check_same_tree "$SRC" "$WORK/r4/src" "restored after the prunes"

finish
