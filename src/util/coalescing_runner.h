// Runs one function on a thread of its own each time it is asked (Kick),
// never twice at once: asks made while it runs fold into one more run after
// it, so every Kick is followed by a run that begins after it. For work
// that helps when done early, such as starting the write-back of what a
// sync wrote so far. The thread starts at the first Kick; the destructor
// waits for the run under way and the one asked for, then stops it.
// fn must not throw.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace vmback {

class CoalescingRunner {
 public:
  explicit CoalescingRunner(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~CoalescingRunner() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  CoalescingRunner(const CoalescingRunner&) = delete;
  CoalescingRunner& operator=(const CoalescingRunner&) = delete;

  void Kick() {
    {
      std::lock_guard<std::mutex> l(mu_);
      asked_ = true;
      if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [this] { return stop_ || asked_; });
      if (!asked_) return;  // stopped
      asked_ = false;
      l.unlock();
      fn_();
      l.lock();
    }
  }

  const std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool asked_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vmback
