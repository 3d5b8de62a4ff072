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

// The retention group of a store point, from its manifest: its host, the
// names of its volumes and its tags, as one line of JSON with sorted lists,
// e.g. {"host":"kvm1","volumes":["etc","images"]} (with "tags" only when the
// point has some). The nightly run's points share one group; a one-off
// `backup` of other paths, or a tagged one, makes a group of its own.
std::string PointGroup(const Manifest& manifest);

// The rules apply to each group on its own (ApplyRetention).
// An empty policy is refused (kConfig): prune never guesses what to keep.
// A manifest that cannot be read stops prune before it deletes anything;
// so does a listing that fails. With options.dry_run nothing changes.
// REQUIRES: store opened kExclusive.
PruneResult Prune(Store* store, const RetentionPolicy& policy, const GcOptions& options, Logger* log);

}  // namespace vmback
