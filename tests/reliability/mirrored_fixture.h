// The fixture the mirrored-store sweeps share: a store mirrored over two
// copies (A, the primary, and B) in the test's temp directory, a source tree
// whose generations are known (BuildGeneration), what every point must
// restore to, a template of the copies to start every run of a sweep from,
// and the checks that follow a failed run.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "os/env.h"
#include "reliability/sweep_util.h"
#include "retention/policy.h"
#include "run/backup.h"
#include "run/restore.h"
#include "run/verify.h"
#include "store/store.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback::reliability {

namespace fs = std::filesystem;
using test::DescribeTree;
using test::TempDir;

inline constexpr uint32_t kSweepBlock = 4096;

inline std::string KindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kIo: return "kIo";
    case ErrorKind::kNoSpace: return "kNoSpace";
    case ErrorKind::kNotFound: return "kNotFound";
    case ErrorKind::kCorrupt: return "kCorrupt";
    case ErrorKind::kConfig: return "kConfig";
    case ErrorKind::kLocked: return "kLocked";
    case ErrorKind::kCrash: return "kCrash";
    case ErrorKind::kOther: return "kOther";
  }
  return "?";
}

inline std::string Problems(const VerifyReport& v) {
  std::vector<std::string> p;
  for (const auto& x : v.problems) p.push_back(x.point + ":" + x.path + ": " + x.reason);
  return JoinSome(p, "; ", 4);
}

inline RetentionPolicy KeepLast(int n) {
  RetentionPolicy p;
  p.keep_last = n;
  return p;
}

// A store mirrored over A and B, a source tree whose generations are known,
// and what every point must restore to.
class MirroredStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = tmp_ / "A";
    b_ = tmp_ / "B";
    src_ = tmp_ / "src";
    Store::Init(Env::Default(), a_, kSweepBlock, {b_});
    opts_.threads = 2;
  }

  std::vector<VolumeSpec> Volumes() const { return {{"vol", src_, true}}; }

  // Builds generation gen of the source and backs it up.
  std::string BackupGeneration(int gen, const StoreOptions& so = {}) {
    reliability::BuildGeneration(src_, gen);
    std::string want = DescribeTree(src_, false);
    auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_, so);
    if (s->copies().size() > 1) s->Sync();
    BackupResult r = RunBackup(s.get(), Volumes(), opts_, &log_);
    EXPECT_EQ(r.errors, 0u);
    expected_[r.point] = want;
    return r.point;
  }

  // The copies' state to start every run of a sweep from.
  void SaveTemplate() {
    for (const auto& [from, to] : {std::pair{a_, tmp_ / "tmpl-A"}, std::pair{b_, tmp_ / "tmpl-B"}}) {
      fs::remove_all(to);
      if (fs::exists(from)) fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    }
  }
  void ResetToTemplate() {
    for (const auto& [from, to] : {std::pair{tmp_ / "tmpl-A", a_}, std::pair{tmp_ / "tmpl-B", b_}}) {
      fs::remove_all(to);
      if (fs::exists(from)) fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    }
  }

  // The Env of everything after a failed run: the real one without fsync.
  // The failures swept are process crashes and failed system calls, which
  // the page cache outlives, so the checks need no durability; with it they
  // spent most of their time in fsync on a busy disk.
  static Env* CheckEnv() { return NoFsyncEnv(); }

  // One copy on its own (the other named as an absent mirror), shared.
  std::unique_ptr<Store> OpenAlone(const std::string& dir) {
    StoreOptions so;
    so.mirrors = {tmp_ / "nowhere"};
    return Store::Open(CheckEnv(), dir, LockMode::kShared, &log_, so);
  }

  // "" if the point restores to want; else what went wrong.
  std::string RestoreDiff(Store* s, const std::string& point, const std::string& want) {
    std::string dest = tmp_ / ("restore-" + std::to_string(++restores_));
    std::string out;
    try {
      Restore(s, point, "", dest, Overwrite::kRefuse, &log_);
      if (DescribeTree(dest + "/vol", false) != want) out = "point " + point + " restores different content";
    } catch (const std::exception& e) {
      out = "restore of " + point + " failed: " + e.what();
    }
    fs::remove_all(dest);
    return out;
  }

  // Every point the store lists restores as recorded in expected_ (a point
  // not recorded there is an error: nothing else may appear).
  void CheckListedPoints(Store* s, const std::string& where, std::vector<std::string>* bad) {
    std::vector<std::string> points;
    try {
      points = s->ListPoints();
    } catch (const std::exception& e) {
      bad->push_back(where + ": ListPoints failed: " + e.what());
      return;
    }
    for (const auto& p : points) {
      auto it = expected_.find(p);
      if (it == expected_.end()) {
        bad->push_back(where + ": unknown point " + p);
        continue;
      }
      if (std::string d = RestoreDiff(s, p, it->second); !d.empty()) bad->push_back(where + ": " + d);
    }
  }

  // Each copy alone: every point it shows restores.
  void CheckEachCopyAlone(std::vector<std::string>* bad) {
    for (const auto& dir : {a_, b_}) {
      try {
        auto s = OpenAlone(dir);
        CheckListedPoints(s.get(), BaseName(dir) + " alone", bad);
      } catch (const std::exception& e) {
        bad->push_back(BaseName(dir) + " alone: open failed: " + e.what());
      }
    }
  }

  // Opens the pair (the recovery) and verifies; returns
  // the points after verify (which brings the copies in step).
  std::vector<std::string> RecoverAndVerify(std::vector<std::string>* bad) {
    try {
      auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
      if (s->copies().size() != 2) bad->push_back("recovery: only " + std::to_string(s->copies().size()) + " copy");
      for (const auto& c : {a_, b_})
        for (const auto& name : CheckEnv()->ListDir(c + "/tmp")) bad->push_back("recovery left tmp/" + name);
      VerifyReport v = Verify(s.get(), &log_);
      if (!v.ok()) bad->push_back("verify after the crash: " + Problems(v));
      return s->ListPoints();
    } catch (const std::exception& e) {
      bad->push_back(std::string("recovery failed: ") + e.what());
      return {};
    }
  }

  // After the operation was run again: copies identical, nothing to heal.
  void CheckSettled(std::vector<std::string>* bad) {
    if (std::string d = reliability::CopiesDiffer(a_, b_); !d.empty()) bad->push_back("copies differ: " + d);
    try {
      auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
      VerifyReport v = Verify(s.get(), &log_);
      if (!v.ok()) bad->push_back("final verify: " + Problems(v));
      if (v.repaired) bad->push_back("final verify still repaired " + std::to_string(v.repaired) + " file(s)");
    } catch (const std::exception& e) {
      bad->push_back(std::string("final verify failed: ") + e.what());
    }
  }

  TempDir tmp_;
  Logger log_{LogLevel::kError, false};
  std::string a_, b_, src_;
  BackupOptions opts_;
  std::map<std::string, std::string> expected_;  // point -> DescribeTree of its volume
  int restores_ = 0;
};

}  // namespace vmback::reliability
