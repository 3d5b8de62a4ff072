#include "store/put_thread.h"

namespace vmback {

PutThread::PutThread(Store* store, uint64_t max_queued_bytes)
    : store_(store), max_queued_bytes_(max_queued_bytes), thread_([this] { Loop(); }) {}

PutThread::~PutThread() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_.notify_one();
  thread_.join();
}

void PutThread::Put(EncodedBlob blob) {
  const uint64_t bytes = blob.stored.size();
  {
    std::unique_lock<std::mutex> l(mu_);
    room_.wait(l, [&] { return error_ || queue_.empty() || queued_bytes_ + bytes <= max_queued_bytes_; });
    if (error_) std::rethrow_exception(error_);
    queued_bytes_ += bytes;
    queue_.push_back(std::move(blob));
  }
  work_.notify_one();
}

void PutThread::Finish() {
  std::unique_lock<std::mutex> l(mu_);
  room_.wait(l, [&] { return error_ || (queue_.empty() && !busy_); });
  if (error_) std::rethrow_exception(error_);
}

uint64_t PutThread::written(BlobType t) const {
  std::lock_guard<std::mutex> l(mu_);
  return written_.at(static_cast<size_t>(t));
}

void PutThread::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    work_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    EncodedBlob blob = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= blob.stored.size();
    busy_ = true;
    l.unlock();
    room_.notify_all();
    std::exception_ptr error;
    bool wrote = false;
    try {
      wrote = store_->Put(blob);
    } catch (...) {
      error = std::current_exception();
    }
    l.lock();
    busy_ = false;
    if (wrote) written_.at(static_cast<size_t>(blob.type))++;
    if (error) {
      // Nothing after a failed put: the store is broken (Store::broken).
      error_ = error;
      queue_.clear();
      queued_bytes_ = 0;
    }
    if (error || queue_.empty()) room_.notify_all();
    if (error) {
      // Wait only for stop_: Put and Finish see error_ and throw.
      work_.wait(l, [&] { return stop_; });
      return;
    }
  }
}

}  // namespace vmback
