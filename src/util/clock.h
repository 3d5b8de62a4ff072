// Time for code that waits: the steady clock and sleeping, behind one small
// interface so that tests can run a pacer or a retry loop on a fake clock
// (no test sleeps, and what the code waited for is checked exactly).
#pragma once

#include <chrono>
#include <thread>

namespace vmback {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  virtual void SleepUntil(TimePoint t) = 0;
  void SleepFor(std::chrono::nanoseconds d) { SleepUntil(Now() + d); }

  // The process's steady clock; never destroyed.
  static Clock* Steady();
};

class SteadyClock final : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void SleepUntil(TimePoint t) override { std::this_thread::sleep_until(t); }
};

inline Clock* Clock::Steady() {
  static SteadyClock* clock = new SteadyClock;
  return clock;
}

}  // namespace vmback
