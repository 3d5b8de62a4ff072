#include "util/sha256.h"

#include <openssl/evp.h>

#include <random>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

bool Hash::IsZero() const {
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

std::string Hash::Hex() const { return HexEncode(bytes.data(), bytes.size()); }

bool Hash::FromHex(std::string_view hex, Hash* out) {
  Hash h;
  if (!HexDecodeBytes(hex, h.bytes.data(), h.bytes.size())) return false;
  *out = h;
  return true;
}

const std::array<uint64_t, 4>& HashKey() {
  static const std::array<uint64_t, 4> key = [] {
    std::random_device rd;
    std::array<uint64_t, 4> k;
    for (auto& w : k) w = (uint64_t{rd()} << 32) ^ rd();
    return k;
  }();
  return key;
}

Hash Sha256(const void* data, size_t len) {
  Hash h;
  unsigned int n = 0;
  if (!EVP_Digest(data, len, h.bytes.data(), &n, EVP_sha256(), nullptr))
    throw Error(ErrorKind::kOther, "OpenSSL SHA-256 failed");
  return h;
}

struct Sha256Stream::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256Stream::Sha256Stream() : impl_(new Impl) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || !EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr))
    throw Error(ErrorKind::kOther, "OpenSSL SHA-256 init failed");
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256Stream::Update(const void* data, size_t len) {
  EVP_DigestUpdate(impl_->ctx, data, len);
}

Hash Sha256Stream::Finish() {
  Hash h;
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, h.bytes.data(), &n);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return h;
}

}  // namespace vmback
