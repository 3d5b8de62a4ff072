#include "destination/dump.h"

#include <algorithm>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

void StreamFile::Put(const char* data, size_t n) {
  out_.write(data, static_cast<std::streamsize>(n));
  if (!out_) throw Error(ErrorKind::kIo, "writing to " + path_ + " failed (a closed pipe, or a full disk)");
  written_ += n;
}

void StreamFile::Zeros(uint64_t n) {
  static const char kZeros[64 << 10] = {};
  while (n > 0) {
    const size_t now = static_cast<size_t>(std::min<uint64_t>(n, sizeof kZeros));
    Put(kZeros, now);
    n -= now;
  }
}

void StreamFile::WriteAt(uint64_t offset, const void* data, size_t n) {
  if (offset < written_)
    throw Error(ErrorKind::kOther, "internal: " + path_ + " written at offset " + std::to_string(offset) +
                                       " after " + std::to_string(written_) + " bytes (a stream cannot seek)");
  Zeros(offset - written_);
  Put(static_cast<const char*>(data), n);
}

void StreamFile::Truncate(uint64_t size) {
  if (size < written_)
    throw Error(ErrorKind::kOther, "internal: " + path_ + " cut to " + std::to_string(size) + " bytes after " +
                                       std::to_string(written_) + " were written");
  Zeros(size - written_);
}

void StreamFile::Sync() {
  out_.flush();
  if (!out_) throw Error(ErrorKind::kIo, "writing to " + path_ + " failed (a closed pipe, or a full disk)");
}

void ThrowNotDumpable(const std::string& path, const std::string& point, const std::string& what) {
  ThrowConfig("'" + EscapeForTerminal(path) + "' in point " + point + " is " + what +
              ", not a file: dump writes one file's or image's content; use 'vmback restore' for it"
              " (and 'vmback ls' to see what it holds)");
}

std::string DumpPath(const std::string& path) {
  std::string out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    if (slash > pos) out += (out.empty() ? "" : "/") + path.substr(pos, slash - pos);
    pos = slash + 1;
  }
  if (out.empty()) ThrowConfig("dump takes one file of a point: VOLUME or VOLUME/path/to/file, not '" + path + "'");
  return out;
}

}  // namespace vmback
