#include "store/read_balance.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace vmback {

namespace {
constexpr size_t kRangesRemembered = 1024;

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

ReadBalancer::ReadBalancer() : ReadBalancer(SteadySeconds, kBalanceForgetSeconds) {}

ReadBalancer::ReadBalancer(Clock now, double forget_seconds) : now_(std::move(now)), forget_seconds_(forget_seconds) {}

void ReadBalancer::Grow(size_t n) {
  if (stats_.size() >= n) return;
  stats_.resize(n);
  recent_.resize(n, {0, 0});
  in_flight_bytes_.resize(n, 0);
  penalty_until_.resize(n, 0);
}

double ReadBalancer::Expected(size_t c, uint64_t len, double now) const {
  double fastest = 1;  // when nothing is measured: all alike
  for (const auto& s : stats_) fastest = std::max(fastest, s.bytes_per_second);
  const CopyReadStats& s = stats_[c];
  double speed = fastest;
  if (s.bytes_per_second > 0) {
    // Forgotten towards the fastest, half every forget_seconds_.
    const double kept = std::exp2(-std::max(0.0, now - s.measured_at) / forget_seconds_);
    speed = fastest - (fastest - s.bytes_per_second) * kept;
  }
  return static_cast<double>(in_flight_bytes_[c] + len) / speed;
}

std::vector<size_t> ReadBalancer::Order(uint32_t pack, uint64_t offset, uint64_t len, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  Grow(n);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (n < 2) return order;
  placements_++;
  auto penalized = [&](size_t c) { return penalty_until_[c] > placements_; };
  // Best first: not penalized, expected to finish first, fewest bytes
  // served, the primary.
  const double now = now_();
  std::vector<double> expected(n);
  for (size_t c = 0; c < n; c++) expected[c] = Expected(c, len, now);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (penalized(a) != penalized(b)) return !penalized(a);
    if (expected[a] != expected[b]) return expected[a] < expected[b];
    return stats_[a].bytes < stats_[b].bytes;
  });
  const std::pair<uint32_t, uint64_t> key{pack, offset / kBalanceRangeBytes};
  auto it = placed_.find(key);
  if (it != placed_.end()) {
    const size_t p = it->second;
    if (p < n && !penalized(p) && expected[p] <= kBalanceMoveFactor * expected[order[0]]) {
      auto pos = std::find(order.begin(), order.end(), p);
      std::rotate(order.begin(), pos, pos + 1);  // the range stays where it is
    } else {
      it->second = order[0];
    }
    return order;
  }
  placed_.emplace(key, order[0]);
  placed_order_.push_back(key);
  if (placed_order_.size() > kRangesRemembered) {
    placed_.erase(placed_order_.front());
    placed_order_.pop_front();
  }
  return order;
}

ReadBalancer::Read::Read(ReadBalancer* b, size_t copy, uint64_t len)
    : b_(b), copy_(copy), len_(len), start_(b->now_()) {
  std::lock_guard<std::mutex> l(b_->mu_);
  b_->Grow(copy_ + 1);
  b_->in_flight_bytes_[copy_] += len_;
}

ReadBalancer::Read::~Read() { Finish(false); }

void ReadBalancer::Read::Finish(bool ok) {
  if (done_) return;
  done_ = true;
  b_->Done(copy_, len_, ok, start_, b_->now_());
}

void ReadBalancer::Done(size_t c, uint64_t len, bool ok, double start, double end) {
  const double seconds = end - start;
  std::lock_guard<std::mutex> l(mu_);
  in_flight_bytes_[c] -= len;
  CopyReadStats& s = stats_[c];
  s.reads++;
  s.seconds += seconds;
  if (!ok) {
    s.errors++;
    penalty_until_[c] = placements_ + kBalancePenaltyReads;
    return;
  }
  s.bytes += len;
  auto& [bytes, secs] = recent_[c];
  const double older = std::exp2(-static_cast<double>(len) / kBalanceWindowBytes);
  bytes = bytes * older + static_cast<double>(len);
  secs = secs * older + std::max(seconds, 1e-9);
  if (s.bytes >= kBalanceMinMeasured) {
    s.bytes_per_second = bytes / secs;
    s.measured_at = end;
  }
}

std::vector<CopyReadStats> ReadBalancer::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

}  // namespace vmback
