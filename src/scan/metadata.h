// Reading a file system entry's metadata the way `rsync -axH` keeps it:
// type, permissions, owner, mtime (ns), symlink target, device number and
// extended attributes (which carry POSIX ACLs and file capabilities).
#pragma once

#include <sys/stat.h>

#include <string>

#include "store/tree.h"

namespace vmback {

// lstat()s path. Throws Error naming the path.
struct stat LStat(const std::string& path);

// Fills everything but content/subtree/hardlink (for a regular file also
// ctime_ns and ino). Throws Error naming path.
Entry ReadMetadata(const std::string& path, const struct stat& st);

// Sets path's mtime (ns since the epoch, may be negative) without following
// a symlink; the access time is left alone. Returns false with errno set.
bool SetMtimeNs(const std::string& path, int64_t mtime_ns);

}  // namespace vmback
