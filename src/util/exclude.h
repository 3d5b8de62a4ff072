// Exclude patterns: gitignore-style globs over the paths of a volume's
// entries, relative to the volume's root ("etc/passwd", no leading '/').
//
//   /var/cache/*   a leading '/' anchors the pattern at the volume's root
//   *.tmp          without it the pattern matches at any depth: it is
//                  tried against every tail of the path ("a/b.tmp", "b.tmp")
//   *  ?  [a-z]    one path component's characters ('/' is never matched);
//                  [!...] or [^...] negates a class; '\' quotes the next char
//   **             as a whole component: any number of components, none
//                  included ("/a/**/b" matches a/b and a/x/y/b); a trailing
//                  "/**" matches everything below, not the directory itself
//   tmp/           a trailing '/' matches directories only
//
// Unlike git, a pattern with a '/' in its middle ("a/b") is not anchored:
// only a leading '/' anchors. There is no negation ('!' at the start is
// refused; write "\!" for a name starting with '!'). An entry that matches
// is left out with everything below it. Patterns are pure data: matching
// makes no system call.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vmback {

// Bounds on what a config, a command line or an exclude file may give.
constexpr size_t kMaxExcludePatternBytes = 1024;
constexpr size_t kMaxExcludePatterns = 4096;  // per volume, all sources together
constexpr size_t kMaxExcludeFileBytes = 1 << 20;

class ExcludePattern {
 public:
  // The pattern text, or throws Error(kConfig) "exclude pattern \"TEXT\": WHY"
  // (empty, too long, control characters, an unclosed '[', a trailing '\',
  // a leading '!', a "." or ".." component, nothing but '/').
  static ExcludePattern Parse(std::string_view text);

  // Whether the entry at rel (relative to the volume root, components
  // separated by single '/', no leading or trailing '/') matches. is_dir
  // tells whether the entry is a directory (a trailing '/' needs one).
  bool Matches(std::string_view rel, bool is_dir) const;

  const std::string& text() const { return text_; }

 private:
  friend class ExcludeRules;
  ExcludePattern() = default;
  // Matches with rel split into its components (once for every pattern).
  bool MatchesComponents(const std::vector<std::string_view>& comps, bool is_dir) const;

  std::string text_;
  // The components, each a glob over one path component; "**" alone is
  // any number of them. An unanchored pattern starts with "**"; a
  // trailing "/**" is kept as "*", "**" (one component at least).
  std::vector<std::string> parts_;
  bool dir_only_ = false;
  bool any_depth_ = false;  // a "**" among parts_ (else one component each)
  bool tail_only_ = false;  // the only "**" is the first part: the path's last components
};

// Returns "" when text is a valid pattern, else why not (as Parse says).
std::string CheckExcludePattern(std::string_view text);

// A volume's patterns, in the order given. Not thread-safe to change;
// Match may be called from several threads once built.
class ExcludeRules {
 public:
  // Throws Error(kConfig) for a bad pattern (see Parse), or when the rules
  // would hold more than kMaxExcludePatterns.
  void Add(std::string_view text);
  void AddAll(const std::vector<std::string>& texts) {
    for (const auto& t : texts) Add(t);
  }
  // The first pattern rel matches, or null.
  const ExcludePattern* Match(std::string_view rel, bool is_dir) const;
  bool empty() const { return patterns_.empty(); }
  const std::vector<ExcludePattern>& patterns() const { return patterns_; }

 private:
  std::vector<ExcludePattern> patterns_;
};

// The patterns of an exclude file's text: one a line; blank lines and
// lines whose first non-blank character is '#' are skipped; trailing
// blanks and a '\r' are dropped. Throws Error(kConfig) naming file and line
// for a NUL byte, for a bad pattern, for more than kMaxExcludePatterns
// lines with patterns, or for text over kMaxExcludeFileBytes.
std::vector<std::string> ParseExcludeFile(std::string_view text, const std::string& file);

}  // namespace vmback
