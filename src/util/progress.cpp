#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/encoding.h"

namespace vmback {

namespace {
std::mutex g_line_mu;
bool g_line_shown = false;
}  // namespace

Progress& Progress::Get() {
  static Progress p;
  return p;
}

void Progress::Start(const std::string& what, uint64_t total_bytes, const char* verb) {
  std::lock_guard<std::mutex> l(mu_);
  volume_ = what;
  verb_ = verb;
  total_ = total_bytes;
  start_ = std::chrono::steady_clock::now();
  done_.store(0);
}

std::string Progress::Line() {
  std::lock_guard<std::mutex> l(mu_);
  if (volume_.empty()) return "";
  uint64_t done = done_.load(std::memory_order_relaxed);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0.2 ? done / secs : 0;
  std::string s = volume_ + ": " + FormatBytes(done) + " " + verb_;
  if (total_) s += " of " + FormatBytes(total_);
  if (rate > 0) s += ", " + FormatBytes(static_cast<uint64_t>(rate)) + "/s";
  if (total_ && rate > 0 && done < total_) {
    auto left = static_cast<uint64_t>((total_ - done) / rate);
    char buf[32];
    std::snprintf(buf, sizeof buf, ", %llu:%02llu left", static_cast<unsigned long long>(left / 60),
                  static_cast<unsigned long long>(left % 60));
    s += buf;
  }
  return s;
}

ProgressDisplay::ProgressDisplay(ProgressMode mode, std::chrono::milliseconds interval,
                                 std::function<void(const std::string&)> log_line)
    : mode_(mode) {
  if (mode_ == ProgressMode::kOff) return;
  const auto every = mode_ == ProgressMode::kLive ? std::chrono::milliseconds(500) : interval;
  thread_ = std::thread([this, every, log_line = std::move(log_line)] {
    std::unique_lock<std::mutex> l(mu_);
    std::string last;
    while (!cv_.wait_for(l, every, [this] { return stop_; })) {
      std::string line = Progress::Get().Line();
      if (line.empty()) continue;
      if (mode_ == ProgressMode::kLines) {
        if (line == last) continue;  // nothing moved: said already
        last = line;
        log_line("progress: " + line);
        continue;
      }
      std::lock_guard<std::mutex> g(g_line_mu);
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
      g_line_shown = true;
    }
  });
}

ProgressDisplay::~ProgressDisplay() {
  if (mode_ == ProgressMode::kOff) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ClearLine();
}

void ProgressDisplay::ClearLine() {
  std::lock_guard<std::mutex> g(g_line_mu);
  if (!g_line_shown) return;
  std::fprintf(stderr, "\r\033[K");
  g_line_shown = false;
}

}  // namespace vmback
