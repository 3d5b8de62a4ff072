// Shared parts of the reliability sweeps (issue 7): the summary table every
// sweep ends with, Envs that inject what FaultEnv does not (a failing
// directory listing) or leave out what a simulated crash does not need
// (fsync), generations of a source tree whose every state is known, and
// comparisons of store copies.
//
// Short by default (CI); VMBACK_LONG_TESTS=1 asks for the long run.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "os/env.h"

namespace vmback::reliability {

// True when VMBACK_LONG_TESTS=1.
bool LongRun();

// One row of the summary table: how often the operation ran with a fault,
// how many faults were injected, and how many of those runs broke a promise.
struct SweepRow {
  std::string test;
  uint64_t runs = 0;
  uint64_t faults = 0;
  uint64_t failures = 0;
};

// Thread-compatible; rows are kept in the order they were recorded and
// printed by PrintSummary (also at the end of a GoogleTest binary, see
// InstallSummaryPrinter).
void RecordRow(const SweepRow& row);
std::string FormatSummary(const std::string& title, const std::vector<SweepRow>& rows);
// Registers a GoogleTest environment that prints the table of every row
// recorded when the binary's tests are done. Call from main() before
// RUN_ALL_TESTS.
void InstallSummaryPrinter(const std::string& title);

// Forwards to Env::Default() and skips every fsync (files and directories).
// For runs under a FaultEnv only: a simulated process crash needs no
// durability (the page cache outlives the process), and the sweeps would
// spend most of their time in fsync. The checks after a failed run use it
// too (see MirroredStoreTest::CheckEnv).
Env* NoFsyncEnv();

// Forwards to a base Env; the nth directory listing (1-based, counted over
// the Env's life) throws an I/O error, as an unreadable or vanished copy
// would. 0 = never. With `under`, only listings of those directories and
// below count (and fail).
class ListFaultEnv final : public EnvWrapper {
 public:
  ListFaultEnv(Env* base, int64_t fail_list_at, std::vector<std::string> under = {})
      : EnvWrapper(base), fail_at_(fail_list_at), under_(std::move(under)) {}
  int64_t listings() const { return listings_.load(); }
  bool injected() const { return injected_.load(); }

  std::vector<std::string> ListDir(const std::string& p) override;

 private:
  int64_t fail_at_;
  std::vector<std::string> under_;
  std::atomic<int64_t> listings_{0};
  std::atomic<bool> injected_{false};
};

// Builds generation `gen` (1, 2, ...) of a small source tree in dir, in
// place from generation gen-1 (or from nothing for gen 1): files change,
// come and go, with fixed mtimes. About 30 to 60 blocks of 4 KiB change per
// generation; a zero block, a symlink, an empty file and a compressible
// text are always there. Generation 2 adds only a scratch file that
// generation 3 removes, so that once both are pruned, generation 2's pack
// is wholly dead.
void BuildGeneration(const std::string& dir, int gen);

// Every regular file under dir whose relative path passes keep(), with the
// SHA-256 of its content.
std::map<std::string, std::string> FileDigests(const std::string& dir, bool (*keep)(const std::string& rel));

// "" when the store copies a and b hold the same packs, index files,
// manifests, tombstones and damage list byte for byte (config.json, the
// lock, tmp/ and files kept aside as *.bad-* are left out); else what
// differs.
std::string CopiesDiffer(const std::string& a, const std::string& b);

// The files of a store copy that count for CopiesDiffer.
bool IsStoreContent(const std::string& rel);

// Files kept aside as damaged (*.bad-*) anywhere under dir.
std::vector<std::string> KeptAside(const std::string& dir);

// Joins the first max items with sep, noting how many were left out.
std::string JoinSome(const std::vector<std::string>& v, const std::string& sep, size_t max = 10);

}  // namespace vmback::reliability
