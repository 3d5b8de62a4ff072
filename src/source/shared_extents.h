// Changed-block tracking from shared extents: on a file system with
// reflinks (XFS, btrfs), a snapshot kept from the previous run (the base)
// and this run's snapshot of the same image share every extent the guest
// did not write since. Comparing their extent maps (FIEMAP) gives what may
// have changed, without reading a byte.
//
// Why a shared physical address proves the same content: the base is
// vmback's own snapshot (a reflink copy or a read-only subvolume) and is
// never written; an extent it holds is never overwritten in place (a write
// to a shared extent is copied on write, also for btrfs nodatacow files).
// So where this run's file maps to the very bytes the base maps to at the
// same offset, the data is the base's. Anything else is taken as changed:
// a hole on one side only, a different address, an extent whose address is
// not a plain byte address (inline, delayed allocation, unknown, not
// aligned), a compressed (encoded) extent not identical as a whole.
#pragma once

#include <string>
#include <vector>

#include "os/env.h"
#include "util/change_set.h"

namespace vmback {

// More extents than this in one file: no change list (read in full).
inline constexpr size_t kMaxExtentsCompared = 4u << 20;

// The ranges of now (size bytes) whose content may differ from base's at
// the same offsets, from the two extent maps (each in logical order).
std::vector<ByteRange> DifferingRanges(const std::vector<FileExtent>& base, const std::vector<FileExtent>& now,
                                       uint64_t size);

// The change list of the regular file now against base (paths of the two
// snapshots' copies of one image): kSharedExtents with DifferingRanges, or
// kFullRead with why when there is no evidence (base missing, another size,
// extents that cannot be read).
ChangeSet SharedExtentChanges(Env* env, const std::string& base, const std::string& now);

}  // namespace vmback
