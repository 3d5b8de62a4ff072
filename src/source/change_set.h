// What changed in a file (or a VM's disk) since the point a backup builds
// on, and how vmback found that out: the change list that lets a nightly
// run read only what changed (changed-block tracking).
//
// A change list is a promise about the content: every byte outside its
// ranges is the same as in the previous point's version of the same file.
// Whoever makes one must have evidence for it (a libvirt checkpoint of the
// previous point, or a snapshot kept from it whose identity was checked);
// with none, there is no change list and the file is read in full, with the
// reason given (ChangeSet::why). A destination that takes a change list
// reads only the blocks its ranges touch and reuses the previous point's
// blocks for the rest: the point must be identical to one made by a full read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmback {

enum class ChangeMethod {
  kFullRead,      // no change list: every allocated byte read
  kDirtyBitmap,   // QEMU's dirty bitmap of a libvirt checkpoint
  kSharedExtents, // extents no longer shared with the previous run's snapshot
};

// "full-read", "dirty-bitmap", "shared-extents" (the report's words).
const char* ChangeMethodName(ChangeMethod m);

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ByteRange& o) const { return offset == o.offset && length == o.length; }
};

struct ChangeSet {
  ChangeMethod method = ChangeMethod::kFullRead;
  // Why a full read, when a change list was looked for and not used ("no
  // base snapshot", "the checkpoint vmback-X is gone", ...); "" otherwise.
  std::string why;
  // kDirtyBitmap, kSharedExtents: what may differ from the previous point,
  // sorted, disjoint, within the file's size. Empty: nothing changed.
  std::vector<ByteRange> changed;

  bool HasList() const { return method != ChangeMethod::kFullRead; }
};

// Sorts ranges, merges those that overlap or touch, drops empty ones, and
// clips them to size.
std::vector<ByteRange> NormalizeRanges(std::vector<ByteRange> ranges, uint64_t size);

// Whether [offset, offset + length) meets any of ranges (normalized).
bool Touches(const std::vector<ByteRange>& ranges, uint64_t offset, uint64_t length);

// The bytes the ranges cover.
uint64_t CoveredBytes(const std::vector<ByteRange>& ranges);

}  // namespace vmback
