// CoalescingRunner: no thread until asked; asks made during a run fold into
// one more run; the destructor waits for the run under way and the one
// asked for.
#include "util/coalescing_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "helpers/test_util.h"

namespace vmback {
namespace {

TEST(CoalescingRunnerTest, NothingRunsUntilAsked) {
  std::atomic<int> calls{0};
  { CoalescingRunner r([&] { calls++; }); }
  EXPECT_EQ(calls, 0);
}

TEST(CoalescingRunnerTest, AsksDuringARunFoldIntoOneMoreRun) {
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  {
    CoalescingRunner r([&] {
      calls++;
      while (calls == 1 && !release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    r.Kick();
    ASSERT_TRUE(test::Eventually([&] { return calls == 1; }));
    for (int i = 0; i < 5; i++) r.Kick();  // while the first run is held
    release = true;
  }
  EXPECT_EQ(calls, 2) << "the first run, and one for the five asks made during it";
}

TEST(CoalescingRunnerTest, TheDestructorWaitsForTheRunAskedFor) {
  std::atomic<int> done{0};
  {
    CoalescingRunner r([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      done++;
    });
    r.Kick();
  }
  EXPECT_EQ(done, 1);
}

}  // namespace
}  // namespace vmback
