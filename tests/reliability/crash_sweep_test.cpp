// Crash sweeps through the OS seam (FaultEnv) of what src/run/crash_test.cpp
// does not sweep: prune with its garbage collection, Store::Sync, a backup
// and a healing verify, all on a store mirrored over two copies (A, the
// primary, and B). crash_test.cpp's approach: the operation runs once without
// faults to count its write steps, then once per step k with a simulated
// crash at step k (every later write fails as if the process were gone).
// After each crash, with the real Env (without fsync: see CheckEnv):
//
//   * the store opens and verify is clean (it may heal the copies: a crash
//     can leave one copy behind the other),
//   * every point committed before the crash restores bit-identical, from
//     the pair and from each copy alone (a copy must never show a point whose
//     blocks it lacks),
//   * the point the operation was making or deleting is absent or complete,
//   * the operation run again succeeds with no manual repair, after which the
//     copies are byte-identical and a second verify has nothing to heal.
//
// Long run (VMBACK_LONG_TESTS=1): the same sweeps also with ENOSPC from step
// k on (the disk stays full), and a second prune policy.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "os/env.h"
#include "helpers/fault_env.h"
#include "reliability/mirrored_fixture.h"
#include "reliability/sweep_util.h"
#include "retention/policy.h"
#include "run/backup.h"
#include "run/prune.h"
#include "run/restore.h"
#include "run/verify.h"
#include "store/store.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using reliability::JoinSome;
using reliability::KeepLast;
using reliability::KindName;
using reliability::MirroredStoreTest;
using reliability::Problems;
using test::DescribeTree;

// The mirrored store, its generations and the checks (mirrored_fixture.h),
// plus the sweep driver.
class MirroredSweep : public MirroredStoreTest {
 protected:
  struct Sweep {
    std::string name;
    // The operation under test, run through env (a FaultEnv).
    std::function<void(Env* env)> op;
    // Checks after a failed run (no faults); appends what is wrong.
    std::function<void(std::vector<std::string>* bad)> check;
    int write_errno = 0;  // 0: crash; else the disk fails with it from step k on
  };

  // Runs the sweep over every write step; records a summary row.
  void RunSweep(const Sweep& sw) {
    ResetToTemplate();
    int64_t n = 0;
    {
      FaultEnv counter(reliability::NoFsyncEnv(), FaultPlan{});
      try {
        sw.op(&counter);
      } catch (const std::exception& e) {
        FAIL() << sw.name << ": the operation fails without faults: " << e.what();
      }
      n = counter.write_steps();
    }
    ASSERT_GT(n, 5) << sw.name << ": too few write steps to sweep";
    std::vector<std::string> failures;
    uint64_t runs = 0, faults = 0;
    for (int64_t k = 1; k <= n; k++) {
      ResetToTemplate();
      std::vector<std::string> bad;
      std::string where = "step " + std::to_string(k) + "/" + std::to_string(n);
      FaultPlan plan;
      plan.fail_write_at = k;
      plan.write_errno = sw.write_errno;
      plan.fail_every_write_after = sw.write_errno != 0;
      {
        FaultEnv fenv(reliability::NoFsyncEnv(), plan);
        runs++;
        try {
          sw.op(&fenv);
          bad.push_back("the operation did not fail");
        } catch (const Error& e) {
          where += " (" + std::string(e.what()).substr(0, 160) + ")";
          ErrorKind want = sw.write_errno == 0 ? ErrorKind::kCrash
                           : sw.write_errno == ENOSPC ? ErrorKind::kNoSpace
                                                      : ErrorKind::kIo;
          if (e.kind() != want) bad.push_back("failed with " + KindName(e.kind()) + ", want " + KindName(want));
        } catch (const std::exception& e) {
          bad.push_back(std::string("failed with a foreign exception: ") + e.what());
        }
        if (fenv.write_steps() >= k) faults++;
      }
      sw.check(&bad);
      if (!bad.empty()) failures.push_back(where + ": " + JoinSome(bad, "; ", 6));
    }
    reliability::RecordRow({sw.name, runs, faults, failures.size()});
    std::cout << "[   INFO   ] " << sw.name << ": " << n << " write steps, " << failures.size() << " failed\n";
    EXPECT_TRUE(failures.empty()) << sw.name << ": " << failures.size() << " of " << n << " runs failed:\n"
                                  << JoinSome(failures, "\n", 12);
  }
};

// ---------------------------------------------------------------------------
// Prune: five points, keep the last two (or three); the dead packs go, the
// mostly dead ones are repacked (repack_below 0.9), on both copies.

class PruneCrashSweep : public MirroredSweep {
 protected:
  void Run(int keep, int write_errno, const std::string& name) {
    std::vector<std::string> points;
    for (int g = 1; g <= 5; g++) points.push_back(BackupGeneration(g));
    SaveTemplate();
    const std::vector<std::string> kept(points.end() - keep, points.end());
    GcOptions gc;
    gc.repack_below = 0.9;
    // Without faults: points and packs go, and packs are repacked.
    {
      ResetToTemplate();
      auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
      PruneResult r = Prune(s.get(), KeepLast(keep), gc, &log_);
      ASSERT_EQ(r.deleted.size(), points.size() - keep);
      ASSERT_GT(r.gc.packs_deleted, 0u);
      ASSERT_GT(r.gc.packs_repacked, 0u);
    }
    Sweep sw;
    sw.name = name;
    sw.write_errno = write_errno;
    sw.op = [&](Env* env) {
      auto s = Store::Open(env, a_, LockMode::kExclusive, &log_);
      Prune(s.get(), KeepLast(keep), gc, &log_);
    };
    sw.check = [&](std::vector<std::string>* bad) {
      std::vector<std::string> listed = RecoverAndVerify(bad);
      std::set<std::string> have(listed.begin(), listed.end());
      for (const auto& p : kept)
        if (!have.count(p)) bad->push_back("kept point " + p + " is gone");
      // Kept points, and any point whose deletion was cut short, restore.
      {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kShared, &log_);
        CheckListedPoints(s.get(), "pair", bad);
      }
      CheckEachCopyAlone(bad);
      // Prune again: it completes, and only the kept points are left.
      try {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
        Prune(s.get(), KeepLast(keep), gc, &log_);
        if (s->ListPoints() != kept) bad->push_back("points after the next prune: " + JoinSome(s->ListPoints(), ","));
      } catch (const std::exception& e) {
        bad->push_back(std::string("the next prune failed: ") + e.what());
      }
      CheckSettled(bad);
      CheckEachCopyAlone(bad);
    };
    RunSweep(sw);
  }
};

TEST_F(PruneCrashSweep, CrashAtEveryWriteStep) { Run(2, 0, "prune+GC crash, mirrored"); }

TEST_F(PruneCrashSweep, NoSpaceFromEveryWriteStep) {
  if (!reliability::LongRun()) GTEST_SKIP() << "long run only (VMBACK_LONG_TESTS=1)";
  Run(2, ENOSPC, "prune+GC ENOSPC, mirrored");
}

TEST_F(PruneCrashSweep, CrashAtEveryWriteStepKeepingThree) {
  if (!reliability::LongRun()) GTEST_SKIP() << "long run only (VMBACK_LONG_TESTS=1)";
  Run(3, 0, "prune+GC crash, keep 3, mirrored");
}

// ---------------------------------------------------------------------------
// Sync: B was away for two backups and a prune; Sync copies the packs,
// index files and manifests it lacks, carries the tombstone over and
// removes the pruned point from B.

class SyncCrashSweep : public MirroredSweep {
 protected:
  void Run(int write_errno, const std::string& name) {
    BackupGeneration(1);
    BackupGeneration(2);
    fs::rename(b_, tmp_ / "B.away");
    BackupGeneration(3);
    BackupGeneration(4);
    {
      auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
      ASSERT_EQ(s->copies().size(), 1u);
      GcOptions gc;
      gc.repack_below = 0.9;
      PruneResult r = Prune(s.get(), KeepLast(3), gc, &log_);
      ASSERT_EQ(r.deleted.size(), 1u);
    }
    fs::rename(tmp_ / "B.away", b_);
    SaveTemplate();
    std::vector<std::string> a_points;
    {
      auto s = OpenAlone(a_);
      a_points = s->ListPoints();
    }
    ASSERT_EQ(a_points.size(), 3u);

    Sweep sw;
    sw.name = name;
    sw.write_errno = write_errno;
    sw.op = [&](Env* env) {
      auto s = Store::Open(env, a_, LockMode::kExclusive, &log_);
      s->Sync();
    };
    sw.check = [&](std::vector<std::string>* bad) {
      // Before anything heals: each copy alone shows only whole points.
      CheckEachCopyAlone(bad);
      std::vector<std::string> listed = RecoverAndVerify(bad);
      if (listed != a_points) bad->push_back("points after recovery: " + JoinSome(listed, ","));
      {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kShared, &log_);
        CheckListedPoints(s.get(), "pair", bad);
      }
      try {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
        s->Sync();
      } catch (const std::exception& e) {
        bad->push_back(std::string("the next sync failed: ") + e.what());
      }
      CheckSettled(bad);
      try {
        auto s = OpenAlone(b_);
        if (s->ListPoints() != a_points) bad->push_back("B's points after sync: " + JoinSome(s->ListPoints(), ","));
      } catch (const std::exception& e) {
        bad->push_back(std::string("B alone: ") + e.what());
      }
      CheckEachCopyAlone(bad);
    };
    RunSweep(sw);
  }
};

TEST_F(SyncCrashSweep, CrashAtEveryWriteStep) { Run(0, "store sync crash, mirror behind"); }

TEST_F(SyncCrashSweep, NoSpaceFromEveryWriteStep) {
  if (!reliability::LongRun()) GTEST_SKIP() << "long run only (VMBACK_LONG_TESTS=1)";
  Run(ENOSPC, "store sync ENOSPC, mirror behind");
}

// ---------------------------------------------------------------------------
// A backup into the mirrored store (crash_test.cpp sweeps one copy).

class MirroredBackupCrashSweep : public MirroredSweep {
 protected:
  void Run(int write_errno, const std::string& name) {
    std::string p1 = BackupGeneration(1);
    reliability::BuildGeneration(src_, 2);
    const std::string gen2 = DescribeTree(src_, false);
    SaveTemplate();
    Sweep sw;
    sw.name = name;
    sw.write_errno = write_errno;
    sw.op = [&](Env* env) {
      auto s = Store::Open(env, a_, LockMode::kExclusive, &log_);
      RunBackup(s.get(), Volumes(), opts_, &log_);
    };
    sw.check = [&](std::vector<std::string>* bad) {
      // A point that only one copy shows is the interrupted one: whole.
      auto note_new = [&](Store* s) {
        for (const auto& p : s->ListPoints())
          if (!expected_.count(p)) expected_[p] = gen2;
      };
      for (const auto& dir : {a_, b_}) {
        try {
          auto s = OpenAlone(dir);
          note_new(s.get());
        } catch (const std::exception& e) {
          bad->push_back(e.what());
        }
      }
      CheckEachCopyAlone(bad);
      std::vector<std::string> listed = RecoverAndVerify(bad);
      if (listed.empty() || listed.size() > 2 || listed[0] != p1)
        bad->push_back("points after recovery: {" + JoinSome(listed, ",") + "}, want {P1} or {P1, P2}");
      {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kShared, &log_);
        CheckListedPoints(s.get(), "pair", bad);
      }
      try {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kExclusive, &log_);
        BackupResult r = RunBackup(s.get(), Volumes(), opts_, &log_);
        if (r.errors) bad->push_back("the next backup had errors");
        expected_[r.point] = gen2;
      } catch (const std::exception& e) {
        bad->push_back(std::string("the next backup failed: ") + e.what());
      }
      CheckSettled(bad);
      CheckEachCopyAlone(bad);
      // Names of later points are per run: forget them.
      for (auto it = expected_.begin(); it != expected_.end();)
        it = it->first == p1 ? std::next(it) : expected_.erase(it);
    };
    RunSweep(sw);
  }
};

TEST_F(MirroredBackupCrashSweep, CrashAtEveryWriteStep) { Run(0, "backup crash, mirrored"); }

TEST_F(MirroredBackupCrashSweep, NoSpaceFromEveryWriteStep) {
  if (!reliability::LongRun()) GTEST_SKIP() << "long run only (VMBACK_LONG_TESTS=1)";
  Run(ENOSPC, "backup ENOSPC, mirrored");
}

// ---------------------------------------------------------------------------
// A verify that heals B: a pack with a flipped bit, a truncated pack, a
// manifest cut to nothing. A crash at each of its repairs.

class HealCrashSweep : public MirroredSweep {};

TEST_F(HealCrashSweep, CrashAtEveryWriteStepOfTheRepair) {
  for (int g = 1; g <= 3; g++) BackupGeneration(g);
  {
    auto s = OpenAlone(b_);
    auto packs = s->ListPackFiles();
    ASSERT_GE(packs.size(), 3u);
    std::string p0 = s->PackPath(packs[0]), p1 = s->PackPath(packs[1]);
    test::XorFileByte(p0, fs::file_size(p0) / 2, 0x04);
    fs::resize_file(p1, fs::file_size(p1) / 3);
    auto points = s->ListPoints();
    fs::resize_file(b_ + "/points/" + points[1] + ".json", 0);
  }
  SaveTemplate();
  Sweep sw;
  sw.name = "verify-heal crash, one copy damaged";
  sw.op = [&](Env* env) {
    auto s = Store::Open(env, a_, LockMode::kExclusive, &log_);
    VerifyReport v = Verify(s.get(), &log_);
    if (!v.ok() || v.repaired < 3) throw std::runtime_error("the count run did not heal B: " + Problems(v));
  };
  sw.check = [&](std::vector<std::string>* bad) {
    RecoverAndVerify(bad);
    CheckSettled(bad);
    CheckEachCopyAlone(bad);
  };
  RunSweep(sw);
}

}  // namespace
}  // namespace vmback

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  vmback::reliability::InstallSummaryPrinter("crash sweeps through FaultEnv (prune/GC, sync, mirrored backup, heal)");
  return RUN_ALL_TESTS();
}
