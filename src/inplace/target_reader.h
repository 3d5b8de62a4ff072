// `vmback mount` on an in-place target: a point of the target read in
// place, file by file, at any offset (destination/point_reader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "destination/point_reader.h"
#include "inplace/target.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

// Opens point (a name, or "latest") of target for reading; the reader holds
// the point's view (a ZFS clone) until it is destroyed. target, env and log
// are borrowed and must outlive the reader.
//
// Stat and List show what `vmback ls` shows (ListTargetEntries): read with
// lstat, never through a symlink; vmback's own files (the blockmaps, the
// point's description) and paths leaving a volume are not found. Stat("")
// is the point's root directory.
//
// Open gives a file whose ReadAt reads the whole blocks it touches (the
// block size of the file's blockmap), checks each against the blockmap,
// and keeps the checked blocks in an LRU cache of at most cache_bytes (for
// the reader and all its files together; blocks larger than that are not
// kept). A block that is wrong or cannot be read is Error(kCorrupt) naming
// the file ("VOLUME/dir/file"), the point and the block's bytes, with one
// warning in log per block; the other blocks stay readable. A file with no
// blockmap is read unchecked, with one warning; an unsound blockmap, or one
// that does not fit the file, is Error(kCorrupt) from Open. path() of a
// file is its path in the point ("VOLUME/dir/file"). NextData/NextHole are
// the file system's.
std::unique_ptr<PointReader> OpenTargetPointReader(InplaceTarget* target, Env* env, const std::string& point,
                                                   uint64_t cache_bytes, Logger* log);

}  // namespace vmback
