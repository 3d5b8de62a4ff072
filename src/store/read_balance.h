// Which copy of a store a read goes to first, when several copies hold the
// data: reads are spread so that every disk works at once.
//
// - A range of a pack (kBalanceRangeBytes, aligned) is read from one copy,
//   so each disk streams its ranges in order and no disk's readahead is
//   spent on bytes the other disk serves.
// - A range not yet placed goes to the copy with the fewest reads under way
//   (then the fewest bytes served): a disk that is slower, or busy with
//   something else, finishes its reads later and so is given fewer, without
//   assuming the disks are equal.
// - A copy whose read failed (I/O error or wrong bytes) is tried last for
//   its next kBalancePenaltyReads placements; the caller still falls back to
//   it when the others fail too.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace vmback {

inline constexpr uint64_t kBalanceRangeBytes = 2u << 20;
inline constexpr uint64_t kBalancePenaltyReads = 256;

// What one copy served, for reports (verify --json, restore statistics).
struct CopyReadStats {
  uint64_t reads = 0;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  double seconds = 0;  // time spent in its reads (overlapping reads add up)
};

class ReadBalancer {
 public:
  // The copies (0 .. copies-1) to try for a read at `offset` of pack
  // `pack`, best first; every copy appears once. The number of copies may
  // grow between calls (a copy made by Sync).
  std::vector<size_t> Order(uint32_t pack, uint64_t offset, size_t copies);

  // One read of copy c (one Order returned), timed from construction to Finish (or destruction:
  // a read never finished counts as failed).
  class Read {
   public:
    Read(ReadBalancer* b, size_t copy);
    ~Read();
    Read(const Read&) = delete;
    Read& operator=(const Read&) = delete;
    void Finish(uint64_t bytes, bool ok);

   private:
    ReadBalancer* b_;
    size_t copy_;
    std::chrono::steady_clock::time_point start_;
    bool done_ = false;
  };

  std::vector<CopyReadStats> Stats() const;

 private:
  void Done(size_t c, uint64_t bytes, bool ok, double seconds);

  mutable std::mutex mu_;
  std::vector<CopyReadStats> stats_;
  std::vector<uint64_t> in_flight_;
  std::vector<uint64_t> penalty_until_;  // a placement count
  uint64_t placements_ = 0;
  // The copy each recently placed range reads from; the oldest forgotten.
  std::map<std::pair<uint32_t, uint64_t>, size_t> placed_;
  std::deque<std::pair<uint32_t, uint64_t>> placed_order_;
};

}  // namespace vmback
