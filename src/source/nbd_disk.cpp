// NbdDisk over libnbd's asynchronous calls: each request is started with
// nbd_aio_* and then polled (nbd_poll) until it completes or its deadline
// passes, so that no server can make a read wait forever. libnbd touches the
// buffers of a request only inside nbd_poll (and the like) called from here;
// after a timeout the handle is never polled again, so an abandoned request
// cannot write into a buffer its caller has freed.
#include "source/nbd_disk.h"

#include <libnbd.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "util/error.h"

namespace vmback {

namespace {

using Steady = std::chrono::steady_clock;

std::string LibnbdError() {
  const char* m = nbd_get_error();
  return m != nullptr && *m != '\0' ? m : "unknown libnbd error";
}

// The extents of one context from one block-status reply, bounded.
struct ExtentReply {
  const std::string* context;
  std::vector<uint32_t> entries;  // length, flags, length, flags, ...
};

int CollectExtents(void* user_data, const char* metacontext, uint64_t, uint32_t* entries,
                   size_t nr_entries, int*) {
  auto* reply = static_cast<ExtentReply*>(user_data);
  if (metacontext == nullptr || *reply->context != metacontext) return 0;
  // nr_entries counts the uint32 words: (length, flags) pairs.
  size_t room = 2 * kNbdMaxExtentsPerReply - reply->entries.size();
  // Those left out are asked for again by the next request.
  size_t take = std::min(nr_entries - nr_entries % 2, room);
  reply->entries.insert(reply->entries.end(), entries, entries + take);
  return 0;
}

}  // namespace

std::string BackupDirtyBitmapContext(const std::string& disk) {
  return "qemu:dirty-bitmap:backup-" + disk;
}

void NbdDisk::HandleClose::operator()(nbd_handle* h) const {
  // Tell the server goodbye without waiting for it (it may be hung).
  if (nbd_aio_is_ready(h) == 1) nbd_aio_disconnect(h, 0);
  nbd_close(h);
}

NbdDisk::NbdDisk(const std::string& socket, const std::string& export_name,
                 const NbdOptions& options)
    : path_("nbd:" + socket + "/" + export_name), options_(options) {
  h_.reset(nbd_create());
  if (h_ == nullptr) Fail("cannot create an NBD handle");
  if (nbd_set_export_name(h_.get(), export_name.c_str()) < 0) Fail("cannot set the export name");
  std::vector<std::string> contexts = options.contexts;
  contexts.insert(contexts.begin(), kNbdAllocationContext);
  Connect(socket, contexts);
}

NbdDisk::~NbdDisk() = default;

void NbdDisk::Connect(const std::string& socket, const std::vector<std::string>& contexts) {
  for (const std::string& c : contexts) {
    if (nbd_add_meta_context(h_.get(), c.c_str()) < 0) Fail("cannot ask for meta context " + c);
  }
  if (nbd_aio_connect_unix(h_.get(), socket.c_str()) < 0) Fail("cannot connect");
  WaitUntil([this] { return nbd_aio_is_connecting(h_.get()) != 1; }, options_.connect_timeout,
            "connecting");
  if (nbd_aio_is_ready(h_.get()) != 1) Fail("cannot connect");
  int64_t size = nbd_get_size(h_.get());
  if (size < 0) Fail("cannot get the export's size");
  size_ = static_cast<uint64_t>(size);
  has_allocation_ = Offers(kNbdAllocationContext);
}

void NbdDisk::Fail(const std::string& what) {
  throw Error(ErrorKind::kIo, path_ + ": " + what + ": " + LibnbdError());
}

void NbdDisk::CheckUsable() {
  if (broken_) {
    throw Error(ErrorKind::kIo, path_ + ": not used again after an earlier request timed out");
  }
}

void NbdDisk::WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                        const std::string& what) {
  const auto deadline = Steady::now() + timeout;
  while (!done()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
    if (left.count() <= 0) {
      broken_ = true;
      throw Error(ErrorKind::kIo, path_ + ": " + what + " timed out after " +
                                      std::to_string(timeout.count()) + " ms");
    }
    int ms = static_cast<int>(std::min<int64_t>(left.count(), INT_MAX));
    if (nbd_poll(h_.get(), ms) < 0) Fail(what);
  }
}

void NbdDisk::Complete(int64_t cookie, const std::string& what) {
  if (cookie < 0) Fail(what);
  int rc = 0;
  WaitUntil(
      [&] {
        rc = nbd_aio_command_completed(h_.get(), static_cast<uint64_t>(cookie));
        return rc != 0;
      },
      options_.io_timeout, what);
  if (rc < 0) Fail(what);
}

size_t NbdDisk::ReadAt(uint64_t offset, void* buf, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  CheckUsable();
  if (offset >= size_) return 0;
  n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
  auto* p = static_cast<char*>(buf);
  for (size_t done = 0; done < n;) {
    size_t len = std::min(n - done, kNbdMaxRead);
    uint64_t at = offset + done;
    int64_t cookie = nbd_aio_pread(h_.get(), p + done, len, at, NBD_NULL_COMPLETION, 0);
    Complete(cookie, "read " + std::to_string(len) + " bytes at offset " + std::to_string(at));
    done += len;
  }
  return n;
}

bool NbdDisk::Offers(const std::string& context) {
  int rc = nbd_can_meta_context(h_.get(), context.c_str());
  if (rc < 0) Fail("cannot tell whether meta context " + context + " is offered");
  return rc == 1;
}

uint64_t NbdDisk::WalkOnce(const std::string& context, uint64_t offset, uint64_t end,
                           const ExtentFn& fn, bool* stopped) {
  const uint64_t count = std::min(end - offset, kNbdMaxStatusRequest);
  ExtentReply reply{&context, {}};
  nbd_extent_callback cb{CollectExtents, &reply, nullptr};
  const std::string what = "block status of " + context + " at offset " + std::to_string(offset);
  Complete(nbd_aio_block_status(h_.get(), count, offset, cb, NBD_NULL_COMPLETION, 0), what);
  // The last extent may reach past the request; never past it here.
  const uint64_t stop = offset + count;
  uint64_t pos = offset;
  for (size_t i = 0; i + 1 < reply.entries.size() && pos < stop; i += 2) {
    uint64_t len = reply.entries[i];
    if (len == 0) throw Error(ErrorKind::kIo, path_ + ": " + what + ": the server sent an empty extent");
    len = std::min(len, stop - pos);
    if (!fn(pos, len, reply.entries[i + 1])) {
      *stopped = true;
      return pos + len;
    }
    pos += len;
  }
  if (pos == offset) throw Error(ErrorKind::kIo, path_ + ": " + what + ": the server sent no extent");
  return pos;
}

void NbdDisk::Walk(const std::string& context, uint64_t offset, uint64_t end, const ExtentFn& fn) {
  bool stopped = false;
  while (offset < end && !stopped) offset = WalkOnce(context, offset, end, fn, &stopped);
}

uint64_t NbdDisk::NextWith(uint64_t offset, bool want_hole) {
  std::lock_guard<std::mutex> l(mu_);
  CheckUsable();
  if (offset >= size_) return size_;
  if (!has_allocation_) return want_hole ? size_ : offset;
  uint64_t found = size_;
  Walk(kNbdAllocationContext, offset, size_, [&](uint64_t at, uint64_t, uint32_t flags) {
    bool hole = (flags & (kNbdStateHole | kNbdStateZero)) != 0;
    if (hole != want_hole) return true;
    found = at;
    return false;
  });
  return found;
}

uint64_t NbdDisk::NextData(uint64_t offset) { return NextWith(offset, false); }

uint64_t NbdDisk::NextHole(uint64_t offset) { return NextWith(offset, true); }

ChangeSet NbdDisk::DirtyExtents(const std::string& context) {
  std::lock_guard<std::mutex> l(mu_);
  CheckUsable();
  if (!Offers(context)) {
    ThrowNotFound(path_ + ": the meta context " + context +
                  " is not available (the NBD server does not offer it, or it was not asked for"
                  " when connecting)");
  }
  std::vector<ByteRange> ranges;
  Walk(context, 0, size_, [&](uint64_t at, uint64_t len, uint32_t flags) {
    if ((flags & kNbdStateDirty) == 0) return true;
    if (!ranges.empty() && ranges.back().offset + ranges.back().length == at) {
      ranges.back().length += len;
    } else {
      ranges.push_back(ByteRange{at, len});
    }
    return true;
  });
  return ChangeSet{ChangeMethod::kDirtyBitmap, "", NormalizeRanges(std::move(ranges), size_)};
}

}  // namespace vmback
