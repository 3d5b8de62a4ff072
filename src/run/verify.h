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

struct VerifyReport {
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

VerifyReport Verify(Store* store, Logger* log);
nlohmann::json VerifyReportToJson(const VerifyReport& r);

}  // namespace vmback
