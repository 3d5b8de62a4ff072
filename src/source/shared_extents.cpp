#include "source/shared_extents.h"

#include <linux/fiemap.h>

#include <algorithm>

#include "util/error.h"

namespace vmback {

namespace {

// Extents whose physical address is not a byte address on the device.
constexpr uint32_t kNotComparable = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE |
                                    FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_NOT_ALIGNED |
                                    FIEMAP_EXTENT_DATA_ENCRYPTED;

// The extent of map covering offset, from *i on (the map is walked forward).
const FileExtent* Covering(const std::vector<FileExtent>& map, size_t* i, uint64_t offset) {
  while (*i < map.size() && map[*i].logical + map[*i].length <= offset) ++*i;
  if (*i < map.size() && map[*i].logical <= offset) return &map[*i];
  return nullptr;
}

// Where the piece of the map after offset next changes: the end of the
// covering extent, or the start of the next one.
uint64_t NextBoundary(const std::vector<FileExtent>& map, size_t i, uint64_t offset) {
  if (i >= map.size()) return UINT64_MAX;
  if (map[i].logical <= offset) return map[i].logical + map[i].length;
  return map[i].logical;
}

// Whether [offset, ...) of base extent b and now extent n hold the same bytes.
bool SameBytes(const FileExtent* b, const FileExtent* n, uint64_t offset) {
  if (!b && !n) return true;  // a hole in both: zeros
  if (!b || !n) return false;
  if ((b->flags | n->flags) & kNotComparable) return false;
  if ((b->flags ^ n->flags) & FIEMAP_EXTENT_UNWRITTEN) return false;
  if ((b->flags | n->flags) & FIEMAP_EXTENT_ENCODED)  // compressed: only the very same extent
    return b->logical == n->logical && b->physical == n->physical && b->length == n->length &&
           b->flags == n->flags;
  return b->physical + (offset - b->logical) == n->physical + (offset - n->logical);
}

}  // namespace

std::vector<ByteRange> DifferingRanges(const std::vector<FileExtent>& base, const std::vector<FileExtent>& now,
                                       uint64_t size) {
  std::vector<ByteRange> out;
  size_t bi = 0, ni = 0;
  for (uint64_t off = 0; off < size;) {
    const FileExtent* b = Covering(base, &bi, off);
    const FileExtent* n = Covering(now, &ni, off);
    const uint64_t end = std::min({size, NextBoundary(base, bi, off), NextBoundary(now, ni, off)});
    if (!SameBytes(b, n, off)) {
      if (!out.empty() && out.back().offset + out.back().length == off)
        out.back().length += end - off;
      else
        out.push_back({off, end - off});
    }
    off = end;
  }
  return out;
}

ChangeSet SharedExtentChanges(Env* env, const std::string& base, const std::string& now) {
  ChangeSet none;
  const FileStatus b = env->Status(base);
  const FileStatus n = env->Status(now);
  if (b.kind != FileKind::kFile) {
    none.why = "no copy in the base snapshot (" + base + ")";
    return none;
  }
  if (n.kind != FileKind::kFile || b.size != n.size) {
    none.why = "its size differs from the base snapshot's copy";
    return none;
  }
  // (btrfs gives each subvolume a device number of its own: the base, a
  // subvolume inside the source's, has another one on the same file system.)
  constexpr uint64_t kBtrfsMagic = 0x9123683e;
  if (b.dev != n.dev && !(env->FileSystemType(base) == kBtrfsMagic && env->FileSystemType(now) == kBtrfsMagic)) {
    none.why = "the base snapshot is on another file system";
    return none;
  }
  try {
    const std::vector<FileExtent> be = env->Extents(base, kMaxExtentsCompared);
    const std::vector<FileExtent> ne = env->Extents(now, kMaxExtentsCompared);
    return {ChangeMethod::kSharedExtents, "", DifferingRanges(be, ne, n.size)};
  } catch (const Error& e) {
    none.why = std::string("its extents cannot be compared: ") + e.what();
    return none;
  }
}

}  // namespace vmback
