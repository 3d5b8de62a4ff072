// Tests for util/encoding.h and util/sha256.h.
#include "util/encoding.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "helpers/test_util.h"
#include "store/tree.h"
#include "util/sha256.h"

namespace vmback {
namespace {

// ---------------------------------------------------------------- integers

TEST(EncodingTest, PutU32IsLittleEndian) {
  std::string s;
  PutU32(&s, 0x04030201u);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s, std::string("\x01\x02\x03\x04", 4));
}

TEST(EncodingTest, PutU64IsLittleEndian) {
  std::string s;
  PutU64(&s, 0x0807060504030201ull);
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(s, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(EncodingTest, U32RoundTrip) {
  const std::vector<uint32_t> values = {0u,     1u,          0x7fu,       0x80u,       0xffu,
                                        0x100u, 0x12345678u, 0x80000000u, 0xfffffffeu, 0xffffffffu};
  for (uint32_t v : values) {
    std::string s;
    PutU32(&s, v);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(GetU32(s.data()), v) << v;
  }
}

TEST(EncodingTest, U64RoundTrip) {
  const std::vector<uint64_t> values = {0ull,
                                        1ull,
                                        0xffull,
                                        0x100000000ull,
                                        0x0123456789abcdefull,
                                        0x8000000000000000ull,
                                        std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : values) {
    std::string s;
    PutU64(&s, v);
    ASSERT_EQ(s.size(), 8u);
    EXPECT_EQ(GetU64(s.data()), v) << v;
  }
}

TEST(EncodingTest, PutAppendsAndGetReadsAtOffset) {
  std::string s = "xy";
  PutU32(&s, 0xdeadbeefu);
  PutU64(&s, 0x1122334455667788ull);
  PutU32(&s, 7u);
  ASSERT_EQ(s.size(), 2u + 4 + 8 + 4);
  EXPECT_EQ(s.substr(0, 2), "xy");
  EXPECT_EQ(GetU32(s.data() + 2), 0xdeadbeefu);
  EXPECT_EQ(GetU64(s.data() + 6), 0x1122334455667788ull);
  EXPECT_EQ(GetU32(s.data() + 14), 7u);
}

TEST(EncodingTest, GetHandlesHighBytes) {
  // Bytes >= 0x80 must not sign-extend.
  const std::string s(8, '\xff');
  EXPECT_EQ(GetU32(s.data()), 0xffffffffu);
  EXPECT_EQ(GetU64(s.data()), std::numeric_limits<uint64_t>::max());
  const std::string t("\x80\x00\x00\x00", 4);
  EXPECT_EQ(GetU32(t.data()), 0x80u);
}

// --------------------------------------------------------------------- hex

TEST(EncodingTest, HexEncodeKnownValues) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(std::string("\x00\x01\x7f\x80\xab\xff", 6)), "00017f80abff");
  EXPECT_EQ(HexEncode("vmback"), "766d6261636b");
}

TEST(EncodingTest, HexRoundTripAllByteValues) {
  std::string all;
  for (int i = 0; i < 256; i++) all.push_back(static_cast<char>(i));
  std::string hex = HexEncode(all);
  ASSERT_EQ(hex.size(), 512u);
  std::string back;
  ASSERT_TRUE(HexDecode(hex, &back));
  EXPECT_EQ(back, all);
}

TEST(EncodingTest, HexRoundTripRandom) {
  std::string data = test::RandomBytes(1000, 42);
  std::string back;
  ASSERT_TRUE(HexDecode(HexEncode(data), &back));
  EXPECT_EQ(back, data);
}

TEST(EncodingTest, HexDecodeAcceptsUpperCase) {
  std::string out;
  ASSERT_TRUE(HexDecode("ABcdEF09", &out));
  EXPECT_EQ(out, std::string("\xab\xcd\xef\x09", 4));
}

TEST(EncodingTest, HexDecodeEmpty) {
  std::string out = "junk";
  ASSERT_TRUE(HexDecode("", &out));
  EXPECT_EQ(out, "");
}

TEST(EncodingTest, HexDecodeRejectsInvalid) {
  std::string out;
  EXPECT_FALSE(HexDecode("0", &out));                    // odd length
  EXPECT_FALSE(HexDecode("abc", &out));                  // odd length
  EXPECT_FALSE(HexDecode("zz", &out));                   // not hex
  EXPECT_FALSE(HexDecode("0g", &out));                   // second digit bad
  EXPECT_FALSE(HexDecode("g0", &out));                   // first digit bad
  EXPECT_FALSE(HexDecode("00 1", &out));                 // space
  EXPECT_FALSE(HexDecode("0x12", &out));                 // prefix
  EXPECT_FALSE(HexDecode("12-4", &out));                 // punctuation
  EXPECT_FALSE(HexDecode(std::string("1\0", 2), &out));  // NUL
  EXPECT_FALSE(HexDecode("\xc3\xa9", &out));             // non-ASCII
}

TEST(EncodingTest, HexDecodeBytesTakesExactlyTheLength) {
  uint8_t b[3] = {7, 7, 7};
  ASSERT_TRUE(HexDecodeBytes("0aFf10", b, 3));
  EXPECT_EQ(b[0], 0x0a);
  EXPECT_EQ(b[1], 0xff);
  EXPECT_EQ(b[2], 0x10);
  EXPECT_FALSE(HexDecodeBytes("0aff", b, 3));      // short
  EXPECT_FALSE(HexDecodeBytes("0aff1011", b, 3));  // long
  EXPECT_FALSE(HexDecodeBytes("0afg10", b, 3));    // not hex
  EXPECT_TRUE(HexDecodeBytes("", b, 0));
}

// ------------------------------------------------------------------- UTF-8

TEST(EncodingTest, Utf8AcceptsAsciiAndEmpty) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("hello world.txt"));
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
  EXPECT_TRUE(IsValidUtf8("\x7f"));
}

TEST(EncodingTest, Utf8AcceptsMultibyte) {
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9"));                  // é (2 bytes)
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9"));               // café
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));              // € (3 bytes)
  EXPECT_TRUE(IsValidUtf8("\xe6\x97\xa5\xe6\x9c\xac"));  // 日本
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));          // 😀 (4 bytes)
  EXPECT_TRUE(IsValidUtf8("\xc2\x80"));                  // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xdf\xbf"));                  // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xe0\xa0\x80"));              // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidUtf8("\xef\xbf\xbf"));              // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xf0\x90\x80\x80"));          // U+10000, smallest 4-byte
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));          // U+10FFFF, the largest
  EXPECT_TRUE(IsValidUtf8("a\xc3\xa9z\xe2\x82\xac!\xf0\x9f\x98\x80."));
}

TEST(EncodingTest, Utf8RejectsTruncatedSequences) {
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // 2-byte lead alone
  EXPECT_FALSE(IsValidUtf8("abc\xc3"));       // ... at the end
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // 3-byte, one missing
  EXPECT_FALSE(IsValidUtf8("\xe2"));          // 3-byte, two missing
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98"));  // 4-byte, one missing
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f"));      // 4-byte, two missing
  EXPECT_FALSE(IsValidUtf8("\xf0"));          // 4-byte, three missing
  EXPECT_FALSE(
      IsValidUtf8("\xc3"
                  "a"));  // continuation replaced by ASCII
  EXPECT_FALSE(
      IsValidUtf8("\xe2\x82"
                  "a"));
  EXPECT_FALSE(
      IsValidUtf8("\xf0\x9f\x98"
                  "a"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82\xc3\xa9"));  // new lead inside a sequence
}

TEST(EncodingTest, Utf8RejectsInvalidLeadBytes) {
  EXPECT_FALSE(IsValidUtf8("\x80"));  // lone continuation bytes
  EXPECT_FALSE(IsValidUtf8("\xbf"));
  EXPECT_FALSE(
      IsValidUtf8("a\x80"
                  "b"));
  EXPECT_FALSE(IsValidUtf8("\xc3\xa9\xa9"));              // one continuation too many
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));      // 5-byte form
  EXPECT_FALSE(IsValidUtf8("\xfc\x84\x80\x80\x80\x80"));  // 6-byte form
  EXPECT_FALSE(IsValidUtf8("\xfe"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

// Regression test: IsValidUtf8 used to check only the bit patterns of lead
// and continuation bytes, and accepted all of these.
// RFC 3629: C0, C1 and F5..FF never appear in UTF-8; overlong forms and
// UTF-16 surrogates (U+D800..U+DFFF) are invalid. tree.cpp trusts
// IsValidUtf8 to decide whether a file name can be stored as a JSON string,
// and nlohmann::json::dump() throws on exactly these sequences.
TEST(EncodingTest, Utf8RejectsOverlongSurrogatesAndOutOfRange) {
  const std::vector<std::string> bad = {
      "\xc0\x80",          // overlong NUL
      "\xc1\xbf",          // overlong U+007F
      "\xe0\x80\x80",      // overlong 3-byte
      "\xe0\x9f\xbf",      // overlong U+07FF
      "\xf0\x80\x80\x80",  // overlong 4-byte
      "\xf0\x8f\xbf\xbf",  // overlong U+FFFF
      "\xed\xa0\x80",      // U+D800 (surrogate)
      "\xed\xbf\xbf",      // U+DFFF (surrogate)
      "\xf4\x90\x80\x80",  // U+110000 (> U+10FFFF)
      "\xf5\x80\x80\x80",  // lead byte F5
      "\xf7\xbf\xbf\xbf",  // lead byte F7
  };
  for (const auto& s : bad) {
    // What the consumer of IsValidUtf8 (tree.cpp, via nlohmann::json) needs:
    bool json_ok = true;
    try {
      (void)nlohmann::json(s).dump();
    } catch (const nlohmann::json::exception&) {
      json_ok = false;
    }
    EXPECT_FALSE(json_ok) << HexEncode(s);
    EXPECT_FALSE(IsValidUtf8(s)) << "accepted invalid UTF-8 " << HexEncode(s);
  }
}

TEST(EncodingTest, Utf8AgreesWithJsonOnValidInput) {
  // Everything IsValidUtf8 accepts here must also be dumpable as JSON.
  for (const char* s :
       {"", "abc", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"}) {
    ASSERT_TRUE(IsValidUtf8(s));
    EXPECT_NO_THROW((void)nlohmann::json(std::string(s)).dump()) << HexEncode(s);
  }
}

// Regression test, the consequence of the above for backups: a file whose
// name is one of these byte strings (legal on Linux) could not be encoded
// into a tree; the nlohmann exception escaped EncodeTree instead of the name
// going to name_hex.
TEST(EncodingTest, Utf8TreeWithOverlongFileNameEncodes) {
  for (const std::string name : {"\xc0\x80", "ok\xed\xa0\x80", "\xf5\x80\x80\x80"}) {
    Entry e;
    e.name = name;
    e.type = EntryType::kFile;
    std::string data;
    try {
      data = EncodeTree({e});
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "EncodeTree threw for name " << HexEncode(name) << ": " << ex.what();
      continue;
    }
    std::vector<Entry> back = DecodeTree(data, "test");
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].name, name);
  }
}

// -------------------------------------------------------------------- size

TEST(EncodingTest, ParseSizeAcceptsUnits) {
  struct Case {
    const char* text;
    uint64_t want;
  };
  const Case cases[] = {
      {"0", 0},
      {"65536", 65536},
      {"64K", 64ull << 10},
      {"64k", 64ull << 10},
      {"64KiB", 64ull << 10},
      {"4M", 4ull << 20},
      {"4MiB", 4ull << 20},
      {"1G", 1ull << 30},
      {"1GiB", 1ull << 30},
      {"2T", 2ull << 40},
      {"2TiB", 2ull << 40},
      {"512B", 512},
      {"007", 7},
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
      {"16777215T", 16777215ull << 40},
  };
  for (const auto& c : cases) {
    uint64_t v = 12345;
    EXPECT_TRUE(ParseSize(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.want) << c.text;
  }
}

TEST(EncodingTest, ParseSizeRejectsInvalid) {
  for (const char* text : {"", "12X", "-1", "+1", "K", "M", " 64", "64 ", "64 K", "1.5G", "64KB",
                           "64Ki", "0x10", "abc", "1e6"}) {
    uint64_t v = 777;
    EXPECT_FALSE(ParseSize(text, &v)) << "'" << text << "'";
    EXPECT_EQ(v, 777u) << "output touched on failure for '" << text << "'";
  }
}

TEST(EncodingTest, ParseSizeRejectsOverflow) {
  uint64_t v = 0;
  EXPECT_FALSE(ParseSize("18446744073709551616", &v));  // 2^64
  EXPECT_FALSE(ParseSize("99999999999999999999", &v));
  EXPECT_FALSE(ParseSize("1000000000000000000000000", &v));
  EXPECT_FALSE(ParseSize("16777216T", &v));           // 2^24 * 2^40 = 2^64
  EXPECT_FALSE(ParseSize("17179869184G", &v));        // 2^34 * 2^30 = 2^64
  EXPECT_FALSE(ParseSize("18014398509481984K", &v));  // 2^54 * 2^10 = 2^64
  EXPECT_FALSE(ParseSize("18446744073709551615K", &v));
  EXPECT_TRUE(ParseSize("17179869183G", &v));
  EXPECT_EQ(v, 17179869183ull << 30);
}

TEST(EncodingTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3ull << 20), "3.0 MiB");
  EXPECT_EQ(FormatBytes(3ull << 29), "1.5 GiB");
  EXPECT_EQ(FormatBytes(2ull << 40), "2.0 TiB");
  EXPECT_EQ(FormatBytes(2048ull << 40), "2048.0 TiB");
}

// -------------------------------------------------------------------- hash

TEST(HashTest, Sha256KnownVectors) {
  EXPECT_EQ(Sha256("").Hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256("abc").Hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HashTest, StreamMatchesOneShotAndResets) {
  std::string data = test::RandomBytes(100000, 7);
  Sha256Stream s;
  s.Update(data.data(), 1);
  s.Update(data.data() + 1, 4095);
  s.Update(data.data() + 4096, data.size() - 4096);
  EXPECT_EQ(s.Finish(), Sha256(data));
  // Finish starts a fresh hash.
  EXPECT_EQ(s.Finish(), Sha256(""));
}

// The one-shot hash reuses a context per thread: no call may see what the
// one before it hashed, on any thread.
TEST(HashTest, OneShotCarriesNothingBetweenCallsOrThreads) {
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const std::string big = test::RandomBytes(70000, 11);
  Sha256Stream s;
  s.Update(big.data(), big.size());
  const Hash big_hash = s.Finish();
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; i++) {
        if (Sha256(big) != big_hash) wrong++;
        if (Sha256("abc").Hex() != abc) wrong++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(Sha256(big), big_hash);
  EXPECT_EQ(Sha256("abc").Hex(), abc);
}

TEST(HashTest, HexRoundTrip) {
  Hash h = Sha256(test::RandomBytes(64, 3));
  std::string hex = h.Hex();
  ASSERT_EQ(hex.size(), 64u);
  for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
  Hash back;
  ASSERT_TRUE(Hash::FromHex(hex, &back));
  EXPECT_EQ(back, h);
}

TEST(HashTest, FromHexAcceptsUpperCase) {
  Hash h = Sha256("x");
  std::string upper = h.Hex();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Hash back;
  ASSERT_TRUE(Hash::FromHex(upper, &back));
  EXPECT_EQ(back, h);
}

TEST(HashTest, FromHexRejectsInvalid) {
  std::string good = Sha256("y").Hex();
  Hash out;
  EXPECT_FALSE(Hash::FromHex("", &out));
  EXPECT_FALSE(Hash::FromHex(good.substr(0, 63), &out));
  EXPECT_FALSE(Hash::FromHex(good.substr(0, 62), &out));
  EXPECT_FALSE(Hash::FromHex(good + "0", &out));
  EXPECT_FALSE(Hash::FromHex(good + "00", &out));
  std::string bad = good;
  bad[10] = 'g';
  EXPECT_FALSE(Hash::FromHex(bad, &out));
  bad = good;
  bad[63] = ' ';
  EXPECT_FALSE(Hash::FromHex(bad, &out));
}

TEST(HashTest, IsZeroAndOrdering) {
  Hash zero;
  EXPECT_TRUE(zero.IsZero());
  EXPECT_EQ(zero.Hex(), std::string(64, '0'));
  Hash parsed;
  ASSERT_TRUE(Hash::FromHex(std::string(64, '0'), &parsed));
  EXPECT_TRUE(parsed.IsZero());
  Hash one = zero;
  one.bytes[31] = 1;
  EXPECT_FALSE(one.IsZero());
  EXPECT_LT(zero, one);
  Hash high = zero;
  high.bytes[0] = 1;
  EXPECT_LT(one, high);  // byte order, most significant first
  EXPECT_NE(Sha256("a"), Sha256("b"));
  EXPECT_EQ(HashHasher()(Sha256("a")), HashHasher()(Sha256("a")));
}

// Ids that differ only past their first 8 bytes, or only in their last 4
// (as a planted index or block list may hold): hash tables keyed by them
// get as many distinct values as ids, not one value for all (which made
// every insert of a std::unordered_map walk them all).
TEST(HashTest, HasherSpreadsIdsThatShareAPrefix) {
  for (size_t at : {size_t{8}, size_t{28}}) {
    std::unordered_set<size_t> values;
    Hash id;
    for (uint32_t i = 0; i < 10000; i++) {
      std::memcpy(id.bytes.data() + at, &i, sizeof i);
      values.insert(HashHasher()(id));
    }
    EXPECT_GT(values.size(), 9990u) << "ids differing at byte " << at;
  }
}

}  // namespace
}  // namespace vmback

namespace vmback {
namespace {

TEST(SafeNameTest, OneComponentOnly) {
  EXPECT_TRUE(IsSafeName("disk.qcow2"));
  EXPECT_TRUE(IsSafeName("..."));
  EXPECT_TRUE(IsSafeName(" ..")) << "only exactly '.' and '..' are special";
  EXPECT_FALSE(IsSafeName(""));
  EXPECT_FALSE(IsSafeName("."));
  EXPECT_FALSE(IsSafeName(".."));
  EXPECT_FALSE(IsSafeName("a/b"));
  EXPECT_FALSE(IsSafeName("/"));
  EXPECT_FALSE(IsSafeName(std::string("..\0", 3)));
  EXPECT_FALSE(IsSafeName(std::string("a\0b", 3)));
}

TEST(EscapeForTerminalTest, ControlCharactersAndBackslash) {
  EXPECT_EQ(EscapeForTerminal("plain name.txt"), "plain name.txt");
  EXPECT_EQ(EscapeForTerminal("a\nb"), "a\\x0ab");
  EXPECT_EQ(EscapeForTerminal("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(EscapeForTerminal(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(EscapeForTerminal("\x7f"), "\\x7f");
  EXPECT_EQ(EscapeForTerminal("a\\x0a"), "a\\x5cx0a") << "a literal backslash cannot pass for an escape";
  EXPECT_EQ(EscapeForTerminal("h\xc3\xa9"), "h\xc3\xa9") << "UTF-8 passes";
}

}  // namespace
}  // namespace vmback

namespace vmback {
namespace {

TEST(FormatTest, CountedAndSeconds) {
  EXPECT_EQ(Counted(1, "file"), "1 file");
  EXPECT_EQ(Counted(0, "file"), "0 files");
  EXPECT_EQ(Counted(2, "directory", "directories"), "2 directories");
  EXPECT_EQ(Counted(1, "directory", "directories"), "1 directory");
  EXPECT_EQ(FormatSeconds(0.16136), "0.161 s");
  EXPECT_EQ(FormatSeconds(12.0), "12.000 s");
  EXPECT_EQ(FormatSeconds(0.0005), "0.001 s");
}

}  // namespace
}  // namespace vmback
