// ZFS replication ([[replicate]] in the config): the points of a zfs target
// sent to another dataset, on another pool of this host or over ssh, with
// `zfs send [-I BASE] POINT | zfs recv`, the bytes relayed by vmback
// (Env::RunPipe) so that a stalled stream is ended.
//
// One replica, each time:
//   1. its points are listed (vmback's prefix only); PlanReplica decides;
//   2. up to date: nothing is sent. Incremental: every point from the
//      newest one both sides have (the base) to the source's newest goes in
//      one `zfs send -I` stream into `zfs recv -F` (-F rolls back what
//      changed on the receiver since the base). A snapshot someone made on
//      the receiver after the base would be destroyed by that receive: the
//      replica is then refused (blocked), naming it, and nothing is sent
//      until it is gone; the base stays held on the source. The first time: a
//      full send of the newest point. A broken chain (the receiver's newest
//      point is not on the source, or the dataset exists without any point of
//      vmback): the receiving dataset is renamed aside (DATASET-vmback-aside-
//      <UTC time>: nothing on it is destroyed, the report names it) and a full
//      send starts a new chain;
//   3. the source's newest point is held (`zfs hold vmback-replica-<id>`) so
//      that the source's prune cannot destroy the base of the next send
//      (PruneTarget keeps held points), and the replica's older holds are
//      released;
//   4. the receiver's retention ([replicate.retention], else the target's
//      [retention]) destroys its points it does not keep; never its newest.
// A replica that fails is reported with the reason; the point on the target
// stands, and the next run sends what is missing.
#pragma once

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "inplace/target.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

struct ReplicaPlan {
  enum class Kind {
    kNothing,      // the source has no point
    kUpToDate,     // the receiver has the source's newest point
    kFull,         // the receiving dataset does not exist: a full send
    kIncremental,  // from base, the newest point both have
    kSetAside,     // a broken chain: rename the receiver aside, then a full send
    kBlocked,      // snapshots made on the receiver after the base (in why)
  };
  Kind kind = Kind::kNothing;
  std::string base;    // kIncremental
  std::string latest;  // the source's newest point
  std::string why;     // kSetAside, kBlocked: for the report
};

// Decides from each side's points (vmback's, oldest first), whether the
// receiving dataset exists and every snapshot of it in the order of their
// creation (vmback's and others').
ReplicaPlan PlanReplica(const std::vector<std::string>& source, bool receiver_exists,
                        const std::vector<std::string>& receiver,
                        const std::vector<std::string>& receiver_snapshots);

struct ReplicaReport {
  std::string where;              // ReplicaConfig::where()
  std::string mode;               // "up to date", "incremental", "full", "full (chain broken)"
  std::string base;               // the incremental's base
  std::vector<std::string> sent;  // points the receiver got in this run
  std::string set_aside;          // the dataset a broken chain was renamed to
  std::string chain_broken;       // why, when it was
  uint64_t bytes = 0;             // of the send stream
  double seconds = 0;
  std::vector<std::string> pruned;  // destroyed on the receiver by its retention
  std::vector<std::string> warnings;
  bool dry_run = false;  // sent: what would be sent
  std::string error;  // "" when the replica is up to date now
};

// The hold tag that keeps a replica's base on the source: vmback-replica-
// and 12 hex digits of the SHA-256 of where().
std::string ReplicaHoldTag(const ReplicaConfig& replica);

// Brings every replica up to date with the target's points (dataset: the
// target's [target] dataset). Each replica's error is in its report and
// logged; one replica failing does not stop the next. dry_run: both sides
// are listed and the reports say what would be sent; nothing is changed.
std::vector<ReplicaReport> ReplicateZfs(InplaceTarget* target, Env* env, const TargetConfig& config,
                                        const std::vector<ReplicaConfig>& replicas, const RetentionPolicy& fallback,
                                        const PipeLimits& limits, bool dry_run, Logger* log);
// ReplicateZfs of config's target and [[replicate]] (none: nothing).
std::vector<ReplicaReport> ReplicateConfigured(Env* env, const Config& config, const std::atomic<bool>* cancel,
                                               bool dry_run, Logger* log);

// The points of dataset that carry a hold (userrefs > 0): prune keeps
// them. Empty when zfs cannot say.
std::set<std::string> ZfsHeldPoints(Env* env, const std::string& dataset);

nlohmann::json ReplicaReportsToJson(const std::vector<ReplicaReport>& reports);
// One line per replica, for the text report.
std::vector<std::string> ReplicaReportLines(const std::vector<ReplicaReport>& reports);

}  // namespace vmback
