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

struct HashHasher {
  size_t operator()(const Hash& h) const {
    size_t v;
    std::memcpy(&v, h.bytes.data(), sizeof v);
    return v;
  }
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
