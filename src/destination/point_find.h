// `vmback find`: which points hold the paths a glob matches, and where
// their content changed, the same for the store and the in-place targets.
// Each destination gives the matching entries of one point with their
// content's version (Destination::FindEntries); the rest is here.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "destination/restore_types.h"

namespace vmback {

// Whether path ("VOLUME/dir/name") matches pattern: '*' is any run of bytes
// but '/', '**' any run including '/', '?' one byte but '/', "[...]" one
// byte of a set ("[!...]" or "[^...]" not of it; "a-z" a range), '\'
// takes the next byte as it is. A pattern without '/' is matched against
// the last component of the path (as find -name does), one with '/'
// against the whole path.
// A path longer than kMaxGlobPath (or a pattern longer than
// kMaxGlobPattern) matches nothing.
inline constexpr size_t kMaxGlobPath = 32 * 1024;
inline constexpr size_t kMaxGlobPattern = 1024;
bool GlobMatch(std::string_view pattern, std::string_view path);

// What `find --newer/--older/--size` keeps of the entries a glob matched.
struct FindFilter {
  int64_t newer_ns = std::numeric_limits<int64_t>::min();  // mtime after this
  int64_t older_ns = std::numeric_limits<int64_t>::max();  // mtime before this
  enum class Size { kAny, kExactly, kMore, kLess };
  Size size_cmp = Size::kAny;  // not kAny: regular files only
  uint64_t size = 0;

  bool Keeps(const PointEntry& e) const;
};

// --newer/--older WHEN: a UTC date or time (ParseTimeUtc: "2026-11-20",
// "2026-11-20T18:00") or an age (ParseDuration: "7d" is now_ns less 7
// days). Throws Error(kConfig) naming option and text otherwise.
int64_t ParseFindTime(const std::string& option, const std::string& text, int64_t now_ns);
// --size [+|-]N[K|M|G]: more than, less than or exactly N bytes (K, M, G
// powers of 1024). Throws Error(kConfig) naming the text.
void ParseFindSize(const std::string& text, FindFilter* filter);

// One path found, and each point that holds it (oldest first).
struct FoundPath {
  std::string path;
  std::vector<std::pair<std::string, PointEntry>> points;  // point name, entry there
};

// Gathers the matches of each point (points oldest first, each its
// matching entries) by path, in path order.
std::vector<FoundPath> GatherFound(const std::vector<std::pair<std::string, std::vector<PointEntry>>>& points);

// Whether the entry in points[i] differs from the one in points[i - 1] in
// type or content (version); false for the first.
bool ChangedAt(const FoundPath& f, size_t i);

// --json: a list, one object per path: path, and points, a list of point,
// type, size, mtime, version (null when not known: a file without a
// blockmap, or not a file) and changed (ChangedAt).
nlohmann::json FoundToJson(const std::vector<FoundPath>& found);

}  // namespace vmback
