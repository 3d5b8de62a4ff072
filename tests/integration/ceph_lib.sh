# shellcheck shell=bash
# A private single-node Ceph cluster with its S3 gateway (RGW) for tests:
# source after lib.sh (it uses $WORK, register_cleanup and die). The recipe
# is ../shared/CEPH.md: auth off, one monitor, one OSD on a sparse file, one
# manager, one radosgw, everything under $WORK/ceph.
#
#   ceph_start        starts the cluster and makes an S3 user; exports
#                       S3_ENDPOINT    127.0.0.1:PORT (plain http, path style)
#                       S3_ACCESS_KEY  S3_SECRET_KEY  (random for this run)
#                       CEPH_DIR       the cluster's directory
#                     and prints how long the start took
#   ceph_make_bucket NAME   makes a bucket (S3 CreateBucket through curl)
#   ceph_rgw_kill     kills radosgw by its pid (SIGKILL) and waits for it
#   ceph_rgw_start    starts radosgw again on the same port, waits until it
#                     answers
#   ceph_rgw_freeze   SIGSTOP radosgw by its pid (it answers nothing);
#   ceph_rgw_thaw     SIGCONT
#
# The start takes about 15 s on this machine kind (2 shared cores; measured
# by ceph_start itself: "cluster up in 15 s"), each wait bounded by 60 s.
# The ports (monitor, gateway) are picked at random among free ones at start
# and picked again when a daemon cannot bind, so two tests may run at once.
# The daemons run in the foreground (-f) under setsid, their pids recorded in
# $CEPH_DIR/*.pid by this script (not by the daemons); cleanup kills each by
# that pid (TERM, then KILL after 10 s), never by name, then removes
# $CEPH_DIR. Missing packages fail the test with a message naming them.
# The OSD keeps its data in a sparse file of CEPH_OSD_BLOCK_BYTES (default
# 4 GiB; bench/s3_sync_bench.sh asks for more).
#
# Run as a command, the same file drives the gateway of a running cluster,
# for test binaries that kill and restart it at a chosen moment:
#   bash ceph_lib.sh rgw-kill|rgw-start|rgw-freeze|rgw-thaw CEPH_DIR

CEPH_DIR=
_CEPH_WAIT=60  # seconds any one wait may take

_ceph_need() {
  local missing=() c
  for c in ceph-mon ceph-osd ceph-mgr radosgw radosgw-admin ceph monmaptool ceph-authtool uuidgen curl ss python3; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  ((${#missing[@]} == 0)) ||
    _ceph_die "needs ${missing[*]} (Debian: ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl iproute2; scripts/setup installs them)"
}

_ceph_die() {
  if declare -F die >/dev/null; then die "ceph_lib: $*"; fi
  echo "FAIL: ceph_lib: $*" >&2
  exit 1
}

# A TCP port nobody listens on now (a daemon may still lose the race: the
# callers retry with another).
_ceph_free_port() {
  local p i
  for i in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
      echo "$p"
      return 0
    fi
  done
  _ceph_die "no free TCP port found"
}

# Writes ceph.conf from the chosen ports: to a new file renamed over the old,
# as daemons already running may read it at any moment.
_ceph_conf() {
  local d=$CEPH_DIR
  cat >"$d/ceph.conf.new" <<EOF
[global]
fsid = $(cat "$d/fsid")
mon host = v1:127.0.0.1:$(cat "$d/mon.port")
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
run dir = $d/run
log file = $d/log/\$name.log
admin socket = $d/run/\$name.asok
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
# The OSD's own CRUSH updates at start go out with a zero fsid here (v1
# only, auth off) and the monitor refuses them ("wrong fsid"), which stops
# the OSD: its CRUSH location is set once, below, instead.
osd crush update on start = false
osd class update on start = false
[mon.a]
mon data = $d/mon
[mgr.a]
mgr data = $d/mgr
[osd.0]
osd data = $d/osd0
osd objectstore = bluestore
bluestore block path = $d/osd0.block
bluestore block create = true
bluestore block size = ${CEPH_OSD_BLOCK_BYTES:-4294967296}
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$(cat "$d/rgw.port")
rgw data = $d/rgw
EOF
  mv -f "$d/ceph.conf.new" "$d/ceph.conf"
}

# _ceph_spawn NAME CMD...: starts CMD in the foreground of its own session,
# its output to log/NAME.out, its pid into NAME.pid.
_ceph_spawn() {
  local name=$1
  shift
  # Not a process-group leader here, so setsid execs CMD itself: $! is CMD.
  setsid "$@" </dev/null >>"$CEPH_DIR/log/$name.out" 2>&1 &
  echo $! >"$CEPH_DIR/$name.pid"
  # Out of the job table: a daemon a test kills is no "Killed" line. (The
  # shell still reaps it, so kill -0 tells when it is gone.)
  disown $!
}

# _ceph_stop NAME: TERM, up to 10 s, then KILL, by the recorded pid.
_ceph_stop() {
  local f=$CEPH_DIR/$1.pid pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  rm -f "$f"
  kill "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true  # a frozen one (ceph_rgw_freeze)
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

_ceph_alive() { [ -s "$CEPH_DIR/$1.pid" ] && kill -0 "$(cat "$CEPH_DIR/$1.pid")" 2>/dev/null; }

_ceph_cleanup() {
  [ -n "$CEPH_DIR" ] || return 0
  local n
  for n in rgw mgr osd mon; do _ceph_stop "$n"; done
  rm -rf --one-file-system -- "$CEPH_DIR"
}

# A ceph command, tried up to 5 times: just after the monitor forms its
# quorum, a client may send its first command with a zero fsid and get
# "EPERM: wrong fsid" (seen here, v1 with auth off). The commands used are
# idempotent.
_ceph() {
  local try
  for try in 1 2 3 4 5; do
    timeout 30 ceph -c "$CEPH_DIR/ceph.conf" --connect-timeout 20 "$@" && return 0
    sleep 1
  done
  return 1
}

# Waits until the monitor answers; returns 1 if it died (a lost port race).
_ceph_mon_up() {
  local end=$((SECONDS + _CEPH_WAIT))
  while ((SECONDS < end)); do
    _ceph_alive mon || return 1
    timeout 5 ceph -c "$CEPH_DIR/ceph.conf" --connect-timeout 3 mon stat >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  _ceph_die "the monitor did not answer within ${_CEPH_WAIT} s (log: $(tail -n 5 "$CEPH_DIR/log/mon.a.log" 2>/dev/null))"
}

_ceph_start_mon() {
  local d=$CEPH_DIR try
  for try in 1 2 3 4 5; do
    _ceph_free_port >"$d/mon.port"
    _ceph_conf
    rm -rf "$d/mon" "$d/monmap"
    mkdir -p "$d/mon"
    # --addv with v1: a plain address on a port other than 6789 would be
    # msgr2 only, and the v1 clients of "mon host" would never get in.
    monmaptool --create --addv a "[v1:127.0.0.1:$(cat "$d/mon.port")]" --fsid "$(cat "$d/fsid")" "$d/monmap" >/dev/null
    [ -f "$d/mon.keyring" ] ||
      ceph-authtool --create-keyring "$d/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-mon -c "$d/ceph.conf" --mkfs -i a --monmap "$d/monmap" --keyring "$d/mon.keyring" >>"$d/log/mkfs.out" 2>&1 ||
      _ceph_die "ceph-mon --mkfs failed: $(tail -n 5 "$d/log/mkfs.out")"
    _ceph_spawn mon ceph-mon -c "$d/ceph.conf" -i a -f
    _ceph_mon_up && return 0
    _ceph_stop mon
  done
  _ceph_die "the monitor did not start on 5 ports: $(tail -n 5 "$d/log/mon.out")"
}

# Waits until the gateway answers S3 (an anonymous ListBuckets); returns 1
# if radosgw died (a lost port race).
_ceph_rgw_up() {
  local end=$((SECONDS + _CEPH_WAIT))
  while ((SECONDS < end)); do
    _ceph_alive rgw || return 1
    curl -s -m 2 "http://127.0.0.1:$(cat "$CEPH_DIR/rgw.port")/" 2>/dev/null | grep -q ListAllMyBucketsResult && return 0
    sleep 0.2
  done
  _ceph_die "radosgw did not answer within ${_CEPH_WAIT} s (log: $(tail -n 5 "$CEPH_DIR/log/client.rgw.a.log" 2>/dev/null))"
}

# _ceph_start_rgw first|again: starts radosgw on the port chosen; the first
# time, on another free one while it cannot bind (a lost race); again (a
# restart) only on the same port, as clients know it.
_ceph_start_rgw() {
  local try
  for try in 1 2 3 4 5; do
    if [ "$try" -gt 1 ]; then
      [ "$1" = first ] || _ceph_die "radosgw did not start again on port $(cat "$CEPH_DIR/rgw.port"): $(tail -n 5 "$CEPH_DIR/log/rgw.out")"
      _ceph_free_port >"$CEPH_DIR/rgw.port"
      _ceph_conf
    fi
    _ceph_spawn rgw radosgw -c "$CEPH_DIR/ceph.conf" -n client.rgw.a -f
    _ceph_rgw_up && return 0
    _ceph_stop rgw
  done
  _ceph_die "radosgw did not start on 5 ports: $(tail -n 5 "$CEPH_DIR/log/rgw.out")"
}

_ceph_random() { python3 -c "import secrets, string, sys; a = string.ascii_uppercase + string.digits if sys.argv[1] == 'A' else string.ascii_letters + string.digits; print(''.join(secrets.choice(a) for _ in range(int(sys.argv[2]))))" "$@"; }

ceph_start() {
  _ceph_need
  [ -n "${WORK:-}" ] && [ -d "$WORK" ] || _ceph_die "source lib.sh first (no \$WORK)"
  local t0=$SECONDS d
  CEPH_DIR=$WORK/ceph
  d=$CEPH_DIR
  register_cleanup _ceph_cleanup
  mkdir -p "$d/run" "$d/log" "$d/mgr" "$d/osd0" "$d/rgw"
  uuidgen >"$d/fsid"
  _ceph_free_port >"$d/rgw.port"
  _ceph_start_mon

  local osd_uuid
  osd_uuid=$(uuidgen)
  # The OSD must be registered with the uuid it is made with ("wrong fsid"),
  # and needs a CRUSH location or its placement groups stay "unknown".
  _ceph osd create "$osd_uuid" >/dev/null 2>>"$d/log/ceph.out" || _ceph_die "ceph osd create failed"
  ceph-osd -c "$d/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$d/log/mkfs.out" 2>&1 ||
    _ceph_die "ceph-osd --mkfs failed: $(tail -n 5 "$d/log/mkfs.out")"
  _ceph osd crush add osd.0 1.0 host=localhost root=default >/dev/null 2>>"$d/log/ceph.out" ||
    _ceph_die "ceph osd crush add failed"
  _ceph_spawn osd ceph-osd -c "$d/ceph.conf" -i 0 -f
  _ceph_spawn mgr ceph-mgr -c "$d/ceph.conf" -i a -f
  _ceph_start_rgw first

  S3_ACCESS_KEY=$(_ceph_random A 20)
  S3_SECRET_KEY=$(_ceph_random a 40)
  timeout "$_CEPH_WAIT" radosgw-admin -c "$d/ceph.conf" user create --uid=vmback-test --display-name=vmback-test \
    --access-key="$S3_ACCESS_KEY" --secret="$S3_SECRET_KEY" >/dev/null 2>>"$d/log/admin.out" ||
    _ceph_die "radosgw-admin user create failed: $(tail -n 5 "$d/log/admin.out")"
  S3_ENDPOINT=127.0.0.1:$(cat "$d/rgw.port")
  export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY CEPH_DIR
  echo "ceph_lib: cluster up in $((SECONDS - t0)) s, S3 at http://$S3_ENDPOINT"
}

# A bucket through the S3 API itself (curl signs SigV4 with --aws-sigv4;
# RGW needs the payload hash header, which curl 7.88 does not add).
ceph_make_bucket() {
  local code
  code=$(curl -s -o "$CEPH_DIR/log/bucket.out" -w '%{http_code}' -m 30 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://$S3_ENDPOINT/$1") || true
  [ "$code" = 200 ] || _ceph_die "could not make bucket $1 (HTTP $code: $(head -c 500 "$CEPH_DIR/log/bucket.out"))"
}

ceph_rgw_kill() {
  [ -s "$CEPH_DIR/rgw.pid" ] || _ceph_die "radosgw is not running"
  local pid i
  pid=$(cat "$CEPH_DIR/rgw.pid")
  kill -9 "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null || _ceph_die "radosgw (pid $pid) did not die"
  rm -f "$CEPH_DIR/rgw.pid"
}

ceph_rgw_start() { _ceph_start_rgw again; }

# ceph_rgw_freeze / ceph_rgw_thaw: SIGSTOP / SIGCONT radosgw by its pid: a
# gateway that keeps its connections open and answers nothing (timeouts).
ceph_rgw_freeze() { kill -STOP "$(cat "$CEPH_DIR/rgw.pid")" || _ceph_die "radosgw is not running"; }
ceph_rgw_thaw() { kill -CONT "$(cat "$CEPH_DIR/rgw.pid")" || _ceph_die "radosgw is not running"; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # The command form: bash ceph_lib.sh rgw-kill|rgw-start CEPH_DIR
  set -euo pipefail
  [ $# -eq 2 ] && [ -f "$2/ceph.conf" ] || _ceph_die "usage: bash ceph_lib.sh rgw-kill|rgw-start|rgw-freeze|rgw-thaw CEPH_DIR"
  CEPH_DIR=$2
  case $1 in
    rgw-kill) ceph_rgw_kill ;;
    rgw-start) ceph_rgw_start ;;
    rgw-freeze) ceph_rgw_freeze ;;
    rgw-thaw) ceph_rgw_thaw ;;
    *) _ceph_die "unknown command $1" ;;
  esac
fi
