// One point opened for reading in place, for as long as the reader lives:
// what `vmback mount` serves. A store's reader holds the point's manifest; an
// in-place target's holds the point's view (a ZFS clone, destroyed when the
// reader goes). Its files are read at any offset, each block checked against
// its id (the store) or the point's blockmap (an in-place target) before a
// byte of it is given out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "destination/restore_types.h"
#include "os/env.h"

namespace vmback {

// Not thread-safe, nor are its files: one call at a time, on the thread that
// uses the Destination it came from.
class PointReader {
 public:
  virtual ~PointReader() = default;

  // The point's name ("latest" resolved).
  virtual const std::string& name() const = 0;
  // The entry at path ("VOLUME" or "VOLUME/dir/name"; "" is the point
  // itself, a directory). Error(kNotFound) naming path and the point when
  // it is not there.
  virtual PointEntry Stat(const std::string& path) = 0;
  // The children of the directory at path ("" lists the volumes), sorted by
  // name; Error(kNotFound) when path is not there, Error(kConfig) when it is
  // not a directory.
  virtual std::vector<PointEntry> List(const std::string& path) = 0;
  // The regular file at path, for reads at any offset. Its ReadAt checks
  // every block it returns: a block that cannot be read or is wrong throws
  // Error(kCorrupt) naming the file and the block's bytes, and leaves the
  // other blocks readable. NextData/NextHole give its holes (runs of
  // all-zero blocks in the store; the file system's holes, or the
  // blockmap's zero blocks, in place). Anything but a regular file is
  // refused (ThrowNotDumpable). Files may outlive other calls but not the
  // reader.
  virtual std::unique_ptr<ReadableFile> Open(const std::string& path) = 0;
};

}  // namespace vmback
