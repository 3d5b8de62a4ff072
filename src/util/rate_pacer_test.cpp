// RatePacer on a fake clock: what it waits for is checked exactly, and no
// test sleeps.
#include "util/rate_pacer.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace vmback {
namespace {

using std::chrono::milliseconds;

// Time moves only when the code under test sleeps.
class FakeClock : public Clock {
 public:
  TimePoint Now() override {
    std::lock_guard<std::mutex> l(mu_);
    return now_;
  }
  void SleepUntil(TimePoint t) override {
    std::lock_guard<std::mutex> l(mu_);
    sleeps_++;
    if (t > now_) now_ = t;
  }
  void Advance(milliseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    now_ += d;
  }
  double Seconds() {
    std::lock_guard<std::mutex> l(mu_);
    return std::chrono::duration<double>(now_ - start_).count();
  }
  int sleeps() {
    std::lock_guard<std::mutex> l(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  const TimePoint start_ = TimePoint{} + std::chrono::hours(1);
  TimePoint now_ = start_;
  int sleeps_ = 0;
};

TEST(RatePacerTest, ReadsAtTheRateAfterAQuarterSecondBurst) {
  FakeClock clock;
  RatePacer pacer(4 << 20, &clock);  // 4 MiB/s
  // 1 MiB is within the burst (0.25 s at 4 MiB/s): no time passes.
  for (int i = 0; i < 8; i++) pacer.Take(128 << 10);
  EXPECT_DOUBLE_EQ(clock.Seconds(), 0.0);
  // Every byte after it costs its time at the rate: 2 MiB more take 0.5 s.
  for (int i = 0; i < 16; i++) pacer.Take(128 << 10);
  EXPECT_NEAR(clock.Seconds(), 0.5, 1e-6);
}

TEST(RatePacerTest, AnIdlePauseEarnsNoMoreThanTheBurst) {
  FakeClock clock;
  RatePacer pacer(1 << 20, &clock);  // 1 MiB/s
  pacer.Take(1 << 20);               // 0.25 s burst, then 0.75 s
  EXPECT_NEAR(clock.Seconds(), 0.75, 1e-6);
  clock.Advance(milliseconds(10000));  // ten idle seconds
  pacer.Take(1 << 20);                 // again only 0.25 s of credit
  EXPECT_NEAR(clock.Seconds(), 10.75 + 0.75, 1e-6);
}

TEST(RatePacerTest, ThreadsShareOneRate) {
  FakeClock clock;
  RatePacer pacer(8 << 20, &clock);  // 8 MiB/s shared
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; t++)
    readers.emplace_back([&] {
      for (int i = 0; i < 8; i++) pacer.Take(256 << 10);  // 2 MiB each, 8 MiB in all
    });
  for (auto& r : readers) r.join();
  // 8 MiB at 8 MiB/s, less the 0.25 s burst: the last reader waited 0.75 s.
  EXPECT_NEAR(clock.Seconds(), 0.75, 1e-6);
}

TEST(RatePacerTest, WithoutARateNothingWaits) {
  FakeClock clock;
  RatePacer none(0, &clock);
  for (int i = 0; i < 1000; i++) none.Take(uint64_t{1} << 30);
  EXPECT_EQ(clock.sleeps(), 0);
  EXPECT_DOUBLE_EQ(clock.Seconds(), 0.0);
  EXPECT_EQ(none.rate(), 0u);
}

}  // namespace
}  // namespace vmback
