#include "inplace/checked_read.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "destination/dump.h"
#include "inplace/blockmap.h"
#include "inplace/point_info.h"
#include "inplace/target_ops.h"
#include "scan/file_scanner.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/tunables.h"

namespace vmback {

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
  uint64_t size = in->Size();
  if (have_map && size != map.file_size)
    ThrowCorrupt(src + ": size " + std::to_string(size) + " differs from its blockmap's " +
                 std::to_string(map.file_size));
  const uint32_t bs = have_map ? map.block_size : kDefaultInplaceBlockSize;
  std::vector<char> buf(bs);
  for (uint64_t off = 0, i = 0; off < size; off += bs, i++) {
    CheckRestoreCancel(cancel, out->path());
    size_t want = static_cast<size_t>(std::min<uint64_t>(bs, size - off));
    size_t got = in->ReadAt(off, buf.data(), want);
    if (got < want) ThrowIo(src + ": short read at offset " + std::to_string(off), EIO);
    bool zero = IsAllZero(buf.data(), want);
    if (have_map) {
      Hash h = zero ? Hash{} : Sha256(buf.data(), want);
      if (h != map.blocks[i])
        ThrowCorrupt(src + ": block " + std::to_string(i) + " (bytes " + std::to_string(off) + ".." +
                     std::to_string(off + want) + ") differs from its blockmap; the point is damaged (run 'vmback verify')");
    }
    if (!zero || dense) out->WriteAt(off, buf.data(), want);
    stats->bytes += want;
    Progress::Get().AddRead(want);
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
