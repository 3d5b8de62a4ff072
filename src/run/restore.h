// Restore: a whole point, one volume, one file or a subtree, to a directory,
// a file or a block device. Bit-identical content, sparse where the data was
// zero, and the metadata a backup kept (owner, mode, mtime, xattrs, hard
// links, devices, fifos, symlinks).
#pragma once

#include <cstdint>
#include <string>

#include "store/store.h"
#include "util/log.h"

namespace vmback {

enum class Overwrite { kRefuse, kAllow };

struct RestoreStats {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t other = 0;
  uint64_t bytes = 0;
  uint64_t warnings = 0;  // metadata that could not be applied (e.g. chown as non-root)
};

// point: a point name or "latest". path: "" for the whole point (dest is a
// directory holding one entry per volume), "VOLUME" or "VOLUME/sub/path".
// An existing dest is refused unless overwrite is kAllow; a block device
// as dest is written in place (and also needs kAllow).
// Throws kNotFound for an unknown point or path, kCorrupt when the store
// cannot give back the right bytes: nothing wrong is ever written silently.
RestoreStats Restore(Store* store, const std::string& point, const std::string& path,
                     const std::string& dest, Overwrite overwrite, Logger* log);

// "latest" -> newest point name; checks that the point exists.
std::string ResolvePoint(Store* store, const std::string& point);

}  // namespace vmback
