#include "cli/listing.h"

#include <algorithm>

#include "util/encoding.h"

namespace vmback {

nlohmann::json PointsToJson(const std::vector<PointSummary>& points) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : points) {
    nlohmann::json j = {{"name", p.name}, {"time", p.time}, {"time_ns", p.time_ns}, {"volumes", p.volumes}};
    if (p.tags) j["tags"] = *p.tags;
    if (p.stats) j["stats"] = *p.stats;
    out.push_back(std::move(j));
  }
  return out;
}

void PrintPoints(const PointList& list, std::ostream& out) {
  if (list.points.empty()) {
    out << "no points yet in " << list.where << "\n";
    return;
  }
  // Names from the disk: escaped for the terminal (--json keeps them
  // exact); each column as wide as its widest entry.
  size_t name_width = 0, time_width = 0;
  for (const auto& p : list.points) {
    name_width = std::max(name_width, EscapeForTerminal(p.name).size());
    time_width = std::max(time_width, p.time_ns >= 0 ? FormatTimeUtc(p.time_ns).size() : 1);
  }
  auto column = [&](const std::string& text, size_t width) {
    out << text << std::string(width - text.size() + 2, ' ');
  };
  for (const auto& p : list.points) {
    column(EscapeForTerminal(p.name), name_width);
    column(p.time_ns >= 0 ? FormatTimeUtc(p.time_ns) : "?", time_width);
    const char* sep = "";
    for (const auto& v : p.volumes) {
      out << sep << EscapeForTerminal(v);
      sep = ",";
    }
    if (p.tags)
      for (const auto& t : *p.tags) out << "  #" << t;
    out << "\n";
  }
}

nlohmann::json PruneSummaryToJson(const PruneSummary& s) {
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& x : s.decisions)
    decisions.push_back({{"name", x.name},
                         {"keep", x.keep},
                         {"reasons", x.reasons},
                         {"group", x.group.empty() ? nlohmann::json() : nlohmann::json::parse(x.group)}});
  nlohmann::json out = {{"deleted", s.deleted}, {"dry_run", s.dry_run}, {"decisions", decisions}};
  if (s.gc) {
    out["packs_deleted"] = s.gc->packs_deleted;
    out["packs_repacked"] = s.gc->packs_repacked;
    out["bytes_freed"] = s.gc->bytes_freed;
    // Damaged files set aside, removed (or, dry, to be) after keep_bad.
    out["set_aside_removed"] = nlohmann::json::array();
    for (const auto& f : s.set_aside_removed)
      out["set_aside_removed"].push_back({{"path", f.path}, {"bytes", f.bytes}, {"time_ns", f.time_ns}});
  }
  return out;
}

void PrintPruneSummary(const PruneSummary& s, std::ostream& out) {
  out << FormatDecisions(s.decisions);
  out << (s.dry_run ? "would delete " : "deleted ")
      << Counted(static_cast<uint64_t>(
                     std::count_if(s.decisions.begin(), s.decisions.end(), [](const auto& x) { return !x.keep; })),
                 "point");
  if (s.gc)
    out << "; " << (s.dry_run ? "would reclaim " : "reclaimed ") << FormatBytes(s.gc->bytes_freed) << " ("
        << Counted(s.gc->packs_deleted, "pack") << " deleted, " << s.gc->packs_repacked << " repacked)";
  out << "\n";
  if (!s.set_aside_removed.empty()) {
    uint64_t bytes = 0;
    for (const auto& f : s.set_aside_removed) bytes += f.bytes;
    out << (s.dry_run ? "would remove " : "removed ") << Counted(s.set_aside_removed.size(), "damaged file")
        << " set aside more than " << FormatDuration(s.keep_bad_ns) << " ago (" << FormatBytes(bytes)
        << "), as [store] keep_bad says:\n";
    for (const auto& f : s.set_aside_removed) out << "  " << EscapeForTerminal(f.path) << "\n";
  }
}

}  // namespace vmback
