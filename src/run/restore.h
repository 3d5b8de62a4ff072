// Restore: a whole point, one volume, one file or a subtree, to a directory,
// a file or a block device. Bit-identical content, sparse where the data was
// zero, and the metadata a backup kept (owner, mode, mtime, xattrs, hard
// links, devices, fifos, symlinks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "destination/restore_types.h"
#include "store/store.h"
#include "util/log.h"

namespace vmback {

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
//
// Durability: when Restore returns, what it wrote is on disk (one
// store->env()->SyncFileSystem of the directory written into, after the last
// entry; a block device is fsynced). A file renamed over an existing one is
// fsynced before the rename. An error thrown before then (a failed sync too)
// means the restore is not done.
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

// `vmback dump` (Destination::Dump): the regular file at path ("VOLUME" or
// "VOLUME/dir/file") of point (a name, or "latest": the newest holding that
// volume) written to out in order of offset, holes and zero blocks left to
// out (a StreamFile writes them as zeros), each block re-hashed against its
// id as restore reads it. A range no copy gives back stops it: Error
// (kCorrupt; kIo when every copy failed to read) "<path> in point <point>:
// bytes A..B cannot be read (why)". Anything but a regular file is refused
// (ThrowNotDumpable). Returns the file's size.
uint64_t DumpFile(Store* store, const std::string& point, const std::string& path, WritableFile* out, Logger* log);

}  // namespace vmback
