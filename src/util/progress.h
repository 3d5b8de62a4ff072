// Progress of the volume being read, for the person at the terminal: bytes
// read, rate and (when the volume's size is known) time left. The readers
// count into one process-wide meter (RatePacer::Take counts every source
// read); ProgressDisplay draws it on stderr twice a second, on a TTY only,
// and the Logger clears the line before it prints a message.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace vmback {

class Progress {
 public:
  static Progress& Get();

  // A new volume: counts restart; total 0 = unknown (a tree).
  void StartVolume(const std::string& name, uint64_t total_bytes);
  void AddRead(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }

  // "img: 1.2 GiB of 4.0 GiB, 85.3 MiB/s, 0:34 left" (empty before the first volume).
  std::string Line();

 private:
  std::mutex mu_;
  std::string volume_;
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::atomic<uint64_t> done_{0};
};

// Draws Progress::Line() with "\r" on stderr every 0.5 s while alive, when
// enabled (the CLI enables it for a TTY and not --quiet). Clears the line at
// the end. Only one display at a time.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(bool enabled);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  // Erases the progress line if one is shown (called by the Logger before it
  // prints; the lock keeps the two from interleaving).
  static void ClearLine();

 private:
  bool enabled_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vmback
