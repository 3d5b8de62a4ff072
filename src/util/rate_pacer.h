// Counts every source read for the progress display, and paces them to a byte rate, so that a backup does not
// starve the VMs of disk bandwidth ([run] read_limit, --read-limit). Shared
// by every reader of a run; a burst of at most a quarter second is allowed.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "util/clock.h"
#include "util/progress.h"

namespace vmback {

class RatePacer {
 public:
  // bytes_per_second 0: no limit (Take only counts).
  explicit RatePacer(uint64_t bytes_per_second, Clock* clock = Clock::Steady())
      : rate_(bytes_per_second), clock_(clock) {}

  // Waits until `bytes` more may be read. No-op without a rate.
  void Take(uint64_t bytes) {
    Progress::Get().AddRead(bytes);
    if (rate_ == 0 || bytes == 0) return;
    Clock::TimePoint until;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto now = clock_->Now();
      auto floor = now - std::chrono::milliseconds(250);
      if (next_ < floor) next_ = floor;
      next_ += std::chrono::nanoseconds(static_cast<int64_t>(bytes * 1e9 / static_cast<double>(rate_)));
      until = next_;
    }
    clock_->SleepUntil(until);
  }

  uint64_t rate() const { return rate_; }

 private:
  const uint64_t rate_;
  Clock* const clock_;
  std::mutex mu_;
  Clock::TimePoint next_{};
};

}  // namespace vmback
