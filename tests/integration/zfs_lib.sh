# shellcheck shell=bash
# ZFS for tests and benchmarks, with the zfs-fuse daemon (Debian's zfs-fuse):
# source after lib.sh (it uses register_cleanup and die).
#
#   zfs_start                       starts zfs-fuse unless one already answers
#   zfs_make_pool NAME SIZE DIR     a pool NAME mirrored over two files of
#                                   SIZE in DIR, mounted at DIR/mnt, with
#                                   compression=on and checksum=sha256, no
#                                   cache file; destroyed in cleanup
#
# Cleanup destroys the pools this script made, then stops the daemon if this
# script started it (by its pid, waiting for it to exit).

_ZFS_POOLS=()
_ZFS_PID=

_zfs_cleanup() {
  local p
  for p in "${_ZFS_POOLS[@]}"; do
    zpool destroy -f "$p" >/dev/null 2>&1 || { sleep 1; zpool destroy -f "$p" >/dev/null 2>&1; } ||
      echo "warning: could not destroy ZFS pool $p" >&2
  done
  if [ -n "$_ZFS_PID" ]; then
    kill "$_ZFS_PID" 2>/dev/null
    local i
    for i in $(seq 100); do
      kill -0 "$_ZFS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$_ZFS_PID" 2>/dev/null
    wait "$_ZFS_PID" 2>/dev/null
  fi
}

zfs_start() {
  command -v zfs-fuse >/dev/null || die "needs zfs-fuse (scripts/setup installs it)"
  register_cleanup _zfs_cleanup
  if zpool list >/dev/null 2>&1; then
    echo "zfs_lib: using the zfs-fuse daemon that is already running"
    return 0
  fi
  zfs-fuse --no-daemon --no-kstat-mount >"$WORK/zfs-fuse.log" 2>&1 &
  _ZFS_PID=$!
  local i
  for i in $(seq 100); do
    zpool list >/dev/null 2>&1 && return 0
    kill -0 "$_ZFS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/zfs-fuse.log" >&2
  die "zfs-fuse did not start"
}

zfs_make_pool() {
  local name=$1 size=$2 dir=$3
  mkdir -p "$dir"
  truncate -s "$size" "$dir/disk1" "$dir/disk2"
  zpool create -o cachefile=none -m "$dir/mnt" "$name" mirror "$dir/disk1" "$dir/disk2" >/dev/null 2>&1 ||
    die "zpool create $name failed"
  _ZFS_POOLS+=("$name")
  zfs set compression=on "$name"
  zfs set checksum=sha256 "$name"
}
