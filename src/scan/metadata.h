// Reading a file system entry's metadata the way `rsync -axH` keeps it:
// type, permissions, owner, mtime (ns), symlink target, device number and
// extended attributes (which carry POSIX ACLs and file capabilities).
#pragma once

#include <sys/stat.h>

#include <string>

#include "os/env.h"
#include "store/tree.h"

namespace vmback {

// Fills everything but content/subtree/hardlink (for a regular file also
// ctime_ns and ino) from st, the lstat of path, reading the symlink target
// and the xattrs through env. Throws Error naming path.
Entry ReadMetadata(Env* env, const std::string& path, const FileStatus& st);
// The same, but a regular file whose inode number and ctime equal those
// recorded in prev (path's entry in the parent point; may be null) takes
// prev's xattrs unread: setting or removing an xattr moves the ctime.
Entry ReadMetadata(Env* env, const std::string& path, const FileStatus& st, const Entry* prev);
// The same for the child `name` of dir (its lstat st), reading the symlink
// target and the xattrs relative to dir, never by a path walked afresh;
// name "" for dir itself (st: its own status).
Entry ReadMetadata(ReadableDir* dir, const std::string& name, const FileStatus& st, const Entry* prev);
// The same of a regular file open for writing, through its descriptor
// (REQUIRES: f->MetadataByDescriptor()).
Entry ReadMetadata(WritableFile* f, const FileStatus& st);
// The same through Env::Default(), for callers that hold a struct stat.
Entry ReadMetadata(const std::string& path, const struct stat& st);

}  // namespace vmback
