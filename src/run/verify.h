// verify: re-reads every pack of the store, re-hashes every blob, then walks
// every point and names each file or directory that a bad or missing blob
// affects.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/log.h"

namespace vmback {

struct VerifyProblem {
  std::string point;   // empty for a problem with a pack as such
  std::string path;    // VOLUME/sub/path, or the pack/manifest file
  std::string reason;
};

// What verify found and did on one copy of the store.
struct CopyReport {
  std::string dir;
  uint64_t packs_checked = 0;
  uint64_t packs_missing = 0;
  uint64_t packs_damaged = 0;
  uint64_t manifests_damaged = 0;
  uint64_t index_files_damaged = 0;
  uint64_t repaired = 0;       // packs and manifests rewritten from another copy
  uint64_t unrepairable = 0;   // damaged here and on every other copy
};

struct VerifyReport {
  std::vector<CopyReport> copies;
  uint64_t repaired = 0;
  uint64_t packs = 0;
  uint64_t blobs = 0;
  uint64_t bytes = 0;          // stored bytes read
  uint64_t bad_packs = 0;      // packs whose file hash or entry table is wrong
  uint64_t bad_blobs = 0;
  uint64_t points = 0;
  uint64_t files_checked = 0;
  std::vector<VerifyProblem> problems;
  bool ok() const { return problems.empty(); }
};

// Scrubs every copy of the store and heals each from the others (so it
// writes: REQUIRES the store opened kExclusive when it has mirrors). Damage
// healed from another copy is counted in repaired, not in problems.
VerifyReport Verify(Store* store, Logger* log);
nlohmann::json VerifyReportToJson(const VerifyReport& r);

}  // namespace vmback
