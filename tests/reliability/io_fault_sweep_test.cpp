// I/O errors are not corruption. On a store mirrored over A and B (and on A
// alone), an EIO is injected through the OS seam at the nth read (FaultEnv)
// or the nth directory listing (ListFaultEnv) of verify, restore, prune and
// sync, for every n in the long run (VMBACK_LONG_TESTS=1) and for an even
// spread of them in the short run. After each:
//
//   * the operation either failed with an I/O error (kIo, never kCorrupt or
//     kNotFound: an unreadable file is not a damaged or missing one), or
//     went on from the other copy and said so in a warning;
//   * nothing is marked bad: no blob in the store's damage list, no
//     <store>/damaged file, no file kept aside as *.bad-*;
//   * nothing is deleted that the same operation without the fault would
//     not delete (a listing that failed is never taken for an empty one);
//   * without faults again, verify is clean and every point restores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "helpers/fault_env.h"
#include "reliability/mirrored_fixture.h"
#include "reliability/sweep_util.h"
#include "run/prune.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using reliability::JoinSome;
using reliability::KeepLast;
using reliability::KindName;
using reliability::MirroredStoreTest;
using reliability::Problems;
using test::DescribeTree;

using Digests = std::map<std::string, std::string>;

// Both copies' content files, "A/..." and "B/...".
Digests Content(const std::string& a, const std::string& b) {
  Digests out;
  for (const auto& [dir, tag] : {std::pair{a, "A/"}, std::pair{b, "B/"}})
    for (const auto& [rel, h] : reliability::FileDigests(dir, reliability::IsStoreContent)) out[tag + rel] = h;
  return out;
}

// From a DescribeTree text: file path -> "size=N sha256=H".
std::map<std::string, std::string> ContentOf(const std::string& description) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < description.size()) {
    size_t end = description.find('\n', pos);
    if (end == std::string::npos) end = description.size();
    std::string line = description.substr(pos, end - pos);
    pos = end + 1;
    size_t size_at = line.find(" size=");
    if (line.find(" file ") == std::string::npos || size_at == std::string::npos) continue;
    size_t stop = line.find(' ', line.find("sha256=", size_at));
    out[line.substr(0, line.find(' '))] = line.substr(size_at + 1, stop - size_at - 1);
  }
  return out;
}

std::vector<std::string> Removed(const Digests& before, const Digests& after) {
  std::vector<std::string> out;
  for (const auto& [rel, h] : before)
    if (!after.count(rel)) out.push_back(rel);
  return out;
}

class IoFaultSweep : public MirroredStoreTest {
 protected:
  enum class Fault { kRead, kList };

  struct Op {
    std::string name;
    bool mirrored = true;
    // Runs the operation on a store opened through env; throws on failure.
    std::function<void(Store* s)> run;
    LockMode mode = LockMode::kExclusive;
    // Whether the store's in-memory damage list must stay empty. Not for
    // GC: it lists the blobs it moves there (Store::Rewrite) until their
    // new pack is done, and a failed GC drops the store unflushed.
    bool check_memory_damage = true;
  };

  // Five points; a mirror that missed the last one (for sync) or not.
  void MakeStore(bool mirror_behind) {
    for (int g = 1; g <= 4; g++) BackupGeneration(g);
    if (mirror_behind) fs::rename(b_, tmp_ / "B.away");
    BackupGeneration(5);
    if (mirror_behind) fs::rename(tmp_ / "B.away", b_);
    SaveTemplate();
  }

  StoreOptions OptionsFor(const Op& op) {
    StoreOptions so;
    if (!op.mirrored) so.mirrors = {tmp_ / "nowhere"};
    return so;
  }

  // Runs op once through env; returns "" or the failure's kind and text.
  struct Outcome {
    bool threw = false;
    ErrorKind kind = ErrorKind::kOther;
    bool foreign = false;
    std::string what;
    bool marked_damaged = false;
    std::vector<std::string> warnings;
  };
  Outcome RunOp(const Op& op, Env* env) {
    Outcome o;
    Logger log(LogLevel::kError, false);
    try {
      auto s = Store::Open(env, a_, op.mode, &log, OptionsFor(op));
      try {
        op.run(s.get());
      } catch (...) {
        o.marked_damaged = s->HasDamaged();
        throw;
      }
      o.marked_damaged = s->HasDamaged();
    } catch (const Error& e) {
      o.threw = true;
      o.kind = e.kind();
      o.what = e.what();
    } catch (const std::exception& e) {
      o.threw = o.foreign = true;
      o.what = e.what();
    }
    o.warnings = log.problems();
    return o;
  }

  void Sweep(const Op& op, Fault fault) {
    const std::string name = op.name + (fault == Fault::kRead ? ": EIO on a read" : ": EIO on a listing");
    // Without faults: how many reads (listings), and what the op deletes.
    ResetToTemplate();
    const Digests before = Content(a_, b_);
    int64_t n = 0;
    {
      std::unique_ptr<Env> counter;
      if (fault == Fault::kRead) {
        auto f = std::make_unique<FaultEnv>(reliability::NoFsyncEnv(), FaultPlan{});
        Outcome o = RunOp(op, f.get());
        ASSERT_FALSE(o.threw) << name << ": fails without faults: " << o.what;
        n = f->reads();
      } else {
        reliability::ListFaultEnv f(reliability::NoFsyncEnv(), 0, {a_, b_});
        Outcome o = RunOp(op, &f);
        ASSERT_FALSE(o.threw) << name << ": fails without faults: " << o.what;
        n = f.listings();
      }
    }
    const std::vector<std::string> may_remove = Removed(before, Content(a_, b_));
    ASSERT_GT(n, 0);

    std::vector<int64_t> chosen;
    const int64_t most = reliability::LongRun() ? n : 20;
    for (int64_t k = 1; k <= n; k++)
      if (n <= most || k == 1 || k == n || (k * most) / n != ((k - 1) * most) / n) chosen.push_back(k);

    std::vector<std::string> failures;
    uint64_t faults = 0;
    for (int64_t k : chosen) {
      ResetToTemplate();
      std::vector<std::string> bad;
      Outcome o;
      bool injected = false;
      if (fault == Fault::kRead) {
        FaultEnv f(reliability::NoFsyncEnv(), FaultPlan{.fail_read_at = k, .read_errno = EIO});
        o = RunOp(op, &f);
        injected = f.reads() >= k;
      } else {
        reliability::ListFaultEnv f(reliability::NoFsyncEnv(), k, {a_, b_});
        o = RunOp(op, &f);
        injected = f.injected();
      }
      if (injected) faults++;
      std::string where = "fault at " + std::to_string(k) + "/" + std::to_string(n);
      if (o.threw) {
        where += " (" + o.what.substr(0, 160) + ")";
        if (o.foreign || o.kind != ErrorKind::kIo)
          bad.push_back("failed with " + (o.foreign ? std::string("a foreign exception") : KindName(o.kind)) +
                        ", not as an I/O error");
      } else if (injected) {
        bool said = std::any_of(o.warnings.begin(), o.warnings.end(),
                                [](const std::string& w) { return w.find("(injected)") != std::string::npos; });
        if (!said) bad.push_back("went on after the I/O error without a warning");
      }
      if (o.marked_damaged && op.check_memory_damage) bad.push_back("a blob was marked damaged");
      for (const auto& dir : {a_, b_}) {
        if (fs::exists(dir + "/damaged")) bad.push_back(BaseName(dir) + "/damaged was written");
        for (const auto& f : reliability::KeptAside(dir)) bad.push_back("kept aside as damaged: " + f);
      }
      std::vector<std::string> removed = Removed(before, Content(a_, b_));
      for (const auto& r : removed)
        if (std::find(may_remove.begin(), may_remove.end(), r) == may_remove.end())
          bad.push_back("deleted " + r);
      // Without faults: whole, and every point restores.
      RecoverAndVerify(&bad);
      {
        auto s = Store::Open(CheckEnv(), a_, LockMode::kShared, &log_);
        CheckListedPoints(s.get(), "after", &bad);
      }
      if (!bad.empty()) failures.push_back(where + ": " + JoinSome(bad, "; ", 6));
    }
    reliability::RecordRow({name, chosen.size(), faults, failures.size()});
    std::cout << "[   INFO   ] " << name << ": " << chosen.size() << " of " << n << " faults, "
              << failures.size() << " failed\n";
    EXPECT_TRUE(failures.empty()) << name << ": " << failures.size() << " of " << chosen.size() << " failed:\n"
                                  << JoinSome(failures, "\n", 10);
  }

  Op VerifyOp(bool mirrored) {
    return {std::string("verify, ") + (mirrored ? "mirrored" : "one copy"), mirrored, [this](Store* s) {
              VerifyReport v = Verify(s, &log_);
              if (!v.ok()) throw Error(ErrorKind::kOther, "verify found problems: " + Problems(v));
              if (v.repaired) throw Error(ErrorKind::kOther, "verify repaired " + std::to_string(v.repaired));
            }};
  }
  Op RestoreOp(bool mirrored) {
    Op op{std::string("restore, ") + (mirrored ? "mirrored" : "one copy"), mirrored, [this](Store* s) {
            // Every point; what is restored must be right even when a later
            // read fails.
            for (const auto& p : s->ListPoints()) {
              std::string dest = tmp_ / ("io-restore-" + std::to_string(++restores_));
              try {
                Restore(s, p, "", dest, Overwrite::kRefuse, &log_);
              } catch (...) {
                std::string left = fs::exists(dest + "/vol") ? DescribeTree(dest + "/vol", false) : "";
                fs::remove_all(dest);
                // Every file left has the content it must have.
                std::map<std::string, std::string> want = ContentOf(expected_.at(p));
                for (const auto& [rel, content] : ContentOf(left))
                  if (want[rel] != content) throw Error(ErrorKind::kOther, "restore left a wrong file: " + rel);
                throw;
              }
              std::string got = DescribeTree(dest + "/vol", false);
              fs::remove_all(dest);
              if (got != expected_.at(p)) throw Error(ErrorKind::kOther, "restore of " + p + " gave wrong content");
            }
          }};
    op.mode = LockMode::kShared;
    return op;
  }
};

TEST_F(IoFaultSweep, ReadErrorsInVerify) {
  MakeStore(false);
  Sweep(VerifyOp(true), Fault::kRead);
  Sweep(VerifyOp(false), Fault::kRead);
}

TEST_F(IoFaultSweep, ReadErrorsInRestore) {
  MakeStore(false);
  Sweep(RestoreOp(true), Fault::kRead);
  Sweep(RestoreOp(false), Fault::kRead);
}

TEST_F(IoFaultSweep, ReadAndListingErrorsInPrune) {
  MakeStore(false);
  GcOptions gc;
  gc.repack_below = 0.9;
  Op op{"prune+GC, mirrored", true, [gc, this](Store* s) { Prune(s, KeepLast(2), gc, &log_); }};
  op.check_memory_damage = false;
  Sweep(op, Fault::kRead);
  Sweep(op, Fault::kList);
  op.name = "prune+GC, one copy";
  op.mirrored = false;
  Sweep(op, Fault::kRead);
  Sweep(op, Fault::kList);
}

TEST_F(IoFaultSweep, ReadAndListingErrorsInSync) {
  MakeStore(true);
  Op op{"store sync, mirror behind", true, [](Store* s) { s->Sync(); }};
  Sweep(op, Fault::kRead);
  Sweep(op, Fault::kList);
}

TEST_F(IoFaultSweep, ListingErrorsInVerifyAndBackup) {
  MakeStore(false);
  Sweep(VerifyOp(true), Fault::kList);
  reliability::BuildGeneration(src_, 6);
  const std::string gen6 = DescribeTree(src_, false);
  Op backup{"backup, mirrored", true, [this, gen6](Store* s) {
              BackupResult r = RunBackup(s, Volumes(), opts_, &log_);
              expected_[r.point] = gen6;
            }};
  Sweep(backup, Fault::kList);
}

}  // namespace
}  // namespace vmback

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  vmback::reliability::InstallSummaryPrinter("I/O errors are not corruption (EIO on reads and listings)");
  return RUN_ALL_TESTS();
}
