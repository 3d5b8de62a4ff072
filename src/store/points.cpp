// The store's points: points/<name>.json on every copy (docs/FORMAT.md,
// "Manifests"), listed, read (from another copy when one is damaged),
// repaired, written and named. The bytes are store/manifest.h's.
#include <time.h>

#include <algorithm>
#include <mutex>
#include <unordered_set>

#include "store/manifest.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

std::string Store::ManifestPath(const std::string& point) const {
  return dir_ + "/points/" + point + ".json";
}

std::vector<std::string> Store::ListPoints() const {
  if (pinned_points_) return *pinned_points_;
  std::vector<std::string> points;
  std::unordered_set<std::string> tombstones;
  auto names = env_->ListDir(JoinPath(dir_, "points"));
  for (const auto& name : names)
    if (EndsWith(name, ".deleted")) tombstones.insert(name.substr(0, name.size() - 8));
  // A point with a tombstone is deleted, even if a crash left its manifest.
  for (const auto& name : names)
    if (EndsWith(name, ".json") && !tombstones.count(name.substr(0, name.size() - 5)))
      points.push_back(name.substr(0, name.size() - 5));
  std::sort(points.begin(), points.end(), PointNameLess);
  return points;
}

std::vector<ManifestState> Store::RepairManifest(const std::string& point) {
  std::vector<ManifestState> state(copies_.size(), ManifestState::kBad);
  std::vector<std::string> paths;
  std::string good_data;
  for (size_t c = 0; c < copies_.size(); c++) {
    paths.push_back(copies_[c] + "/points/" + point + ".json");
    try {
      if (!env_->Exists(paths[c])) continue;
      std::string data = ReadFileToString(env_, paths[c]);
      DecodeManifest(data, paths[c], Keyed());
      state[c] = ManifestState::kGood;
      if (good_data.empty()) good_data = data;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kIo) {
        // Unreadable is not damaged: report, never rewrite or set aside.
        state[c] = ManifestState::kUnreadable;
        log_->Warn(std::string(e.what()) + " (an I/O error; not repaired)");
      } else if (e.kind() == ErrorKind::kCorrupt) {
        log_->Warn(e.what());
      } else {
        throw;
      }
    }
  }
  // A reader (a store on read-only media) reports, never rewrites.
  if (good_data.empty() || !exclusive_) return state;
  std::lock_guard<std::mutex> l(repair_mu_);
  for (size_t c = 0; c < copies_.size(); c++) {
    if (state[c] != ManifestState::kBad) continue;
    KeepAside(paths[c]);
    WriteFileAtomic(env_, paths[c], good_data);
    state[c] = ManifestState::kRepaired;
    repairs_++;
    log_->Warn("repaired " + paths[c] + " from another copy");
  }
  return state;
}

Manifest Store::ReadPoint(const std::string& point) const {
  std::string path = ManifestPath(point);
  if (point.empty() || point.find('/') != std::string::npos || !env_->Exists(path))
    ThrowNotFound("point '" + point + "' not found in store " + dir_);
  try {
    return DecodeManifest(ReadFileToString(env_, path), path, Keyed());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt && e.kind() != ErrorKind::kIo) throw;
    // Another copy may have it whole: use that, and repair the primary.
    for (size_t c = 1; c < copies_.size(); c++) {
      std::string other = copies_[c] + "/points/" + point + ".json";
      try {
        if (!env_->Exists(other)) continue;
        std::string data = ReadFileToString(env_, other);
        Manifest m = DecodeManifest(data, other, Keyed());
        if (e.kind() == ErrorKind::kIo) log_->Warn(std::string(e.what()) + " (an I/O error; read " + other + ")");
        if (e.kind() == ErrorKind::kCorrupt && read_repair_) {
          // The manifest read is good whatever becomes of the repair (a
          // reader's temporary may be swept by a backup starting beside it).
          try {
            std::lock_guard<std::mutex> l(repair_mu_);
            KeepAside(path);
            WriteFileAtomic(env_, path, data);
            repairs_++;
            log_->Warn(std::string(e.what()) + "; repaired from " + other);
          } catch (const Error& e3) {
            if (e3.kind() == ErrorKind::kCrash) throw;
            log_->Warn(std::string(e.what()) + "; read " + other + ", but cannot repair " + path + ": " + e3.what());
          }
        }
        return m;
      } catch (const Error& e2) {
        if (e2.kind() != ErrorKind::kCorrupt && e2.kind() != ErrorKind::kIo) throw;
      }
    }
    throw;
  }
}

void Store::WriteManifest(const Manifest& manifest) {
  Guard([&] {
    if (Writing() || !session_index_.packs.empty())
      throw Error(ErrorKind::kOther, "internal: manifest written before Flush");
    if (manifest.name.empty()) throw Error(ErrorKind::kOther, "internal: manifest without a point name");
    WriteEverywhere("points/" + manifest.name.str() + ".json", EncodeManifest(manifest, Keyed()));
  });
}

std::string Store::NewPointName() const {
  time_t secs = static_cast<time_t>(env_->NowNanos() / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H%M%SZ", &tm);
  std::string name = buf;
  for (int i = 2; env_->Exists(ManifestPath(name)); i++) name = std::string(buf) + "." + std::to_string(i);
  return name;
}

}  // namespace vmback
