#include "job/base_snapshot.h"

#include <nlohmann/json.hpp>

#include "source/shared_extents.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

std::string RecordPath(const Config& config, const VolumeConfig& v) {
  return JoinPath(config.run.state_dir, "base-" + v.name + ".json");
}

nlohmann::json Describe(const BaseSnapshot& b) {
  return {{"run_id", b.spec.run_id}, {"path", b.path}, {"point", b.point}};
}

// A base as recorded, for volume v: its run id, path and point, checked to
// be one vmback could have made for it. Throws Error(kCorrupt) naming why.
BaseSnapshot Parse(const nlohmann::json& j, const VolumeConfig& v) {
  if (!j.is_object()) ThrowCorrupt("not a JSON object");
  for (const char* key : {"run_id", "path", "point"})
    if (!j.contains(key) || !j[key].is_string()) ThrowCorrupt(std::string("no string '") + key + "'");
  BaseSnapshot b;
  b.spec = {v.name, v.source, v.snapshot, v.snapshot_size, j["run_id"].get<std::string>()};
  b.path = j["path"].get<std::string>();
  b.point = j["point"].get<std::string>();
  if (b.spec.run_id.empty() || b.spec.run_id.find('/') != std::string::npos || b.point.empty())
    ThrowCorrupt("an empty or malformed run id or point");
  CheckLeftoverRecord(PlannedJournalRecord(b.spec), b.spec.run_id);
  // Where TakeSnapshot puts it: the snapshot itself, or for an image file
  // its copy inside the snapshot directory.
  const std::string at = SnapshotPath(b.spec);
  if (b.path != at && b.path != JoinPath(at, BaseName(v.source)))
    ThrowCorrupt("the path " + b.path + " is not where vmback puts a snapshot of " + v.source);
  return b;
}

void Drop(Env* env, const BaseSnapshot& b, Logger* log) {
  DropLeftoverSnapshot(env, PlannedJournalRecord(b.spec), b.spec.run_id, log);
}

}  // namespace

bool KeepsBase(const VolumeConfig& v) {
  return v.track_changes && (v.snapshot == SnapshotKind::kReflink || v.snapshot == SnapshotKind::kBtrfs);
}

std::optional<BaseSnapshot> LoadBase(Env* env, const Config& config, const VolumeConfig& v, Logger* log,
                                     std::string* why) {
  why->clear();
  const std::string path = RecordPath(config, v);
  if (!env->Exists(path)) {
    *why = "no base snapshot yet (the first run with track_changes reads in full)";
    return std::nullopt;
  }
  BaseSnapshot base;
  try {
    const nlohmann::json j = nlohmann::json::parse(ReadFileToString(env, path, kMaxSmallFileSize));
    if (j.is_object() && j.contains("previous")) {
      try {
        Drop(env, Parse(j["previous"], v), log);
      } catch (const Error& e) {
        log->Warn("volume '" + v.name + "': the previous base snapshot named in " + path +
                  " could not be dropped: " + e.what());
      }
    }
    base = Parse(j, v);
  } catch (const nlohmann::json::exception& e) {
    *why = path + " is not valid JSON (" + e.what() + "); no base snapshot is trusted";
    return std::nullopt;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    *why = path + " is not a base record vmback wrote (" + e.what() + "); no base snapshot is trusted";
    return std::nullopt;
  }
  if (!env->Exists(base.path)) {
    *why = "the base snapshot " + base.path + " is gone";
    return std::nullopt;
  }
  return base;
}

void UseBase(Env* env, const Config& config, const VolumeConfig& v, VolumeSpec* spec,
             std::optional<BaseSnapshot>* base, Logger* log) {
  std::string why;
  *base = LoadBase(env, config, v, log, &why);
  if (!*base) {
    spec->changes = [why](const std::string&, const std::string&) {
      return ChangeSet{ChangeMethod::kFullRead, why, {}};
    };
    return;
  }
  const std::string base_path = (*base)->path;
  spec->changes_since = (*base)->point;
  spec->changes = [env, base_path](const std::string& rel, const std::string& path) {
    return SharedExtentChanges(env, rel.empty() ? base_path : JoinPath(base_path, rel), path);
  };
}

void RecordBase(Env* env, const Config& config, const VolumeConfig& v, const BaseSnapshot& base,
                const std::optional<BaseSnapshot>& previous) {
  nlohmann::json j = Describe(base);
  j["volume"] = v.name;
  j["source"] = v.source;
  j["snapshot"] = SnapshotKindName(v.snapshot);
  if (previous) j["previous"] = Describe(*previous);
  WriteFileAtomic(env, RecordPath(config, v), j.dump(2) + "\n");
}

void FinishHandOver(Env* env, const Config& config, const VolumeConfig& v, const BaseSnapshot& base,
                    const std::optional<BaseSnapshot>& previous, Logger* log) {
  if (previous && previous->path != base.path) {
    try {
      Drop(env, *previous, log);
    } catch (const Error& e) {
      log->Warn("volume '" + v.name + "': cannot drop the previous base snapshot " + previous->path + ": " +
                e.what() + " (the next run tries again)");
      return;
    }
  }
  RecordBase(env, config, v, base, std::nullopt);
}

}  // namespace vmback
