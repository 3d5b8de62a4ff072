// ThreadPool: tasks run, in FIFO order on one worker; an exception reaches
// the caller through the future; destruction finishes what was queued; N
// workers run N tasks at once.
#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace vmback {
namespace {

TEST(ThreadPoolTest, OneWorkerRunsTasksInTheOrderSubmitted) {
  std::vector<int> order;
  std::vector<std::future<void>> done;
  {
    ThreadPool pool(1);
    EXPECT_EQ(pool.size(), 1u);
    for (int i = 0; i < 100; i++) done.push_back(pool.Submit([&order, i] { order.push_back(i); }));
    for (auto& f : done) f.get();
  }
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; i++) EXPECT_EQ(order[i], i);
}

TEST(ThreadPoolTest, ResultsAndExceptionsReachTheCaller) {
  ThreadPool pool(2);
  auto value = pool.Submit([] { return std::string("blob"); });
  auto thrown = pool.Submit([]() -> int { throw std::runtime_error("pack unreadable"); });
  EXPECT_EQ(value.get(), "blob");
  try {
    thrown.get();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "pack unreadable");
  }
  // The worker that threw goes on with the next task.
  EXPECT_EQ(pool.Submit([] { return 7; }).get(), 7);
}

TEST(ThreadPoolTest, DestructionFinishesEveryQueuedTask) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 1000; i++) pool.Submit([&ran] { ran++; });
  }  // no future waited for
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolTest, WorkersRunTasksAtTheSameTime) {
  // Two tasks that each wait for the other finish only on two workers.
  ThreadPool pool(2);
  std::promise<void> a_started, b_started;
  auto a = pool.Submit([&] {
    a_started.set_value();
    b_started.get_future().wait();
  });
  auto b = pool.Submit([&] {
    b_started.set_value();
    a_started.get_future().wait();
  });
  EXPECT_EQ(a.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(b.wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST(ThreadPoolTest, ZeroThreadsMeansOnePerCore) {
  ThreadPool pool(0);
  EXPECT_GE(pool.size(), 1u);
  EXPECT_EQ(pool.size(), std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace vmback
