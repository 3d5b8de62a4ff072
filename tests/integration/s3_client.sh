#!/usr/bin/env bash
# The S3 client (src/s3) against a real gateway: a private single-node Ceph
# cluster with radosgw (ceph_lib.sh), a bucket, and s3_client_test run
# against it, with the endpoint and keys in its environment (never argv).
# The fault cases in the binary kill radosgw by its pid mid-upload and
# while listing, and start it again, through ceph_lib.sh.
#
#   bash s3_client.sh VMBACK S3_CLIENT_TEST
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/ceph_lib.sh"

S3_TEST=${2:-}
[ -n "$S3_TEST" ] && [ -x "$S3_TEST" ] || die "usage: bash $0 VMBACK S3_CLIENT_TEST (s3_client_test not executable: '$S3_TEST')"

section "start Ceph (mon, osd, mgr, radosgw)"
ceph_start
ceph_make_bucket vmback-test

section "s3_client_test against http://$S3_ENDPOINT"
_count_check
VMBACK_TEST_S3_ENDPOINT=$S3_ENDPOINT VMBACK_TEST_S3_BUCKET=vmback-test \
  VMBACK_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY VMBACK_TEST_S3_SECRET_KEY=$S3_SECRET_KEY \
  VMBACK_TEST_CEPH_LIB="$(cd "$(dirname "$0")" && pwd)/ceph_lib.sh" VMBACK_TEST_CEPH_DIR=$CEPH_DIR \
  "$S3_TEST" >"$WORK/gtest.out" 2>&1 || {
  sed 's/^/    /' "$WORK/gtest.out" >&2
  _fail "s3_client_test failed (its output above)"
}
grep -E '^\[  (PASSED|FAILED) ' "$WORK/gtest.out" || true

# Every daemon still answers to its pid after the fault cases restarted
# radosgw: cleanup will stop each by its pid.
for n in mon osd mgr rgw; do
  _count_check
  _ceph_alive "$n" || _fail "ceph daemon $n is not running after the tests"
done

finish
