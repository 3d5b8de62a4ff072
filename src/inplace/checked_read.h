// Reading a file of an in-place point, every block checked against the
// blockmap the point carries: what restore and `vmback dump` share.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "destination/restore_types.h"
#include "inplace/target.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

// Copies the regular file src of a point into out, checking every block
// against the file's blockmap in the point (rel below map_root): wrong data
// is never written silently (kCorrupt naming src, the block and its bytes).
// Blocks are written in order of offset; all-zero blocks are skipped (the
// caller sets the size, leaving holes) unless dense (a block device: zeros
// written too). A file without a blockmap is copied unchecked, with a
// warning. Returns the file's size. Stops when *cancel is set (may be null).
uint64_t CopyChecked(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                     WritableFile* out, bool dense, const std::atomic<bool>* cancel, RestoreStats* stats,
                     Logger* log);

// Throws unless st (lstat of path in point) is a regular file: kNotFound
// when nothing is there, ThrowNotDumpable for anything else.
void CheckRegularFile(const FileStatus& st, const std::string& path, const std::string& point);

// `vmback dump` on an in-place target (Destination::Dump): the regular file
// at path ("VOLUME" or "VOLUME/dir/file") of point (a name, or "latest")
// written to out with CopyChecked, then padded to its size (out->Truncate).
// A path escaping the volume, or into vmback's own files, is not found;
// anything but a regular file is refused (ThrowNotDumpable), read with
// lstat, never through a symlink. Returns the file's size.
uint64_t DumpFromTarget(InplaceTarget* target, Env* env, const std::string& point, const std::string& path,
                        WritableFile* out, Logger* log);

}  // namespace vmback
