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

// For each point (names or "latest"; empty: all): `du -s -B1` of its
// view (the disk space its files take, blockmaps included), run with a
// deadline of 10 minutes each. Throws kNotFound for a point not there, and
// as Env::RunLimited (naming du and its stderr) when du fails.
DestinationStats TargetStats(InplaceTarget* target, Env* env, const std::vector<std::string>& points, Logger* log);

}  // namespace vmback
