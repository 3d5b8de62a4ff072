#include <malloc.h>
#include <sys/stat.h>

#include <iostream>

#include "cli/cli.h"
#include "os/open_files.h"

int main(int argc, char** argv) {
  // What vmback writes holds root's files (/etc/shadow among them): private
  // unless a file is meant for others (a metrics file asks for 0644 itself).
  ::umask(077);
  // A backup allocates and frees buffers of megabytes all the time, on
  // several threads (4 MiB reads, 64 KiB blobs, 1 MiB pack writes). With
  // glibc's defaults a freed buffer often goes back to the kernel (munmap,
  // or a trim of the heap's top), and the next one faults its pages in
  // afresh, each fault a zeroed page: 90,000 to 120,000 faults in a full
  // backup of 2 GiB, about 1.5 s of system time. Freed memory is kept for
  // reuse instead (both settings are needed: either alone turns glibc's
  // adaptive threshold off and makes it worse), for about 15 MiB more peak
  // memory. A buffer above 32 MiB is still mapped and unmapped on its own.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 32 << 20);
  // A directory descriptor per level of a walk: trees deeper than the usual
  // soft limit of 1,024 descriptors allows are backed up too.
  vmback::RaiseOpenFileLimit();
  return vmback::RunCli(argc, argv, std::cout, std::cerr);
}
