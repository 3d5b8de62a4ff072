#include "destination/backup_types.h"
#include "destination/restore_types.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// The in-place sink's figures per volume (BackupResult::inplace).
nlohmann::json InplaceToJson(const BackupResult& r) {
  nlohmann::json vols = nlohmann::json::array();
  for (size_t i = 0; i < r.inplace.size(); i++) {
    const InplaceStats& s = r.inplace[i];
    vols.push_back({{"name", i < r.volumes.size() ? r.volumes[i].name : ""},
                    {"files", s.files},
                    {"files_unchanged", s.files_skipped},
                    {"blocks", s.blocks},
                    {"blocks_written", s.blocks_written},
                    {"bytes_read", s.bytes_read},
                    {"target_bytes_read", s.target_bytes_read},
                    {"bytes_written", s.bytes_written},
                    {"map_bytes_written", s.map_bytes_written},
                    {"holes_punched", s.holes_punched},
                    {"blockmaps_rebuilt", s.blockmaps_rebuilt},
                    {"deleted", s.deleted},
                    {"errors", s.errors}});
  }
  return vols;
}

}  // namespace

nlohmann::json BackupResultToJson(const BackupResult& r) {
  nlohmann::json vols = nlohmann::json::array();
  for (const auto& v : r.volumes) {
    vols.push_back({{"name", v.name},
                    {"files", v.files},
                    {"dirs", v.dirs},
                    {"other", v.other},
                    {"bytes", v.bytes},
                    {"bytes_read", v.bytes_read},
                    {"files_unchanged", v.files_reused},
                    {"blocks", v.blocks},
                    {"new_blocks", v.new_blocks},
                    {"zero_blocks", v.zero_blocks},
                    {"errors", v.errors},
                    {"change_method", v.change_method},
                    {"change_why", v.change_why},
                    {"files_by_change_list", v.files_by_change_list},
                    {"seconds_ms", static_cast<int64_t>(v.seconds * 1000)}});
  }
  nlohmann::json j = {{"point", r.point},
                      {"volumes", vols},
                      {"blobs_written", r.blocks_written},
                      {"bytes_written", r.bytes_written},
                      {"raw_bytes_written", r.data_bytes_written},
                      {"packs_written", r.packs_written},
                      {"errors", r.errors},
                      {"full_read", r.full_read},
                      {"seconds_ms", static_cast<int64_t>(r.seconds * 1000)}};
  if (!r.inplace.empty()) j["inplace"] = InplaceToJson(r);
  return j;
}

PointEntry PointEntryOf(const Entry& e, const std::string& path) {
  PointEntry p;
  p.path = path;
  p.type = EntryTypeName(e.type);
  p.mode = e.mode;
  p.uid = e.uid;
  p.gid = e.gid;
  p.size = e.type == EntryType::kFile ? e.size : 0;
  p.mtime_ns = e.mtime_ns;
  p.target = e.target;
  return p;
}

nlohmann::json PointEntryToJson(const PointEntry& e) {
  nlohmann::json j;
  PutBytesField(&j, "path", e.path);
  j["type"] = e.type;
  j["mode"] = e.mode;
  j["uid"] = e.uid;
  j["gid"] = e.gid;
  j["size"] = e.size;
  j["mtime"] = FormatTimeUtc(e.mtime_ns);
  j["mtime_ns"] = e.mtime_ns;
  if (e.type == "symlink") PutBytesField(&j, "target", e.target);
  return j;
}

nlohmann::json PointEntriesToJson(const std::vector<PointEntry>& entries) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) out.push_back(PointEntryToJson(e));
  return out;
}

}  // namespace vmback
