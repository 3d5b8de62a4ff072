#include <sys/stat.h>

#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // What vmback writes holds root's files (/etc/shadow among them): private
  // unless a file is meant for others (a metrics file asks for 0644 itself).
  ::umask(077);
  return vmback::RunCli(argc, argv, std::cout, std::cerr);
}
