// The typed manifest: its JSON is byte for byte what vmback has always
// written (docs/FORMAT.md "Manifests"), and forged input is refused naming
// the file and what is wrong.
#include "store/manifest.h"

#include <gtest/gtest.h>

#include <string>

#include "util/error.h"
#include "util/sha256.h"

namespace vmback {
namespace {

// A manifest written by vmback before the typed Manifest existed (the
// fuzzing corpus's valid.json, made by its writer).
const char kEarlierManifest[] =
    R"J({"block_size":65536,"host":"kvm1","name":"2026-11-26T180102Z","stats":{"errors":0,"seconds_ms":1234},"time":"2026-11-26T18:01:02Z","time_ns":1795716062000000000,"version":1,"volumes":[{"name":"images","root":{"gid":100,"mode":493,"mtime_ns":1795716062123456789,"name":"","subtree":"8a9959f3a8968a68ba599709fc6db617366221deb14f5208f76a8767dcf4045f","type":"dir","uid":1000},"source":"/var/lib/libvirt/images"},{"name":"vm1-disk","root":{"content":["9679cc4d4305a2f13a3c780b62f304d8d52449dc91e3b331f13193abd6e0fc31","cfef465a3b4212f4f64a26e2ea3f8826079521a951d88f00d5ea3fee521e40fe"],"gid":100,"mode":420,"mtime_ns":1795716062123456789,"name":"","size":10737418240,"type":"file","uid":1000},"source":"/dev/vg0/vm1"}]})J"
    "\nsha256:97f7e247bf7d30f14d083c440736805382759221b6f31b3efde1ca7d3e848adb\n";

std::string ErrorOf(const std::string& data) {
  try {
    DecodeManifest(data, "/s/points/p.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << data;
  return "";
}

Entry Root(EntryType type) {
  Entry e;
  e.type = type;
  e.mode = 0755;
  e.mtime_ns = 1795716062123456789;
  if (type == EntryType::kDir) e.subtree = Sha256("tree");
  if (type == EntryType::kFile) {
    e.size = 10;
    e.ctime_ns = 1795716062987654321;
    e.ino = 131074;
    e.content = {Sha256("list")};
  }
  return e;
}

Manifest Sample() {
  Manifest m;
  m.name = PointName::Parse("2026-11-26T180102Z.2", "test");
  m.time = "2026-11-26T18:01:02Z";
  m.time_ns = 1795716062000000000;
  m.host = "kvm1";
  m.block_size = 65536;
  m.volumes.push_back({"images", "/var/lib/libvirt/images", Root(EntryType::kDir)});
  m.volumes.push_back({"disk", std::string("/dev/vg0/caf\xe9"), Root(EntryType::kFile)});
  m.tags = {"nightly", "before-upgrade"};
  m.stats = {{"errors", 0}, {"full_read", true}};
  return m;
}

bool Same(const Entry& a, const Entry& b) { return EntryToJson(a) == EntryToJson(b); }

TEST(ManifestTest, EarlierManifestReadsAndEncodesToTheSameBytes) {
  Manifest m = DecodeManifest(kEarlierManifest, "valid.json");
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.name.str(), "2026-11-26T180102Z");
  EXPECT_EQ(m.time, "2026-11-26T18:01:02Z");
  EXPECT_EQ(m.time_ns, 1795716062000000000);
  EXPECT_EQ(m.host, "kvm1");
  EXPECT_EQ(m.block_size, 65536u);
  ASSERT_EQ(m.volumes.size(), 2u);
  EXPECT_EQ(m.volumes[0].name, "images");
  EXPECT_EQ(m.volumes[0].source, "/var/lib/libvirt/images");
  EXPECT_EQ(m.volumes[0].root.type, EntryType::kDir);
  EXPECT_EQ(m.volumes[1].root.size, 10737418240u);
  EXPECT_EQ(m.volumes[1].root.content.size(), 2u);
  EXPECT_TRUE(m.tags.empty());
  EXPECT_EQ(m.stats.at("seconds_ms"), 1234);
  EXPECT_FALSE(m.full_read());
  EXPECT_EQ(EncodeManifest(m), kEarlierManifest);
}

// What backup wrote by hand before: the same JSON object, built key by key.
TEST(ManifestTest, EncodesAsTheEarlierWriterDid) {
  Manifest m = Sample();
  nlohmann::json vols = nlohmann::json::array();
  for (const auto& v : m.volumes) {
    nlohmann::json vol = {{"name", v.name}, {"root", EntryToJson(v.root)}};
    PutBytesField(&vol, "source", v.source);
    vols.push_back(std::move(vol));
  }
  nlohmann::json earlier = {
      {"version", 1},       {"name", "2026-11-26T180102Z.2"}, {"time", m.time}, {"time_ns", m.time_ns},
      {"host", "kvm1"},     {"block_size", uint32_t{65536}},   {"volumes", vols}, {"stats", m.stats},
  };
  earlier["tags"] = std::set<std::string>{"nightly", "before-upgrade"};
  const std::string body = earlier.dump();
  EXPECT_EQ(EncodeManifest(m), body + "\nsha256:" + Sha256(body).Hex() + "\n");
  EXPECT_NE(body.find("\"source_hex\""), std::string::npos);  // a source that is not UTF-8
  EXPECT_EQ(nlohmann::json(m), earlier);
}

TEST(ManifestTest, RoundTrip) {
  const Manifest m = Sample();
  Manifest back = DecodeManifest(EncodeManifest(m), "p.json");
  EXPECT_EQ(back.name, m.name);
  EXPECT_EQ(back.time, m.time);
  EXPECT_EQ(back.time_ns, m.time_ns);
  EXPECT_EQ(back.host, m.host);
  EXPECT_EQ(back.block_size, m.block_size);
  EXPECT_EQ(back.tags, m.tags);
  EXPECT_EQ(back.stats, m.stats);
  EXPECT_TRUE(back.full_read());
  ASSERT_EQ(back.volumes.size(), 2u);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(back.volumes[i].name, m.volumes[i].name);
    EXPECT_EQ(back.volumes[i].source, m.volumes[i].source);
    EXPECT_TRUE(Same(back.volumes[i].root, m.volumes[i].root));
  }
  EXPECT_EQ(back.FindVolume("disk"), &back.volumes[1]);
  EXPECT_EQ(back.FindVolume("nope"), nullptr);
  EXPECT_EQ(EncodeManifest(back), EncodeManifest(m));
}

TEST(ManifestTest, OptionalFieldsMayBeAbsent) {
  Manifest m = DecodeManifest(SealManifest(R"({"version":1,"volumes":[],"extra":{"a":1}})"), "p.json");
  EXPECT_TRUE(m.name.empty());
  EXPECT_EQ(m.time_ns, 0);
  EXPECT_EQ(m.host, "");
  EXPECT_EQ(m.block_size, 0u);
  EXPECT_TRUE(m.tags.empty() && m.volumes.empty());
  EXPECT_TRUE(m.stats.is_object() && m.stats.empty());
  // Written back without the name and block size it did not record.
  EXPECT_EQ(DecodeManifest(EncodeManifest(m), "p.json").name.str(), "");
}

TEST(ManifestTest, RefusesForgedInputNamingWhatIsWrong) {
  auto v = [](const std::string& fields) {
    return SealManifest(R"({"version":1,"volumes":[{"name":"v","root":{"name":"","type":"dir","mode":493,)"
                        R"("uid":0,"gid":0,"mtime_ns":1,"subtree":")" + Sha256("t").Hex() + R"("}}])" +
                        fields + "}");
  };
  ASSERT_NO_THROW(DecodeManifest(v(""), "p.json"));
  struct Case {
    std::string data;
    std::string says;
  } cases[] = {
      {"{}", "no checksum line"},
      {"{}\nsha256:00\n", "checksum mismatch"},
      {SealManifest("{not json"), "is not valid"},
      {SealManifest("[1,2]"), "is not a JSON object"},
      {SealManifest(R"({"volumes":[]})"), "bad version"},
      {SealManifest(R"({"version":1.5,"volumes":[]})"), "bad version"},
      {SealManifest(R"({"version":0,"volumes":[]})"), "bad version"},
      {SealManifest(R"({"version":2,"volumes":[]})"), "newer than this vmback"},
      {SealManifest(R"({"version":1})"), "no volume list"},
      {SealManifest(R"({"version":1,"volumes":{}})"), "no volume list"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"v"}]})"), "malformed volume"},
      {SealManifest(R"({"version":1,"volumes":[{"name":1,"root":{}}]})"), "malformed volume"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"v","root":[]}]})"), "malformed volume"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"v","root":{}}]})"), "volume 'v': malformed entry"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"..","root":{}}]})"), "invalid or repeated volume name '..'"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"a/b","root":{}}]})"), "invalid or repeated volume name"},
      {v(R"(,"name":"../x")"), "invalid point name '../x'"},
      {v(R"(,"name":"")"), "invalid point name"},
      {v(R"(,"name":7)"), "bad name"},
      {v(R"(,"time":1)"), "bad time"},
      {v(R"(,"time_ns":1.5)"), "bad time_ns"},
      {v(R"(,"time_ns":18446744073709551615)"), "bad time_ns"},
      {v(R"(,"host":["h"])"), "bad host"},
      {v(R"(,"block_size":1000)"), "bad block_size"},
      {v(R"(,"block_size":33554432)"), "bad block_size"},
      {v(R"(,"block_size":-65536)"), "bad block_size"},
      {v(R"(,"tags":"x")"), "bad tag list"},
      {v(R"(,"tags":["-x"])"), "invalid tag"},
      {v(R"(,"tags":["a b"])"), "invalid tag"},
      {v(R"(,"tags":[1])"), "invalid tag"},
      {v(R"(,"stats":[])"), "bad stats"},
      {SealManifest(R"({"version":1,"volumes":[{"name":"v","source_hex":"zz","root":{}}]})"), "bad hex in source"},
  };
  for (const auto& c : cases) {
    std::string msg = ErrorOf(c.data);
    EXPECT_NE(msg.find("/s/points/p.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.data << " -> " << msg;
  }
  // A repeated volume name.
  std::string one = R"({"name":"v","root":{"name":"","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}})";
  EXPECT_NE(ErrorOf(SealManifest(R"({"version":1,"volumes":[)" + one + "," + one + "]}")).find("repeated"),
            std::string::npos);
}

TEST(ManifestTest, PointNames) {
  for (const char* ok : {"2026-11-26T180102Z", "2026-11-26T180102Z.2", "p1", "before_upgrade:1"})
    EXPECT_TRUE(PointName::IsValid(ok)) << ok;
  for (const char* bad : {"", ".", "..", ".hidden", "-x", "a/b", "a b", "a\nb", "caf\xc3\xa9"})
    EXPECT_FALSE(PointName::IsValid(bad)) << bad;
  EXPECT_FALSE(PointName::IsValid(std::string(129, 'a')));
  EXPECT_TRUE(PointName::IsValid(std::string(128, 'a')));
  EXPECT_THROW(PointName::Parse("a/b", "here"), Error);
  EXPECT_LT(PointName::Parse("2026-11-26T180102Z", "t"), PointName::Parse("2026-11-26T180102Z.2", "t"));
  EXPECT_LT(PointName::Parse("2026-11-26T180102Z.2", "t"), PointName::Parse("2026-11-26T180102Z.10", "t"));
}

}  // namespace
}  // namespace vmback
