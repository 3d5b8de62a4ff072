// Authenticated encryption and keyed ids for an encrypted store (issue 18;
// the byte formats are in docs/FORMAT.md, "Encrypted stores").
//
// A store's master key is 32 random bytes. Two keys are derived from it and
// nothing else is ever keyed with it directly:
//   seal key = HMAC-SHA256(master, "vmback seal key v1")
//   id key   = HMAC-SHA256(master, "vmback id key v1")
//
// Sealed object (Sealer::Seal):
//   nonce       24 bytes, random (libsodium randombytes_buf) for every object sealed
//   ciphertext  as many bytes as the plain text
//   tag         16 bytes
// opened with AES-256-GCM under a per-object subkey:
//   subkey = HMAC-SHA256(seal key, "vmback seal v1\0" | nonce[0..12))
//   iv     = nonce[12..24)
//   aad    = the associated data the caller names the object by
// so that a (key, iv) pair repeats only when all 192 random bits of two
// nonces do: no bound on how many objects one key seals (plain GCM with
// random 96-bit ivs would be limited to about 2^32). AES-256-GCM was chosen
// over XChaCha20-Poly1305 by measurement (bench/crypto_bench.sh: 2.8 times
// as fast on this hardware, which has AES-NI).
//
// Keyed ids: HMAC-SHA256(id key, plain bytes), so an id says nothing about
// the content to whoever lacks the key, and two stores with the same data
// share no id (HMAC-SHA256 over keyed BLAKE2b: 1.7 times as fast with SHA-NI).
//
// Thread-safe: a Sealer holds only its keys; each thread keeps its own
// cipher context.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/sha256.h"

namespace vmback {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kSealNonceBytes = 24;
inline constexpr size_t kSealTagBytes = 16;
// What sealing adds to an object's length.
inline constexpr size_t kSealOverhead = kSealNonceBytes + kSealTagBytes;

// 32 secret bytes, wiped when destroyed. Copyable (each copy wipes itself).
struct SecretKey {
  std::array<uint8_t, kKeyBytes> bytes{};
  SecretKey() = default;
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();
  // A new key from the system's random source.
  static SecretKey Random();
  bool operator==(const SecretKey& o) const;
};

// Fills buf with n bytes from the system's random source; throws kOther if
// it fails (never returns weak bytes).
void RandomBytes(void* buf, size_t n);

// HMAC-SHA256(key, data).
Hash HmacSha256(const void* key, size_t key_len, const void* data, size_t len);

class Sealer {
 public:
  explicit Sealer(const SecretKey& master);

  // The keyed id of a blob's plain bytes.
  Hash Id(const void* data, size_t len) const;
  Hash Id(std::string_view s) const { return Id(s.data(), s.size()); }

  // Appends plain, sealed under ad, to *out (kSealOverhead bytes longer).
  // Throws kOther if plain is 2^31 bytes or more (no object is).
  void Seal(std::string_view plain, std::string_view ad, std::string* out) const;
  std::string Seal(std::string_view plain, std::string_view ad) const {
    std::string out;
    Seal(plain, ad, &out);
    return out;
  }
  // Opens sealed under ad into *out (replaced; sealed.size() - kSealOverhead
  // bytes, allocated only after the length is checked). False, with *out
  // empty, when the object is shorter than kSealOverhead, longer than 2^31,
  // or anything of it, or the ad, or the key differs from when it was sealed:
  // the reasons are not told apart.
  bool Open(std::string_view sealed, std::string_view ad, std::string* out) const;
  // Open, throwing kCorrupt "<what>: sealed object is damaged, moved or
  // sealed with another key" when it does not open.
  std::string OpenOrThrow(std::string_view sealed, std::string_view ad, const std::string& what) const;

 private:
  SecretKey seal_key_;
  SecretKey id_key_;
};

// A whole file sealed (index files and manifests of an encrypted store):
// "VMBSEAL\n", u32 version 1, then one sealed object.
inline constexpr char kSealedFileMagic[8] = {'V', 'M', 'B', 'S', 'E', 'A', 'L', '\n'};
inline constexpr uint32_t kSealedFileVersion = 1;
inline constexpr size_t kSealedFileHeaderBytes = 12;
std::string SealFile(const Sealer& sealer, std::string_view plain, std::string_view ad);
// The plain bytes of a sealed file; throws kCorrupt naming `where` when the
// header is wrong or the object does not open under ad.
std::string OpenFile(const Sealer& sealer, std::string_view data, std::string_view ad, const std::string& where);

}  // namespace vmback
