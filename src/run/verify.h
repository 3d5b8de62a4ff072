// verify: re-reads every pack of the store, re-hashes every blob, then walks
// every point and names each file or directory that a bad or missing blob
// affects. repair: rewrites the packs damaged on every copy without their
// bad blobs, recording the ones nothing can give back as lost.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/log.h"

namespace vmback {

struct VerifyProblem {
  std::string point;   // empty for a problem with a pack as such
  std::string path;    // VOLUME/sub/path, or the pack/manifest file
  std::string reason;
};

// What verify found and did on one copy of the store.
struct CopyReport {
  std::string dir;
  uint64_t packs_checked = 0;
  uint64_t packs_missing = 0;
  uint64_t packs_damaged = 0;
  uint64_t manifests_damaged = 0;
  uint64_t index_files_damaged = 0;
  uint64_t repaired = 0;       // packs and manifests rewritten from another copy
  uint64_t unrepairable = 0;   // damaged here and on every other copy
  // Pack bytes read from this copy, and the time from its first read's start
  // to its last read's end (copies are read at once, each at its own pace).
  uint64_t bytes_read = 0;
  double read_seconds = 0;
};

// Which packs verify reads, and how fast. The points' structure (manifests,
// directory listings, block lists) is always checked in full; a subset
// limits only the reading of pack data.
struct VerifyOptions {
  // Read only part `subset_n` (1-based) of `subset_m` parts of the packs,
  // chosen by pack id, so that parts 1/M .. M/M together read every pack
  // once. 0/0: every pack.
  uint32_t subset_n = 0, subset_m = 0;
  // Or a random share of the packs (0 < fraction < 1); 0: not used.
  double fraction = 0;
  // Bytes per second read from each copy (0: no limit).
  uint64_t read_limit = 0;
};

// Parses --read-data-subset: "N/M" (1 <= N <= M <= 65536), "auto/M" (part
// (weeks since 1970 mod M) + 1: a weekly timer reads each pack once every M
// weeks), or "P%" (0 < P <= 100, a random share). Throws kConfig naming the
// text otherwise. now_ns is the clock for "auto".
void ParseReadDataSubset(const std::string& text, int64_t now_ns, VerifyOptions* options);

// A pack damaged on every copy: verify cannot heal it from another copy.
struct DamagedPack {
  Hash pack;
  // Bad in this pack on every copy, but whole in another pack (a later
  // backup wrote the same data afresh): nothing is lost.
  std::vector<Hash> healed;
  // Bad here and whole nowhere: the files that hold them lose those blocks.
  std::vector<Hash> unhealed;
};

struct VerifyReport {
  std::vector<CopyReport> copies;
  uint64_t packs_skipped = 0;  // not read this time (a subset); not checked
  // A reader's verify (the store opened kShared) heals nothing: what a
  // writer's would have healed (a copy's missing or damaged pack or
  // manifest from another copy, a change to the damage record) is counted
  // here; `vmback verify` then heals under the exclusive lock.
  uint64_t to_heal = 0;
  std::string subset;          // "2/4", "10%", or empty for every pack
  uint64_t repaired = 0;
  uint64_t packs = 0;
  uint64_t blobs = 0;
  uint64_t bytes = 0;          // stored bytes read
  uint64_t bad_packs = 0;      // packs whose file hash or entry table is wrong
  uint64_t bad_blobs = 0;
  uint64_t points = 0;
  uint64_t files_checked = 0;
  std::vector<VerifyProblem> problems;
  std::vector<DamagedPack> damaged_packs;
  // Blocks `vmback repair` recorded lost, per point and file (byte ranges):
  // a note, not damage (the store is consistent; those points are known to
  // be incomplete).
  std::vector<VerifyProblem> lost;
  // What to do about the problems, e.g. "run 'vmback repair' to ..."; empty
  // when there is nothing vmback can do.
  std::string next_step;
  bool ok() const { return problems.empty(); }
};

// Scrubs every copy of the store and heals each from the others when the
// store is opened by a writer; opened kShared (beside a running backup) it
// only checks, counts what it would heal in to_heal, and leaves out packs no
// index file named at open (a backup beside it may be writing them). Damage
// healed from another copy is counted in repaired, not in problems.
// With a subset, blobs in packs not read count as good for the point check
// and keep whatever damage an earlier verify recorded for them.
VerifyReport Verify(Store* store, Logger* log, const VerifyOptions& options = {});
nlohmann::json VerifyReportToJson(const VerifyReport& r);

struct RepairReport {
  bool dry_run = false;
  VerifyReport verify;  // the full check repair starts with
  uint64_t packs_rewritten = 0;
  uint64_t blobs_moved = 0;    // good blobs of the damaged packs, moved to new packs
  uint64_t blobs_healed = 0;   // bad blobs dropped: a good copy is in another pack
  uint64_t blobs_lost = 0;     // bad blobs no copy has: recorded in the file "lost"
  // The points and files that lose blocks (byte ranges), once.
  std::vector<VerifyProblem> lost;
};

// Runs a full Verify (which heals every copy it can from the others), then
// rewrites each pack damaged on every copy without its bad blobs: the good
// ones are moved into a new pack, a bad one with a good copy in another pack
// is dropped, and one that nothing can give back is recorded as lost
// (Store::AddLost) before the pack goes. Old packs are deleted only after
// the new packs and index are durable (RepackAndDrop). A dry run changes no
// pack and records nothing. REQUIRES: store opened kExclusive.
RepairReport Repair(Store* store, Logger* log, bool dry_run);

// Verify's line for a pack damaged on every copy (path: the primary's).
std::string DescribeDamagedPack(const std::string& path, const DamagedPack& d);
nlohmann::json RepairReportToJson(const RepairReport& r);

}  // namespace vmback
