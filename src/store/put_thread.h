// Putting blobs into the store on a thread of its own, so that what a put
// costs (the pack's SHA-256, its writes, the fsync and rename of each full
// pack, the copies to mirrors) overlaps the reading and hashing of the next
// blocks instead of holding them up.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "store/pack.h"
#include "store/store.h"

namespace vmback {

class PutThread {
 public:
  // Starts the thread. While it lives, it is the store's one writer: no
  // other thread may Put, PutRaw or Flush. At most max_queued_bytes of
  // stored bytes wait in the queue (one larger blob waits alone).
  // REQUIRES: store opened for writing, outlives this.
  PutThread(Store* store, uint64_t max_queued_bytes);
  // Stops the thread: the blob being put is finished, those still queued
  // are dropped, never put (an interrupted scan commits nothing anyway).
  ~PutThread();
  PutThread(const PutThread&) = delete;
  PutThread& operator=(const PutThread&) = delete;

  // Queues blob to be put (Store::Put) after those queued before it; waits
  // while the queue is full. Throws the error the thread met putting an
  // earlier blob: after that error it puts nothing more.
  void Put(EncodedBlob blob);
  // Waits until every queued blob is put; throws the thread's error, if any.
  void Finish();
  // How many blobs of type t the store wrote (Put returned true; not those
  // it had already). Complete after Finish.
  uint64_t written(BlobType t) const;

 private:
  void Loop();

  Store* const store_;
  const uint64_t max_queued_bytes_;
  mutable std::mutex mu_;
  std::condition_variable work_;  // the thread waits for a blob or stop_
  std::condition_variable room_;  // Put waits for room, Finish for an empty queue
  std::deque<EncodedBlob> queue_;
  uint64_t queued_bytes_ = 0;
  bool busy_ = false;             // the thread is putting a blob it took off the queue
  bool stop_ = false;
  std::exception_ptr error_;
  std::array<uint64_t, 3> written_{};  // by BlobType
  std::thread thread_;            // last: started once the members above exist
};

}  // namespace vmback
