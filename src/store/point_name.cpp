#include "store/point_name.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr size_t kMaxPointNameLength = 128;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("._+:@=-").find(c) != std::string_view::npos;
}

}  // namespace

bool PointNameLess(const std::string& a, const std::string& b) {
  // "NAME" is the first point of its second, then "NAME.2", "NAME.3", ...
  auto split = [](const std::string& s) -> std::pair<std::string, uint64_t> {
    auto dot = s.rfind('.');
    if (dot == std::string::npos || dot + 1 == s.size() || dot + 10 < s.size()) return {s, 1};
    uint64_t n = 0;
    for (size_t i = dot + 1; i < s.size(); i++) {
      if (s[i] < '0' || s[i] > '9') return {s, 1};
      n = n * 10 + static_cast<uint64_t>(s[i] - '0');
    }
    return {s.substr(0, dot), n};
  };
  return split(a) < split(b);
}

bool IsValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 64 || tag[0] == '-') return false;
  return std::all_of(tag.begin(), tag.end(), IsNameChar);
}

bool PointName::IsValid(std::string_view name) {
  if (name.empty() || name.size() > kMaxPointNameLength || name[0] == '-' || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

PointName PointName::Parse(std::string_view name, const std::string& where) {
  if (!IsValid(name)) ThrowCorrupt(where + ": invalid point name '" + EscapeForTerminal(name) + "'");
  return PointName(std::string(name));
}

}  // namespace vmback
