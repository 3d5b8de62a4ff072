#include "crypto/key_wrap.h"

#include <sodium.h>

#include <cctype>
#include <cstring>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr char kKeyFileHeader[] = "vmback-key 1\n";
constexpr char kPaperHeader[] = "vmback paper key 1";
constexpr char kKeyFileIdLabel[] = "vmback key file id v1";
constexpr int kPaperLines = 4;
constexpr size_t kPaperLineBytes = kKeyBytes / kPaperLines;

const char* KindName(KeyKind k) { return k == KeyKind::kPassphrase ? "passphrase" : "key-file"; }

std::string WrapAd(std::string_view store_id, KeyKind kind) {
  std::string ad = "vmback key v1";
  ad.push_back('\0');
  ad.append(store_id);
  ad.push_back('\0');
  ad.append(KindName(kind));
  return ad;
}

SecretKey PassphraseKek(std::string_view passphrase, const std::array<uint8_t, kKdfSaltBytes>& salt,
                        const KdfParams& kdf) {
  static_assert(kKdfSaltBytes == crypto_pwhash_SALTBYTES, "Argon2id takes a 16-byte salt");
  if (passphrase.empty() || passphrase.size() > kMaxPassphraseBytes)
    ThrowConfig("a passphrase must be 1 to " + std::to_string(kMaxPassphraseBytes) + " bytes");
  SecretKey kek;
  if (crypto_pwhash(kek.bytes.data(), kek.bytes.size(), passphrase.data(), passphrase.size(), salt.data(),
                    kdf.ops, kdf.mem_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw Error(ErrorKind::kOther, "Argon2id failed (out of memory for " + std::to_string(kdf.mem_bytes >> 20) +
                                       " MiB?)");
  return kek;
}

std::optional<SecretKey> Unwrap(const SecretKey& kek, const WrappedKey& w, std::string_view store_id) {
  if (w.sealed.size() != kKeyBytes + kSealOverhead) return std::nullopt;
  std::string plain;
  if (!Sealer(kek).Open(w.sealed, WrapAd(store_id, w.kind), &plain)) return std::nullopt;
  SecretKey master;
  std::memcpy(master.bytes.data(), plain.data(), kKeyBytes);
  sodium_memzero(plain.data(), plain.size());
  return master;
}

std::string SealMaster(const SecretKey& kek, const SecretKey& master, std::string_view store_id, KeyKind kind) {
  return Sealer(kek).Seal(
      std::string_view(reinterpret_cast<const char*>(master.bytes.data()), master.bytes.size()),
      WrapAd(store_id, kind));
}

std::string PaperCheck(int line, const uint8_t* bytes) {
  std::string msg = "line " + std::to_string(line + 1) + ":";
  msg.append(reinterpret_cast<const char*>(bytes), kPaperLineBytes);
  Hash h = Sha256(msg);
  return HexEncode(h.bytes.data(), 2);
}

}  // namespace

bool KdfParamsValid(const KdfParams& p) {
  return p.ops >= kMinKdfOps && p.ops <= kMaxKdfOps && p.mem_bytes >= kMinKdfMemBytes &&
         p.mem_bytes <= kMaxKdfMemBytes;
}

bool ValidKeyLabel(std::string_view label) {
  if (label.empty() || label.size() > kMaxKeyLabelBytes) return false;
  for (unsigned char c : label)
    if (!std::isalnum(c) && !std::strchr("._-@+:", c)) return false;
  return true;
}

WrappedKey WrapWithPassphrase(const SecretKey& master, std::string_view store_id, std::string_view passphrase,
                              const KdfParams& kdf, const std::string& label) {
  if (!ValidKeyLabel(label)) ThrowConfig("invalid key label '" + label + "'");
  if (!KdfParamsValid(kdf)) ThrowConfig("Argon2id parameters out of bounds");
  WrappedKey w;
  w.label = label;
  w.kind = KeyKind::kPassphrase;
  w.kdf = kdf;
  RandomBytes(w.salt.data(), w.salt.size());
  SecretKey kek = PassphraseKek(passphrase, w.salt, kdf);
  w.sealed = SealMaster(kek, master, store_id, w.kind);
  return w;
}

WrappedKey WrapWithKeyFile(const SecretKey& master, std::string_view store_id, const SecretKey& file_key,
                           const std::string& label) {
  if (!ValidKeyLabel(label)) ThrowConfig("invalid key label '" + label + "'");
  WrappedKey w;
  w.label = label;
  w.kind = KeyKind::kKeyFile;
  w.key_file_id = KeyFileId(file_key);
  w.sealed = SealMaster(file_key, master, store_id, w.kind);
  return w;
}

std::optional<SecretKey> UnwrapWithPassphrase(const WrappedKey& w, std::string_view store_id,
                                              std::string_view passphrase) {
  if (w.kind != KeyKind::kPassphrase) return std::nullopt;
  if (!KdfParamsValid(w.kdf)) ThrowCorrupt("key '" + w.label + "': Argon2id parameters out of bounds");
  return Unwrap(PassphraseKek(passphrase, w.salt, w.kdf), w, store_id);
}

std::optional<SecretKey> UnwrapWithKeyFile(const WrappedKey& w, std::string_view store_id,
                                           const SecretKey& file_key) {
  if (w.kind != KeyKind::kKeyFile) return std::nullopt;
  return Unwrap(file_key, w, store_id);
}

std::string KeyFileId(const SecretKey& file_key) {
  Hash h = HmacSha256(file_key.bytes.data(), file_key.bytes.size(), kKeyFileIdLabel, std::strlen(kKeyFileIdLabel));
  return HexEncode(h.bytes.data(), 8);
}

nlohmann::json WrappedKeyToJson(const WrappedKey& w) {
  nlohmann::json j = {{"label", w.label}, {"kind", KindName(w.kind)}, {"sealed", HexEncode(w.sealed)}};
  if (w.kind == KeyKind::kPassphrase) {
    j["kdf"] = "argon2id";
    j["ops"] = w.kdf.ops;
    j["mem_bytes"] = w.kdf.mem_bytes;
    j["salt"] = HexEncode(w.salt.data(), w.salt.size());
  } else {
    j["key_file_id"] = w.key_file_id;
  }
  return j;
}

WrappedKey WrappedKeyFromJson(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const std::string& what) { ThrowCorrupt(where + ": wrapped key: " + what); };
  auto str = [&](const char* key) -> std::string {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) bad(std::string("'") + key + "' is not a string");
    return it->get<std::string>();
  };
  auto u64 = [&](const char* key) -> uint64_t {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned()) bad(std::string("'") + key + "' is not a number");
    return it->get<uint64_t>();
  };
  if (!j.is_object()) bad("not an object");
  WrappedKey w;
  w.label = str("label");
  if (!ValidKeyLabel(w.label)) bad("invalid label");
  const std::string kind = str("kind");
  const std::string sealed_hex = str("sealed");
  if (sealed_hex.size() != 2 * (kKeyBytes + kSealOverhead) || !HexDecode(sealed_hex, &w.sealed))
    bad("'sealed' is not " + std::to_string(kKeyBytes + kSealOverhead) + " bytes of hex");
  if (kind == "passphrase") {
    w.kind = KeyKind::kPassphrase;
    if (str("kdf") != "argon2id") bad("unknown kdf");
    w.kdf.ops = u64("ops");
    w.kdf.mem_bytes = u64("mem_bytes");
    if (!KdfParamsValid(w.kdf)) bad("Argon2id parameters out of bounds");
    if (!HexDecodeBytes(str("salt"), w.salt.data(), w.salt.size())) bad("'salt' is not 16 bytes of hex");
  } else if (kind == "key-file") {
    w.kind = KeyKind::kKeyFile;
    w.key_file_id = str("key_file_id");
    std::string raw;
    if (w.key_file_id.size() != 16 || !HexDecode(w.key_file_id, &raw)) bad("'key_file_id' is not 16 hex digits");
  } else {
    bad("unknown kind '" + kind.substr(0, 32) + "'");
  }
  return w;
}

std::string FormatKeyFile(const SecretKey& key) {
  return kKeyFileHeader + HexEncode(key.bytes.data(), key.bytes.size()) + "\n";
}

SecretKey ParseKeyFile(std::string_view text, const std::string& where) {
  const size_t header = std::strlen(kKeyFileHeader);
  std::string_view hex = text.size() > header ? text.substr(header) : std::string_view();
  if (!hex.empty() && hex.back() == '\n') hex.remove_suffix(1);
  SecretKey key;
  if (text.size() > kMaxKeyFileBytes || text.substr(0, header) != kKeyFileHeader || hex.size() != 2 * kKeyBytes ||
      !HexDecodeBytes(hex, key.bytes.data(), key.bytes.size()))
    ThrowConfig(where + ": not a vmback key file (\"vmback-key 1\" and 64 hex digits)");
  return key;
}

std::string FormatPaperKey(const SecretKey& master, std::string_view store_id) {
  std::string out = std::string(kPaperHeader) + "\nstore " + std::string(store_id) + "\n";
  for (int i = 0; i < kPaperLines; i++) {
    const uint8_t* b = master.bytes.data() + i * kPaperLineBytes;
    out += std::to_string(i + 1) + ":";
    for (size_t g = 0; g < kPaperLineBytes; g += 2) out += " " + HexEncode(b + g, 2);
    out += "  " + PaperCheck(i, b) + "\n";
  }
  return out;
}

SecretKey ParsePaperKey(std::string_view text, std::string* store_id) {
  if (text.size() > kMaxKeyFileBytes) ThrowConfig("paper key: longer than " + std::to_string(kMaxKeyFileBytes) + " bytes");
  SecretKey key;
  int line_no = 0;  // of key lines
  bool header = false;
  store_id->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    std::string compact;  // without spaces, lowercase
    for (unsigned char c : line)
      if (!std::isspace(c)) compact.push_back(static_cast<char>(std::tolower(c)));
    if (compact.empty()) continue;
    if (!header) {
      if (compact != "vmbackpaperkey1") ThrowConfig("paper key: the first line is not \"vmback paper key 1\"");
      header = true;
      continue;
    }
    if (compact.rfind("store", 0) == 0) {
      *store_id = compact.substr(5);
      continue;
    }
    if (line_no == kPaperLines) ThrowConfig("paper key: more than " + std::to_string(kPaperLines) + " key lines");
    const std::string prefix = std::to_string(line_no + 1) + ":";
    std::string hex = compact.rfind(prefix, 0) == 0 ? compact.substr(prefix.size()) : std::string();
    uint8_t* b = key.bytes.data() + line_no * kPaperLineBytes;
    if (hex.size() != 2 * kPaperLineBytes + 4 || !HexDecodeBytes(hex.substr(0, 2 * kPaperLineBytes), b, kPaperLineBytes) ||
        hex.substr(2 * kPaperLineBytes) != PaperCheck(line_no, b))
      ThrowConfig("paper key: line " + std::to_string(line_no + 1) + " is mistyped (its check does not match)");
    line_no++;
  }
  if (!header || line_no != kPaperLines)
    ThrowConfig("paper key: " + std::to_string(line_no) + " of " + std::to_string(kPaperLines) + " key lines");
  return key;
}

}  // namespace vmback
