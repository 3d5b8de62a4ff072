// Whether a standard stream is a terminal (isatty), for the CLI: progress
// lines on stderr, and commands that refuse to write raw data to a person.
#pragma once

#include <cstddef>
#include <string>

namespace vmback {

bool StdoutIsTerminal();
bool StderrIsTerminal();
bool StdinIsTerminal();

// Writes prompt to stderr and reads one line from standard input with the
// terminal's echo off (restored afterwards), without its newline. Returns
// false when standard input is not a terminal or is at its end. At most
// max_bytes are kept; a longer line fails.
bool ReadSecretLine(const std::string& prompt, size_t max_bytes, std::string* out);

}  // namespace vmback
