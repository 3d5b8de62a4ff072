// An in-place target (zfs, btrfs, dir; inplace/target.h) as a Destination:
// its operations are those of inplace/target_ops.h.
#pragma once

#include <memory>

#include "destination/destination.h"
#include "inplace/target.h"
#include "os/env.h"

namespace vmback {

// Opens and checks the target config names (OpenInplaceTarget).
// REQUIRES: config.type is zfs, btrfs or dir; env outlives the result.
std::unique_ptr<Destination> OpenInplaceDestination(Env* env, const TargetConfig& config, Logger* log);

}  // namespace vmback
