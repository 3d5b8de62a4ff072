// Verify's and repair's reports as JSON (`--json`, the report files).
#include "run/verify.h"

namespace vmback {

namespace {
nlohmann::json ProblemsToJson(const std::vector<VerifyProblem>& list) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : list) out.push_back({{"point", p.point}, {"path", p.path}, {"reason", p.reason}});
  return out;
}

nlohmann::json DamagedPacksToJson(const std::vector<DamagedPack>& packs) {
  auto hex = [](const std::vector<Hash>& ids) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& id : ids) a.push_back(id.Hex());
    return a;
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : packs)
    out.push_back({{"pack", d.pack.Hex()}, {"healed", hex(d.healed)}, {"unhealed", hex(d.unhealed)}});
  return out;
}
}  // namespace

nlohmann::json VerifyReportToJson(const VerifyReport& r) {
  nlohmann::json problems = ProblemsToJson(r.problems);
  nlohmann::json copies = nlohmann::json::array();
  for (const auto& c : r.copies)
    copies.push_back({{"dir", c.dir},
                      {"packs_checked", c.packs_checked},
                      {"packs_missing", c.packs_missing},
                      {"packs_damaged", c.packs_damaged},
                      {"manifests_damaged", c.manifests_damaged},
                      {"index_files_damaged", c.index_files_damaged},
                      {"repaired", c.repaired},
                      {"unrepairable", c.unrepairable},
                      {"bytes_read", c.bytes_read},
                      {"read_seconds", c.read_seconds},
                      {"read_bytes_per_second", c.read_seconds > 0 ? nlohmann::json(static_cast<uint64_t>(
                                                                           c.bytes_read / c.read_seconds))
                                                                     : nlohmann::json(nullptr)}});
  return {{"ok", r.ok()},           {"copies", copies},         {"repaired", r.repaired},
          {"packs", r.packs},         {"blobs", r.blobs},
          {"bytes", r.bytes},       {"bad_packs", r.bad_packs}, {"bad_blobs", r.bad_blobs},
          {"points", r.points},     {"files_checked", r.files_checked},
          {"packs_skipped", r.packs_skipped}, {"subset", r.subset}, {"to_heal", r.to_heal},
          {"problems", problems}, {"damaged_packs", DamagedPacksToJson(r.damaged_packs)},
          {"lost", ProblemsToJson(r.lost)}, {"next_step", r.next_step}};
}

nlohmann::json RepairReportToJson(const RepairReport& r) {
  return {{"dry_run", r.dry_run},
          {"packs_rewritten", r.packs_rewritten},
          {"blobs_moved", r.blobs_moved},
          {"blobs_healed", r.blobs_healed},
          {"blobs_lost", r.blobs_lost},
          {"lost", ProblemsToJson(r.lost)},
          {"verify", VerifyReportToJson(r.verify)}};
}

}  // namespace vmback
