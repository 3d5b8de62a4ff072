// SHA-256 through OpenSSL (uses the CPU's SHA instructions where present).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace vmback {

struct Hash {
  std::array<uint8_t, 32> bytes{};

  bool IsZero() const;  // the all-zero id marks an all-zero block
  std::string Hex() const;
  static bool FromHex(std::string_view hex, Hash* out);
  auto operator<=>(const Hash&) const = default;
};

// Four words drawn once per process (std::random_device).
const std::array<uint64_t, 4>& HashKey();

// A hash of an id for hash tables. Ids come from disks anyone may have
// handled (an index, a block list), so it is keyed by HashKey and covers the
// whole id (NH: sums of products of id and key words): ids chosen to land
// on one value, which would make every insert walk them all, need the key.
inline uint64_t KeyedHash(const Hash& h, const std::array<uint64_t, 4>& key) {
  uint64_t v[4];
  std::memcpy(v, h.bytes.data(), sizeof v);
  const uint64_t x = (v[0] + key[0]) * (v[1] + key[1]) + (v[2] + key[2]) * (v[3] + key[3]);
  return (x ^ (x >> 29)) * 0x9e3779b97f4a7c15ull;
}

struct HashHasher {
  size_t operator()(const Hash& h) const { return static_cast<size_t>(KeyedHash(h, HashKey())); }
};

Hash Sha256(const void* data, size_t len);
inline Hash Sha256(std::string_view s) { return Sha256(s.data(), s.size()); }

// Incremental hashing, e.g. of a pack file as it is written.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const void* data, size_t len);
  Hash Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmback
