// An in-place target (zfs, btrfs, dir; inplace/target.h) as a Destination:
// its operations are those of inplace/target_ops.h.
#pragma once

#include <memory>

#include "destination/destination.h"
#include "inplace/target.h"
#include "os/env.h"
#include "scan/exclude_filter.h"

namespace vmback {

// Opens and checks the target config names (OpenInplaceTarget). excludes:
// what Backup leaves out of each volume (and deletes from its mirror).
// REQUIRES: config.type is zfs, btrfs or dir; env outlives the result.
std::unique_ptr<Destination> OpenInplaceDestination(Env* env, const TargetConfig& config, Logger* log,
                                                    BackupExcludes excludes = {});

}  // namespace vmback
