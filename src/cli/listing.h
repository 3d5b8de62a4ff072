// How `list` and `prune` print their typed results (PointList,
// PruneSummary: destination/destination.h): as text for people and as JSON
// (--json, the prune report) for tools. The JSON is built from these structs
// only, never copied from a manifest.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "destination/destination.h"

namespace vmback {

// `list --json`: an array of {name, time, time_ns, volumes[, tags, stats]}.
nlohmann::json PointsToJson(const std::vector<PointSummary>& points);
// `list`: one line per point, "NAME  TIME  VOL,VOL  #TAG", or a line saying
// there are none. Names read from disk are escaped for the terminal.
void PrintPoints(const PointList& list, std::ostream& out);

// `prune --json`: {deleted, dry_run, decisions[, packs_deleted,
// packs_repacked, bytes_freed]}.
nlohmann::json PruneSummaryToJson(const PruneSummary& s);
// `prune`: the decisions, then what was (or would be) deleted and reclaimed.
void PrintPruneSummary(const PruneSummary& s, std::ostream& out);

}  // namespace vmback
