// PlanReplica: what each pair of point lists asks for. The sends themselves
// run against real ZFS (zfs-fuse) in tests/integration/zfs_replicate.sh.
#include "inplace/zfs_replicate.h"

#include <gtest/gtest.h>

namespace vmback {
namespace {

using Kind = ReplicaPlan::Kind;

const std::string kA = "vmback-2026-12-01T010000Z";
const std::string kB = "vmback-2026-12-02T010000Z";
const std::string kC = "vmback-2026-12-03T010000Z";
const std::string kD = "vmback-2026-12-04T010000Z";

TEST(PlanReplicaTest, NothingToSendWithoutPoints) {
  EXPECT_EQ(PlanReplica({}, false, {}).kind, Kind::kNothing);
  EXPECT_EQ(PlanReplica({}, true, {kA}).kind, Kind::kNothing);
}

TEST(PlanReplicaTest, FirstTimeIsAFullSendOfTheNewest) {
  ReplicaPlan p = PlanReplica({kA, kB, kC}, false, {});
  EXPECT_EQ(p.kind, Kind::kFull);
  EXPECT_EQ(p.latest, kC);
  EXPECT_EQ(p.base, "");
}

TEST(PlanReplicaTest, IncrementalFromTheReceiversNewest) {
  ReplicaPlan p = PlanReplica({kA, kB, kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kIncremental);
  EXPECT_EQ(p.base, kB);
  EXPECT_EQ(p.latest, kD);
  // The source pruned older points: the base is still there.
  p = PlanReplica({kB, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kIncremental);
  EXPECT_EQ(p.base, kB);
}

TEST(PlanReplicaTest, UpToDate) {
  ReplicaPlan p = PlanReplica({kA, kB}, true, {kB});
  EXPECT_EQ(p.kind, Kind::kUpToDate);
  EXPECT_EQ(p.latest, kB);
}

TEST(PlanReplicaTest, BrokenChainsAreSetAside) {
  // The receiver's newest point is gone from the source: -I from an older
  // common point would need a rollback that loses the receiver's newest.
  ReplicaPlan p = PlanReplica({kA, kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kSetAside);
  EXPECT_NE(p.why.find(kB + " is not on the source"), std::string::npos) << p.why;
  EXPECT_NE(p.why.find("the newest in common is " + kA), std::string::npos) << p.why;
  p = PlanReplica({kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kSetAside);
  EXPECT_NE(p.why.find("no point in common"), std::string::npos) << p.why;
  // A dataset made by hand, without any point of vmback.
  p = PlanReplica({kC}, true, {});
  EXPECT_EQ(p.kind, Kind::kSetAside);
  EXPECT_NE(p.why.find("holds no point of vmback"), std::string::npos) << p.why;
}

TEST(PlanReplicaTest, HoldTagIsStableAndPerReplica) {
  ReplicaConfig a{"off/vmback", "", {}, false, 1};
  ReplicaConfig b{"off/vmback", "backup@site", {}, false, 2};
  EXPECT_EQ(ReplicaHoldTag(a), ReplicaHoldTag(a));
  EXPECT_NE(ReplicaHoldTag(a), ReplicaHoldTag(b));
  EXPECT_EQ(ReplicaHoldTag(a).rfind("vmback-replica-", 0), 0u);
  EXPECT_EQ(ReplicaHoldTag(a).size(), std::string("vmback-replica-").size() + 12);
}

}  // namespace
}  // namespace vmback
