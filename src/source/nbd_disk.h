// A disk read over NBD (libnbd), as libvirt's pull-mode backup exports it:
// the guest-visible bytes of one disk, which holes the `base:allocation`
// meta context reports, and, for an incremental backup, which extents QEMU's
// dirty bitmap (`qemu:dirty-bitmap:backup-<disk>`) marks as changed.
//
// The server is hostile: every length it sends is bounded, every extent must
// lie within the disk and move forward, and every request (the connection and
// its handshake too) has a deadline. Errors are Error(kIo) naming the socket
// and the export ("nbd:SOCKET/EXPORT") and libnbd's message.
//
// Thread safety: one request at a time; the methods take a lock, so several
// threads may share one NbdDisk, but they are served in turn.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "os/env.h"
#include "util/change_set.h"

struct nbd_handle;

namespace vmback {

// The meta context every NBD server that knows of holes offers.
inline constexpr char kNbdAllocationContext[] = "base:allocation";
// The meta context of the dirty bitmap libvirt exports with an incremental
// pull-mode backup of disk (its target, "vda"): "qemu:dirty-bitmap:backup-vda".
std::string BackupDirtyBitmapContext(const std::string& disk);
// The bits of an extent's flags in base:allocation and in a dirty bitmap.
inline constexpr uint32_t kNbdStateHole = 1;
inline constexpr uint32_t kNbdStateZero = 2;
inline constexpr uint32_t kNbdStateDirty = 1;
// The largest read or block-status request sent at once.
inline constexpr size_t kNbdMaxRead = 4u << 20;
inline constexpr uint64_t kNbdMaxStatusRequest = uint64_t{1} << 30;
// The most extents kept from one block-status reply.
inline constexpr size_t kNbdMaxExtentsPerReply = 1u << 20;

struct NbdOptions {
  // From the start of the connection to the end of its handshake.
  std::chrono::milliseconds connect_timeout{30000};
  // Each request (a read of at most kNbdMaxRead, one block-status query).
  std::chrono::milliseconds io_timeout{120000};
  // Meta contexts to ask for besides base:allocation, e.g.
  // "qemu:dirty-bitmap:backup-vda" (they are agreed on while connecting, so
  // DirtyExtents can use only those named here).
  std::vector<std::string> contexts;
};

class NbdDisk : public ReadableFile {
 public:
  // Connects to the NBD server on the unix socket and opens export_name
  // (libvirt: the disk's target, "vda"). Throws Error(kIo) naming both when
  // it cannot, or when the handshake is not over within connect_timeout.
  NbdDisk(const std::string& socket, const std::string& export_name, const NbdOptions& options);
  ~NbdDisk() override;
  NbdDisk(const NbdDisk&) = delete;
  NbdDisk& operator=(const NbdDisk&) = delete;

  // Exactly n bytes (fewer only at the end of the disk), in requests of at
  // most kNbdMaxRead.
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override;
  uint64_t Size() override { return size_; }
  // From base:allocation: holes and extents that read as zeros are holes.
  // When the server offers no base:allocation, data is everywhere.
  uint64_t NextData(uint64_t offset) override;
  uint64_t NextHole(uint64_t offset) override;
  void DropCache(uint64_t offset, uint64_t len) override {}
  const std::string& path() const override { return path_; }  // "nbd:SOCKET/EXPORT"

  // The extents the dirty bitmap exported as meta context `context` marks,
  // over the whole disk: a ChangeSet of kDirtyBitmap, its ranges normalized.
  // REQUIRES: context was one of NbdOptions::contexts. Throws
  // Error(kNotFound) when the server does not offer it.
  ChangeSet DirtyExtents(const std::string& context);

 private:
  struct HandleClose {
    void operator()(nbd_handle* h) const;
  };
  using ExtentFn = std::function<bool(uint64_t offset, uint64_t length, uint32_t flags)>;

  void Connect(const std::string& socket, const std::vector<std::string>& contexts);
  // Polls until done() or the deadline; a timeout leaves the handle unusable.
  void WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                 const std::string& what);
  // Waits for the command with this cookie to complete; throws if it failed.
  void Complete(int64_t cookie, const std::string& what);
  // Calls fn for each extent of context over [offset, end), in order, until
  // fn returns false. Each extent is non-empty and within [offset, end).
  void Walk(const std::string& context, uint64_t offset, uint64_t end, const ExtentFn& fn);
  // One block-status request at offset: returns where the next one starts.
  uint64_t WalkOnce(const std::string& context, uint64_t offset, uint64_t end, const ExtentFn& fn,
                    bool* stopped);
  bool Offers(const std::string& context);
  uint64_t NextWith(uint64_t offset, bool want_hole);
  [[noreturn]] void Fail(const std::string& what);
  void CheckUsable();

  std::string path_;
  NbdOptions options_;
  std::unique_ptr<nbd_handle, HandleClose> h_;
  uint64_t size_ = 0;
  bool has_allocation_ = false;
  bool broken_ = false;  // a request timed out: the connection is not used again
  std::mutex mu_;
};

}  // namespace vmback
