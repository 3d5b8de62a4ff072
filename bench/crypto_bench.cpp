// Throughput of the candidate primitives of an encrypted store (issue 18),
// on this machine: the AEADs that seal every blob and the keyed hashes that
// make block ids. A benchmark, not a test; bench/crypto_bench.sh builds and
// runs it.
//
//   crypto_bench [SIZE_BYTES [SECONDS]]     (default 1 MiB buffers, 1 s each)
//
// Prints MB/s (10^6 bytes a second, best of three runs of SECONDS/3) for:
//   xchacha20poly1305 seal/open  libsodium crypto_aead_xchacha20poly1305_ietf
//   aes256gcm seal/open          OpenSSL EVP_aes_256_gcm
//   aes256gcm+subkey seal        the same after deriving a per-object key with
//                                HMAC-SHA256 (the store's nonce scheme, src/crypto/seal.h)
//   blake2b-keyed                libsodium crypto_generichash, 32-byte key and out
//   hmac-sha256                  OpenSSL HMAC(EVP_sha256())
//   sha256                       OpenSSL EVP_Digest (today's unkeyed ids)
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of three runs of `seconds / 3` each: bytes a second of fn on n bytes.
double Rate(size_t n, double seconds, const std::function<void()>& fn) {
  double best = 0;
  for (int r = 0; r < 3; r++) {
    double start = Now();
    double end = start + seconds / 3;
    uint64_t rounds = 0;
    double t;
    do {
      fn();
      rounds++;
      t = Now();
    } while (t < end);
    double rate = static_cast<double>(n) * rounds / (t - start);
    if (rate > best) best = rate;
  }
  return best;
}

void Row(const char* what, double rate) { std::printf("%-30s %9.0f MB/s\n", what, rate / 1e6); }

void Die(const char* what) {
  std::fprintf(stderr, "crypto_bench: %s failed\n", what);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (1u << 20);
  double seconds = argc > 2 ? std::strtod(argv[2], nullptr) : 1.0;
  if (sodium_init() < 0) Die("sodium_init");
  std::vector<unsigned char> plain(n), sealed(n + 16), back(n);
  randombytes_buf(plain.data(), n);
  unsigned char key[32], nonce24[24], nonce12[12], tag[16];
  randombytes_buf(key, sizeof key);
  randombytes_buf(nonce24, sizeof nonce24);
  randombytes_buf(nonce12, sizeof nonce12);
  const unsigned char ad[40] = {1};
  std::printf("buffer %zu bytes, libsodium %s, %s, aes256gcm on hardware: %s\n", n, sodium_version_string(),
              OpenSSL_version(OPENSSL_VERSION), crypto_aead_aes256gcm_is_available() ? "yes" : "no");

  unsigned long long clen = 0, mlen = 0;
  Row("xchacha20poly1305 seal", Rate(n, seconds, [&] {
        crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data(), &clen, plain.data(), n, ad, sizeof ad, nullptr,
                                                   nonce24, key);
      }));
  Row("xchacha20poly1305 open", Rate(n, seconds, [&] {
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(back.data(), &mlen, nullptr, sealed.data(), clen, ad,
                                                       sizeof ad, nonce24, key) != 0)
          Die("xchacha open");
      }));

  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  auto gcm_seal = [&] {
    int len = 0;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nonce12) != 1 ||
        EVP_EncryptUpdate(ctx, nullptr, &len, ad, sizeof ad) != 1 ||
        EVP_EncryptUpdate(ctx, sealed.data(), &len, plain.data(), static_cast<int>(n)) != 1 ||
        EVP_EncryptFinal_ex(ctx, sealed.data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
      Die("gcm seal");
  };
  Row("aes256gcm seal", Rate(n, seconds, gcm_seal));
  gcm_seal();
  Row("aes256gcm open", Rate(n, seconds, [&] {
        int len = 0;
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nonce12) != 1 ||
            EVP_DecryptUpdate(ctx, nullptr, &len, ad, sizeof ad) != 1 ||
            EVP_DecryptUpdate(ctx, back.data(), &len, sealed.data(), static_cast<int>(n)) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
            EVP_DecryptFinal_ex(ctx, back.data() + len, &len) != 1)
          Die("gcm open");
      }));
  unsigned char subkey[32];
  unsigned int sublen = 0;
  Row("aes256gcm+subkey seal", Rate(n, seconds, [&] {
        if (!HMAC(EVP_sha256(), key, sizeof key, nonce24, 16, subkey, &sublen)) Die("subkey");
        int len = 0;
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, subkey, nonce24 + 12) != 1 ||
            EVP_EncryptUpdate(ctx, nullptr, &len, ad, sizeof ad) != 1 ||
            EVP_EncryptUpdate(ctx, sealed.data(), &len, plain.data(), static_cast<int>(n)) != 1 ||
            EVP_EncryptFinal_ex(ctx, sealed.data() + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
          Die("gcm seal");
      }));
  EVP_CIPHER_CTX_free(ctx);

  unsigned char out[32];
  Row("blake2b-keyed (32 B out)", Rate(n, seconds, [&] {
        crypto_generichash(out, sizeof out, plain.data(), n, key, sizeof key);
      }));
  unsigned int outlen = 0;
  Row("hmac-sha256", Rate(n, seconds, [&] {
        if (!HMAC(EVP_sha256(), key, sizeof key, plain.data(), n, out, &outlen)) Die("hmac");
      }));
  Row("sha256 (unkeyed, today)", Rate(n, seconds, [&] {
        if (EVP_Digest(plain.data(), n, out, &outlen, EVP_sha256(), nullptr) != 1) Die("sha256");
      }));
  return 0;
}
