// Tests of the store's mirrors (see the header comment of store/store.h):
// every write reaches every present copy; damage (flipped bits, truncated or
// deleted packs and manifests) on one copy is healed from another by reads
// and by Verify, with the bad file kept aside; the same damage on every copy
// is reported, point by point and file by file, and harms nothing else; an
// I/O error is never taken for damage; a copy that was absent catches up
// through Sync without bringing pruned points back; an empty replacement
// disk becomes a full copy; and a `cp -a` of a store directory is not a
// mirror of its original.
#include "store/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "helpers/fault_env.h"
#include "run/backup.h"
#include "run/restore.h"
#include "run/verify.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;

using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::SetMtimeNs;
using test::WriteFile;

constexpr int64_t kT0 = 1700000000;
constexpr uint32_t kBlock = 4096;

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

bool AnyContains(const std::vector<std::string>& v, const std::string& a, const std::string& b = "") {
  for (const auto& s : v)
    if (Contains(s, a) && Contains(s, b)) return true;
  return false;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

std::string Describe(const VerifyReport& r) {
  std::string s = "repaired " + std::to_string(r.repaired) + ", problems:\n";
  for (const auto& p : r.problems) s += "  [" + p.point + "] [" + p.path + "] " + p.reason + "\n";
  for (const auto& c : r.copies)
    s += "  copy " + c.dir + ": checked " + std::to_string(c.packs_checked) + " missing " +
         std::to_string(c.packs_missing) + " damaged " + std::to_string(c.packs_damaged) + " manifests " +
         std::to_string(c.manifests_damaged) + " repaired " + std::to_string(c.repaired) + " unrepairable " +
         std::to_string(c.unrepairable) + "\n";
  return s;
}

bool IsBad(const std::string& name) { return Contains(name, ".bad-"); }

// Every pack, index and point file of a store copy (path relative to the
// copy -> bytes), leaving out damaged files kept aside, temp files and the
// lock. A tombstone (points/NAME.deleted) counts by its presence only: its
// text is the deletion time where the point was deleted, "synced" where
// Sync() propagated it.
std::map<std::string, std::string> StoreFiles(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const char* sub : {"packs", "index", "points"}) {
    fs::path root = fs::path(dir) / sub;
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename().string();
      if (IsBad(name) || Contains(name, ".tmp-")) continue;
      bool tombstone = name.size() > 8 && name.compare(name.size() - 8, 8, ".deleted") == 0;
      out[fs::relative(e.path(), dir).string()] = tombstone ? "" : ReadFile(e.path().string());
    }
  }
  return out;
}

// Names the differences between two copies' files (empty if none).
std::string DiffStores(const std::string& a, const std::string& b) {
  auto fa = StoreFiles(a), fb = StoreFiles(b);
  std::string out;
  for (const auto& [name, data] : fa) {
    auto it = fb.find(name);
    if (it == fb.end()) out += "  only in " + a + ": " + name + "\n";
    else if (it->second != data) out += "  differs: " + name + "\n";
  }
  for (const auto& [name, data] : fb)
    if (!fa.count(name)) out += "  only in " + b + ": " + name + "\n";
  return out;
}

// Files kept aside as *.bad-TIME anywhere in a copy (relative paths).
std::vector<std::string> BadFiles(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (IsBad(e.path().filename().string())) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// The kept-aside files for rel (rel.bad-*), relative paths.
std::vector<std::string> KeptAside(const std::string& dir, const std::string& rel) {
  std::vector<std::string> out;
  for (const auto& b : BadFiles(dir))
    if (b.compare(0, rel.size() + 5, rel + ".bad-") == 0) out.push_back(b);
  return out;
}

std::vector<std::string> PackFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& [name, data] : StoreFiles(dir))
    if (name.compare(0, 6, "packs/") == 0) out.push_back(name);
  return out;
}

// The kind of Error fn throws; nullopt if it throws none.
template <typename Fn>
std::optional<ErrorKind> KindOf(Fn fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  return std::nullopt;
}

// A seeded choice of damage: one pack with flipped bits, one truncated, one
// deleted; one manifest with a flipped bit, one truncated, one deleted. The
// same plan applied to two copies does the same damage to both.
struct DamagePlan {
  std::string flip_pack, trunc_pack, del_pack;
  std::vector<std::pair<uint64_t, uint8_t>> pack_flips;  // offset, XOR mask
  uint64_t pack_trunc_size = 0;
  std::string flip_point, trunc_point, del_point;
  uint64_t manifest_flip_offset = 0;
  uint64_t manifest_trunc_size = 0;
};

// Fisher-Yates with our own rng draws: the same on every standard library.
template <typename T>
void Shuffle(std::vector<T>* v, std::mt19937_64* rng) {
  for (size_t i = v->size(); i > 1; i--) std::swap((*v)[i - 1], (*v)[(*rng)() % i]);
}

DamagePlan PlanDamage(const std::string& dir, const std::vector<std::string>& points, uint64_t seed,
                      bool manifests_too) {
  std::mt19937_64 rng(seed);
  DamagePlan p;
  std::vector<std::string> packs = PackFiles(dir);
  if (packs.size() < 4) {
    ADD_FAILURE() << "need at least 4 packs to damage 3 and keep one, have " << packs.size();
    return p;
  }
  Shuffle(&packs, &rng);
  p.flip_pack = packs[0];
  p.trunc_pack = packs[1];
  p.del_pack = packs[2];
  uint64_t flip_size = fs::file_size(fs::path(dir) / p.flip_pack);
  for (int i = 0; i < 3; i++) p.pack_flips.emplace_back(rng() % flip_size, static_cast<uint8_t>(1u << (rng() % 8)));
  uint64_t trunc_size = fs::file_size(fs::path(dir) / p.trunc_pack);
  p.pack_trunc_size = trunc_size / 4 + rng() % (trunc_size / 2);
  if (manifests_too) {
    std::vector<std::string> pts = points;
    if (pts.size() < 3) {
      ADD_FAILURE() << "need at least 3 points";
      return p;
    }
    Shuffle(&pts, &rng);
    p.flip_point = pts[0];
    p.trunc_point = pts[1];
    p.del_point = pts[2];
    std::string m = "points/" + p.flip_point + ".json";
    p.manifest_flip_offset = rng() % fs::file_size(fs::path(dir) / m);
    p.manifest_trunc_size = fs::file_size(fs::path(dir) / ("points/" + p.trunc_point + ".json")) / 2;
  }
  return p;
}

// Damages one copy as planned; returns rel path -> damaged bytes of the
// files that are still there (flipped and truncated).
std::map<std::string, std::string> ApplyDamage(const DamagePlan& p, const std::string& dir) {
  std::map<std::string, std::string> damaged;
  for (const auto& [off, mask] : p.pack_flips) test::XorFileByte(dir + "/" + p.flip_pack, off, mask);
  damaged[p.flip_pack] = ReadFile(dir + "/" + p.flip_pack);
  fs::resize_file(dir + "/" + p.trunc_pack, p.pack_trunc_size);
  damaged[p.trunc_pack] = ReadFile(dir + "/" + p.trunc_pack);
  fs::remove(dir + "/" + p.del_pack);
  if (!p.flip_point.empty()) {
    std::string flip = "points/" + p.flip_point + ".json";
    test::XorFileByte(dir + "/" + flip, p.manifest_flip_offset, 0x20);
    damaged[flip] = ReadFile(dir + "/" + flip);
  }
  if (!p.trunc_point.empty()) {
    std::string trunc = "points/" + p.trunc_point + ".json";
    fs::resize_file(dir + "/" + trunc, p.manifest_trunc_size);
    damaged[trunc] = ReadFile(dir + "/" + trunc);
  }
  if (!p.del_point.empty()) fs::remove(dir + "/points/" + p.del_point + ".json");
  return damaged;
}

// What a point held at backup time.
struct Snapshot {
  std::string tree;                           // DescribeTree of the source
  std::map<std::string, std::string> files;   // relative path -> content
};

class MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store::Init(Env::Default(), a_, kBlock, {b_});
    ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
  }

  std::unique_ptr<Store> Open(const std::string& dir, LockMode mode = LockMode::kExclusive,
                              Env* env = Env::Default(), Logger* log = nullptr) {
    return Store::Open(env, dir, mode, log ? log : &log_);
  }

  // Generation g of the source: a few files that never change (all in the
  // first point's pack), one that changes every time, one new file per
  // generation, the one of two generations ago removed. Every mtime is set,
  // so the quick check never mistakes new content for old.
  void WriteGeneration(int g) {
    if (g == 0) {
      ASSERT_EQ(::mkdir((src_ + "/base").c_str(), 0755), 0);
      ASSERT_EQ(::mkdir((src_ + "/base/deep").c_str(), 0700), 0);
      for (int i = 0; i < 3; i++) {
        std::string f = src_ + "/base/f" + std::to_string(i);
        WriteFile(f, RandomBytes(9000 + 3000 * i, 100 + i));
        SetMtimeNs(f, kT0 + i, 1000 * i);
      }
      WriteFile(src_ + "/base/deep/leaf", RandomBytes(5000, 110));
      SetMtimeNs(src_ + "/base/deep/leaf", kT0 + 10, 5);
      SetMtimeNs(src_ + "/base/deep", kT0 + 20, 6);
      SetMtimeNs(src_ + "/base", kT0 + 21, 7);
    }
    WriteFile(src_ + "/changing.bin", RandomBytes(20000 + 100 * g, 200 + g));
    SetMtimeNs(src_ + "/changing.bin", kT0 + 1000 + g, 11);
    std::string gen = src_ + "/gen-" + std::to_string(g) + ".bin";
    WriteFile(gen, RandomBytes(8000 + 500 * g, 300 + g));
    SetMtimeNs(gen, kT0 + 2000 + g, 12);
    if (g >= 2) {
      ASSERT_EQ(::unlink((src_ + "/gen-" + std::to_string(g - 2) + ".bin").c_str()), 0);
    }
    SetMtimeNs(src_, kT0 + 3000 + g, 13);
  }

  std::string BackupGeneration(Store* s, int g) {
    WriteGeneration(g);
    BackupResult r = RunBackup(s, {{"VOL", src_}}, {}, &log_);
    EXPECT_EQ(r.errors, 0u);
    Snapshot snap;
    snap.tree = DescribeTree(src_);
    for (const auto& e : fs::recursive_directory_iterator(src_))
      if (e.is_regular_file()) snap.files[fs::relative(e.path(), src_).string()] = ReadFile(e.path().string());
    expected_[r.point] = std::move(snap);
    points_.push_back(r.point);
    return r.point;
  }

  // n backups through a store on a_ (with its mirror), closed afterwards.
  void MakePoints(int n) {
    auto s = Open(a_);
    ASSERT_EQ(s->copies().size(), 2u);
    for (int g = 0; g < n; g++) BackupGeneration(s.get(), g);
  }

  // The pack (relative path) and entry of blob id on copy dir.
  bool FindBlob(const std::string& dir, const Hash& id, std::string* rel, PackEntry* entry) {
    for (const auto& p : PackFiles(dir)) {
      auto f = Env::Default()->OpenRead(dir + "/" + p);
      for (const auto& e : ReadPackEntries(f.get())) {
        if (e.id == id) {
          *rel = p;
          *entry = e;
          return true;
        }
      }
    }
    return false;
  }

  std::string NewDest() { return tmp_ / ("restore-" + std::to_string(++dests_)); }

  // Every point restores bit-identical to its source.
  void ExpectRestoresEverything(Store* s, const std::string& why) {
    std::vector<std::string> listed = s->ListPoints();
    EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()),
              std::set<std::string>(points_.begin(), points_.end()))
        << why;
    for (const auto& point : points_) {
      std::string dest = NewDest();
      try {
        Restore(s, point, "", dest, Overwrite::kRefuse, &log_);
      } catch (const Error& e) {
        ADD_FAILURE() << why << ": restore of point " << point << " failed: " << e.what();
        continue;
      }
      EXPECT_EQ(DescribeTree(dest + "/VOL"), expected_[point].tree) << why << ": point " << point;
    }
  }

  void ExpectSameCopies(const std::string& why) {
    std::string diff = DiffStores(a_, b_);
    EXPECT_TRUE(diff.empty()) << why << ": the copies differ:\n" << diff;
  }

  // Runs Verify on a store opened on dir (exclusive, as `vmback verify`).
  VerifyReport RunVerify(const std::string& dir, Logger* log) {
    auto s = Open(dir, LockMode::kExclusive, Env::Default(), log);
    return Verify(s.get(), log);
  }

  test::TempDir tmp_;
  std::string a_ = tmp_ / "a";
  std::string b_ = tmp_ / "b";
  std::string src_ = tmp_ / "src";
  Logger log_{LogLevel::kError, false};
  std::map<std::string, Snapshot> expected_;
  std::vector<std::string> points_;
  int dests_ = 0;
};

TEST_F(MirrorTest, EveryWriteReachesBothCopies) {
  MakePoints(3);
  ExpectSameCopies("after three backups");
  EXPECT_GE(PackFiles(a_).size(), 3u);
  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
  ASSERT_EQ(r.copies.size(), 2u);
  for (const auto& c : r.copies) EXPECT_EQ(c.packs_checked, r.packs) << Describe(r);
}

// ---------------------------------------------------------------------------
// Damage on one copy: Verify heals it from the other.

class OneCopyDamageTest : public MirrorTest, public ::testing::WithParamInterface<int> {};

TEST_P(OneCopyDamageTest, VerifyRepairsEverythingAndKeepsTheDamagedFilesAside) {
  const size_t damaged_copy = static_cast<size_t>(GetParam());
  const std::string dir = damaged_copy == 0 ? a_ : b_;
  const std::string other = damaged_copy == 0 ? b_ : a_;
  MakePoints(6);
  ExpectSameCopies("before the damage");
  const auto before = StoreFiles(a_);

  DamagePlan plan = PlanDamage(dir, points_, 20260101 + damaged_copy, true);
  ASSERT_FALSE(plan.flip_pack.empty());
  auto damaged = ApplyDamage(plan, dir);
  ASSERT_FALSE(DiffStores(a_, b_).empty());

  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  ASSERT_EQ(r.copies.size(), 2u);
  const CopyReport& bad = r.copies[damaged_copy];
  const CopyReport& good = r.copies[1 - damaged_copy];
  EXPECT_EQ(bad.dir, dir);
  // Two damaged packs and two damaged manifests rewritten from the other
  // copy (the deleted ones are brought back too; see below).
  EXPECT_GE(bad.repaired, 4u) << Describe(r);
  EXPECT_GE(bad.packs_damaged, 2u) << Describe(r);
  EXPECT_GE(bad.manifests_damaged, 2u) << Describe(r);
  EXPECT_EQ(bad.unrepairable, 0u) << Describe(r);
  EXPECT_EQ(good.repaired, 0u) << Describe(r);
  EXPECT_EQ(good.packs_damaged, 0u) << Describe(r);
  EXPECT_EQ(good.packs_missing, 0u) << Describe(r);
  EXPECT_EQ(good.manifests_damaged, 0u) << Describe(r);
  EXPECT_EQ(good.unrepairable, 0u) << Describe(r);
  EXPECT_EQ(r.repaired, bad.repaired + good.repaired);
  EXPECT_GE(vlog.warnings(), 1);  // repairs are worth a warning

  // Both copies byte-identical again, and as they were before the damage.
  ExpectSameCopies("after verify");
  EXPECT_TRUE(StoreFiles(a_) == before) << "verify changed what was not damaged";

  // Each damaged file that was still there is kept aside with its bytes.
  for (const auto& [rel, bytes] : damaged) {
    auto kept = KeptAside(dir, rel);
    ASSERT_EQ(kept.size(), 1u) << rel << " not kept aside exactly once; bad files:\n" << Joined(BadFiles(dir));
    EXPECT_TRUE(ReadFile(dir + "/" + kept[0]) == bytes) << kept[0] << " does not hold the damaged bytes";
  }
  EXPECT_EQ(BadFiles(other), std::vector<std::string>{}) << "the good copy was touched";

  // Restores are bit-identical, from the store and from each copy alone.
  {
    auto s = Open(a_, LockMode::kShared);
    ExpectRestoresEverything(s.get(), "after verify");
    EXPECT_EQ(s->repairs(), 0u);
  }
  fs::rename(a_, a_ + ".away");
  {
    auto s = Open(b_, LockMode::kShared);
    ExpectRestoresEverything(s.get(), "the mirror alone");
  }
  fs::rename(a_ + ".away", a_);

  // A second verify finds nothing to do.
  Logger vlog2(LogLevel::kError, false);
  VerifyReport r2 = RunVerify(a_, &vlog2);
  EXPECT_TRUE(r2.ok()) << Describe(r2);
  EXPECT_EQ(r2.repaired, 0u) << Describe(r2);
  ExpectSameCopies("after the second verify");
}

INSTANTIATE_TEST_SUITE_P(PrimaryOrMirror, OneCopyDamageTest, ::testing::Values(0, 1),
                         [](const auto& info) { return info.param == 0 ? "Primary" : "Mirror"; });

// A pack file lost from one copy is damage to that copy: verify must say so
// (per copy, and as a repair, so `vmback verify` exits 5, not 0).
TEST_F(MirrorTest, PackLostFromOneCopyIsReportedAgainstThatCopy) {
  MakePoints(3);
  std::vector<std::string> packs = PackFiles(b_);
  ASSERT_GE(packs.size(), 2u);
  fs::remove(b_ + "/" + packs[1]);
  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  ExpectSameCopies("after verify");
  ASSERT_EQ(r.copies.size(), 2u);
  const char* bug =
      "BUG: verify's up-front Sync() silently copies a pack lost from a copy back into it, so the "
      "report shows no missing pack and no repair for that copy (and `vmback verify` exits 0)\n";
  EXPECT_GE(r.copies[1].packs_missing, 1u) << bug << Describe(r);
  EXPECT_GE(r.copies[1].repaired, 1u) << bug << Describe(r);
  EXPECT_EQ(r.copies[0].repaired, 0u) << Describe(r);
  EXPECT_GE(r.repaired, 1u) << bug << Describe(r);
}

// ---------------------------------------------------------------------------
// The same damage on both copies: found, reported, nothing else harmed.

TEST_F(MirrorTest, SameDamageOnBothCopiesIsReportedAndHarmsNothingElse) {
  MakePoints(7);
  const auto before = StoreFiles(a_);
  // Only packs and one manifest: a manifest deleted from every copy leaves
  // no trace of its point to report.
  DamagePlan plan = PlanDamage(a_, points_, 424242, true);
  ASSERT_FALSE(plan.flip_pack.empty());
  plan.trunc_point.clear();
  plan.del_point.clear();
  const std::string flip_manifest = "points/" + plan.flip_point + ".json";
  auto damaged_a = ApplyDamage(plan, a_);
  test::XorFileByte(b_ + "/" + flip_manifest, plan.manifest_flip_offset, 0x20);  // ApplyDamage did it on a_
  {
    DamagePlan packs_only = plan;
    packs_only.flip_point.clear();
    ApplyDamage(packs_only, b_);
  }
  damaged_a[flip_manifest] = ReadFile(a_ + "/" + flip_manifest);
  ExpectSameCopies("the same damage on both");

  Logger vlog(LogLevel::kError, false);
  VerifyReport r;
  {
    auto s = Open(a_, LockMode::kExclusive, Env::Default(), &vlog);
    ASSERT_NO_THROW(r = Verify(s.get(), &vlog));
  }
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
  EXPECT_GE(r.bad_packs, 2u) << Describe(r);  // flipped and truncated; the deleted one is "missing"
  ASSERT_EQ(r.copies.size(), 2u);
  for (const auto& c : r.copies) {
    EXPECT_GE(c.unrepairable, 3u) << Describe(r);  // 2 packs, 1 manifest
    EXPECT_EQ(c.repaired, 0u) << Describe(r);
  }
  // The damaged pack files are named, and so is the point whose manifest is bad.
  std::vector<std::string> lines;
  for (const auto& p : r.problems) lines.push_back("[" + p.point + "] [" + p.path + "] " + p.reason);
  const std::string flip_hex = fs::path(plan.flip_pack).stem().string();
  const std::string trunc_hex = fs::path(plan.trunc_pack).stem().string();
  EXPECT_TRUE(AnyContains(lines, flip_hex)) << Describe(r);
  EXPECT_TRUE(AnyContains(lines, trunc_hex)) << Describe(r);
  bool manifest_named = false;
  for (const auto& p : r.problems) manifest_named |= p.point == plan.flip_point && Contains(p.path, flip_manifest);
  EXPECT_TRUE(manifest_named) << "the point with the damaged manifest is not named\n" << Describe(r);
  EXPECT_FALSE(vlog.problems().empty());

  // Nothing was renamed or rewritten: damaged files stay where they are
  // (no copy is better), everything else is as before.
  EXPECT_EQ(BadFiles(a_), std::vector<std::string>{});
  EXPECT_EQ(BadFiles(b_), std::vector<std::string>{});
  ExpectSameCopies("after verify of the doubly damaged store");
  auto after = StoreFiles(a_);
  for (const auto& [rel, data] : before) {
    if (rel == plan.del_pack) {
      EXPECT_FALSE(after.count(rel)) << rel << " came back from nowhere";
    } else if (damaged_a.count(rel)) {
      EXPECT_TRUE(after.count(rel) && after[rel] == damaged_a[rel]) << rel << " was changed";
    } else {
      EXPECT_TRUE(after.count(rel) && after[rel] == data) << rel << " was harmed";
    }
  }

  // What verify names is exactly what cannot be restored: every file of every
  // point either is named (or lies below a named path, or its point's
  // manifest is bad) and restore refuses it, or it restores bit-identical.
  auto s = Open(a_, LockMode::kShared);
  int affected = 0, fine = 0;
  for (const auto& point : points_) {
    for (const auto& [rel, content] : expected_[point].files) {
      const std::string path = "VOL/" + rel;
      bool named = false;
      for (const auto& p : r.problems) {
        if (p.point != point) continue;
        if (p.path == path || Contains(p.path, ".json") ||
            (p.path.size() < path.size() && path.compare(0, p.path.size() + 1, p.path + "/") == 0))
          named = true;
      }
      std::string dest = NewDest();
      std::string msg;
      RestoreStats st;
      auto kind = KindOf([&] { st = Restore(s.get(), point, path, dest, Overwrite::kRefuse, &log_); }, &msg);
      if (named) {
        affected++;
        // Refused (a damaged manifest), or restored with the lost ranges
        // left zero and listed: never wrong bytes without a word.
        EXPECT_TRUE(kind == ErrorKind::kCorrupt || (!kind && st.damaged > 0))
            << point << " " << path << " is reported damaged but restore "
            << (kind ? "said: " + msg : std::string("reported no damage"));
        if (!kind && st.damaged == 0) {
          EXPECT_TRUE(ReadFile(dest) == content) << "restore of a damaged file gave wrong bytes silently";
        }
      } else {
        fine++;
        EXPECT_FALSE(kind) << point << " " << path << " is not reported damaged but restore failed: " << msg;
        if (!kind) {
          EXPECT_EQ(st.damaged, 0u) << point << " " << path << ": " << (st.damage.empty() ? "" : st.damage[0]);
          EXPECT_TRUE(ReadFile(dest) == content) << point << " " << path;
        }
      }
    }
  }
  EXPECT_GT(affected, 0) << Describe(r);
  EXPECT_GT(fine, 0) << Describe(r);
  // Reads found nothing to repair either.
  EXPECT_EQ(s->repairs(), 0u);
  EXPECT_EQ(BadFiles(a_), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------
// Reads repair: a restore that meets a bad pack on the primary reads the
// mirror and repairs the primary.

enum class Harm { kFlip, kTruncate, kDelete };

class ReadRepairTest : public MirrorTest, public ::testing::WithParamInterface<Harm> {};

TEST_P(ReadRepairTest, RestoreGivesRightBytesAndRepairsThePrimary) {
  MakePoints(3);
  const std::string point = points_[1];
  const std::string content = expected_[point].files.at("changing.bin");
  // changing.bin's block list in that point. It sits in the point's
  // metadata pack beside the root tree, which a restore reads first: the
  // first read goes to the primary, and the rest of that pack's range with
  // it (store/read_balance.h), so the restore meets the harm.
  Hash id;
  {
    auto s = Open(a_, LockMode::kShared);
    const Entry root = s->ReadPoint(point).volumes.at(0).root;
    for (const auto& e : DecodeTree(s->Get(root.subtree, BlobType::kTree), "test"))
      if (e.name == "changing.bin") id = e.content.at(0);
  }
  ASSERT_FALSE(id.IsZero());
  std::string rel;
  PackEntry e;
  ASSERT_TRUE(FindBlob(a_, id, &rel, &e));
  const std::string good = ReadFile(b_ + "/" + rel);
  std::string damaged;
  switch (GetParam()) {
    case Harm::kFlip:
      test::XorFileByte(a_ + "/" + rel, e.offset + e.stored_len / 2, 0x08);
      break;
    case Harm::kTruncate:
      fs::resize_file(a_ + "/" + rel, e.offset + e.stored_len / 2);
      break;
    case Harm::kDelete:
      fs::remove(a_ + "/" + rel);
      break;
  }
  if (GetParam() != Harm::kDelete) damaged = ReadFile(a_ + "/" + rel);

  Logger rlog(LogLevel::kError, false);
  {
    auto s = Open(a_, LockMode::kShared, Env::Default(), &rlog);  // as `vmback restore`
    std::string dest = NewDest();
    ASSERT_NO_THROW(Restore(s.get(), point, "VOL/changing.bin", dest, Overwrite::kRefuse, &rlog));
    EXPECT_TRUE(ReadFile(dest) == content) << "restored bytes are wrong";
    EXPECT_EQ(s->repairs(), 1u);
  }
  EXPECT_TRUE(AnyContains(rlog.problems(), "repaired", rel)) << Joined(rlog.problems());
  ASSERT_TRUE(fs::exists(a_ + "/" + rel));
  EXPECT_TRUE(ReadFile(a_ + "/" + rel) == good) << "the primary's pack was not repaired";
  EXPECT_TRUE(ReadFile(b_ + "/" + rel) == good) << "the mirror's pack was changed";
  auto kept = KeptAside(a_, rel);
  if (GetParam() == Harm::kDelete) {
    EXPECT_TRUE(kept.empty());
  } else {
    ASSERT_EQ(kept.size(), 1u) << Joined(BadFiles(a_));
    EXPECT_TRUE(ReadFile(a_ + "/" + kept[0]) == damaged);
  }
  EXPECT_EQ(BadFiles(b_), std::vector<std::string>{});
  ExpectSameCopies("after the read repair");

  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
}

INSTANTIATE_TEST_SUITE_P(Harms, ReadRepairTest, ::testing::Values(Harm::kFlip, Harm::kTruncate, Harm::kDelete),
                         [](const auto& info) {
                           return info.param == Harm::kFlip       ? "FlippedBit"
                                  : info.param == Harm::kTruncate ? "Truncated"
                                                                  : "Deleted";
                         });

TEST_F(MirrorTest, ReadingADamagedManifestRepairsThePrimary) {
  MakePoints(2);
  const std::string rel = "points/" + points_[0] + ".json";
  const std::string good = ReadFile(b_ + "/" + rel);
  test::XorFileByte(a_ + "/" + rel, good.size() / 3, 0x01);
  {
    auto s = Open(a_, LockMode::kShared);
    ExpectRestoresEverything(s.get(), "with a flipped manifest on the primary");
    EXPECT_EQ(s->repairs(), 1u);
  }
  EXPECT_TRUE(ReadFile(a_ + "/" + rel) == good);
  EXPECT_EQ(KeptAside(a_, rel).size(), 1u) << Joined(BadFiles(a_));
}

// Repairs copy whole packs verified by their SHA-256: a pack damaged on
// every copy (in different places) is never copied over another, neither by
// a read's repair nor by Sync.
TEST_F(MirrorTest, RepairsNeverCopyADamagedPack) {
  MakePoints(3);
  const std::string point = points_[1];
  const std::string content = expected_[point].files.at("changing.bin");
  Hash id = Sha256(std::string_view(content).substr(kBlock, kBlock));
  std::string rel;
  PackEntry e;
  ASSERT_TRUE(FindBlob(a_, id, &rel, &e));
  // Another blob of the same pack, damaged on the mirror.
  PackEntry other;
  {
    auto f = Env::Default()->OpenRead(b_ + "/" + rel);
    for (const auto& x : ReadPackEntries(f.get()))
      if (x.id != id && x.stored_len > 16) other = x;
  }
  ASSERT_NE(other.stored_len, 0u);
  test::XorFileByte(a_ + "/" + rel, e.offset + e.stored_len / 2, 0x02);
  test::XorFileByte(b_ + "/" + rel, other.offset + other.stored_len / 2, 0x02);
  const std::string bad_a = ReadFile(a_ + "/" + rel), bad_b = ReadFile(b_ + "/" + rel);

  // The read gets the right bytes from the mirror, but cannot repair A from
  // a mirror pack that is not whole.
  {
    Logger rlog(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kShared, Env::Default(), &rlog);
    std::string dest = NewDest();
    ASSERT_NO_THROW(Restore(s.get(), point, "VOL/changing.bin", dest, Overwrite::kRefuse, &rlog));
    EXPECT_TRUE(ReadFile(dest) == content);
    EXPECT_EQ(s->repairs(), 0u);
  }
  EXPECT_TRUE(ReadFile(a_ + "/" + rel) == bad_a) << "A's pack was replaced by a damaged copy";
  EXPECT_TRUE(ReadFile(b_ + "/" + rel) == bad_b) << "B's pack was replaced by a damaged copy";
  EXPECT_EQ(BadFiles(a_), std::vector<std::string>{});

  // Sync does not bring a damaged pack to a copy that lacks it.
  fs::remove(b_ + "/" + rel);
  {
    Logger slog(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kExclusive, Env::Default(), &slog);
    SyncStats st = s->Sync();
    EXPECT_EQ(st.packs_copied, 0u);
    EXPECT_FALSE(fs::exists(b_ + "/" + rel)) << "Sync copied a damaged pack into the mirror";
    EXPECT_TRUE(AnyContains(slog.problems(), rel)) << "no warning names the damaged pack\n"
                                                   << Joined(slog.problems());
  }
  EXPECT_TRUE(ReadFile(a_ + "/" + rel) == bad_a);
  EXPECT_TRUE(fs::is_empty(a_ + "/tmp") && fs::is_empty(b_ + "/tmp")) << "a rejected copy left a temp file";
}

// ---------------------------------------------------------------------------
// An I/O error is not damage.

TEST_F(MirrorTest, IoErrorOnThePrimaryIsNotCorruption) {
  MakePoints(2);
  const std::string point = points_[1];
  const std::string file = "changing.bin";
  const std::string content = expected_[point].files.at(file);

  // How many reads opening the store and restoring the file take.
  int64_t opened = 0, total = 0;
  {
    FaultEnv counting(Env::Default(), FaultPlan{});
    auto s = Open(a_, LockMode::kShared, &counting);
    opened = counting.reads();
    Restore(s.get(), point, "VOL/" + file, NewDest(), Overwrite::kRefuse, &log_);
    total = counting.reads();
  }
  ASSERT_GT(total, opened);

  // EIO on each of those reads in turn (the first pack read of the primary
  // among them): the restore still gives the right bytes, from the mirror.
  int pack_reads_failed = 0;
  for (int64_t k = opened + 1; k <= total; k++) {
    FaultPlan plan;
    plan.fail_read_at = k;
    FaultEnv env(Env::Default(), plan);
    Logger log(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kShared, &env, &log);
    ASSERT_EQ(env.reads(), opened);
    std::string dest = NewDest();
    try {
      Restore(s.get(), point, "VOL/" + file, dest, Overwrite::kRefuse, &log);
      EXPECT_TRUE(ReadFile(dest) == content) << "EIO at read " << k << ": wrong bytes";
    } catch (const Error& e) {
      ADD_FAILURE() << "EIO at read " << k << " of the primary failed the restore: " << e.what();
    }
    EXPECT_EQ(s->repairs(), 0u) << "EIO at read " << k << " was 'repaired'\n" << Joined(log.problems());
    EXPECT_FALSE(s->HasDamaged()) << "EIO at read " << k << " was recorded as damage";
    if (AnyContains(log.problems(), a_ + "/packs/", "injected")) pack_reads_failed++;
  }
  EXPECT_GE(pack_reads_failed, 1) << "no injected EIO hit a pack read of the primary";

  // Direct Get with EIO on the primary's pack read.
  {
    Hash id = Sha256(std::string_view(content).substr(0, kBlock));
    int64_t before_get;
    {
      FaultEnv counting(Env::Default(), FaultPlan{});
      auto s = Open(a_, LockMode::kExclusive, &counting);
      before_get = counting.reads();
    }
    FaultPlan plan;
    plan.fail_read_at = before_get + 1;
    FaultEnv env(Env::Default(), plan);
    Logger log(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kExclusive, &env, &log);
    std::string data;
    ASSERT_NO_THROW(data = s->Get(id, BlobType::kData));
    EXPECT_TRUE(data == content.substr(0, kBlock));
    EXPECT_TRUE(AnyContains(log.problems(), a_ + "/packs/", "injected")) << Joined(log.problems());
    EXPECT_EQ(s->repairs(), 0u);
    EXPECT_FALSE(s->HasDamaged());
  }

  EXPECT_EQ(BadFiles(a_), std::vector<std::string>{});
  EXPECT_EQ(BadFiles(b_), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(a_ + "/damaged"));
  ExpectSameCopies("after the I/O errors");

  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
  for (const auto& c : r.copies) EXPECT_EQ(c.packs_damaged + c.manifests_damaged + c.packs_missing, 0u);
  EXPECT_FALSE(fs::exists(a_ + "/damaged"));
  EXPECT_FALSE(fs::exists(b_ + "/damaged"));
}

// Verify meets an I/O error (EIO on each of its reads in turn): it may fail
// or report the error, but it must not take the file for damaged: nothing
// kept aside or rewritten, nothing counted as repaired, no damage recorded.
// (Fails while Store::RepairManifest treats a manifest it could not read
// like a damaged one: kept aside as .bad-*, rewritten, counted as repaired.)
TEST_F(MirrorTest, IoErrorDuringVerifyIsNotCorruption) {
  MakePoints(2);
  const auto before = StoreFiles(a_);
  int64_t opened = 0, total = 0;
  {
    FaultEnv counting(Env::Default(), FaultPlan{});
    Logger log(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kExclusive, &counting, &log);
    opened = counting.reads();
    VerifyReport r = Verify(s.get(), &log);
    ASSERT_TRUE(r.ok()) << Describe(r);
    total = counting.reads();
  }
  ASSERT_GT(total, opened);
  for (int64_t k = opened + 1; k <= total; k++) {
    FaultPlan plan;
    plan.fail_read_at = k;
    FaultEnv env(Env::Default(), plan);
    Logger log(LogLevel::kError, false);
    std::string what;
    {
      auto s = Open(a_, LockMode::kExclusive, &env, &log);
      ASSERT_EQ(env.reads(), opened);
      try {
        VerifyReport r = Verify(s.get(), &log);
        what = "verify returned: " + Describe(r);
        EXPECT_EQ(r.repaired, 0u) << "EIO at read " << k << " was counted as a repair\n"
                                  << what << Joined(log.problems());
        for (const auto& c : r.copies)
          EXPECT_EQ(c.packs_damaged + c.manifests_damaged + c.packs_missing, 0u)
              << "EIO at read " << k << " was counted as damage\n" << what << Joined(log.problems());
      } catch (const Error& e) {
        what = std::string("verify threw: ") + e.what();
        EXPECT_EQ(e.kind(), ErrorKind::kIo) << what;
      }
      EXPECT_FALSE(s->HasDamaged()) << "EIO at read " << k << " recorded as damage; " << what;
    }
    auto bad_a = BadFiles(a_), bad_b = BadFiles(b_);
    EXPECT_TRUE(bad_a.empty() && bad_b.empty())
        << "EIO at read " << k << ": files kept aside as damaged:\n" << Joined(bad_a) << Joined(bad_b) << what
        << "\n" << Joined(log.problems());
    EXPECT_FALSE(fs::exists(a_ + "/damaged")) << "EIO at read " << k << "; " << what;
    EXPECT_TRUE(StoreFiles(a_) == before) << "EIO at read " << k << " changed the primary";
    ExpectSameCopies("EIO at read " + std::to_string(k));
    if (!bad_a.empty() || !bad_b.empty()) break;  // one report is enough
  }
}

// ---------------------------------------------------------------------------
// A copy that is absent for a while.

TEST_F(MirrorTest, AbsentCopyCatchesUpThroughSync) {
  MakePoints(2);
  fs::rename(b_, b_ + ".away");
  {
    Logger wlog(LogLevel::kError, false);
    auto s = Open(a_, LockMode::kExclusive, Env::Default(), &wlog);
    EXPECT_EQ(s->copies(), std::vector<std::string>{a_});
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{b_});
    EXPECT_TRUE(AnyContains(wlog.problems(), b_)) << "no warning names the absent mirror\n" << Joined(wlog.problems());
    SyncStats nothing = s->Sync();  // nothing to bring in step
    EXPECT_EQ(nothing.packs_copied + nothing.files_copied + nothing.copies_initialized, 0u);
    for (int g = 2; g < 4; g++) BackupGeneration(s.get(), g);
    EXPECT_FALSE(s->broken());
  }
  EXPECT_FALSE(fs::exists(b_)) << "a write went to the absent copy's path";
  fs::rename(b_ + ".away", b_);
  EXPECT_FALSE(DiffStores(a_, b_).empty());
  {
    auto s = Open(a_);
    ASSERT_EQ(s->copies().size(), 2u);
    EXPECT_TRUE(s->absent_copies().empty());
    SyncStats st = s->Sync();
    EXPECT_GE(st.packs_copied, 2u);
    EXPECT_GE(st.files_copied, 4u);  // two manifests, two index files
    EXPECT_EQ(st.points_removed, 0u);
    SyncStats again = s->Sync();
    EXPECT_EQ(again.packs_copied + again.files_copied + again.points_removed, 0u) << "a second sync did work";
  }
  ExpectSameCopies("after sync");
  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
  Logger vlog_b(LogLevel::kError, false);
  VerifyReport rb = RunVerify(b_, &vlog_b);  // the mirror as the primary
  EXPECT_TRUE(rb.ok()) << Describe(rb);
  EXPECT_EQ(rb.repaired, 0u) << Describe(rb);

  // The returned copy alone has every point.
  fs::rename(a_, a_ + ".away");
  {
    auto s = Open(b_, LockMode::kShared);
    EXPECT_EQ(s->copies(), std::vector<std::string>{b_});
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{a_});
    ExpectRestoresEverything(s.get(), "the returned copy alone");
  }
  fs::rename(a_ + ".away", a_);
}

TEST_F(MirrorTest, PointDeletedWhileACopyWasAbsentDoesNotComeBack) {
  MakePoints(3);
  const std::string doomed = points_[0];
  fs::rename(b_, b_ + ".away");
  {
    auto s = Open(a_);
    ASSERT_EQ(s->absent_copies().size(), 1u);
    s->DeletePoint(doomed);
    EXPECT_FALSE(fs::exists(a_ + "/points/" + doomed + ".json"));
  }
  fs::rename(b_ + ".away", b_);
  ASSERT_TRUE(fs::exists(b_ + "/points/" + doomed + ".json"));
  // Synced from the side of the copy that still has the point.
  {
    auto s = Open(b_);
    ASSERT_EQ(s->copies().size(), 2u);
    SyncStats st = s->Sync();
    EXPECT_EQ(st.points_removed, 1u);
    auto listed = s->ListPoints();
    EXPECT_EQ(std::count(listed.begin(), listed.end(), doomed), 0) << "the pruned point came back";
  }
  for (const auto& dir : {a_, b_}) {
    EXPECT_FALSE(fs::exists(dir + "/points/" + doomed + ".json")) << dir;
    EXPECT_TRUE(fs::exists(dir + "/points/" + doomed + ".deleted")) << dir << " has no tombstone";
  }
  // And from the other side, and after a full verify.
  {
    auto s = Open(a_);
    s->Sync();
    Logger vlog(LogLevel::kError, false);
    VerifyReport r = Verify(s.get(), &vlog);
    EXPECT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r.points, 2u);
  }
  ExpectSameCopies("after sync and verify");
  expected_.erase(doomed);
  points_.erase(points_.begin());
  for (const auto& dir : {a_, b_}) {
    auto s = Open(dir, LockMode::kShared);
    auto listed = s->ListPoints();
    EXPECT_EQ(listed, points_) << dir;
    ExpectRestoresEverything(s.get(), "after the delete, from " + dir);
  }
}

// ---------------------------------------------------------------------------
// The first copy absent (issue 12, case 4).

TEST_F(MirrorTest, AbsentPathIsServedByANamedMirror) {
  MakePoints(2);
  fs::rename(a_, a_ + ".away");
  StoreOptions named;  // a config's path A and mirrors [B]
  named.mirrors = {b_};
  {
    Logger wlog(LogLevel::kError, false);
    auto s = Store::Open(Env::Default(), a_, LockMode::kExclusive, &wlog, named);
    EXPECT_EQ(s->dir(), b_);
    EXPECT_EQ(s->copies(), std::vector<std::string>{b_});
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{a_});
    EXPECT_TRUE(AnyContains(wlog.problems(), "copy " + a_ + " is not there")) << Joined(wlog.problems());
    EXPECT_FALSE(AnyContains(wlog.problems(), "store init")) << Joined(wlog.problems());
    EXPECT_EQ(s->ListPoints(), points_);
    ExpectRestoresEverything(s.get(), "B serving for the absent A");
    s->Sync();
    BackupGeneration(s.get(), 2);
  }
  EXPECT_FALSE(fs::exists(a_)) << "a write went to the absent copy's path";
  // By its path alone, A's own config.json is the list of copies: nothing
  // to go on, and the error says what to do.
  try {
    Store::Open(Env::Default(), a_, LockMode::kShared, &log_);
    ADD_FAILURE() << "opened a store that is not there";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_TRUE(Contains(e.what(), a_) && Contains(e.what(), "mount")) << e.what();
  }
  fs::rename(a_ + ".away", a_);
  {
    auto s = Store::Open(Env::Default(), a_, LockMode::kExclusive, &log_, named);
    EXPECT_EQ(s->dir(), a_);
    EXPECT_GE(s->Sync().packs_copied, 1u);
  }
  ExpectSameCopies("after A came back");
}

// ---------------------------------------------------------------------------
// A replaced, empty disk.

TEST_F(MirrorTest, EmptyReplacementDiskBecomesAFullCopy) {
  MakePoints(3);
  for (const auto& e : fs::directory_iterator(b_)) fs::remove_all(e.path());
  ASSERT_TRUE(fs::is_empty(b_));
  {
    // Recorded in config.json only: the disk says so, the user did not.
    auto s = Open(a_);
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{b_});
    EXPECT_EQ(s->Sync().copies_initialized, 0u);
    EXPECT_TRUE(fs::is_empty(b_));
  }
  {
    // Named as a copy to use (a config's mirrors, --mirror): that is no
    // order to make one (its disk may just not be mounted).
    Logger olog(LogLevel::kError, false);
    StoreOptions named;
    named.mirrors = {b_};
    auto s = Store::Open(Env::Default(), a_, LockMode::kExclusive, &olog, named);
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{b_});
    EXPECT_EQ(s->Sync().copies_initialized, 0u);
    EXPECT_TRUE(fs::is_empty(b_));
  }
  {
    Logger olog(LogLevel::kError, false);
    StoreOptions named;
    named.mirrors = {b_};
    named.new_copies = {b_};  // store sync --mirror B: named as a new copy in this command
    auto s = Store::Open(Env::Default(), a_, LockMode::kExclusive, &olog, named);
    EXPECT_EQ(s->absent_copies(), std::vector<std::string>{b_});
    SyncStats st = s->Sync();
    EXPECT_EQ(st.copies_initialized, 1u);
    EXPECT_EQ(s->copies(), (std::vector<std::string>{a_, b_}));
    EXPECT_TRUE(s->absent_copies().empty());
    EXPECT_GE(st.packs_copied, 3u);
    // A backup right after reaches the new copy too.
    BackupGeneration(s.get(), 3);
  }
  ExpectSameCopies("after sync to the replacement disk");
  ASSERT_TRUE(fs::exists(b_ + "/config.json"));
  // The new copy is the same store, and not taken for the primary itself.
  {
    auto s = Open(a_, LockMode::kShared);
    EXPECT_EQ(s->copies().size(), 2u);
    EXPECT_TRUE(s->absent_copies().empty());
  }
  Logger vlog(LogLevel::kError, false);
  VerifyReport r = RunVerify(a_, &vlog);
  EXPECT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.repaired, 0u) << Describe(r);
  Logger vlog_b(LogLevel::kError, false);
  VerifyReport rb = RunVerify(b_, &vlog_b);
  EXPECT_TRUE(rb.ok()) << Describe(rb);
  EXPECT_EQ(rb.repaired, 0u) << Describe(rb);
  ASSERT_EQ(rb.copies.size(), 2u);
  EXPECT_EQ(rb.copies[0].dir, b_);
  fs::rename(a_, a_ + ".away");
  {
    auto s = Open(b_, LockMode::kShared);
    ExpectRestoresEverything(s.get(), "the replacement disk alone");
  }
  fs::rename(a_ + ".away", a_);
}

// ---------------------------------------------------------------------------
// cp -a of a store directory is another store, not a mirror.

void CopyTree(const std::string& from, const std::string& to) {
  RunResult r = Env::Default()->Run({"cp", "-a", "--", from, to});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(MirrorTest, CopyOfASingleCopyStoreIsNotItsMirror) {
  const std::string solo = tmp_ / "solo";
  const std::string clone = tmp_ / "solo-clone";
  Store::Init(Env::Default(), solo, kBlock);
  {
    auto s = Open(solo);
    BackupGeneration(s.get(), 0);
  }
  CopyTree(solo, clone);
  const auto before = StoreFiles(solo);
  {
    auto s = Open(clone);
    EXPECT_EQ(s->copies(), std::vector<std::string>{clone});
    EXPECT_TRUE(s->absent_copies().empty());
    s->Sync();
    BackupGeneration(s.get(), 1);
  }
  EXPECT_TRUE(StoreFiles(solo) == before) << "a backup to the clone changed the original";
  auto s = Open(solo, LockMode::kShared);
  EXPECT_EQ(s->ListPoints().size(), 1u);
  EXPECT_EQ(s->copies(), std::vector<std::string>{solo});
}

TEST_F(MirrorTest, CopyOfAMirroredPrimaryLeavesTheOriginalStoreAlone) {
  MakePoints(1);
  const std::string clone = tmp_ / "a-clone";
  CopyTree(a_, clone);
  const auto before_a = StoreFiles(a_);
  const auto before_b = StoreFiles(b_);
  {
    Logger clog(LogLevel::kError, false);
    auto s = Open(clone, LockMode::kExclusive, Env::Default(), &clog);
    for (const auto& c : s->copies()) EXPECT_NE(c, a_) << "the original is taken for a copy of its clone";
    EXPECT_EQ(std::count(s->copies().begin(), s->copies().end(), b_), 0)
        << "BUG: the clone (cp -a of the primary " << a_ << ") takes the original's mirror " << b_
        << " as its own mirror: backups to the clone are written into the original store";
    s->Sync();
    BackupGeneration(s.get(), 1);
  }
  EXPECT_TRUE(StoreFiles(a_) == before_a) << "a backup to the clone changed the original";
  EXPECT_TRUE(StoreFiles(b_) == before_b) << "a backup to the clone changed the original's mirror:\n"
                                          << DiffStores(b_, a_);
  // The original's next sync must not pull the clone's point in.
  {
    auto s = Open(a_);
    s->Sync();
    EXPECT_EQ(s->ListPoints().size(), 1u) << "the clone's point leaked into the original store";
  }
}

}  // namespace
}  // namespace vmback
