#include "destination/backup_types.h"

namespace vmback {

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
                    {"seconds_ms", static_cast<int64_t>(v.seconds * 1000)}});
  }
  return {{"point", r.point},
          {"volumes", vols},
          {"blobs_written", r.store.blobs_written},
          {"bytes_written", r.store.stored_bytes_written},
          {"raw_bytes_written", r.store.raw_bytes_written},
          {"packs_written", r.store.packs_written},
          {"errors", r.errors},
          {"full_read", r.full_read},
          {"seconds_ms", static_cast<int64_t>(r.seconds * 1000)}};
}

}  // namespace vmback
