// Looking inside a point of the store without restoring it (`vmback ls`):
// the path lookup that restore uses too, and listings of a directory.
#pragma once

#include <string>
#include <vector>

#include "destination/restore_types.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/tree.h"

namespace vmback {

// The entry at path ("VOLUME" or "VOLUME/dir/file") of point m (named point,
// for messages). A volume's root entry has an empty name. Throws
// Error(kNotFound) naming path and point when it is not there,
// Error(kCorrupt) when a tree on the way cannot be read. *rel (when given):
// its path within the volume, empty components left out.
Entry FindInPoint(Store* store, const Manifest& m, const std::string& point, const std::string& path,
                  std::string* rel = nullptr);

// The entries of point (a name, or "latest") below path: a point's volumes
// when path is empty; a directory's children (all below it with recursive),
// each with its path in the point; a file, link or device itself.
std::vector<PointEntry> ListPointEntries(Store* store, const std::string& point, const std::string& path,
                                         bool recursive);

}  // namespace vmback
