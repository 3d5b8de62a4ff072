// `vmback diff`: what changed between two points below a path, the same
// for the store and the in-place targets. Each destination lists both
// points (Destination::ListEntries) and says, for a file in both, how its
// content differs (block lists or blockmaps compared, no data read);
// DiffPointEntries does the rest.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "destination/restore_types.h"

namespace vmback {

// How the content of a file differs between two points.
struct ContentDelta {
  bool known = false;      // false: the blocks were not comparable (no blockmap)
  uint64_t blocks = 0;     // differing blocks, those only one side has included
  uint32_t block_size = 0;
  uint64_t bytes() const { return blocks * block_size; }
};

struct EntryChange {
  enum class Kind { kAdded, kRemoved, kChanged };
  Kind kind = Kind::kChanged;
  std::optional<PointEntry> before, after;  // kRemoved: before; kAdded: after; kChanged: both
  // kChanged: what differs, in this order: "type" (and then nothing else),
  // "content", "mode", "owner", "mtime", "target".
  std::vector<std::string> what;
  std::optional<ContentDelta> content;  // with "content"
  const PointEntry& entry() const { return after ? *after : *before; }
};

struct PointDiff {
  std::string from, to;  // the points' names ("latest" resolved)
  std::vector<EntryChange> changes;  // in path order
};

// PointEntry::version of content made of ids (a store's list ids, an
// in-place blockmap's entries): the hex SHA-256 of them in order.
std::string ContentVersion(const std::vector<Hash>& ids);

// Whether a path of a point ("VOLUME/dir/name") is wanted.
using PathMatcher = std::function<bool(const std::string& path)>;

// The content of two files of the same path: nullopt when it is the same.
using ContentComparer = std::function<std::optional<ContentDelta>(const PointEntry& before,
                                                                 const PointEntry& after)>;

// The changes from `before` to `after` (each a listing of one point, any
// order), in path order: a path's components compared byte by byte, so a
// directory comes right before what it holds. `content` is asked only for
// files present in both.
std::vector<EntryChange> DiffPointEntries(std::vector<PointEntry> before, std::vector<PointEntry> after,
                                          const ContentComparer& content);

// Runs list (one point's listing below a path): false when it threw
// Error(kNotFound), the path not being in that point (its side of the diff
// is then empty: all added or all removed).
bool PathListed(const std::function<void()>& list);
// Error(kNotFound): path is in neither point of d.
[[noreturn]] void ThrowPathInNeither(const std::string& path, const PointDiff& d);

// Whether path a sorts before path b in path order.
bool PathOrderLess(const std::string& a, const std::string& b);

// --json: a list, one object per change: change, path, type and size (of
// the entry as it is in `to`, or was in `from` when removed); for a
// change, changes, before and after (as `ls --json` shows entries), and
// changed_blocks, block_size and changed_bytes (null when not known).
nlohmann::json PointDiffToJson(const PointDiff& d);

}  // namespace vmback
