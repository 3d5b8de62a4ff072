// Garbage collection: reclaims the blobs no point names. A pack with no live
// blob is deleted; a pack whose live share is below a threshold is repacked
// (its live blobs copied into a new pack, made durable and indexed, before
// the old one goes). It never deletes because something could not be read:
// an unreadable manifest, tree or block list stops it before any change.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/log.h"

namespace vmback {

struct GcOptions {
  double repack_below = 0.5;  // live share under which a pack is repacked
  bool dry_run = false;
  // Points to count as gone (a dry run of prune: what would be reclaimed).
  std::vector<std::string> ignore_points;
};

struct GcStats {
  uint64_t packs = 0;
  uint64_t packs_deleted = 0;
  uint64_t packs_repacked = 0;
  uint64_t blobs_live = 0;
  uint64_t blobs_moved = 0;
  uint64_t bytes_freed = 0;  // pack file bytes removed, less what repacking wrote
};

// Moves the blobs `keep` (read back verified, from any good location) into
// new packs, then drops the packs `doomed`, in the crash-safe order: the
// new packs and an index file naming them are durable (Flush) before the
// index without the doomed packs is written and they are deleted from every
// copy (Store::DropPacks). A crash at any step leaves every blob of `keep`
// readable. Returns how many blobs were moved. Used by garbage collection
// and by `vmback repair`. REQUIRES: store opened kExclusive.
uint64_t RepackAndDrop(Store* store, const std::vector<Hash>& doomed,
                       const std::vector<std::pair<Hash, BlobType>>& keep);

// REQUIRES: store opened kExclusive.
GcStats CollectGarbage(Store* store, const GcOptions& options, Logger* log);

}  // namespace vmback
