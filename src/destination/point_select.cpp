#include "destination/point_select.h"

#include <algorithm>
#include <cstdint>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr char kLatest[] = "latest";
constexpr size_t kNearest = 3;

// Levenshtein distance, for the nearest names (names are at most 128 bytes;
// arg is capped by the caller).
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + EscapeForTerminal(n);
  return out;
}

std::string PointsCount(size_t n) { return std::to_string(n) + (n == 1 ? " point" : " points"); }

}  // namespace

std::string SelectPoint(const std::string& arg, const std::vector<std::string>& names,
                        const std::function<std::vector<PointSummary>()>& summaries, const std::string& where) {
  if (arg == kLatest) return arg;
  if (std::find(names.begin(), names.end(), arg) != names.end()) return arg;
  const std::string shown = EscapeForTerminal(arg);
  if (arg.rfind(std::string(kLatest) + "~", 0) == 0) {
    const std::string digits = arg.substr(sizeof kLatest);
    if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), [](char c) {
          return c >= '0' && c <= '9';
        }))
      ThrowConfig("point '" + shown + "': give latest~N with N a number (latest~1 is the point before the newest)");
    const uint64_t n = std::stoull(digits);
    if (names.empty()) ThrowNotFound("no points yet in " + where);
    if (n >= names.size())
      ThrowConfig("point '" + shown + "': " + where + " has " + PointsCount(names.size()) + " (latest~0 to latest~" +
                  std::to_string(names.size() - 1) + ")");
    return names[names.size() - 1 - n];
  }
  if (names.empty()) ThrowNotFound("point '" + shown + "' not found: no points yet in " + where);
  // The time `vmback list` shows.
  const std::vector<PointSummary> points = summaries();
  std::vector<std::string> at_time;
  for (const auto& p : points)
    if (p.time_ns >= 0 && FormatTimeUtc(p.time_ns) == arg) at_time.push_back(p.name);
  if (at_time.size() == 1) return at_time.front();
  if (at_time.size() > 1)
    ThrowConfig("point '" + shown + "': " + std::to_string(at_time.size()) + " points were made in that second (" +
                Joined(at_time) + "): give the name");
  // The nearest by name or by the time shown, newest first among equals.
  const std::string probe = arg.substr(0, 256);
  std::vector<std::pair<size_t, size_t>> ranked;  // distance, index (oldest first)
  for (size_t i = 0; i < points.size(); i++) {
    size_t d = EditDistance(probe, points[i].name);
    if (points[i].time_ns >= 0) d = std::min(d, EditDistance(probe, FormatTimeUtc(points[i].time_ns)));
    ranked.emplace_back(d, points.size() - i);
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> nearest;
  for (size_t k = 0; k < ranked.size() && k < kNearest; k++) nearest.push_back(points[points.size() - ranked[k].second].name);
  ThrowNotFound("point '" + shown + "' not found in " + where + " (nearest: " + Joined(nearest) +
                "; 'vmback list' shows all " + PointsCount(points.size()) + ")");
}

std::string ResolvePointName(Destination* d, const std::string& arg) {
  return SelectPoint(arg, d->PointNames(), [d] { return d->ListPoints().points; }, d->Describe());
}

}  // namespace vmback
