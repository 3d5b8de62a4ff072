#include "run/prune.h"

#include <set>

#include "util/error.h"

namespace vmback {

std::string PointGroup(const nlohmann::json& manifest) {
  // ReadManifest checked the types of "volumes" and "tags".
  std::set<std::string> volumes, tags;
  for (const auto& v : manifest.at("volumes")) volumes.insert(v.at("name").get<std::string>());
  if (manifest.contains("tags"))
    for (const auto& t : manifest.at("tags")) tags.insert(t.get<std::string>());
  const auto& host = manifest.contains("host") && manifest.at("host").is_string() ? manifest.at("host")
                                                                                   : nlohmann::json("");
  nlohmann::ordered_json g = {{"host", host}, {"volumes", volumes}};
  if (!tags.empty()) g["tags"] = tags;
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
    nlohmann::json m;
    try {
      m = store->ReadManifest(name);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCrash) throw;
      throw Error(e.kind(), std::string("prune stopped before deleting anything: ") + e.what());
    }
    points.push_back({name, m.value("time_ns", int64_t{0}), PointGroup(m)});
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
