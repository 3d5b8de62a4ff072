// Restore-level fuzzing (issue 11): random forged points (names with NUL,
// slashes, dots, duplicates; symlinks pointing anywhere; hard links naming
// anything; nested directories; device nodes), restored with and without
// --force into a destination that is sometimes prepared with planted
// symlinks and a mount-like neighbour, inside a sentinel tree. After every
// run nothing outside the destination may have changed.
//
// Runs: 2000 by default (CI), 100000 with VMBACK_LONG_TESTS=1, or
// VMBACK_FUZZ_RUNS=N. Seeded (VMBACK_FUZZ_SEED, default 1): a failure names
// its run and seed, and repeats.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "run/restore.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/tree.h"
#include "test_util.h"
#include "util/encoding.h"
#include "util/log.h"

namespace vmback {
namespace {

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

class Forger {
 public:
  Forger(Store* store, const std::string& outside, uint64_t seed)
      : store_(store), outside_(outside), rng_(seed) {}

  nlohmann::json Point(const std::string& name) {
    nlohmann::json vols = nlohmann::json::array();
    int n = 1 + Pick(3);
    for (int i = 0; i < n; i++) {
      std::string vname = Pick(4) == 0 ? Name() : "v" + std::to_string(Pick(3));
      nlohmann::json root = Node(0);
      root.erase("name");
      root.erase("name_hex");
      vols.push_back({{"name", ValidUtf8OrHex(vname)}, {"source", "/forged"}, {"root", root}});
    }
    return {{"version", 1},      {"name", name}, {"time", "2026-01-01T00:00:00Z"},
            {"time_ns", 1},      {"host", "fuzz"}, {"block_size", store_->block_size()},
            {"volumes", vols},   {"stats", nlohmann::json::object()}};
  }

  uint32_t Pick(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }

  // A name an attacker might use: mostly plain, often hostile.
  std::string Name() {
    static const char* kNames[] = {"a", "b", "c", "lnk", "..", ".", "", "a/b", "../outside",
                                   "/abs", "x\n\x1b[2J", "dup", "dup"};
    switch (Pick(6)) {
      case 0:
        return std::string("..\0", 3);
      case 1:
        return std::string("a\0b", 3);
      case 2:
        return std::string(kNames[Pick(std::size(kNames))]) + "/" + kNames[Pick(std::size(kNames))];
      default:
        return kNames[Pick(std::size(kNames))];
    }
  }

  std::string Target() {
    static const char* kTargets[] = {"..", "../..", "/", "a", "../a", "lnk"};
    if (Pick(2)) return outside_ + (Pick(2) ? "" : "/file");
    return kTargets[Pick(std::size(kTargets))];
  }

 private:
  static std::string ValidUtf8OrHex(const std::string& s) { return IsValidUtf8(s) ? s : "bad"; }

  nlohmann::json Node(int depth) {
    nlohmann::json j;
    PutBytesField(&j, "name", Name());
    j["mode"] = Pick(4) == 0 ? 06777 : 0644;
    j["uid"] = Pick(2) ? 0 : 1234;
    j["gid"] = 0;
    j["mtime_ns"] = 1;
    uint32_t kind = depth >= 4 ? 1 + Pick(4) : Pick(5);
    if (kind == 0) {
      j["type"] = "dir";
      std::vector<nlohmann::json> entries;
      int n = static_cast<int>(Pick(5));
      for (int i = 0; i < n; i++) entries.push_back(Node(depth + 1));
      if (Pick(3)) {  // mostly sorted, as a reader demands; sometimes not
        std::sort(entries.begin(), entries.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
          return GetBytesField(a, "name", "") < GetBytesField(b, "name", "");
        });
      }
      nlohmann::json tree = {{"entries", entries}};
      j["subtree"] = store_->PutRaw(BlobType::kTree, tree.dump()).Hex();
    } else if (kind <= 2) {
      j["type"] = "file";
      std::string data = "data" + std::to_string(Pick(1000));
      Hash block = store_->PutRaw(BlobType::kData, data);
      j["size"] = data.size();
      j["content"] = {store_->PutRaw(BlobType::kList, EncodeIdList({block})).Hex()};
      if (Pick(3) == 0) PutBytesField(&j, "hardlink", Pick(2) ? Name() : Name() + "/" + Name());
      if (Pick(8) == 0) j["xattrs"] = {{HexEncode("user.x"), HexEncode("v")}};
    } else if (kind == 3) {
      j["type"] = "symlink";
      PutBytesField(&j, "target", Target());
    } else {
      j["type"] = Pick(2) ? "fifo" : "chardev";
      j["rdev"] = makedev(1, 3);
    }
    return j;
  }

  Store* store_;
  std::string outside_;
  std::mt19937_64 rng_;
};

TEST(RestoreFuzz, NothingOutsideTheDestinationChanges) {
  const bool long_run = std::getenv("VMBACK_LONG_TESTS") && std::string(std::getenv("VMBACK_LONG_TESTS")) == "1";
  const uint64_t runs = EnvNumber("VMBACK_FUZZ_RUNS", long_run ? 100000 : 2000);
  const uint64_t seed = EnvNumber("VMBACK_FUZZ_SEED", 1);
  test::TempDir tmp;
  const std::string outside = tmp / "outside", box = tmp / "box", dest = tmp / "box/dest";
  std::filesystem::create_directories(outside + "/sub");
  std::filesystem::create_directories(box + "/neighbour");
  test::WriteFile(outside + "/file", "sentinel");
  test::WriteFile(outside + "/sub/deep", "deep");
  test::WriteFile(box + "/neighbour/file", "neighbour");
  ::chmod((outside + "/file").c_str(), 0600);
  const std::string outside_state = test::DescribeTree(outside);
  const std::string neighbour_state = test::DescribeTree(box + "/neighbour");

  Env* env = Env::Default();
  Store::Init(env, tmp / "store", 4096, {});
  Logger log(LogLevel::kError, false);
  auto store = Store::Open(env, tmp / "store", LockMode::kExclusive, &log);
  Forger forge(store.get(), outside, seed);

  uint64_t refused = 0, restored = 0, batch_start = 0;
  constexpr uint64_t kBatch = 100;
  std::vector<nlohmann::json> batch;
  for (uint64_t run = 0; run < runs; run++) {
    if (run == batch_start) {
      // Forge a batch of points under one pack flush.
      batch.clear();
      for (uint64_t k = 0; k < kBatch; k++) batch.push_back(forge.Point("p" + std::to_string(run + k)));
      store->Flush();
      // Forged bytes, not a Manifest: written as a hostile disk would hold them.
      for (auto& m : batch)
        test::WriteFile(store->ManifestPath(m["name"].get<std::string>()), SealManifest(m.dump()));
      batch_start += kBatch;
    }
    const nlohmann::json& m = batch[run % kBatch];
    std::filesystem::remove_all(dest);
    RestoreOptions options;
    // Sometimes restore over a prepared destination: planted symlinks where
    // the forged names will land.
    if (forge.Pick(2)) {
      std::filesystem::create_directories(dest);
      for (const char* n : {"v0", "v1", "v2", "a", "lnk"})
        if (forge.Pick(2)) ::symlink(forge.Pick(2) ? outside.c_str() : (outside + "/file").c_str(), (dest + "/" + n).c_str());
      options.overwrite = Overwrite::kAllow;
    }
    options.owner = forge.Pick(2);
    options.privileges = forge.Pick(2);
    std::string path;
    if (forge.Pick(4) == 0 && !m["volumes"].empty()) path = m["volumes"][0]["name"].get<std::string>() + "/a";
    std::string target = path.empty() || forge.Pick(2) ? dest : dest + "/one";
    try {
      Restore(store.get(), m["name"].get<std::string>(), path, target, options, &log);
      restored++;
    } catch (const Error&) {
      refused++;
    }
    ASSERT_EQ(test::DescribeTree(outside), outside_state) << "run " << run << " seed " << seed << ": outside changed";
    ASSERT_EQ(test::DescribeTree(box + "/neighbour"), neighbour_state)
        << "run " << run << " seed " << seed << ": the neighbour of the destination changed";
    for (const auto& e : std::filesystem::directory_iterator(box)) {
      std::string n = e.path().filename();
      ASSERT_TRUE(n == "dest" || n == "neighbour") << "run " << run << " seed " << seed << ": " << n << " appeared beside dest";
    }
    for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
      std::string n = e.path().filename();
      ASSERT_TRUE(n == "box" || n == "outside" || n == "store")
          << "run " << run << " seed " << seed << ": " << n << " appeared outside the box";
    }
  }
  std::printf("restore fuzz: %llu runs (seed %llu): %llu restored, %llu refused, 0 writes outside\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(restored), static_cast<unsigned long long>(refused));
  EXPECT_GT(restored, 0u) << "the fuzzer never got a restore through: it tests nothing";
  EXPECT_GT(refused, 0u) << "the fuzzer never forged anything refused: it tests nothing";
}

}  // namespace
}  // namespace vmback
