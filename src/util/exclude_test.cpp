// Tests for util/exclude.h: the gitignore-style matcher and its checks.
#include "util/exclude.h"

#include <fnmatch.h>

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "util/error.h"

namespace vmback {
namespace {

bool M(const char* pattern, const char* rel, bool is_dir = false) {
  return ExcludePattern::Parse(pattern).Matches(rel, is_dir);
}

TEST(ExcludePattern, UnanchoredMatchesAtAnyDepth) {
  EXPECT_TRUE(M("*.tmp", "a.tmp"));
  EXPECT_TRUE(M("*.tmp", "x/y/a.tmp"));
  EXPECT_FALSE(M("*.tmp", "a.tmp.gz"));
  EXPECT_FALSE(M("*.tmp", "a.tmp/b"));  // matched at its last component only
  EXPECT_TRUE(M("cache", "home/u/cache", true));
  EXPECT_TRUE(M("a/b", "x/a/b"));  // only a leading '/' anchors
  EXPECT_TRUE(M("a/b", "a/b"));
  EXPECT_FALSE(M("a/b", "a/x/b"));
}

TEST(ExcludePattern, LeadingSlashAnchorsAtTheRoot) {
  EXPECT_TRUE(M("/tmp", "tmp", true));
  EXPECT_FALSE(M("/tmp", "var/tmp", true));
  EXPECT_TRUE(M("/var/cache/*", "var/cache/apt", true));
  EXPECT_TRUE(M("/var/cache/*", "var/cache/x.deb"));
  EXPECT_FALSE(M("/var/cache/*", "var/cache", true));
  EXPECT_FALSE(M("/var/cache/*", "var/cache/apt/archives", true));  // the walk never gets there
  EXPECT_FALSE(M("/var/cache/*", "srv/var/cache/apt"));
}

TEST(ExcludePattern, StarAndQuestionStayInOneComponent) {
  EXPECT_FALSE(M("/a*c", "ab/c"));
  EXPECT_TRUE(M("/a*c", "abbbc"));
  EXPECT_TRUE(M("/a*c", "ac"));
  EXPECT_TRUE(M("/*", ".hidden"));  // '*' matches a leading dot, as in git
  EXPECT_TRUE(M("/a?c", "abc"));
  EXPECT_FALSE(M("/a?c", "a/c"));
  EXPECT_FALSE(M("/a?c", "ac"));
  EXPECT_TRUE(M("/a?c", "a\xc3\xa9" "c"));  // one UTF-8 character, two bytes
  EXPECT_TRUE(M("/*a*b*c*", "xxaxxbxxcxx"));
  EXPECT_FALSE(M("/*a*b*c*", "xxaxxcxxbxx"));
}

TEST(ExcludePattern, Classes) {
  EXPECT_TRUE(M("/file[0-9]", "file7"));
  EXPECT_FALSE(M("/file[0-9]", "filex"));
  EXPECT_TRUE(M("/file[!0-9]", "filex"));
  EXPECT_TRUE(M("/file[^0-9]", "filex"));
  EXPECT_FALSE(M("/file[!0-9]", "file3"));
  EXPECT_TRUE(M("/[]]x", "]x"));  // a ']' first is itself
  EXPECT_TRUE(M("/[abc]", "b"));
  EXPECT_FALSE(M("/[abc]", "d"));
  EXPECT_TRUE(M("/[a-]", "-"));  // a '-' last is itself
}

TEST(ExcludePattern, BackslashQuotes) {
  EXPECT_TRUE(M("/a\\*b", "a*b"));
  EXPECT_FALSE(M("/a\\*b", "axb"));
  EXPECT_TRUE(M("\\!important", "!important"));
  EXPECT_TRUE(M("/\\[x]", "[x]"));
}

TEST(ExcludePattern, DoubleStar) {
  EXPECT_TRUE(M("/a/**/b", "a/b"));
  EXPECT_TRUE(M("/a/**/b", "a/x/y/b"));
  EXPECT_FALSE(M("/a/**/b", "a/x/y/c"));
  EXPECT_TRUE(M("**/logs", "logs", true));
  EXPECT_TRUE(M("**/logs", "x/y/logs", true));
  EXPECT_TRUE(M("/data/**", "data/x"));
  EXPECT_TRUE(M("/data/**", "data/x/y"));
  EXPECT_FALSE(M("/data/**", "data", true));  // everything below, not the directory
  EXPECT_TRUE(M("/a/**/**/b", "a/b"));
  // Many "**" stay polynomial.
  EXPECT_FALSE(M("/**/a/**/a/**/a/**/a/**/a/**/b", "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/c"));
}

TEST(ExcludePattern, TrailingSlashMeansDirectoriesOnly) {
  EXPECT_TRUE(M("tmp/", "tmp", true));
  EXPECT_FALSE(M("tmp/", "tmp", false));
  EXPECT_TRUE(M("/var/tmp/", "var/tmp", true));
  EXPECT_FALSE(M("/var/tmp/", "var/tmp", false));
}

TEST(ExcludePattern, TheRootNeverMatches) {
  EXPECT_FALSE(M("*", "", true));
  EXPECT_FALSE(M("**", "", true));
}

TEST(ExcludePattern, BadPatternsAreRefusedWithTheReason) {
  for (const char* bad : {"", "/", "//", "a//b", "[abc", "a\\", "!x", "/./a", "a/../b", "x\ty"}) {
    EXPECT_NE(CheckExcludePattern(bad), "") << bad;
    try {
      ExcludePattern::Parse(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig);
      EXPECT_NE(std::string(e.what()).find(std::string("exclude pattern \"") + bad + "\""), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NE(CheckExcludePattern(std::string(kMaxExcludePatternBytes + 1, 'a')), "");
  EXPECT_EQ(CheckExcludePattern(std::string(kMaxExcludePatternBytes, 'a')), "");
  EXPECT_NE(CheckExcludePattern("\xff\xfe"), "");  // not UTF-8
}

// Without "**", an anchored pattern is a glob over the whole path where '*'
// and '?' never match '/': fnmatch(3) with FNM_PATHNAME, as a reference.
// Seeded random patterns and paths over a small alphabet.
TEST(ExcludePattern, AgreesWithFnmatchPathname) {
  std::mt19937 rng(16);
  const char* pattern_atoms[] = {"a", "b", "*", "?", "[ab]", "[!a]", "/", "ab"};
  const char* path_atoms[] = {"a", "b", "c", "/"};
  size_t compared = 0;
  for (int i = 0; i < 20000; i++) {
    std::string pat, path;
    for (int k = 1 + static_cast<int>(rng() % 6); k > 0; k--) pat += pattern_atoms[rng() % 8];
    for (int k = 1 + static_cast<int>(rng() % 8); k > 0; k--) path += path_atoms[rng() % 4];
    if (!CheckExcludePattern("/" + pat).empty() || pat.front() == '/' || pat.back() == '/') continue;
    if (pat.find("**") != std::string::npos) continue;  // ours spans directories
    if (path.front() == '/' || path.back() == '/' || path.find("//") != std::string::npos) continue;
    const bool want = ::fnmatch(pat.c_str(), path.c_str(), FNM_PATHNAME) == 0;
    EXPECT_EQ(ExcludePattern::Parse("/" + pat).Matches(path, false), want) << "/" << pat << " on " << path;
    // Unanchored: the same glob on some tail of the path.
    bool tail = false;
    for (size_t at = 0;; at++) {
      tail = tail || ::fnmatch(pat.c_str(), path.c_str() + at, FNM_PATHNAME) == 0;
      at = path.find('/', at);
      if (at == std::string::npos) break;
    }
    EXPECT_EQ(ExcludePattern::Parse(pat).Matches(path, false), tail) << pat << " on " << path;
    compared++;
  }
  EXPECT_GT(compared, 5000u);
}

TEST(ExcludeRules, FirstMatchAndTheCountIsBounded) {
  ExcludeRules r;
  r.AddAll({"*.tmp", "/var/cache/*"});
  ASSERT_NE(r.Match("x/a.tmp", false), nullptr);
  EXPECT_EQ(r.Match("x/a.tmp", false)->text(), "*.tmp");
  EXPECT_EQ(r.Match("var/cache/apt", true)->text(), "/var/cache/*");
  EXPECT_EQ(r.Match("var/lib", true), nullptr);
  ExcludeRules big;
  for (size_t i = 0; i < kMaxExcludePatterns; i++) big.Add("f" + std::to_string(i));
  EXPECT_THROW(big.Add("one-more"), Error);
}

TEST(ParseExcludeFile, CommentsBlanksAndLineNumbers) {
  auto p = ParseExcludeFile("# caches\n\n*.tmp  \r\n  # indented comment\n/var/cache/*\r\n", "ex.txt");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], "*.tmp");
  EXPECT_EQ(p[1], "/var/cache/*");
  try {
    ParseExcludeFile("ok\n[bad\n", "ex.txt");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ex.txt:2: exclude pattern \"[bad\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(ParseExcludeFile(std::string("a\0b\n", 4), "bin"), Error);
  EXPECT_THROW(ParseExcludeFile(std::string(kMaxExcludeFileBytes + 1, '\n'), "huge"), Error);
  std::string many;
  for (size_t i = 0; i <= kMaxExcludePatterns; i++) many += "p" + std::to_string(i) + "\n";
  EXPECT_THROW(ParseExcludeFile(many, "many"), Error);
}

}  // namespace
}  // namespace vmback
