#include "inplace/checked_read.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <vector>

#include "destination/dump.h"
#include "inplace/blockmap.h"
#include "inplace/point_info.h"
#include "inplace/target_ops.h"
#include "scan/file_scanner.h"
#include "util/aligned_buffer.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/thread_pool.h"
#include "util/tunables.h"

namespace vmback {

namespace {

// Bytes of blocks read, checked and written together (at least one block):
// one read of a run of them (of the data regions only, where the file has
// holes), one write of each run of blocks that are not zero.
constexpr uint64_t kChunkBytes = 1u << 20;

// The blocks [first, first + count) of the file being copied, read and
// checked by ReadChunk (on a worker thread), then written in order.
struct Chunk {
  uint64_t first = 0;
  uint64_t offset = 0;           // of block first
  size_t len = 0;                // bytes of the blocks
  AlignedBuffer data;            // len bytes; a hole is left unread (zero-filled only when dense)
  std::vector<bool> zero;        // per block: all zero (a hole, or zeros read)
  // The blocks before `good` are read and checked; `error` (a block that
  // differs from its map, a short read) is block good's, and stops the
  // copy once the blocks before it are written.
  uint64_t good = 0;
  std::exception_ptr error;
};

// Which of the count blocks (of bs bytes) from begin to end hold data: the
// ones a data region (SEEK_DATA/SEEK_HOLE) overlaps. Without holes, all.
std::vector<bool> DataBlocks(ReadableFile* in, uint64_t begin, uint64_t end, uint32_t bs, uint64_t count) {
  std::vector<bool> has(count, false);
  for (uint64_t pos = begin; pos < end;) {
    const uint64_t d = std::max(in->NextData(pos), pos);
    if (d >= end) break;
    const uint64_t h = std::max(std::min(in->NextHole(d), end), d + 1);
    for (uint64_t b = (d - begin) / bs; b < count && begin + b * bs < h; b++) has[b] = true;
    pos = h;
  }
  return has;
}

// Reads the blocks [first, first + count) of src (size bytes) into buf (of
// count blocks at least) and checks each against map (when there is one): a
// block in a hole is zero without being read, and must be zero in the map.
Chunk ReadChunk(ReadableFile* in, const std::string& src, const Blockmap* map, uint64_t size, uint32_t bs,
                uint64_t first, uint64_t count, bool dense, AlignedBuffer buf) {
  Chunk c;
  c.first = first;
  c.offset = first * bs;
  c.len = static_cast<size_t>(std::min<uint64_t>(count * bs, size - c.offset));
  c.data = std::move(buf);
  c.zero.assign(count, true);
  try {
    const std::vector<bool> has_data = DataBlocks(in, c.offset, c.offset + c.len, bs, count);
    uint64_t read_end = c.offset;  // the run of data blocks read last ends here
    for (uint64_t i = 0; i < count; i++) {
      const size_t at = static_cast<size_t>(i * bs);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bs, c.len - at));
      const uint64_t off = c.offset + at;
      bool zero = true;
      if (has_data[i]) {
        if (off >= read_end) {
          // The first block of a run of data blocks: the run read at once.
          uint64_t e = i;
          while (e < count && has_data[e]) e++;
          const size_t want = static_cast<size_t>(std::min<uint64_t>((e - i) * bs, c.len - at));
          read_end = off + in->ReadAt(off, c.data.data() + at, want);
        }
        if (off + n > read_end) ThrowIo(src + ": short read at offset " + std::to_string(off), EIO);
        zero = IsAllZero(c.data.data() + at, n);
      } else if (dense) {
        std::memset(c.data.data() + at, 0, n);
      }
      if (map) {
        const Hash h = zero ? Hash{} : Sha256(c.data.data() + at, n);
        if (h != map->blocks[first + i])
          ThrowCorrupt(src + ": block " + std::to_string(first + i) + " (bytes " + std::to_string(off) + ".." +
                       std::to_string(off + n) + ") differs from its blockmap; the point is damaged (run 'vmback verify')");
      }
      c.zero[i] = zero;
      c.good = i + 1;
    }
  } catch (...) {
    c.error = std::current_exception();
  }
  return c;
}

// Writes the checked blocks of c to out: each run of blocks that are not
// zero (every block when dense) in one write. Then throws c's error, if any.
void WriteChunk(Chunk& c, uint32_t bs, bool dense, WritableFile* out, RestoreStats* stats) {
  for (uint64_t i = 0; i < c.good;) {
    if (c.zero[i] && !dense) {
      i++;
      continue;
    }
    uint64_t e = i;
    while (e < c.good && (dense || !c.zero[e])) e++;
    const size_t at = static_cast<size_t>(i * bs);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(e * bs, c.len)) - at;
    out->WriteAt(c.offset + at, c.data.data() + at, n);
    i = e;
  }
  const uint64_t done = std::min<uint64_t>(c.good * bs, c.len);
  stats->bytes += done;
  Progress::Get().AddRead(done);
  if (c.error) std::rethrow_exception(c.error);
}

}  // namespace

uint64_t CopyChecked(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                     WritableFile* out, bool dense, const std::atomic<bool>* cancel, RestoreStats* stats,
                     Logger* log) {
  Blockmap map;
  bool have_map = true;
  try {
    map = ReadBlockmap(env, BlockmapPath(map_root, rel));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNotFound) throw;
    have_map = false;
    log->Warn(src + ": no blockmap in the point; copied without the end-to-end check");
  }
  auto in = env->OpenRead(src);
  const uint64_t size = in->Size();
  if (have_map && size != map.file_size)
    ThrowCorrupt(src + ": size " + std::to_string(size) + " differs from its blockmap's " +
                 std::to_string(map.file_size));
  const uint32_t bs = have_map ? map.block_size : kDefaultInplaceBlockSize;
  const uint64_t nblocks = BlockCount(size, bs);
  const uint64_t per_chunk = std::max<uint64_t>(kChunkBytes / bs, 1);
  auto read = [&, m = have_map ? &map : nullptr](uint64_t first, AlignedBuffer buf) {
    return ReadChunk(in.get(), src, m, size, bs, first, std::min(per_chunk, nblocks - first), dense, std::move(buf));
  };
  if (nblocks <= per_chunk) {
    // One chunk (most files of a tree): read here, no hand-over to a pool.
    CheckRestoreCancel(cancel, out->path());
    if (nblocks) {
      Chunk c = read(0, AlignedBuffer(size));
      WriteChunk(c, bs, dense, out, stats);
    }
    return size;
  }
  // Reading and hashing (the bulk of the time) on the pool, a few chunks
  // ahead; writing in order here, past the page cache where the file system
  // can (nothing copied into the cache, nothing left for the final fsync to
  // write). The pool is destroyed (its queued reads done) before `in` and
  // `map` go.
  out->EnableDirectWrites();
  ThreadPool pool(0);
  std::deque<std::future<Chunk>> in_flight;
  std::vector<AlignedBuffer> spare;  // of chunks written: a fresh buffer is paged in anew
  for (uint64_t next = 0; next < nblocks || !in_flight.empty();) {
    while (next < nblocks && in_flight.size() < pool.size() * 2) {
      AlignedBuffer buf;
      if (spare.empty()) {
        buf = AlignedBuffer(per_chunk * bs);
      } else {
        buf = std::move(spare.back());
        spare.pop_back();
      }
      in_flight.push_back(pool.Submit([&read, next, buf = std::move(buf)]() mutable { return read(next, std::move(buf)); }));
      next += per_chunk;
    }
    CheckRestoreCancel(cancel, out->path());
    Chunk c = in_flight.front().get();
    in_flight.pop_front();
    WriteChunk(c, bs, dense, out, stats);
    spare.push_back(std::move(c.data));
  }
  return size;
}

void CheckRegularFile(const FileStatus& st, const std::string& path, const std::string& point) {
  switch (st.kind) {
    case FileKind::kFile: return;
    case FileKind::kMissing: ThrowNotFound(path + " not found in point " + point);
    case FileKind::kDir: ThrowNotDumpable(path, point, "a directory");
    case FileKind::kSymlink: ThrowNotDumpable(path, point, "a symlink");
    case FileKind::kOther: ThrowNotDumpable(path, point, "a device node, fifo or socket");
  }
}

uint64_t DumpFromTarget(InplaceTarget* target, Env* env, const std::string& point_arg, const std::string& path_arg,
                        WritableFile* out, Logger* log) {
  const std::string path = DumpPath(path_arg);
  const OpenedTargetPoint opened = OpenTargetPoint(target, env, point_arg);
  const std::string& point = opened.name;
  const TargetPath at = ResolveTargetPath(env, opened, path);
  const std::string& src = at.file;
  CheckRegularFile(env->Status(src), path, point);
  RestoreStats stats;
  const uint64_t size = CopyChecked(env, src, at.map_root, at.rel, out, false, nullptr, &stats, log);
  out->Truncate(size);
  return size;
}

}  // namespace vmback
