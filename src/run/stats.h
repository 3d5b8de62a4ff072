// `vmback stats` on the store: what its copies take, what the points hold,
// and what deduplication and compression save.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace vmback {

// A point, or one volume of a point: its files, and its data blocks that no
// other point references (for a volume: nor another volume of its point):
// what deleting the point would free (as stored; and their plain size).
struct StoreUsage {
  std::string name;
  uint64_t files = 0;
  uint64_t logical = 0;  // the sum of its files' sizes
  uint64_t unique_blocks = 0;
  uint64_t unique_stored = 0;
  uint64_t unique_raw = 0;
};

struct StorePointStats : StoreUsage {
  std::vector<StoreUsage> volumes;  // in the point's order
};

struct StoreCopyStats {
  std::string dir;
  uint64_t bytes = 0;  // the sizes of the files in packs/, index/ and points/
};

struct StoreStats {
  std::vector<StoreCopyStats> copies;
  std::vector<StorePointStats> points;  // those asked for, oldest first
  uint64_t logical = 0;                 // their files' sizes, summed
  // The distinct non-zero data blocks they reference, plain and as stored
  // (their index entries): compression = raw / stored, deduplication =
  // logical / raw (zero blocks and holes are stored as nothing).
  uint64_t blocks = 0;
  uint64_t raw = 0;
  uint64_t stored = 0;
};

// points: names (or "latest"); empty: every point. Every point's trees and
// block lists are read (uniqueness is against all of them); data blocks are
// not. Throws kNotFound for a point not there, kCorrupt for one that cannot
// be read.
StoreStats ComputeStoreStats(Store* store, const std::vector<std::string>& points);
nlohmann::json StoreStatsToJson(const StoreStats& s);
std::string StoreStatsText(const StoreStats& s);

}  // namespace vmback
