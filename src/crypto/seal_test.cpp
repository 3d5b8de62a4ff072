#include "crypto/seal.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/key_wrap.h"
#include "util/error.h"
#include "util/wipe.h"

namespace vmback {
namespace {

std::string RandomString(size_t n) {
  std::string s(n, '\0');
  RandomBytes(s.data(), s.size());
  return s;
}

// The cheapest Argon2id libsodium takes: the tests check the format, not the cost.
constexpr KdfParams kFastKdf{1, kMinKdfMemBytes};

TEST(SealTest, RoundTripsEveryLength) {
  Sealer s(SecretKey::Random());
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{65536}, size_t{1} << 20}) {
    std::string plain = RandomString(n);
    std::string sealed = s.Seal(plain, "blob 0 ab");
    ASSERT_EQ(sealed.size(), n + kSealOverhead);
    std::string back;
    ASSERT_TRUE(s.Open(sealed, "blob 0 ab", &back)) << n;
    EXPECT_EQ(back, plain);
    if (n >= 16) {
      EXPECT_EQ(sealed.find(plain.substr(0, 16)), std::string::npos) << "plain text shows";
    }
  }
}

TEST(SealTest, SameTextSealsDifferentlyEachTime) {
  Sealer s(SecretKey::Random());
  EXPECT_NE(s.Seal("same", "ad"), s.Seal("same", "ad"));
}

TEST(SealTest, EveryFlippedBitIsRejected) {
  Sealer s(SecretKey::Random());
  const std::string plain = RandomString(100);
  const std::string sealed = s.Seal(plain, "ad");
  // Every bit of nonce, ciphertext and tag.
  for (size_t i = 0; i < sealed.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = sealed;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::string out = "untouched";
      ASSERT_FALSE(s.Open(bad, "ad", &out)) << "byte " << i << " bit " << bit;
      EXPECT_TRUE(out.empty());
    }
  }
}

TEST(SealTest, OtherAssociatedDataIsRejected) {
  Sealer s(SecretKey::Random());
  const std::string sealed = s.Seal("content", "blob 0 id-a");
  std::string out;
  EXPECT_FALSE(s.Open(sealed, "blob 0 id-b", &out));
  EXPECT_FALSE(s.Open(sealed, "blob 1 id-a", &out));
  EXPECT_FALSE(s.Open(sealed, "", &out));
  EXPECT_TRUE(s.Open(sealed, "blob 0 id-a", &out));
}

TEST(SealTest, WrongKeyIsRejected) {
  Sealer a(SecretKey::Random()), b(SecretKey::Random());
  std::string out;
  EXPECT_FALSE(b.Open(a.Seal("content", "ad"), "ad", &out));
}

TEST(SealTest, ShortOrTruncatedObjectsAreRejected) {
  Sealer s(SecretKey::Random());
  const std::string sealed = s.Seal("content", "ad");
  std::string out;
  for (size_t n = 0; n < sealed.size(); n++) EXPECT_FALSE(s.Open(sealed.substr(0, n), "ad", &out)) << n;
  EXPECT_FALSE(s.Open(sealed + "x", "ad", &out));
}

TEST(SealTest, OpenOrThrowNamesTheObject) {
  Sealer s(SecretKey::Random());
  std::string sealed = s.Seal("content", "ad");
  sealed[30] ^= 1;
  try {
    s.OpenOrThrow(sealed, "ad", "packs/ab/abcd.pack table");
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("packs/ab/abcd.pack table"), std::string::npos);
  }
}

TEST(SealTest, IdsAreKeyedAndStable) {
  SecretKey k = SecretKey::Random();
  Sealer a(k), a2(k), b(SecretKey::Random());
  const std::string block = RandomString(65536);
  EXPECT_EQ(a.Id(block), a2.Id(block));
  EXPECT_NE(a.Id(block), b.Id(block));
  EXPECT_NE(a.Id(block), Sha256(block));
  EXPECT_NE(a.Id(block), a.Id(block.substr(1)));
}

TEST(KeyWrapTest, PassphraseRoundTripAndWrongPassphrase) {
  SecretKey master = SecretKey::Random();
  WrappedKey w = WrapWithPassphrase(master, "store-1", "correct horse", kFastKdf, "admin");
  auto back = UnwrapWithPassphrase(w, "store-1", "correct horse");
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == master);
  EXPECT_FALSE(UnwrapWithPassphrase(w, "store-1", "correct horsE").has_value());
  // Bound to its store.
  EXPECT_FALSE(UnwrapWithPassphrase(w, "store-2", "correct horse").has_value());
}

TEST(KeyWrapTest, KeyFileRoundTripAndWrongFile) {
  SecretKey master = SecretKey::Random(), file = SecretKey::Random();
  WrappedKey w = WrapWithKeyFile(master, "s", file, "backup-unit");
  EXPECT_EQ(w.key_file_id, KeyFileId(file));
  auto back = UnwrapWithKeyFile(w, "s", file);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == master);
  EXPECT_FALSE(UnwrapWithKeyFile(w, "s", SecretKey::Random()).has_value());
  // A key file entry does not open as a passphrase entry.
  EXPECT_FALSE(UnwrapWithPassphrase(w, "s", "x").has_value());
}

TEST(KeyWrapTest, JsonRoundTripAndForgedEntries) {
  SecretKey master = SecretKey::Random();
  WrappedKey w = WrapWithPassphrase(master, "s", "pw", kFastKdf, "admin");
  nlohmann::json j = WrappedKeyToJson(w);
  WrappedKey r = WrappedKeyFromJson(j, "config.json");
  auto back = UnwrapWithPassphrase(r, "s", "pw");
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == master);

  // A forged memory cost is refused before Argon2id runs (no allocation).
  for (auto [key, value] : {std::pair<const char*, uint64_t>{"mem_bytes", 1ull << 40}, {"mem_bytes", 10},
                            {"ops", 0}, {"ops", 1ull << 32}}) {
    nlohmann::json bad = j;
    bad[key] = value;
    EXPECT_THROW(WrappedKeyFromJson(bad, "config.json"), Error) << key << "=" << value;
  }
  nlohmann::json bad = j;
  bad["sealed"] = std::string(bad["sealed"]).substr(2);
  EXPECT_THROW(WrappedKeyFromJson(bad, "config.json"), Error);
  bad = j;
  bad["label"] = "../x";
  EXPECT_THROW(WrappedKeyFromJson(bad, "config.json"), Error);
  bad = j;
  bad["kind"] = "none";
  EXPECT_THROW(WrappedKeyFromJson(bad, "config.json"), Error);
  // A flipped bit in the wrapped key: does not open.
  bad = j;
  std::string hex = bad["sealed"];
  hex[70] = hex[70] == '0' ? '1' : '0';
  bad["sealed"] = hex;
  EXPECT_FALSE(UnwrapWithPassphrase(WrappedKeyFromJson(bad, "c"), "s", "pw").has_value());
  // Directly built parameters beyond the bounds throw before any work.
  WrappedKey huge = w;
  huge.kdf.mem_bytes = 1ull << 40;
  EXPECT_THROW(UnwrapWithPassphrase(huge, "s", "pw"), Error);
}

TEST(KeyWrapTest, KeyFileFormat) {
  SecretKey k = SecretKey::Random();
  std::string text = FormatKeyFile(k);
  EXPECT_TRUE(ParseKeyFile(text, "k") == k);
  EXPECT_TRUE(ParseKeyFile(text.substr(0, text.size() - 1), "k") == k);  // no final newline
  EXPECT_THROW(ParseKeyFile(text.substr(1), "k"), Error);
  EXPECT_THROW(ParseKeyFile(text + "00", "k"), Error);
  EXPECT_THROW(ParseKeyFile("", "k"), Error);
}

TEST(KeyWrapTest, PaperKeyRoundTripAndTypos) {
  SecretKey k = SecretKey::Random();
  std::string paper = FormatPaperKey(k, "0123abcd");
  std::string store;
  EXPECT_TRUE(ParsePaperKey(paper, &store) == k);
  EXPECT_EQ(store, "0123abcd");
  // Typed back in capitals with other spacing.
  std::string typed;
  for (char c : paper) typed += c == ' ' ? std::string("  ") : std::string(1, static_cast<char>(std::toupper(c)));
  EXPECT_TRUE(ParsePaperKey(typed, &store) == k);
  // One digit wrong on line 3: named.
  size_t line3 = paper.find("3:");
  std::string typo = paper;
  typo[line3 + 3] = typo[line3 + 3] == 'a' ? 'b' : 'a';
  try {
    ParsePaperKey(typo, &store);
    FAIL() << "a typo was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  // A line missing.
  EXPECT_THROW(ParsePaperKey(paper.substr(0, paper.find("4:")), &store), Error);
}

// A passphrase's buffer is zeroed to its capacity, with no reallocation
// (clear keeps the buffer, so the bytes can be looked at).
TEST(WipeTest, WipeStringZeroesTheWholeBuffer) {
  std::string secret;
  secret.reserve(200);
  secret = std::string(150, 'p');
  const char* buffer = secret.data();
  const size_t capacity = secret.capacity();
  WipeString(&secret);
  EXPECT_TRUE(secret.empty());
  ASSERT_EQ(secret.data(), buffer) << "the buffer moved: the wipe would not be seen";
  ASSERT_EQ(secret.capacity(), capacity);
  for (size_t i = 0; i < capacity; i++) ASSERT_EQ(buffer[i], '\0') << "byte " << i;
  std::string other(100, 'q');
  const char* b2 = other.data();
  { WipeOnExit wipe(&other); }
  for (size_t i = 0; i < 100; i++) ASSERT_EQ(b2[i], '\0') << "byte " << i;
}

}  // namespace
}  // namespace vmback
