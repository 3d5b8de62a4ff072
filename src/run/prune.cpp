#include "run/prune.h"

#include <set>

#include "store/manifest.h"
#include "util/error.h"

namespace vmback {

std::string PointGroup(const Manifest& manifest) {
  std::set<std::string> volumes;
  for (const auto& v : manifest.volumes) volumes.insert(v.name);
  nlohmann::ordered_json g = {{"host", manifest.host}, {"volumes", volumes}};
  if (!manifest.tags.empty()) g["tags"] = manifest.tags;
  return g.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

PruneResult Prune(Store* store, const RetentionPolicy& policy, const GcOptions& options, Logger* log) {
  if (policy.empty())
    ThrowConfig("no retention rules: give --keep-last, --keep-within or --keep-hourly/daily/weekly/"
                "monthly/yearly, or a [retention] table; prune does not guess what to delete");
  if (!options.dry_run && !store->sole())
    throw Error(ErrorKind::kOther, "internal: prune of " + store->dir() + " without the exclusive lock");
  PruneResult result;
  // Every copy must show every point first, or blobs that only a mirror's
  // point names would look dead.
  if (!options.dry_run && store->copies().size() > 1) store->Sync();
  std::vector<PointInfo> points;
  for (const auto& name : store->ListPoints()) {
    Manifest m;
    try {
      m = store->ReadPoint(name);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCrash) throw;
      throw Error(e.kind(), std::string("prune stopped before deleting anything: ") + e.what());
    }
    points.push_back({name, m.time_ns, PointGroup(m)});
  }
  result.decisions = ApplyRetention(points, policy);
  if (options.dry_run) {
    GcOptions dry = options;
    for (const auto& d : result.decisions)
      if (!d.keep) dry.ignore_points.push_back(d.name);
    result.gc = CollectGarbage(store, dry, log);
    return result;
  }
  for (const auto& d : result.decisions) {
    if (d.keep) continue;
    store->DeletePoint(d.name);
    result.deleted.push_back(d.name);
  }
  result.gc = CollectGarbage(store, options, log);
  return result;
}

}  // namespace vmback
