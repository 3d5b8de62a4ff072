#include "store/read_balance.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <queue>

namespace vmback {
namespace {

// A clock the test moves by hand.
struct FakeClock {
  double now = 0;
  ReadBalancer::Clock fn() {
    return [this] { return now; };
  }
};

TEST(ReadBalancerTest, OneCopyIsAlwaysFirst) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  for (uint64_t off = 0; off < 64 * kBalanceRangeBytes; off += kBalanceRangeBytes)
    EXPECT_EQ(b.Order(7, off, 4096, 1), std::vector<size_t>{0});
}

TEST(ReadBalancerTest, EveryCopyOnceInEachOrder) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  for (uint64_t off = 0; off < 16 * kBalanceRangeBytes; off += kBalanceRangeBytes) {
    std::vector<size_t> order = b.Order(1, off, 4096, 3);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2}));
  }
}

TEST(ReadBalancerTest, ANewRangeGoesToTheIdleCopy) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  std::vector<size_t> first = b.Order(1, 0, 4096, 2);
  ASSERT_EQ(first[0], 0u);  // all equal: the primary
  ReadBalancer::Read busy(&b, first[0], 4096);
  EXPECT_EQ(b.Order(1, kBalanceRangeBytes, 4096, 2)[0], 1u);
  EXPECT_EQ(b.Order(2, 0, 4096, 2)[0], 1u);
}

TEST(ReadBalancerTest, ARangeStaysOnItsCopyWhileItIsRead) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  size_t c = b.Order(3, 100, 4096, 2)[0];
  ReadBalancer::Read busy(&b, c, 4096);
  // Further reads in the same range follow it, though that copy is busy.
  EXPECT_EQ(b.Order(3, 200, 4096, 2)[0], c);
  EXPECT_EQ(b.Order(3, kBalanceRangeBytes - 1, 4096, 2)[0], c);
  // The next range does not.
  EXPECT_NE(b.Order(3, kBalanceRangeBytes, 4096, 2)[0], c);
}

TEST(ReadBalancerTest, AFailedCopyIsTriedLast) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  size_t c = b.Order(1, 0, 4096, 2)[0];
  {
    ReadBalancer::Read r(&b, c, 4096);
    r.Finish(false);
  }
  // Its own range moves too.
  EXPECT_EQ(b.Order(1, 0, 4096, 2), (std::vector<size_t>{1 - c, c}));
  for (int i = 1; i < 50; i++) EXPECT_EQ(b.Order(1, i * kBalanceRangeBytes, 4096, 2)[0], 1 - c) << i;
  EXPECT_EQ(b.Stats()[c].errors, 1u);
}

TEST(ReadBalancerTest, AReadNeverFinishedCountsAsFailed) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  b.Order(1, 0, 4096, 2);
  { ReadBalancer::Read r(&b, 0, 4096); }
  EXPECT_EQ(b.Stats()[0].errors, 1u);
  EXPECT_EQ(b.Stats()[0].reads, 1u);
  EXPECT_EQ(b.Order(1, kBalanceRangeBytes, 4096, 2)[0], 1u);
}

TEST(ReadBalancerTest, AFailedCopyIsForgivenAfterAWhile) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  b.Order(1, 0, 4096, 2);
  ReadBalancer::Read(&b, 0, 4096).Finish(false);
  // Reads finished on copy 1 leave it with more bytes served, so once the
  // penalty is over copy 0 is first again.
  for (uint64_t i = 1; i <= kBalancePenaltyReads + 1; i++) {
    size_t c = b.Order(1, i * kBalanceRangeBytes, 4096, 2)[0];
    ReadBalancer::Read(&b, c, 4096).Finish(true);
  }
  EXPECT_EQ(b.Order(9, 0, 4096, 2)[0], 0u);
}

TEST(ReadBalancerTest, CopiesMayGrow) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  ReadBalancer::Read busy0(&b, b.Order(1, 0, 4096, 1)[0], 4096);
  std::vector<size_t> order = b.Order(1, kBalanceRangeBytes, 4096, 2);
  EXPECT_EQ(order, (std::vector<size_t>{1, 0}));
}

// Copy 0 measured at `slow` bytes/s and copy 1 at `fast`, at the same time.
void Measure(ReadBalancer* b, FakeClock* clock, uint64_t slow, uint64_t fast) {
  ReadBalancer::Read r0(b, 0, slow), r1(b, 1, fast);
  clock->now += 1;
  r0.Finish(true);
  r1.Finish(true);
}

TEST(ReadBalancerTest, ACopyMeasuredSlowIsTriedAgainLater) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  b.Order(5, 0, 4096, 2);
  Measure(&b, &clock, 2000000, 100000000);  // copy 0 at 2 MB/s: a moment of contention
  ReadBalancer::Read busy(&b, 1, 65536);
  EXPECT_EQ(b.Order(6, 0, 65536, 2)[0], 1u);  // rather wait for copy 1
  // Ten half-lives later copy 0 looks nearly as fast as copy 1 again, and
  // takes a read while copy 1 is busy.
  clock.now += 10 * kBalanceForgetSeconds;
  EXPECT_EQ(b.Order(7, 0, 65536, 2)[0], 0u);
}

TEST(ReadBalancerTest, SpeedIsBytesOverTimeNotAnAverageOfSpeeds) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  // A throttled disk: one read at once (1 ms for 1 MiB), the next after a
  // wait (1 s for 1 MiB). Its speed is about 2 MiB in 1 s, not the mean
  // of 1 GiB/s and 1 MiB/s.
  for (double t : {0.001, 1.0}) {
    ReadBalancer::Read r(&b, 0, 1u << 20);
    clock.now += t;
    r.Finish(true);
  }
  const double speed = b.Stats()[0].bytes_per_second;
  EXPECT_GT(speed, 1.9e6);
  EXPECT_LT(speed, 2.2e6);
}

TEST(ReadBalancerTest, AFewSmallReadsAreNotAMeasure) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  {
    ReadBalancer::Read r0(&b, 0, 65536), r1(&b, 1, 2u << 20);
    clock.now += 0.001;
    r1.Finish(true);  // copy 1: 2 MiB in 1 ms
    clock.now += 1;
    r0.Finish(true);  // copy 0: one slow start
  }
  EXPECT_EQ(b.Stats()[0].bytes_per_second, 0);
  EXPECT_GT(b.Stats()[1].bytes_per_second, 1e9);
  // Copy 0 is taken to be as fast as copy 1, so it gets the read while
  // copy 1 is busy.
  ReadBalancer::Read busy(&b, 1, 65536);
  EXPECT_EQ(b.Order(1, 0, 65536, 2)[0], 0u);
}

TEST(ReadBalancerTest, StatsCountBytesAndReads) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  b.Order(1, 0, 4096, 2);
  ReadBalancer::Read(&b, 1, 1000).Finish(true);
  ReadBalancer::Read(&b, 1, 24).Finish(true);
  std::vector<CopyReadStats> s = b.Stats();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].reads, 2u);
  EXPECT_EQ(s[1].bytes, 1024u);
  EXPECT_EQ(s[1].errors, 0u);
  EXPECT_EQ(s[0].reads, 0u);
}

// Two workers read consecutive ranges of packs; copy 0's disk serves a range
// in `cost0` time units, copy 1's in `cost1`, one read at a time (a read
// waits for those before it on its disk). Simulated in event order on the
// balancer's clock: returns the ranges each copy served and the time it
// took.
// A copy's speed is forgotten over 100 units: reads of a range take 1 to 10
// units here, as reads of a few ms do against kBalanceForgetSeconds.
std::pair<std::vector<int>, double> Simulate(double cost0, double cost1, int ranges) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), 100);
  const double cost[2] = {cost0, cost1};
  std::vector<int> served(2, 0);
  // (finish time, worker): each worker holds one read at a time.
  using Event = std::pair<double, int>;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;
  std::map<int, std::unique_ptr<ReadBalancer::Read>> reading;
  std::map<int, size_t> copy_of;
  double free_at[2] = {0, 0};  // when each disk is done with what it was given
  int next = 0;
  auto start = [&](int worker) {
    if (next >= ranges) return;
    uint64_t off = static_cast<uint64_t>(next) * kBalanceRangeBytes;
    next++;
    size_t c = b.Order(static_cast<uint32_t>(off / (32u << 20)), off % (32u << 20), kBalanceRangeBytes, 2)[0];
    reading[worker] = std::make_unique<ReadBalancer::Read>(&b, c, kBalanceRangeBytes);
    copy_of[worker] = c;
    free_at[c] = std::max(free_at[c], clock.now) + cost[c];
    events.push({free_at[c], worker});
  };
  start(0);
  start(1);
  while (!events.empty()) {
    auto [t, worker] = events.top();
    events.pop();
    clock.now = t;
    served[copy_of[worker]]++;
    reading[worker]->Finish(true);
    reading.erase(worker);
    start(worker);
  }
  return {served, clock.now};
}

TEST(ReadBalancerTest, EqualDisksShareTheWork) {
  auto [served, time] = Simulate(1, 1, 1000);
  EXPECT_EQ(served[0], 500);
  EXPECT_EQ(served[1], 500);
  EXPECT_DOUBLE_EQ(time, 500);  // with the two workers on one disk each
}

TEST(ReadBalancerTest, ASlowDiskDoesNotSetThePace) {
  // Copy 1 is 10x slower: it is given little, and the job ends sooner than
  // on copy 0 alone (1000 units), not at the slow copy's pace.
  auto [served, time] = Simulate(1, 10, 1000);
  EXPECT_EQ(served[0] + served[1], 1000);
  EXPECT_GE(served[0], 880);
  EXPECT_GT(served[1], 0);
  EXPECT_LT(time, 1000);
}

TEST(ReadBalancerTest, TwoDisksOfDifferentSpeedsBothWork) {
  // Copy 1 is half as fast: it serves about a third (the best split: 800
  // units, against 1200 on copy 0 alone).
  auto [served, time] = Simulate(1, 2, 1200);
  EXPECT_GT(served[1], 300);
  EXPECT_GT(served[0], served[1]);
  EXPECT_LE(time, 850);
}

TEST(ReadBalancerTest, ARangeLeavesACopyMuchSlowerThanAnother) {
  FakeClock clock;
  ReadBalancer b(clock.fn(), kBalanceForgetSeconds);
  b.Order(5, 0, 4096, 2);  // range (5, 0) placed on copy 0: nothing known
  Measure(&b, &clock, 2000000, 200000000);
  // Its next read goes to copy 1, which finishes it 100 times sooner.
  EXPECT_EQ(b.Order(5, 4096, 65536, 2)[0], 1u);
  EXPECT_EQ(b.Order(5, 8192, 65536, 2)[0], 1u);
  std::vector<CopyReadStats> s = b.Stats();
  EXPECT_DOUBLE_EQ(s[0].bytes_per_second, 2e6);
  EXPECT_DOUBLE_EQ(s[1].bytes_per_second, 2e8);
}

}  // namespace
}  // namespace vmback
