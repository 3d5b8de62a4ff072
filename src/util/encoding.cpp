#include "util/encoding.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace vmback {

std::string HexEncode(const void* data, size_t len) {
  static const char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const uint8_t*>(data);
  std::string out(len * 2, '\0');
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

// A table, not comparisons: block ids are random digits, and branches on
// them are mispredicted (a third of the time `find` took in trees' ids).
static const std::array<int8_t, 256> kHexValues = [] {
  std::array<int8_t, 256> t;
  t.fill(-1);
  for (int i = 0; i < 10; i++) t['0' + i] = static_cast<int8_t>(i);
  for (int i = 0; i < 6; i++) t['a' + i] = t['A' + i] = static_cast<int8_t>(10 + i);
  return t;
}();

static int HexValue(char c) { return kHexValues[static_cast<uint8_t>(c)]; }

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->clear();
  out->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

bool HexDecodeBytes(std::string_view hex, void* out, size_t len) {
  if (hex.size() != 2 * len) return false;
  auto* p = static_cast<uint8_t*>(out);
  int bad = 0;  // negative once any digit is not one: checked once, at the end
  for (size_t i = 0; i < len; i++) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    bad |= hi | lo;
    p[i] = static_cast<uint8_t>((hi & 15) << 4 | (lo & 15));
  }
  return bad >= 0;
}

bool IsValidUtf8(std::string_view s) {
  // Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
  // above U+10FFFF. Anything JSON libraries would reject must be caught here.
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t extra;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) extra = 1, cp = c & 0x1f, min = 0x80;
    else if ((c >> 4) == 0xe) extra = 2, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) extra = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; k++) {
      auto b = static_cast<uint8_t>(s[i + k]);
      if ((b >> 6) != 2) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

bool ParseSize(std::string_view text, uint64_t* out) {
  size_t i = 0;
  uint64_t v = 0;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
    i++;
  }
  std::string_view unit = text.substr(i);
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K" || unit == "KiB" || unit == "k") shift = 10;
  else if (unit == "M" || unit == "MiB") shift = 20;
  else if (unit == "G" || unit == "GiB") shift = 30;
  else if (unit == "T" || unit == "TiB") shift = 40;
  else return false;
  if (shift && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

std::string FormatSeconds(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f s", s);
  return buf;
}

std::string Counted(uint64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many.empty() ? one + "s" : many);
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

namespace {
std::string FormatUtc(int64_t ns, const char* format) {
  int64_t secs = ns / 1000000000;
  if (ns % 1000000000 < 0) secs--;
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, format, &tm);
  return buf;
}
}  // namespace

std::string FormatTimeUtc(int64_t ns) { return FormatUtc(ns, "%Y-%m-%dT%H:%M:%SZ"); }

std::string FormatPointStamp(int64_t ns) { return FormatUtc(ns, "%Y-%m-%dT%H%M%SZ"); }

int64_t ParsePointStamp(const std::string& text) {
  // YYYY-MM-DDTHHMMSSZ[.N]
  static const char kShape[] = "dddd-dd-ddTddddddZ";
  const size_t n = sizeof kShape - 1;
  if (text.size() < n) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = text[i];
    if (kShape[i] == 'd' ? (c < '0' || c > '9') : c != kShape[i]) return -1;
  }
  if (text.size() > n) {
    if (text[n] != '.' || text.size() == n + 1 || text.size() > n + 9) return -1;
    for (size_t i = n + 1; i < text.size(); i++)
      if (text[i] < '0' || text[i] > '9') return -1;
  }
  auto num = [&](size_t at, size_t len) { return std::atoi(text.substr(at, len).c_str()); };
  struct tm tm = {};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(13, 2);
  tm.tm_sec = num(15, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return -1;
  return static_cast<int64_t>(timegm(&tm)) * 1000000000;
}

int64_t ParseTimeUtc(std::string_view text) {
  // YYYY-MM-DD, then optionally T or ' ', HH:MM, :SS, and Z.
  static const char kShape[] = "dddd-dd-dd?dd:dd:dd";
  size_t n = text.size();
  if (n > 0 && text[n - 1] == 'Z') n--;
  if (n != 10 && n != 16 && n != 19) return -1;
  if (text.size() != n && n == 10) return -1;  // "2026-12-01Z"
  for (size_t i = 0; i < n; i++) {
    const char c = text[i];
    const char want = kShape[i];
    if (want == 'd' ? (c < '0' || c > '9') : want == '?' ? (c != 'T' && c != ' ') : c != want) return -1;
  }
  auto num = [&](size_t at, size_t len) { return std::atoi(std::string(text.substr(at, len)).c_str()); };
  struct tm tm = {};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  if (n >= 16) {
    tm.tm_hour = num(11, 2);
    tm.tm_min = num(14, 2);
  }
  if (n == 19) tm.tm_sec = num(17, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return -1;
  return static_cast<int64_t>(timegm(&tm)) * 1000000000;
}

bool IsSafeName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

std::string EscapeForTerminal(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace vmback
