// Whether a standard stream is a terminal (isatty), for the CLI: progress
// lines on stderr, and commands that refuse to write raw data to a person.
#pragma once

namespace vmback {

bool StdoutIsTerminal();
bool StderrIsTerminal();

}  // namespace vmback
