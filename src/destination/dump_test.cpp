#include "destination/dump.h"

#include <gtest/gtest.h>

#include <sstream>

#include "util/error.h"

namespace vmback {
namespace {

TEST(StreamFileTest, GapsAndTheTailAreWrittenAsZeros) {
  std::ostringstream out;
  StreamFile f(out, "standard output");
  f.WriteAt(0, "ab", 2);
  f.WriteAt(5, "cd", 2);  // a hole of 3 bytes before it
  f.Truncate(100000);     // zero blocks at the end, past one 64 KiB chunk of zeros
  f.Close();
  std::string want = std::string("ab") + std::string(3, '\0') + "cd" + std::string(100000 - 7, '\0');
  EXPECT_EQ(out.str(), want);
  EXPECT_EQ(f.written(), 100000u);
}

TEST(StreamFileTest, WritingBackIsRefused) {
  std::ostringstream out;
  StreamFile f(out, "standard output");
  f.WriteAt(0, "abcd", 4);
  EXPECT_THROW(f.WriteAt(2, "x", 1), Error);
  EXPECT_THROW(f.Truncate(3), Error);
  EXPECT_EQ(out.str(), "abcd");
}

TEST(StreamFileTest, AFailedStreamIsAnIoErrorNamingIt) {
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  StreamFile f(out, "standard output");
  try {
    f.WriteAt(0, "ab", 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("writing to standard output failed"), std::string::npos) << e.what();
  }
}

TEST(DumpPathTest, SlashesAreDroppedAndNothingIsRefused) {
  EXPECT_EQ(DumpPath("/tree//sub/c.txt/"), "tree/sub/c.txt");
  EXPECT_EQ(DumpPath("disk.img"), "disk.img");
  EXPECT_THROW(DumpPath("//"), Error);
  EXPECT_THROW(DumpPath(""), Error);
}

}  // namespace
}  // namespace vmback
