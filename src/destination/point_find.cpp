#include "destination/point_find.h"

#include <cstring>
#include <map>

#include "destination/point_diff.h"
#include "retention/policy.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// pattern[pi..] against s[si..]; memo[pi * (s.size() + 1) + si]: 0 not
// known, 1 no, 2 yes. The memo bounds the work to pattern x path steps
// (the recursion to pattern + path deep).
bool Match(std::string_view p, size_t pi, std::string_view s, size_t si, char* memo) {
  char& m = memo[pi * (s.size() + 1) + si];
  if (m) return m == 2;
  bool r = false;
  if (pi == p.size()) {
    r = si == s.size();
  } else if (p[pi] == '*') {
    // Matches nothing more, or one byte more and stays.
    const bool any = pi + 1 < p.size() && p[pi + 1] == '*';
    r = Match(p, pi + (any ? 2 : 1), s, si, memo) ||
        (si < s.size() && (any || s[si] != '/') && Match(p, pi, s, si + 1, memo));
  } else if (si < s.size()) {
    const unsigned char c = s[si];
    if (p[pi] == '?') {
      r = c != '/' && Match(p, pi + 1, s, si + 1, memo);
    } else if (p[pi] == '[') {
      size_t k = pi + 1;
      const bool negate = k < p.size() && (p[k] == '!' || p[k] == '^');
      if (negate) k++;
      bool in = false, closed = false;
      for (bool first = true; k < p.size(); first = false) {
        if (p[k] == ']' && !first) {
          closed = true;
          break;
        }
        unsigned char lo = p[k], hi = lo;
        if (k + 2 < p.size() && p[k + 1] == '-' && p[k + 2] != ']') {
          hi = p[k + 2];
          k += 3;
        } else {
          k++;
        }
        if (lo <= c && c <= hi) in = true;
      }
      if (closed) {
        r = c != '/' && in != negate && Match(p, k + 1, s, si + 1, memo);
      } else {
        r = c == '[' && Match(p, pi + 1, s, si + 1, memo);  // no closing ']': a plain '['
      }
    } else if (p[pi] == '\\' && pi + 1 < p.size()) {
      r = c == static_cast<unsigned char>(p[pi + 1]) && Match(p, pi + 2, s, si + 1, memo);
    } else {
      r = c == static_cast<unsigned char>(p[pi]) && Match(p, pi + 1, s, si + 1, memo);
    }
  }
  m = r ? 2 : 1;
  return r;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view path) {
  if (pattern.find('/') == std::string_view::npos) {
    const size_t slash = path.rfind('/');
    if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  }
  // The recursion goes pattern + path deep, the memo is pattern x path.
  if (path.size() > kMaxGlobPath || pattern.size() > kMaxGlobPattern) return false;
  // Most names and patterns are short: their memo needs no allocation.
  const size_t cells = (pattern.size() + 1) * (path.size() + 1);
  char small[1024];
  std::vector<char> big;
  char* memo = small;
  if (cells <= sizeof small) {
    std::memset(small, 0, cells);
  } else {
    big.assign(cells, 0);
    memo = big.data();
  }
  return Match(pattern, 0, path, 0, memo);
}

std::vector<FoundPath> GatherFound(const std::vector<std::pair<std::string, std::vector<PointEntry>>>& points) {
  auto less = [](const std::string& a, const std::string& b) { return PathOrderLess(a, b); };
  std::map<std::string, FoundPath, decltype(less)> by_path(less);
  for (const auto& [point, entries] : points) {
    for (const PointEntry& e : entries) {
      FoundPath& f = by_path[e.path];
      f.path = e.path;
      f.points.emplace_back(point, e);
    }
  }
  std::vector<FoundPath> out;
  for (auto& [path, f] : by_path) out.push_back(std::move(f));
  return out;
}

bool ChangedAt(const FoundPath& f, size_t i) {
  if (i == 0) return false;
  const PointEntry &a = f.points[i - 1].second, &b = f.points[i].second;
  return a.type != b.type || a.version != b.version || (a.version.empty() && a.size != b.size);
}

nlohmann::json FoundToJson(const std::vector<FoundPath>& found) {
  nlohmann::json out = nlohmann::json::array();
  for (const FoundPath& f : found) {
    nlohmann::json j;
    PutBytesField(&j, "path", f.path);
    j["points"] = nlohmann::json::array();
    for (size_t i = 0; i < f.points.size(); i++) {
      const PointEntry& e = f.points[i].second;
      j["points"].push_back({{"point", f.points[i].first},
                             {"type", e.type},
                             {"size", e.size},
                             {"mtime", FormatTimeUtc(e.mtime_ns)},
                             {"version", e.version.empty() ? nlohmann::json() : nlohmann::json(e.version)},
                             {"changed", ChangedAt(f, i)}});
    }
    out.push_back(std::move(j));
  }
  return out;
}

bool FindFilter::Keeps(const PointEntry& e) const {
  if (e.mtime_ns <= newer_ns || e.mtime_ns >= older_ns) return false;
  switch (size_cmp) {
    case Size::kAny:
      return true;
    case Size::kExactly:
      return e.type == "file" && e.size == size;
    case Size::kMore:
      return e.type == "file" && e.size > size;
    case Size::kLess:
      return e.type == "file" && e.size < size;
  }
  return false;
}

int64_t ParseFindTime(const std::string& option, const std::string& text, int64_t now_ns) {
  const int64_t at = ParseTimeUtc(text);
  if (at >= 0) return at;
  int64_t age = 0;
  try {
    age = ParseDuration(text);
  } catch (const Error&) {
    ThrowConfig(option + " '" + text + "': give a UTC date or time (2026-11-20, 2026-11-20T18:00) or an age (36h, 7d, 2w)");
  }
  return now_ns - age;
}

void ParseFindSize(const std::string& text, FindFilter* filter) {
  std::string_view n = text;
  filter->size_cmp = FindFilter::Size::kExactly;
  if (!n.empty() && (n[0] == '+' || n[0] == '-')) {
    filter->size_cmp = n[0] == '+' ? FindFilter::Size::kMore : FindFilter::Size::kLess;
    n.remove_prefix(1);
  }
  if (!ParseSize(n, &filter->size))
    ThrowConfig("--size '" + text + "': give [+|-]N with K, M or G (e.g. +1G, -4K, 512)");
}

}  // namespace vmback
