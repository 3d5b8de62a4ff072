#include "os/terminal.h"

#include <unistd.h>

namespace vmback {

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }
bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace vmback
