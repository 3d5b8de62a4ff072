// Looking inside a point of the store without restoring it (`vmback ls`):
// the path lookup that restore uses too, and listings of a directory.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "destination/point_diff.h"
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

// The decoded tree (children) of directory entry dir at path in a point,
// for FindInPoint: a reader that keeps trees gives its own.
using TreeSource =
    std::function<std::shared_ptr<const std::vector<Entry>>(const Entry& dir, const std::string& path)>;
// FindInPoint with the trees on the way read through children.
Entry FindInPoint(const Manifest& m, const std::string& point, const std::string& path, const TreeSource& children,
                  std::string* rel = nullptr);

// e at path as ls shows it, with a file's content version (ContentVersion
// of its block list ids).
PointEntry StorePointEntry(const Entry& e, const std::string& path);

// The entries of point (a name, or "latest") below path: a point's volumes
// when path is empty; a directory's children (all below it with recursive),
// each with its path in the point; a file, link or device itself.
std::vector<PointEntry> ListPointEntries(Store* store, const std::string& point, const std::string& path,
                                         bool recursive);

// `vmback diff` on the store: what changed from point `from` to point `to`
// (names, or "latest") below path (everything when empty). A changed file's
// blocks are counted from its block lists (equal list ids skipped, the
// others decoded), never from its data; a directory whose tree is the same
// in both points is not entered. A path in one point only is all
// added or removed; in neither, Error(kNotFound) naming it and both points.
PointDiff DiffPoints(Store* store, const std::string& from, const std::string& to, const std::string& path);

// `vmback find` in one point of the store (a name, or "latest", resolved
// into *resolved): its entries whose path match accepts, in path order,
// each file's version a digest of its block list ids.
// memo (may be null) carries what one find learnt to its next points: a
// directory unchanged between points is read once per find. The matcher
// must be the same for every call with one memo.
struct FindMemo {
  std::unordered_map<std::string, std::vector<PointEntry>> found;  // (subtree id, path) -> matches below
  size_t entries = 0;
};
inline constexpr size_t kFindMemoEntries = 4'000'000;  // then forgotten, and filled again
std::vector<PointEntry> FindPointEntries(Store* store, const std::string& point, const PathMatcher& match,
                                         std::string* resolved, FindMemo* memo = nullptr);

}  // namespace vmback
