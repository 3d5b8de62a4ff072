// prune: delete the points the retention policy does not keep, then collect
// the garbage they leave.
#pragma once

#include <string>
#include <vector>

#include "retention/policy.h"
#include "store/gc.h"
#include "store/store.h"
#include "util/log.h"

namespace vmback {

struct PruneResult {
  std::vector<RetentionDecision> decisions;  // newest first
  std::vector<std::string> deleted;
  GcStats gc;
};

// An empty policy is refused (kConfig): prune never guesses what to keep.
// A manifest that cannot be read stops prune before it deletes anything;
// so does a listing that fails. With options.dry_run nothing changes.
// REQUIRES: store opened kExclusive.
PruneResult Prune(Store* store, const RetentionPolicy& policy, const GcOptions& options, Logger* log);

}  // namespace vmback
