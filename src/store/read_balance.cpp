#include "store/read_balance.h"

#include <algorithm>
#include <numeric>

namespace vmback {

namespace {
constexpr size_t kRangesRemembered = 1024;
}  // namespace

std::vector<size_t> ReadBalancer::Order(uint32_t pack, uint64_t offset, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  if (stats_.size() < n) {
    stats_.resize(n);
    in_flight_.resize(n, 0);
    penalty_until_.resize(n, 0);
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (n < 2) return order;
  placements_++;
  auto penalized = [&](size_t c) { return penalty_until_[c] > placements_; };
  // Best first: not penalized, fewest reads under way, fewest bytes served,
  // the primary.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (penalized(a) != penalized(b)) return !penalized(a);
    if (in_flight_[a] != in_flight_[b]) return in_flight_[a] < in_flight_[b];
    return stats_[a].bytes < stats_[b].bytes;
  });
  const std::pair<uint32_t, uint64_t> key{pack, offset / kBalanceRangeBytes};
  auto it = placed_.find(key);
  if (it != placed_.end() && it->second < n && !penalized(it->second)) {
    // The range stays where it was placed.
    auto pos = std::find(order.begin(), order.end(), it->second);
    std::rotate(order.begin(), pos, pos + 1);
    return order;
  }
  if (it != placed_.end()) {
    it->second = order[0];
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

ReadBalancer::Read::Read(ReadBalancer* b, size_t copy)
    : b_(b), copy_(copy), start_(std::chrono::steady_clock::now()) {
  std::lock_guard<std::mutex> l(b_->mu_);
  b_->in_flight_[copy_]++;
}

ReadBalancer::Read::~Read() {
  if (!done_) Finish(0, false);
}

void ReadBalancer::Read::Finish(uint64_t bytes, bool ok) {
  if (done_) return;
  done_ = true;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  b_->Done(copy_, bytes, ok, seconds);
}

void ReadBalancer::Done(size_t c, uint64_t bytes, bool ok, double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  in_flight_[c]--;
  CopyReadStats& s = stats_[c];
  s.reads++;
  s.bytes += bytes;
  s.seconds += seconds;
  if (!ok) {
    s.errors++;
    penalty_until_[c] = placements_ + kBalancePenaltyReads;
  }
}

std::vector<CopyReadStats> ReadBalancer::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

}  // namespace vmback
