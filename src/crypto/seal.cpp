#include "crypto/seal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <climits>
#include <cstring>
#include <memory>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr char kSealKeyLabel[] = "vmback seal key v1";
constexpr char kIdKeyLabel[] = "vmback id key v1";
constexpr char kSubkeyLabel[] = "vmback seal v1";  // with its NUL: 15 bytes
constexpr size_t kSubkeyNonceBytes = 12;           // nonce[0..12) makes the subkey
constexpr size_t kIvBytes = kSealNonceBytes - kSubkeyNonceBytes;
// AES-GCM through EVP takes int lengths.
constexpr size_t kMaxSealPlain = size_t{1} << 31;

void InitSodium() {
  // sodium_init is thread-safe and idempotent; it fails only when the
  // system's random source cannot be opened.
  static const int rc = sodium_init();
  if (rc < 0) throw Error(ErrorKind::kOther, "libsodium cannot start (no random source)");
}

SecretKey Derive(const SecretKey& master, const char* label) {
  Hash h = HmacSha256(master.bytes.data(), master.bytes.size(), label, std::strlen(label));
  SecretKey k;
  std::memcpy(k.bytes.data(), h.bytes.data(), kKeyBytes);
  sodium_memzero(h.bytes.data(), h.bytes.size());
  return k;
}

// This thread's cipher context, made once.
EVP_CIPHER_CTX* ThreadCipher() {
  thread_local std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx(EVP_CIPHER_CTX_new(),
                                                                               EVP_CIPHER_CTX_free);
  if (!ctx) throw Error(ErrorKind::kOther, "OpenSSL: cannot make a cipher context");
  return ctx.get();
}

// The per-object key of a nonce (seal.h).
SecretKey Subkey(const SecretKey& seal_key, const unsigned char* nonce) {
  unsigned char msg[sizeof kSubkeyLabel + kSubkeyNonceBytes];
  std::memcpy(msg, kSubkeyLabel, sizeof kSubkeyLabel);
  std::memcpy(msg + sizeof kSubkeyLabel, nonce, kSubkeyNonceBytes);
  Hash h = HmacSha256(seal_key.bytes.data(), seal_key.bytes.size(), msg, sizeof msg);
  SecretKey k;
  std::memcpy(k.bytes.data(), h.bytes.data(), kKeyBytes);
  sodium_memzero(h.bytes.data(), h.bytes.size());
  return k;
}

// Sets ctx up for one AES-256-GCM object under the subkey of nonce and feeds
// it the associated data. enc: 1 to seal, 0 to open.
bool StartGcm(EVP_CIPHER_CTX* ctx, int enc, const SecretKey& seal_key, const unsigned char* nonce,
              std::string_view ad) {
  SecretKey sub = Subkey(seal_key, nonce);
  int len = 0;
  return EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kIvBytes, nullptr) == 1 &&
         EVP_CipherInit_ex(ctx, nullptr, nullptr, sub.bytes.data(), nonce + kSubkeyNonceBytes, enc) == 1 &&
         EVP_CipherUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                          static_cast<int>(ad.size())) == 1;
}

}  // namespace

SecretKey::~SecretKey() { sodium_memzero(bytes.data(), bytes.size()); }

SecretKey SecretKey::Random() {
  SecretKey k;
  RandomBytes(k.bytes.data(), k.bytes.size());
  return k;
}

bool SecretKey::operator==(const SecretKey& o) const {
  return sodium_memcmp(bytes.data(), o.bytes.data(), bytes.size()) == 0;
}

void RandomBytes(void* buf, size_t n) {
  InitSodium();
  randombytes_buf(buf, n);
}

Hash HmacSha256(const void* key, size_t key_len, const void* data, size_t len) {
  Hash h;
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key, static_cast<int>(key_len), static_cast<const unsigned char*>(data), len,
            h.bytes.data(), &n) ||
      n != h.bytes.size())
    throw Error(ErrorKind::kOther, "OpenSSL HMAC-SHA256 failed");
  return h;
}

Sealer::Sealer(const SecretKey& master)
    : seal_key_(Derive(master, kSealKeyLabel)), id_key_(Derive(master, kIdKeyLabel)) {
  InitSodium();
}

Hash Sealer::Id(const void* data, size_t len) const {
  return HmacSha256(id_key_.bytes.data(), id_key_.bytes.size(), data, len);
}

void Sealer::Seal(std::string_view plain, std::string_view ad, std::string* out) const {
  if (plain.size() >= kMaxSealPlain || ad.size() >= kMaxSealPlain)
    throw Error(ErrorKind::kOther, "internal: an object of " + std::to_string(plain.size()) +
                                       " bytes is too large to seal");
  const size_t start = out->size();
  out->resize(start + plain.size() + kSealOverhead);
  auto* p = reinterpret_cast<unsigned char*>(out->data() + start);
  RandomBytes(p, kSealNonceBytes);
  EVP_CIPHER_CTX* ctx = ThreadCipher();
  int len = 0;
  int total = 0;
  bool ok = StartGcm(ctx, 1, seal_key_, p, ad) &&
            EVP_EncryptUpdate(ctx, p + kSealNonceBytes, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx, p + kSealNonceBytes + total, &len) == 1;
  total += len;
  ok = ok && static_cast<size_t>(total) == plain.size() &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kSealTagBytes, p + kSealNonceBytes + plain.size()) == 1;
  if (!ok) {
    out->resize(start);
    throw Error(ErrorKind::kOther, "OpenSSL AES-256-GCM failed to seal");
  }
}

bool Sealer::Open(std::string_view sealed, std::string_view ad, std::string* out) const {
  out->clear();
  // Bounded before anything is allocated.
  if (sealed.size() < kSealOverhead || sealed.size() - kSealOverhead >= kMaxSealPlain ||
      ad.size() >= kMaxSealPlain)
    return false;
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t n = sealed.size() - kSealOverhead;
  out->resize(n);
  auto* dst = reinterpret_cast<unsigned char*>(out->data());
  unsigned char tag[kSealTagBytes];
  std::memcpy(tag, p + kSealNonceBytes + n, kSealTagBytes);
  EVP_CIPHER_CTX* ctx = ThreadCipher();
  int len = 0;
  int total = 0;
  bool ok = StartGcm(ctx, 0, seal_key_, p, ad) &&
            EVP_DecryptUpdate(ctx, dst, &len, p + kSealNonceBytes, static_cast<int>(n)) == 1;
  total = len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kSealTagBytes, tag) == 1 &&
       EVP_DecryptFinal_ex(ctx, dst + total, &len) == 1;
  total += len;
  if (!ok || static_cast<size_t>(total) != n) {
    // Nothing of a forged object's plain text is handed out.
    sodium_memzero(out->data(), out->size());
    out->clear();
    return false;
  }
  return true;
}

std::string Sealer::OpenOrThrow(std::string_view sealed, std::string_view ad, const std::string& what) const {
  std::string out;
  if (!Open(sealed, ad, &out))
    ThrowCorrupt(what + ": sealed object is damaged, moved or sealed with another key");
  return out;
}

std::string SealFile(const Sealer& sealer, std::string_view plain, std::string_view ad) {
  std::string out(kSealedFileMagic, sizeof kSealedFileMagic);
  PutU32(&out, kSealedFileVersion);
  out.reserve(out.size() + plain.size() + kSealOverhead);
  sealer.Seal(plain, ad, &out);
  return out;
}

std::string OpenFile(const Sealer& sealer, std::string_view data, std::string_view ad, const std::string& where) {
  if (data.size() < kSealedFileHeaderBytes || std::memcmp(data.data(), kSealedFileMagic, 8) != 0)
    ThrowCorrupt(where + ": not a sealed vmback file (bad magic)");
  if (GetU32(data.data() + 8) != kSealedFileVersion)
    ThrowCorrupt(where + ": unsupported sealed file version " + std::to_string(GetU32(data.data() + 8)));
  return sealer.OpenOrThrow(data.substr(kSealedFileHeaderBytes), ad, where);
}

}  // namespace vmback
