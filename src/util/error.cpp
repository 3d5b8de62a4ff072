#include "util/error.h"

#include <cerrno>
#include <cstring>

namespace vmback {

void ThrowIo(const std::string& context, int err) {
  ErrorKind kind = ErrorKind::kIo;
  if (err == ENOSPC || err == EDQUOT) kind = ErrorKind::kNoSpace;
  if (err == ENOENT) kind = ErrorKind::kNotFound;
  throw Error(kind, context + ": " + std::strerror(err));
}

void ThrowCorrupt(const std::string& context) { throw Error(ErrorKind::kCorrupt, context); }
void ThrowConfig(const std::string& context) { throw Error(ErrorKind::kConfig, context); }
void ThrowNotFound(const std::string& context) { throw Error(ErrorKind::kNotFound, context); }

}  // namespace vmback
