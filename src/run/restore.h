// Restore: a whole point, one volume, one file or a subtree, to a directory,
// a file or a block device. Bit-identical content, sparse where the data was
// zero, and the metadata a backup kept (owner, mode, mtime, xattrs, hard
// links, devices, fifos, symlinks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/log.h"

namespace vmback {

enum class Overwrite { kRefuse, kAllow };

// What a restore applies beside the content. The default is a faithful
// restore for disaster recovery (owners, setuid bits, device nodes, every
// xattr); the others are for restoring a stranger's files as root.
struct RestoreOptions {
  Overwrite overwrite = Overwrite::kRefuse;
  bool owner = true;       // false (--no-owner): files belong to the restoring user
  bool special = true;     // false (--no-special): no device nodes, fifos or sockets
  bool privileges = true;  // false (--no-privileges): no setuid/setgid bits, no security.* xattrs
  // Damage (a block, block list or directory no copy can give back) stops
  // the restore at once (--fail-fast), instead of being left zero, listed in
  // RestoreStats::damage, and the restore going on.
  bool fail_fast = false;
};

struct RestoreStats {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t other = 0;
  uint64_t bytes = 0;
  uint64_t warnings = 0;  // metadata that could not be applied (e.g. chown as non-root)
  uint64_t skipped = 0;   // special files left out (RestoreOptions::special)
  // What could not be restored: one line per lost range of a file (its
  // path, byte range and why) or lost directory listing; at most 1000 lines,
  // `damaged` counts them all. Non-empty means the restore is incomplete.
  std::vector<std::string> damage;
  uint64_t damaged = 0;
};

// point: a point name or "latest". path: "" for the whole point (dest is a
// directory holding one entry per volume), "VOLUME" or "VOLUME/sub/path".
// An existing dest is refused unless overwrite is kAllow; a block device
// as dest is written in place (and also needs kAllow).
// Throws kNotFound for an unknown point or path, kCorrupt when the point's
// structure is damaged; blocks and directory listings that no copy can give
// back are left zero (empty) and listed in RestoreStats::damage (unless
// fail_fast): nothing wrong is ever written silently.
//
// Nothing outside dest is ever written or deleted: the destination is walked
// with directory descriptors, one validated name at a time, never through a
// symlink and never across a mount point below dest; metadata is set on open
// descriptors. dest itself may not be a symlink, except a link to a block
// device (/dev/VG/LV) with kAllow.
RestoreStats Restore(Store* store, const std::string& point, const std::string& path,
                     const std::string& dest, const RestoreOptions& options, Logger* log);
inline RestoreStats Restore(Store* store, const std::string& point, const std::string& path,
                            const std::string& dest, Overwrite overwrite, Logger* log) {
  RestoreOptions options;
  options.overwrite = overwrite;
  return Restore(store, point, path, dest, options, log);
}

// "latest" -> newest point name; checks that the point exists.
std::string ResolvePoint(Store* store, const std::string& point);

}  // namespace vmback
