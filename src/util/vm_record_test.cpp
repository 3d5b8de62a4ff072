// Tests for util/vm_record.cpp: VM records round-trip, and forged ones are
// refused where they are decoded.
#include "util/vm_record.h"

#include <gtest/gtest.h>

#include <functional>

#include "util/error.h"

namespace vmback {
namespace {

const std::vector<std::string> kVolumes = {"images", "lv"};

std::vector<VmRecord> Sample() {
  VmRecord web;
  web.name = "web";
  web.domain_xml = "<domain><name>web</name></domain>";
  web.disks.push_back({"vda", "/srv/images/web.img", "raw", "images", "sub/web.img", true});
  web.disks.push_back({"vdb", "/dev/vg0/data", "raw", "lv", "", true});
  web.disks.push_back({"vdc", "/nfs/x.qcow2", "qcow2", "", "", false});
  return {web};
}

// The error kind and message of decoding j, or "ok".
std::string DecodeError(const nlohmann::json& j) {
  try {
    VmRecordsFromJson(j, kVolumes, "points/p.json");
    return "ok";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << e.what();
    return e.what();
  }
}

TEST(VmRecordTest, RoundTrip) {
  const auto back = VmRecordsFromJson(VmRecordsToJson(Sample()), kVolumes, "p");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].name, "web");
  EXPECT_EQ(back[0].domain_xml, Sample()[0].domain_xml);
  ASSERT_EQ(back[0].disks.size(), 3u);
  EXPECT_EQ(back[0].disks[0].path, "sub/web.img");
  EXPECT_TRUE(back[0].disks[0].located);
  EXPECT_EQ(back[0].disks[1].volume, "lv");
  EXPECT_EQ(back[0].disks[1].path, "");
  EXPECT_FALSE(back[0].disks[2].located);
  EXPECT_EQ(back[0].disks[2].format, "qcow2");
}

TEST(VmRecordTest, ForgedPathsAndVolumesAreRefused) {
  for (const char* path : {"../etc/shadow", "/etc/shadow", "a//b", "a/../../b", "a/./b", "a/", ".."}) {
    nlohmann::json j = VmRecordsToJson(Sample());
    j[0]["disks"][0]["path"] = path;
    EXPECT_NE(DecodeError(j), "ok") << path;
  }
  nlohmann::json j = VmRecordsToJson(Sample());
  j[0]["disks"][0]["path"] = std::string("x\0y", 3);
  EXPECT_NE(DecodeError(j), "ok");
  j = VmRecordsToJson(Sample());
  j[0]["disks"][0]["volume"] = "other";
  EXPECT_NE(DecodeError(j).find("a volume the point does not hold"), std::string::npos);
  j = VmRecordsToJson(Sample());
  j[0]["disks"][0]["volume"] = "../images";
  EXPECT_NE(DecodeError(j), "ok");
}

TEST(VmRecordTest, ForgedNamesTargetsAndSizesAreRefused) {
  auto with = [](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json j = VmRecordsToJson(Sample());
    change(j);
    return DecodeError(j);
  };
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["name"] = "a/b"; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["name"] = ""; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["name"] = "web\x1b[2J"; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["name"] = std::string("\xff\xfe"); }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j.push_back(j[0]); }).find("twice"), std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"][1]["target"] = "vda"; }).find("twice"), std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"][0]["target"] = "VDA"; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"][0]["target"] = std::string(33, 'a'); }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"][0]["format"] = "raw;rm"; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["domain_xml"] = std::string(kMaxVmXmlBytes + 1, 'x'); }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["domain_xml"] = 42; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"] = nlohmann::json::object(); }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j[0]["disks"][0] = "vda"; }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) { j = nlohmann::json::object(); }), "ok");
  EXPECT_NE(with([](nlohmann::json& j) {
              for (size_t i = 0; i < kMaxVmDisks; i++) j[0]["disks"].push_back({{"target", "x" + std::to_string(i)}, {"source", ""}, {"format", ""}});
            }),
            "ok");
  EXPECT_EQ(with([](nlohmann::json&) {}), "ok");
}

TEST(VmRecordTest, FindNamesWhatThePointHolds) {
  const auto vms = Sample();
  EXPECT_EQ(&FindVmRecord(vms, "web", "p"), &vms[0]);
  try {
    FindVmRecord(vms, "db", "2026-12-01T000000Z");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("holds web"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no VM named db"), std::string::npos) << e.what();
  }
  try {
    FindVmRecord({}, "db", "p");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("records no VMs"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vmback
