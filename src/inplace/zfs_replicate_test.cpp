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

// The receiver holds only vmback's points, created in their order.
ReplicaPlan Plan(const std::vector<std::string>& source, bool exists, const std::vector<std::string>& receiver) {
  return PlanReplica(source, exists, receiver, receiver);
}

TEST(PlanReplicaTest, NothingToSendWithoutPoints) {
  EXPECT_EQ(Plan({}, false, {}).kind, Kind::kNothing);
  EXPECT_EQ(Plan({}, true, {kA}).kind, Kind::kNothing);
}

TEST(PlanReplicaTest, FirstTimeIsAFullSendOfTheNewest) {
  ReplicaPlan p = Plan({kA, kB, kC}, false, {});
  EXPECT_EQ(p.kind, Kind::kFull);
  EXPECT_EQ(p.latest, kC);
  EXPECT_EQ(p.base, "");
}

TEST(PlanReplicaTest, IncrementalFromTheReceiversNewest) {
  ReplicaPlan p = Plan({kA, kB, kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kIncremental);
  EXPECT_EQ(p.base, kB);
  EXPECT_EQ(p.latest, kD);
  // The source pruned older points: the base is still there.
  p = Plan({kB, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kIncremental);
  EXPECT_EQ(p.base, kB);
}

TEST(PlanReplicaTest, UpToDate) {
  ReplicaPlan p = Plan({kA, kB}, true, {kB});
  EXPECT_EQ(p.kind, Kind::kUpToDate);
  EXPECT_EQ(p.latest, kB);
}

TEST(PlanReplicaTest, BrokenChainsAreSetAside) {
  // The receiver's newest point is gone from the source: -I from an older
  // common point would need a rollback that loses the receiver's newest.
  ReplicaPlan p = Plan({kA, kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kSetAside);
  EXPECT_NE(p.why.find(kB + " is not on the source"), std::string::npos) << p.why;
  EXPECT_NE(p.why.find("the newest in common is " + kA), std::string::npos) << p.why;
  p = Plan({kC, kD}, true, {kA, kB});
  EXPECT_EQ(p.kind, Kind::kSetAside);
  EXPECT_NE(p.why.find("no point in common"), std::string::npos) << p.why;
  // A dataset made by hand, without any point of vmback.
  p = Plan({kC}, true, {});
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

TEST(PlanReplicaTest, SnapshotsMadeOnTheReceiverAfterTheBaseBlockTheReceive) {
  // zfs recv -F of an incremental would destroy "manual": refused, named.
  ReplicaPlan p = PlanReplica({kA, kB, kC}, true, {kA, kB}, {kA, kB, "manual", "other"});
  EXPECT_EQ(p.kind, Kind::kBlocked);
  EXPECT_EQ(p.base, kB);
  EXPECT_NE(p.why.find("(manual, other)"), std::string::npos) << p.why;
  EXPECT_NE(p.why.find("after its newest point " + kB), std::string::npos) << p.why;
  // Names from the receiving host are escaped, and a long list is cut.
  std::vector<std::string> many = {kA, kB, "bad\x1b[2Jname"};
  for (int i = 0; i < 20; i++) many.push_back("s" + std::to_string(i));
  p = PlanReplica({kA, kB, kC}, true, {kA, kB}, many);
  EXPECT_EQ(p.why.find('\x1b'), std::string::npos) << p.why;
  EXPECT_NE(p.why.find(", s8 and 11 more)"), std::string::npos) << p.why;
  // Made before the base, or nothing to send: no harm, no refusal.
  EXPECT_EQ(PlanReplica({kA, kB, kC}, true, {kA, kB}, {kA, "manual", kB}).kind, Kind::kIncremental);
  EXPECT_EQ(PlanReplica({kA, kB}, true, {kA, kB}, {kA, kB, "manual"}).kind, Kind::kUpToDate);
}

}  // namespace
}  // namespace vmback
