#include "source/change_set.h"

#include <algorithm>

namespace vmback {

const char* ChangeMethodName(ChangeMethod m) {
  switch (m) {
    case ChangeMethod::kFullRead:
      return "full-read";
    case ChangeMethod::kDirtyBitmap:
      return "dirty-bitmap";
    case ChangeMethod::kSharedExtents:
      return "shared-extents";
  }
  return "?";
}

std::vector<ByteRange> NormalizeRanges(std::vector<ByteRange> ranges, uint64_t size) {
  std::vector<ByteRange> out;
  for (auto& r : ranges) {
    if (r.offset >= size || r.length == 0) continue;
    r.length = std::min(r.length, size - r.offset);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  for (const auto& r : ranges) {
    if (r.offset >= size || r.length == 0) continue;
    if (!out.empty() && r.offset <= out.back().offset + out.back().length) {
      uint64_t end = std::max(out.back().offset + out.back().length, r.offset + r.length);
      out.back().length = end - out.back().offset;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

bool Touches(const std::vector<ByteRange>& ranges, uint64_t offset, uint64_t length) {
  if (length == 0) return false;
  // The first range ending after offset.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](uint64_t off, const ByteRange& r) { return off < r.offset + r.length; });
  return it != ranges.end() && it->offset < offset + length;
}

uint64_t CoveredBytes(const std::vector<ByteRange>& ranges) {
  uint64_t n = 0;
  for (const auto& r : ranges) n += r.length;
  return n;
}

}  // namespace vmback
