#include "os/terminal.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>

#include "util/wipe.h"

namespace vmback {

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }
bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }
bool StdinIsTerminal() { return ::isatty(STDIN_FILENO) == 1; }

bool ReadSecretLine(const std::string& prompt, size_t max_bytes, std::string* out) {
  WipeString(out);
  out->reserve(max_bytes);  // never grown: no copy of what was typed left behind
  if (!StdinIsTerminal()) return false;
  struct termios old;
  if (::tcgetattr(STDIN_FILENO, &old) != 0) return false;
  struct termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  // Echo off (and what was typed ahead dropped) before the prompt shows:
  // what is typed after it is neither echoed nor lost.
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  std::fputs(prompt.c_str(), stderr);
  std::fflush(stderr);
  bool ok = false;
  for (;;) {
    char c;
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n <= 0) break;
    if (c == '\n') {
      ok = true;
      break;
    }
    if (out->size() >= max_bytes) break;
    out->push_back(c);
  }
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  std::fputs("\n", stderr);
  if (!ok) WipeString(out);
  return ok;
}

}  // namespace vmback
