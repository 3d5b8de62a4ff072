// Little-endian fixed-width integers, hex, and sizes such as "64K".
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vmback {

// Into p, which must have room (a buffer sized first); Put appends to a string.
inline void StoreU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<char>(v >> (8 * i));
}
inline void StoreU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<char>(v >> (8 * i));
}
inline void PutU32(std::string* dst, uint32_t v) {
  char b[4];
  StoreU32(b, v);
  dst->append(b, 4);
}
inline void PutU64(std::string* dst, uint64_t v) {
  char b[8];
  StoreU64(b, v);
  dst->append(b, 8);
}
inline uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string HexEncode(const void* data, size_t len);
inline std::string HexEncode(std::string_view s) { return HexEncode(s.data(), s.size()); }
bool HexDecode(std::string_view hex, std::string* out);
// Exactly len bytes from 2 * len hex digits into out (nothing allocated);
// false (out then partly written) for any other length or a byte that is
// not a hex digit.
bool HexDecodeBytes(std::string_view hex, void* out, size_t len);

bool IsValidUtf8(std::string_view s);

// A name read from a store or target (a volume, a directory entry) that may
// be joined to a destination path: not empty, not "." or "..", and without
// '/' or NUL. Names are validated where they are decoded, never later.
bool IsSafeName(std::string_view name);

// For human-readable output of names that came from a disk: control
// characters (bytes < 0x20, 0x7f) and backslashes become \xHH escapes, so a
// name cannot move the cursor, clear a line or forge a line of output. JSON
// output keeps the exact bytes.
std::string EscapeForTerminal(std::string_view s);

inline bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Parses "65536", "64K", "64KiB", "4M", "1G" (powers of 1024). Returns false
// on anything else, including overflow.
bool ParseSize(std::string_view text, uint64_t* out);
std::string FormatBytes(uint64_t bytes);  // "1.5 GiB"
std::string FormatSeconds(double s);      // "0.161 s": to the millisecond
// "1 file", "2 files"; many: the plural when it is not one + "s".
std::string Counted(uint64_t n, const std::string& one, const std::string& many = "");
std::string FormatTimeUtc(int64_t ns);    // "2026-11-26T18:01:02Z"
// "2026-11-26", "2026-11-26T18:01", "2026-11-26 18:01:02", each with an
// optional trailing Z once a time is given: UTC, in ns since the epoch; -1
// when the text is none of these.
int64_t ParseTimeUtc(std::string_view text);
// Point names: "2026-11-26T180102Z" from ns, and back (-1 when the text is
// not one; a ".N" suffix, a second point in the same second, is allowed).
std::string FormatPointStamp(int64_t ns);
int64_t ParsePointStamp(const std::string& text);

}  // namespace vmback
