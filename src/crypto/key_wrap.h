// The master key of an encrypted store, kept wrapped (sealed) under
// key-encryption keys: one per passphrase (Argon2id) or key file. Byte and
// JSON formats: docs/FORMAT.md, "Encrypted stores".
//
// A wrapped key is the master key sealed (crypto/seal.h, with the KEK in
// place of a master key) under the associated data
//   "vmback key v1\0" | store_id | "\0" | kind
// so an entry copied from another store, or from a passphrase entry to a key
// file entry, does not open. Every entry read from a disk is hostile: its
// Argon2id parameters are bounded (kMaxKdfOps, kMaxKdfMemBytes) before any
// work or memory is spent on them.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/seal.h"

namespace vmback {

enum class KeyKind { kPassphrase, kKeyFile };

// Argon2id cost. The defaults take about 0.3 s and 64 MiB here (paid once
// when a store opened with a passphrase; a key file costs nothing).
struct KdfParams {
  uint64_t ops = 3;
  uint64_t mem_bytes = 64u << 20;
};
inline constexpr uint64_t kMinKdfOps = 1;
inline constexpr uint64_t kMaxKdfOps = 64;
inline constexpr uint64_t kMinKdfMemBytes = 8192;        // libsodium's minimum
inline constexpr uint64_t kMaxKdfMemBytes = 4ull << 30;  // a forged entry must not claim more
inline constexpr size_t kKdfSaltBytes = 16;
inline constexpr size_t kMaxKeyLabelBytes = 64;
// A passphrase longer than this is refused (it is read from a file or a TTY).
inline constexpr size_t kMaxPassphraseBytes = 4096;

// True when p is within the bounds above.
bool KdfParamsValid(const KdfParams& p);

struct WrappedKey {
  std::string label;  // 1 to kMaxKeyLabelBytes of printable ASCII
  KeyKind kind = KeyKind::kPassphrase;
  KdfParams kdf;                              // kPassphrase only
  std::array<uint8_t, kKdfSaltBytes> salt{};  // kPassphrase only
  std::string key_file_id;                    // kKeyFile only: 16 hex digits naming the file (KeyFileId)
  std::string sealed;                         // the master key, sealed: kKeyBytes + kSealOverhead bytes
};

// A label vmback accepts: 1 to 64 bytes of letters, digits and ". _ - @ + :".
bool ValidKeyLabel(std::string_view label);

// Wraps master for store_id. REQUIRES: a valid label; KdfParamsValid(kdf);
// a passphrase of 1 to kMaxPassphraseBytes bytes.
WrappedKey WrapWithPassphrase(const SecretKey& master, std::string_view store_id, std::string_view passphrase,
                              const KdfParams& kdf, const std::string& label);
WrappedKey WrapWithKeyFile(const SecretKey& master, std::string_view store_id, const SecretKey& file_key,
                           const std::string& label);

// The master key if `secret` (a passphrase for kPassphrase, ignored for
// kKeyFile) or file_key opens w; nullopt when it does not (wrong secret, or
// w damaged: not told apart). Throws kCorrupt when w's parameters are beyond
// their bounds (KdfParamsValid), before spending anything on them.
std::optional<SecretKey> UnwrapWithPassphrase(const WrappedKey& w, std::string_view store_id,
                                              std::string_view passphrase);
std::optional<SecretKey> UnwrapWithKeyFile(const WrappedKey& w, std::string_view store_id,
                                           const SecretKey& file_key);

// 16 hex digits naming a key file's key (HMAC-SHA256(key, "vmback key file
// id v1"), first 8 bytes): says which entry a key file opens without
// revealing the key.
std::string KeyFileId(const SecretKey& file_key);

// JSON of a wrapped key (docs/FORMAT.md); FromJson throws kCorrupt naming
// `where` for anything malformed or out of bounds.
nlohmann::json WrappedKeyToJson(const WrappedKey& w);
WrappedKey WrappedKeyFromJson(const nlohmann::json& j, const std::string& where);

// A key file: "vmback-key 1\n" and 64 lowercase hex digits and "\n".
inline constexpr size_t kMaxKeyFileBytes = 4096;
std::string FormatKeyFile(const SecretKey& key);
// Throws kConfig naming `where` when text is not a key file.
SecretKey ParseKeyFile(std::string_view text, const std::string& where);

// A printable recovery form of the master key (`vmback key export
// --paper`): a header naming the store, then four lines of 16 hex digits
// in groups of four, each followed by a 4-digit check of the line (the first
// two bytes of SHA-256 of "line N:" and its 8 key bytes), so that a typo is
// named by line. ParsePaperKey ignores blank lines, spaces and case; throws
// kConfig naming the line that is wrong; *store_id gets the store named.
std::string FormatPaperKey(const SecretKey& master, std::string_view store_id);
SecretKey ParsePaperKey(std::string_view text, std::string* store_id);

}  // namespace vmback
