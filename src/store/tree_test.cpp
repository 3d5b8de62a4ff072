// Trees: DecodeTree's fast reader (DecodeTreeFast) gives what the full JSON
// parser gives for every entry kind, and refuses what it refuses; what it
// leaves to the full parser (escapes, unknown keys) still reads as before.
#include "store/tree.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "util/error.h"
#include "util/sha256.h"

namespace vmback {
namespace {

// The tree as DecodeTree read it before it had a fast reader.
std::vector<Entry> DecodeWithParser(const std::string& data) {
  nlohmann::json j = nlohmann::json::parse(data);  // throws for what is not JSON
  if (!j.is_object() || !j.contains("entries") || !j["entries"].is_array())
    throw Error(ErrorKind::kCorrupt, "no entries");
  std::vector<Entry> out;
  for (const auto& e : j["entries"]) {
    out.push_back(EntryFromJson(e, "t"));
    if (out.back().name.empty() || (out.size() > 1 && !(out[out.size() - 2].name < out.back().name)))
      throw Error(ErrorKind::kCorrupt, "order");
  }
  return out;
}

void ExpectSame(const std::vector<Entry>& a, const std::vector<Entry>& b, const std::string& data) {
  ASSERT_EQ(a.size(), b.size()) << data;
  for (size_t i = 0; i < a.size(); i++) {
    const Entry &x = a[i], &y = b[i];
    EXPECT_TRUE(x.name == y.name && x.type == y.type && x.mode == y.mode && x.uid == y.uid && x.gid == y.gid &&
                x.mtime_ns == y.mtime_ns && x.size == y.size && x.ctime_ns == y.ctime_ns && x.ino == y.ino &&
                x.content == y.content && x.target == y.target && x.rdev == y.rdev && x.xattrs == y.xattrs &&
                x.hardlink == y.hardlink && x.subtree == y.subtree)
        << "entry " << i << " of " << data;
  }
}

Entry Make(const std::string& name, EntryType type) {
  return Entry{.name = name, .type = type, .mode = 0644, .uid = 1000, .gid = 100, .mtime_ns = -1795716062123456789};
}

// One entry of every kind, and the odd values: names and targets that are
// not UTF-8 (written as hex), UTF-8 ones, hard links, xattrs, the unchanged
// check's keys, negative times and the largest sizes.
std::vector<Entry> EveryKind() {
  std::vector<Entry> v;
  Entry f = Make("a-file", EntryType::kFile);
  f.size = UINT64_MAX;
  f.content = {Sha256("l1"), Sha256("l2")};
  f.ctime_ns = -5;
  f.ino = 77;
  f.xattrs = {{"user.a", std::string("\0\xff", 2)}, {"user.b", ""}};
  v.push_back(f);
  Entry empty = Make("b-empty", EntryType::kFile);
  empty.mode = 07777;
  empty.uid = UINT32_MAX;
  empty.mtime_ns = INT64_MIN + 1;
  v.push_back(empty);
  Entry link = Make("c-link", EntryType::kFile);
  link.hardlink = "dir/a-file";
  link.content = {Sha256("l1")};
  v.push_back(link);
  Entry dev = Make("d-dev", EntryType::kBlockDevice);
  dev.rdev = (8u << 8) | 1;
  v.push_back(dev);
  Entry cdev = Make("e-cdev", EntryType::kCharDevice);
  cdev.rdev = UINT64_MAX;
  v.push_back(cdev);
  v.push_back(Make("f-fifo", EntryType::kFifo));
  v.push_back(Make("g-sock", EntryType::kSocket));
  Entry dir = Make("h-dir", EntryType::kDir);
  dir.subtree = Sha256("sub");
  dir.mode = 0755;
  v.push_back(dir);
  Entry sym = Make("i-sym", EntryType::kSymlink);
  sym.target = "../\xc3\xa9t\xc3\xa9";
  v.push_back(sym);
  Entry bad_sym = Make("j-sym", EntryType::kSymlink);
  bad_sym.target = "\xff\xfe";
  v.push_back(bad_sym);
  Entry bad_link = Make("k-link", EntryType::kFile);
  bad_link.hardlink = "x\x80y";
  v.push_back(bad_link);
  v.push_back(Make("name with \"quotes\" and \\", EntryType::kFifo));  // escapes: the full parser's
  v.push_back(Make("\x01\x7f", EntryType::kFifo));
  v.push_back(Make("\xc3\xa9t\xc3\xa9", EntryType::kFile));
  v.push_back(Make("\xff-not-utf8", EntryType::kFile));
  std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return v;
}

TEST(TreeTest, FastReaderGivesWhatTheParserGivesForEveryKind) {
  const std::vector<Entry> entries = EveryKind();
  // Without the names that need escapes, the fast reader takes it all.
  std::vector<Entry> plain;
  for (const Entry& e : entries)
    if (e.name.find_first_of(std::string("\"\\\x01", 3)) == std::string::npos) plain.push_back(e);
  ASSERT_LT(plain.size(), entries.size());
  const std::string data = EncodeTree(plain);
  std::vector<Entry> fast;
  ASSERT_TRUE(DecodeTreeFast(data, &fast)) << data;
  ExpectSame(fast, DecodeWithParser(data), data);
  ExpectSame(fast, plain, data);
  EXPECT_TRUE(DecodeTreeFast(EncodeTree({}), &fast));
  EXPECT_TRUE(fast.empty());

  // The same JSON laid out with whitespace, and with its keys in another order.
  const nlohmann::json j = nlohmann::json::parse(data);
  ASSERT_TRUE(DecodeTreeFast(j.dump(2), &fast));
  ExpectSame(fast, plain, j.dump(2));
  std::string reordered = "{\"entries\":[";
  for (size_t i = 0; i < j["entries"].size(); i++) {
    const auto& e = j["entries"][i];
    std::vector<std::string> keys;
    for (auto it = e.begin(); it != e.end(); ++it) keys.push_back(it.key());
    std::reverse(keys.begin(), keys.end());
    reordered += i ? ",{" : "{";
    for (size_t k = 0; k < keys.size(); k++)
      reordered += (k ? "," : "") + nlohmann::json(keys[k]).dump() + ":" + e[keys[k]].dump();
    reordered += "}";
  }
  reordered += "]}";
  ASSERT_TRUE(DecodeTreeFast(reordered, &fast)) << reordered;
  ExpectSame(fast, plain, reordered);

  // Names with escapes: left to the full parser, read as before.
  const std::string all = EncodeTree(entries);
  EXPECT_FALSE(DecodeTreeFast(all, &fast));
  EXPECT_TRUE(fast.empty());
  ExpectSame(DecodeTree(all, "t"), entries, all);
}

TEST(TreeTest, OddButValidTreesAreReadAsBefore) {
  const std::string head = R"({"entries":[{"gid":0,"mode":420,"mtime_ns":5,)";
  for (const std::string& data : {
           head + R"("name":"a\u0062","type":"fifo","uid":0}]})",                // an escape
           head + R"("name":"a","type":"fifo","uid":0,"later":[1,{"x":2}]}]})",  // an unknown key
           head + R"("name":"a","type":"fifo","uid":0,"uid":7}]})",              // a key twice: the last
           head + R"("name":"a","type":"fifo","uid":0,"size":"big"}]})",         // another type's key
           head + R"("name":"a","type":"fifo","uid":-0}]})",
           std::string(R"({"other":1,"entries":[]})"),
           std::string("\xef\xbb\xbf{\"entries\":[]}"),  // a byte order mark
       }) {
    std::vector<Entry> fast;
    EXPECT_FALSE(DecodeTreeFast(data, &fast)) << data;
    ExpectSame(DecodeTree(data, "t"), DecodeWithParser(data), data);
  }
  // Both name and name_hex: the name, the other not looked at, by both.
  const std::string both = head + R"("name":"a","name_hex":"zz","type":"fifo","uid":0}]})";
  std::vector<Entry> fast;
  ASSERT_TRUE(DecodeTreeFast(both, &fast));
  ExpectSame(fast, DecodeWithParser(both), both);
  EXPECT_EQ(fast[0].name, "a");
}

TEST(TreeTest, FastReaderRefusesWhatTheParserRefuses) {
  const std::string head = R"({"entries":[{"gid":0,"mode":420,"mtime_ns":5,)";
  for (const std::string& data : {
           std::string("not json"),
           std::string(R"({"entries":[)"),
           std::string(R"({"entries":{}})"),
           head + R"("name":"..","type":"fifo","uid":0}]})",
           head + R"("name":"a/b","type":"fifo","uid":0}]})",
           head + R"("name":"","type":"fifo","uid":0}]})",
           head + R"("type":"fifo","uid":0}]})",
           head + R"("name_hex":"2f","type":"fifo","uid":0}]})",  // "/"
           head + R"("name_hex":"6","type":"fifo","uid":0}]})",
           head + R"("name":"a\u0000","type":"fifo","uid":0}]})",
           head + "\"name\":\"a\xff\",\"type\":\"fifo\",\"uid\":0}]}",
           head + "\"name\":\"\xed\xa0\x80\",\"type\":\"fifo\",\"uid\":0}]}",  // a surrogate
           head + "\"name\":\"a\x01\",\"type\":\"fifo\",\"uid\":0}]}",
           head + R"("name":"b","type":"fifo","uid":0},{"gid":0,"mode":1,"mtime_ns":5,"name":"a","type":"fifo","uid":0}]})",
           head + R"("name":"a","type":"fifo","uid":0},{"gid":0,"mode":1,"mtime_ns":5,"name":"a","type":"fifo","uid":0}]})",
           head + R"("name":"a","type":"door","uid":0}]})",
           head + R"("name":"a","type":"fifo","uid":4294967296}]})",
           head + R"("name":"a","type":"fifo","uid":-1}]})",
           head + R"("name":"a","type":"fifo","uid":1.0}]})",
           head + R"("name":"a","type":"fifo","uid":1e2}]})",
           head + R"("name":"a","type":"fifo","uid":01}]})",
           head + R"("name":"a","type":"fifo","uid":"1"}]})",
           head + R"("name":"a","type":"fifo"}]})",
           head + R"("name":"a","type":"chardev","uid":0}]})",
           head + R"("name":"a","type":"chardev","uid":0,"rdev":18446744073709551616}]})",
           head + R"("name":"a","type":"file","uid":0,"size":1}]})",
           head + R"("name":"a","type":"file","uid":0,"size":1,"content":"x"}]})",
           head + R"("name":"a","type":"file","uid":0,"size":1,"content":["00"]}]})",
           head + R"("name":"a","type":"file","uid":0,"size":1,"content":[],"ino":3}]})",
           head + R"("name":"a","type":"file","uid":0,"size":1,"content":[],"hardlink_hex":"x"}]})",
           head + R"("name":"a","type":"dir","uid":0}]})",
           head + R"("name":"a","type":"dir","uid":0,"subtree":")" + std::string(63, 'a') + "g\"}]}",
           head + R"("name":"a","type":"fifo","uid":0,"xattrs":[["61"]]}]})",
           head + R"("name":"a","type":"fifo","uid":0,"xattrs":[["61","6"]]}]})",
           head + R"("name":"a","type":"fifo","uid":0,"mtime_ns":9223372036854775808}]})",
           head + R"("name":"a","type":"fifo","uid":0}]} x)",
       }) {
    std::vector<Entry> fast;
    EXPECT_FALSE(DecodeTreeFast(data, &fast)) << data;
    try {
      DecodeTree(data, "tree of v/d in point p");
      ADD_FAILURE() << "accepted: " << data;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << data;
      EXPECT_NE(std::string(e.what()).find("tree of v/d in point p"), std::string::npos) << e.what();
    }
  }
}

// Trees damaged at random (seeded): whatever the fast reader accepts, the
// full parser accepts as the same entries.
TEST(TreeTest, DamagedTreesFastReaderNeverDisagrees) {
  std::vector<Entry> plain;
  for (const Entry& e : EveryKind())
    if (e.name.find_first_of(std::string("\"\\\x01", 3)) == std::string::npos) plain.push_back(e);
  const std::string good = EncodeTree(plain);
  const std::string bytes = "0123456789abcdefABCDEF-+.eE\"\\{}[],: \x80\xff\xc3\x01/tx";
  std::mt19937 rng(1234);
  size_t accepted = 0;
  for (int round = 0; round < 20000; round++) {
    std::string data = good;
    for (int n = 1 + rng() % 3; n > 0; n--) {
      const size_t at = rng() % data.size();
      const char c = bytes[rng() % bytes.size()];
      switch (rng() % 3) {
        case 0: data[at] = c; break;
        case 1: data.erase(at, 1); break;
        default: data.insert(at, 1, c); break;
      }
    }
    std::vector<Entry> fast;
    if (!DecodeTreeFast(data, &fast)) continue;
    accepted++;
    std::vector<Entry> slow;
    try {
      slow = DecodeWithParser(data);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the fast reader accepted what the parser refuses (" << e.what() << "): " << data;
      continue;
    }
    ExpectSame(fast, slow, data);
  }
  EXPECT_GT(accepted, 100u);  // the damage reached values, not only the syntax
}

}  // namespace
}  // namespace vmback
