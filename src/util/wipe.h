// Secrets held as text (a passphrase, a key file's hex digits) are zeroed
// before their memory is given back. Best effort: a std::string that grew
// left its earlier buffers behind, so the readers of secrets reserve the
// most they accept first (no growth), and every holder wipes when done.
#pragma once

#include <string.h>

#include <string>

namespace vmback {

// Zeroes the whole buffer of *s (up to its capacity), then empties it.
inline void WipeString(std::string* s) {
  s->resize(s->capacity());
  explicit_bzero(s->data(), s->size());
  s->clear();
}

// Wipes the string it names when the scope ends, also by an exception.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string* s) : s_(s) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit() { WipeString(s_); }

 private:
  std::string* s_;
};

}  // namespace vmback
