// Which copy of a store a read goes to first, when several copies hold the
// data: reads are spread so that every disk works at once, each as fast as
// it can.
//
// - Each copy's speed is measured, not assumed: the bytes its recent reads
//   gave over the time they took (the last kBalanceWindowBytes or so count
//   most; a disk that serves some reads at once and makes others wait is
//   measured by the total). A read goes to the copy expected to finish it
//   first: (bytes of its reads under way + this read) / its speed. A copy
//   with less than kBalanceMinMeasured bytes read is taken to be as fast as
//   the fastest one, and what was measured is forgotten towards that with
//   time (half of it every kBalanceForgetSeconds), so that a copy measured
//   slow once (a moment of contention) is tried again now and then.
// - A range of a pack (kBalanceRangeBytes, aligned) stays on the copy it was
//   first read from, so each disk streams its ranges in order and no disk's
//   readahead is spent on bytes another disk serves; unless another copy
//   would finish the read kBalanceMoveFactor times sooner (a slow or busy
//   disk is not waited for).
// - A copy whose read failed (I/O error or wrong bytes) is tried last for
//   its next kBalancePenaltyReads placements; the caller still falls back to
//   it when the others fail too.
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace vmback {

inline constexpr uint64_t kBalanceRangeBytes = 2u << 20;
inline constexpr uint64_t kBalancePenaltyReads = 256;
inline constexpr double kBalanceMoveFactor = 4;
inline constexpr double kBalanceForgetSeconds = 5;
inline constexpr uint64_t kBalanceWindowBytes = 8u << 20;
inline constexpr uint64_t kBalanceMinMeasured = 1u << 20;

// What one copy served, for reports (restore statistics, tests).
struct CopyReadStats {
  uint64_t reads = 0;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  double seconds = 0;         // time spent in its reads (overlapping reads add up)
  double bytes_per_second = 0;  // as measured (see above); 0 until measured
  double measured_at = 0;       // the clock's time of its last update
};

class ReadBalancer {
 public:
  // now: a monotonic clock in seconds (tests give their own).
  using Clock = std::function<double()>;
  ReadBalancer();
  ReadBalancer(Clock now, double forget_seconds);

  // The copies (0 .. copies-1) to try for a read of `len` bytes at `offset`
  // of pack `pack`, best first; every copy appears once. The number of
  // copies may grow between calls (a copy made by Sync).
  std::vector<size_t> Order(uint32_t pack, uint64_t offset, uint64_t len, size_t copies);

  // One read of `len` bytes from copy c (one Order returned), timed from
  // construction to Finish (or destruction: a read never finished counts as
  // failed).
  class Read {
   public:
    Read(ReadBalancer* b, size_t copy, uint64_t len);
    ~Read();
    Read(const Read&) = delete;
    Read& operator=(const Read&) = delete;
    void Finish(bool ok);

   private:
    ReadBalancer* b_;
    size_t copy_;
    uint64_t len_;
    double start_;
    bool done_ = false;
  };

  std::vector<CopyReadStats> Stats() const;

 private:
  void Grow(size_t copies);
  // Seconds copy c is expected to take for len more bytes, at `now`.
  // REQUIRES: mu_.
  double Expected(size_t c, uint64_t len, double now) const;
  void Done(size_t c, uint64_t len, bool ok, double start, double end);

  const Clock now_;
  const double forget_seconds_;
  mutable std::mutex mu_;
  std::vector<CopyReadStats> stats_;
  // Per copy: bytes and seconds of its reads, older ones weighing less.
  std::vector<std::pair<double, double>> recent_;
  std::vector<uint64_t> in_flight_bytes_;
  std::vector<uint64_t> penalty_until_;  // a placement count
  uint64_t placements_ = 0;
  // The copy each recently placed range reads from; the oldest forgotten.
  std::map<std::pair<uint32_t, uint64_t>, size_t> placed_;
  std::deque<std::pair<uint32_t, uint64_t>> placed_order_;
};

}  // namespace vmback
