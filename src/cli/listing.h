// The typed results `list` and `prune` print, and how they print them: as
// text for people and as JSON (--json, the prune report) for tools. The
// JSON is built from these structs only, never copied from a manifest.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "os/env.h"
#include "retention/policy.h"
#include "store/gc.h"
#include "store/store.h"
#include "inplace/target.h"

namespace vmback {

// One point as `list` shows it.
struct PointSummary {
  std::string name;
  std::string time;     // UTC, as recorded; "" when not known
  int64_t time_ns = 0;  // -1: not known (an in-place point)
  std::vector<std::string> volumes;
  // A store's points only; an in-place target's carry neither.
  std::optional<std::vector<std::string>> tags;
  // The backup's statistics as its manifest records them (their fields
  // differ between versions of vmback: shown as recorded, not re-typed).
  std::optional<nlohmann::json> stats;
};

struct PointList {
  std::string where;                 // the store's directory, or the target's description
  std::vector<PointSummary> points;  // oldest first
};

// The points of a store (each manifest read, and checked, by
// Store::ReadManifest), or of an in-place target.
PointList ListPoints(Store* store);
PointList ListPoints(InplaceTarget* target, Env* env);

// `list --json`: an array of {name, time, time_ns, volumes[, tags, stats]}.
nlohmann::json PointsToJson(const std::vector<PointSummary>& points);
// `list`: one line per point, "NAME  TIME  VOL,VOL  #TAG", or a line saying
// there are none. Names read from disk are escaped for the terminal.
void PrintPoints(const PointList& list, std::ostream& out);

// What `prune` decided and did.
struct PruneSummary {
  bool dry_run = false;
  std::vector<RetentionDecision> decisions;  // newest first
  std::vector<std::string> deleted;
  std::optional<GcStats> gc;  // a store's garbage collection; none for an in-place target
};

// `prune --json`: {deleted, dry_run, decisions[, packs_deleted,
// packs_repacked, bytes_freed]}.
nlohmann::json PruneSummaryToJson(const PruneSummary& s);
// `prune`: the decisions, then what was (or would be) deleted and reclaimed.
void PrintPruneSummary(const PruneSummary& s, std::ostream& out);

}  // namespace vmback
