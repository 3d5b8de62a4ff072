// Progress of the long commands (backup, run, restore, verify, store sync):
// what is being worked on, bytes done, rate and (when the total is known)
// time left. The workers count into one process-wide meter (RatePacer::Take
// counts every source read; restore, verify and sync count what they write
// or check); ProgressDisplay draws it on stderr twice a second on a TTY (the
// Logger clears the line before it prints a message), or logs it as a line
// every interval otherwise (a systemd unit's journal).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace vmback {

class Progress {
 public:
  static Progress& Get();

  // A new piece of work, named what, whose bytes are counted as verb
  // ("read", "restored", "checked", "copied"): counts restart; total 0 =
  // unknown (a tree).
  void Start(const std::string& what, uint64_t total_bytes, const char* verb);
  // A volume to read (Start with "read").
  void StartVolume(const std::string& name, uint64_t total_bytes) { Start(name, total_bytes, "read"); }
  void AddRead(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }

  // "img: 1.2 GiB read of 4.0 GiB, 85.3 MiB/s, 0:34 left" (empty before
  // the first Start).
  std::string Line();

 private:
  std::mutex mu_;
  std::string volume_;
  const char* verb_ = "read";
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::atomic<uint64_t> done_{0};
};

// How progress is shown: not at all; a live line redrawn on a terminal; or a
// line logged every interval (no terminal: a unit's journal, a pipe).
enum class ProgressMode { kOff, kLive, kLines };

// Shows Progress::Line() while alive: kLive draws it with "\r" on stderr
// every 0.5 s and clears it at the end; kLines hands "progress: LINE" to
// log_line every interval (nothing when there is nothing new to say). Only
// one display at a time.
class ProgressDisplay {
 public:
  ProgressDisplay(ProgressMode mode, std::chrono::milliseconds interval,
                  std::function<void(const std::string&)> log_line);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  // Erases the progress line if one is shown (called by the Logger before it
  // prints; the lock keeps the two from interleaving).
  static void ClearLine();

 private:
  ProgressMode mode_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vmback
