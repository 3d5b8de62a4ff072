#include "destination/image_format.h"

#include <sys/stat.h>

#include <utility>
#include <vector>

#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// The private directory of one conversion, removed with all it holds on
// every path (RemoveTree never follows a symlink nor crosses a mount).
class PrivateDir {
 public:
  PrivateDir(Env* env, std::string path, Logger* log) : env_(env), path_(std::move(path)), log_(log) {
    env_->MakeNewDir(path_);
  }
  ~PrivateDir() {
    try {
      env_->RemoveTree(path_);
    } catch (const Error& e) {
      log_->Warn("could not remove the temporary " + path_ + ": " + e.what());
    }
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  Env* env_;
  std::string path_;
  Logger* log_;
};

// What a qcow2 restore may be written over: nothing, or (with --force) an
// existing file; never a block device, a directory or through a symlink.
void CheckImageDestination(Env* env, const std::string& to, Overwrite overwrite) {
  const FileStatus st = env->Status(to);
  if (st.kind == FileKind::kMissing) return;
  FileStatus target = st;
  if (st.kind == FileKind::kSymlink) {
    try {
      target = env->StatusFollowingLinks(to);
    } catch (const Error&) {
    }
  }
  if (target.type == S_IFBLK)
    ThrowConfig("--format qcow2 writes an image file, and " + to +
                " is a block device: restore onto it with --format raw (the default), which writes the guest's "
                "disk content as it is");
  if (st.kind == FileKind::kSymlink)
    ThrowConfig(to + " is a symlink; restore does not write through it (give the real path)");
  if (st.kind == FileKind::kDir) ThrowConfig(to + " is a directory; give the new image file's path");
  if (overwrite == Overwrite::kRefuse)
    ThrowConfig(to + " exists; restore refuses to overwrite it without --force");
}

// The restored raw file's owner, mode, xattrs and mtime onto the converted
// image (which qemu-img made as the restoring user, 0600).
void CopyMetadata(Env* env, const std::string& from, const std::string& to) {
  const FileStatus st = ExistingStatus(env, from);
  env->SetOwner(to, st.uid, st.gid);  // false when not root: the file stays the restoring user's, as the raw one
  env->SetMode(to, st.mode);          // after the owner: chown clears setuid bits
  for (const auto& [name, value] : env->ReadXattrs(from)) env->SetXattr(to, name, value);
  env->SetTimes(to, std::nullopt, st.mtime_ns);
}

}  // namespace

ImageFormat ParseImageFormat(const std::string& text) {
  if (text == "raw") return ImageFormat::kRaw;
  if (text == "qcow2") return ImageFormat::kQcow2;
  ThrowConfig("--format " + EscapeForTerminal(text) + ": give raw or qcow2");
}

void ConvertRawToQcow2(Env* env, const std::string& raw, const std::string& out, uint64_t data_bytes,
                       const std::atomic<bool>* cancel) {
  // Absolute paths only: qemu-img reads "name:..." as a protocol (nbd:,
  // json:) unless a '/' comes first.
  if (raw.empty() || raw[0] != '/' || out.empty() || out[0] != '/')
    ThrowConfig("qemu-img convert needs absolute paths, not " + raw + " and " + out);
  const std::vector<std::string> argv = {"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "--", raw, out};
  RunLimits limits;
  limits.deadline = std::chrono::steady_clock::now() + kConvertBaseTimeout +
                    std::chrono::seconds(data_bytes / kConvertBytesPerSecond);
  limits.cancel = cancel;
  RunResult r = env->RunLimited(argv, limits);
  if (r.exit_code != 0)
    throw Error(ErrorKind::kIo, "converting the restored image to qcow2: " + DescribeFailure(argv, r));
}

RestoreStats RestoreInFormat(Destination* dest, Env* env, ImageFormat format, const std::string& point,
                             const std::string& path, const std::string& to_arg, RestoreOptions options,
                             const std::atomic<bool>* cancel, Logger* log) {
  if (format == ImageFormat::kRaw) {
    // An empty directory (not a link to one) holds nothing to overwrite: a
    // point or a tree goes into it without --force (a file is still refused
    // there: it needs the new file's path).
    const FileStatus st = env->Status(to_arg);
    if (options.overwrite == Overwrite::kRefuse && st.kind == FileKind::kDir && env->ListDir(to_arg).empty())
      options.overwrite = Overwrite::kAllow;
    options.cancel = cancel;  // a signal stops it; the file being written goes
    return dest->Restore(point, path, to_arg, options, log);
  }

  const std::string name = BaseName(to_arg);
  if (!IsSafeName(name)) ThrowConfig("--to " + to_arg + ": give the path of the new image file");
  const Overwrite overwrite = options.overwrite;
  CheckImageDestination(env, to_arg, overwrite);
  const std::string to = JoinPath(CanonicalPath(DirName(to_arg)), name);

  PrivateDir tmp(env, TempPathFor(to), log);
  const std::string raw = JoinPath(tmp.path(), name + ".raw");
  const std::string qcow2 = JoinPath(tmp.path(), name + ".qcow2");
  options.one_file = true;
  options.cancel = cancel;  // a signal stops the raw restore too; tmp goes
  options.overwrite = Overwrite::kRefuse;  // a new name in a new directory
  RestoreStats stats = dest->Restore(point, path, raw, options, log);
  if (ExistingStatus(env, raw).kind != FileKind::kFile)
    ThrowNotOneImage(path, point, "not a regular file");  // one_file already refused it

  env->OpenWrite(qcow2, CreateMode::kExclusive, 0600)->Close();
  ConvertRawToQcow2(env, raw, qcow2, stats.bytes, cancel);
  {
    auto f = env->OpenWrite(qcow2, CreateMode::kExisting);
    f->Sync();  // qemu-img does not fsync: make the image durable before it takes the name
    f->Close();
  }
  CopyMetadata(env, raw, qcow2);  // after the last open for writing: the mode may forbid it
  // Without --force, a file that appeared at `to` since the check is not
  // replaced: link(2) never replaces, and the temporary name goes with tmp.
  if (overwrite != Overwrite::kRefuse) {
    env->Rename(qcow2, to);
  } else {
    try {
      env->Link(qcow2, to);
    } catch (const Error&) {
      if (env->Exists(to)) ThrowConfig(to + " exists; restore refuses to overwrite it without --force");
      env->Rename(qcow2, to);  // a file system without hard links (vfat)
    }
  }
  env->SyncDir(DirName(to));
  return stats;
}

}  // namespace vmback
