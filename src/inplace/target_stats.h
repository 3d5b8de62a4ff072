// `vmback stats` on an in-place target: what the file system says each
// point takes.
#pragma once

#include <string>
#include <vector>

#include "destination/destination.h"
#include "inplace/target.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

// For each point (names or "latest"; empty: all): with zfs_dataset (a zfs
// target), `zfs get -Hp used,referenced,written` of its snapshot (without
// written where the ZFS lacks it);
// otherwise `du -s -x -B1` of its view (the disk space its files take,
// blockmaps included). Each command runs with a deadline of 10 minutes.
// Throws kNotFound for a point not there, Error(kIo) naming the command and
// its stderr when it fails.
DestinationStats TargetStats(InplaceTarget* target, Env* env, const std::string& zfs_dataset,
                             const std::vector<std::string>& points, Logger* log);

}  // namespace vmback
