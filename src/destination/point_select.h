// How a user names a point on the command line, in one place for every
// command and every destination (README, "Point names"):
//   NAME       a point's name, as `vmback list` shows it
//   latest     the newest point (a destination takes the newest point
//              holding the volume asked for)
//   latest~N   the Nth point before the newest (latest~0 is the newest)
//   TIME       the time `vmback list` shows in its second column
//              (2026-11-26T18:01:02Z)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "destination/destination.h"

namespace vmback {

// The name of the point arg names among `names` (oldest first), or "latest"
// for "latest" (each destination resolves that one itself). summaries gives
// the points with their times; it is called only when arg is neither a name
// nor latest[~N]. where: the destination, for messages. Throws
// Error(kConfig) for a malformed latest~N, one beyond the points, or a time
// that several points share (naming them); Error(kNotFound) for anything
// else that names no point, listing the (up to 3) nearest names.
std::string SelectPoint(const std::string& arg, const std::vector<std::string>& names,
                        const std::function<std::vector<PointSummary>()>& summaries, const std::string& where);

// SelectPoint over the points of d (its PointNames; its ListPoints only for
// a time).
std::string ResolvePointName(Destination* d, const std::string& arg);

}  // namespace vmback
