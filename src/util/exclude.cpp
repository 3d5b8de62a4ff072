#include "util/exclude.h"

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr std::string_view kAnyDepth = "**";

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The end of the class that starts at glob[i] == '[' (the index after its
// ']'), or npos when it is not closed.
size_t ClassEnd(std::string_view glob, size_t i) {
  size_t k = i + 1;
  if (k < glob.size() && (glob[k] == '!' || glob[k] == '^')) k++;
  if (k < glob.size() && glob[k] == ']') k++;  // a ']' first is itself
  while (k < glob.size() && glob[k] != ']') {
    if (glob[k] == '\\') k++;
    k++;
  }
  return k < glob.size() ? k + 1 : std::string_view::npos;
}

// Whether byte c is in the class glob[i, end) ("[...]", checked).
bool InClass(std::string_view glob, size_t i, size_t end, unsigned char c) {
  size_t k = i + 1;
  bool negate = false;
  if (glob[k] == '!' || glob[k] == '^') {
    negate = true;
    k++;
  }
  bool in = false;
  while (k < end - 1) {
    if (glob[k] == '\\') k++;
    unsigned char lo = static_cast<unsigned char>(glob[k]);
    k++;
    unsigned char hi = lo;
    if (k + 1 < end - 1 && glob[k] == '-') {
      size_t h = k + 1;
      if (glob[h] == '\\') h++;
      hi = static_cast<unsigned char>(glob[h]);
      k = h + 1;
    }
    if (lo <= c && c <= hi) in = true;
  }
  return in != negate;
}

// Whether the glob (one component's: '*', '?', "[...]", '\'; checked by
// CheckGlob) matches all of name. '*' backtracks to its last position
// only: O(glob * name) at worst.
bool MatchGlob(std::string_view glob, std::string_view name) {
  size_t g = 0, n = 0;
  size_t star_g = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (g < glob.size()) {
      const char c = glob[g];
      if (c == '*') {
        while (g < glob.size() && glob[g] == '*') g++;
        star_g = g;
        star_n = n;
        continue;
      }
      if (c == '?') {
        // One character: a UTF-8 sequence whole.
        n++;
        while (n < name.size() && IsContinuation(static_cast<unsigned char>(name[n]))) n++;
        g++;
        continue;
      }
      if (c == '[') {
        const size_t end = ClassEnd(glob, g);
        if (InClass(glob, g, end, static_cast<unsigned char>(name[n]))) {
          g = end;
          n++;
          continue;
        }
      } else {
        size_t lit = g;
        if (c == '\\') lit++;
        if (glob[lit] == name[n]) {
          g = lit + 1;
          n++;
          continue;
        }
      }
    }
    if (star_g == std::string_view::npos) return false;
    g = star_g;
    n = ++star_n;
  }
  while (g < glob.size() && glob[g] == '*') g++;
  return g == glob.size();
}

// "" when the component glob is well formed, else why not.
std::string CheckGlob(std::string_view glob) {
  if (glob == "." || glob == "..") return "a component may not be \".\" or \"..\"";
  for (size_t i = 0; i < glob.size(); i++) {
    if (glob[i] == '\\') {
      if (i + 1 == glob.size()) return "a '\\' ends a component: it quotes nothing";
      i++;
    } else if (glob[i] == '[') {
      const size_t end = ClassEnd(glob, i);
      if (end == std::string_view::npos) return "a '[' is not closed by ']'";
      i = end - 1;
    }
  }
  return "";
}

std::vector<std::string_view> SplitPath(std::string_view rel) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) slash = rel.size();
    out.push_back(rel.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// Splits text into its components (the leading and trailing '/' taken off
// first), or says why it is no pattern.
std::string Decompose(std::string_view text, std::vector<std::string>* parts, bool* anchored, bool* dir_only) {
  if (text.empty()) return "it is empty";
  if (text.size() > kMaxExcludePatternBytes)
    return "it is longer than " + std::to_string(kMaxExcludePatternBytes) + " bytes";
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return "it holds a control character";
  if (!IsValidUtf8(text)) return "it is not valid UTF-8";
  if (text[0] == '!') return "negation ('!') is not supported; write \"\\!\" for a name that starts with '!'";
  *anchored = text[0] == '/';
  if (*anchored) text.remove_prefix(1);
  *dir_only = !text.empty() && text.back() == '/';
  if (*dir_only) text.remove_suffix(1);
  if (text.empty()) return "it matches nothing but the volume's root";
  for (std::string_view part : SplitPath(text)) {
    if (part.empty()) return "it holds an empty component (\"//\")";
    std::string why = CheckGlob(part);
    if (!why.empty()) return why;
    parts->emplace_back(part);
  }
  return "";
}

}  // namespace

std::string CheckExcludePattern(std::string_view text) {
  std::vector<std::string> parts;
  bool anchored = false, dir_only = false;
  return Decompose(text, &parts, &anchored, &dir_only);
}

ExcludePattern ExcludePattern::Parse(std::string_view text) {
  ExcludePattern p;
  std::vector<std::string> parts;
  bool anchored = false;
  std::string why = Decompose(text, &parts, &anchored, &p.dir_only_);
  if (!why.empty()) ThrowConfig("exclude pattern \"" + std::string(text) + "\": " + why);
  p.text_ = std::string(text);
  if (!anchored) p.parts_.emplace_back(kAnyDepth);
  for (size_t i = 0; i < parts.size(); i++) {
    // A trailing "**" is everything below: one component at least.
    if (i + 1 == parts.size() && parts[i] == kAnyDepth && i > 0) {
      p.parts_.emplace_back("*");
    }
    // Runs of "**" mean what one does.
    if (parts[i] == kAnyDepth && !p.parts_.empty() && p.parts_.back() == kAnyDepth) continue;
    p.parts_.push_back(std::move(parts[i]));
  }
  size_t any = 0;
  for (const auto& part : p.parts_) any += part == kAnyDepth;
  p.any_depth_ = any > 0;
  p.tail_only_ = any == 1 && p.parts_[0] == kAnyDepth && p.parts_.size() > 1;
  return p;
}

bool ExcludePattern::Matches(std::string_view rel, bool is_dir) const {
  return !rel.empty() && MatchesComponents(SplitPath(rel), is_dir);
}

bool ExcludePattern::MatchesComponents(const std::vector<std::string_view>& comps, bool is_dir) const {
  if (dir_only_ && !is_dir) return false;
  if (!any_depth_ || tail_only_) {
    // One component for each part: the whole path, or (after a leading
    // "**") its last ones.
    const size_t skip = tail_only_ ? 1 : 0;
    const size_t k = parts_.size() - skip;
    if (tail_only_ ? comps.size() < k : comps.size() != k) return false;
    const size_t first = comps.size() - k;
    for (size_t i = 0; i < k; i++)
      if (!MatchGlob(parts_[skip + i], comps[first + i])) return false;
    return true;
  }
  const size_t m = parts_.size(), n = comps.size();
  // next[j]: parts_[i+1..] match comps[j..]; filled from the last part back.
  std::vector<char> next(n + 1, 0), cur(n + 1, 0);
  next[n] = 1;
  for (size_t i = m; i-- > 0;) {
    const bool any = parts_[i] == kAnyDepth;
    cur[n] = any ? next[n] : 0;
    for (size_t j = n; j-- > 0;) {
      if (any)
        cur[j] = next[j] || cur[j + 1];
      else
        cur[j] = next[j + 1] && MatchGlob(parts_[i], comps[j]);
    }
    std::swap(next, cur);
  }
  return next[0] != 0;
}

void ExcludeRules::Add(std::string_view text) {
  if (patterns_.size() >= kMaxExcludePatterns)
    ThrowConfig("more than " + std::to_string(kMaxExcludePatterns) + " exclude patterns for one volume");
  patterns_.push_back(ExcludePattern::Parse(text));
}

const ExcludePattern* ExcludeRules::Match(std::string_view rel, bool is_dir) const {
  if (rel.empty() || patterns_.empty()) return nullptr;
  const std::vector<std::string_view> comps = SplitPath(rel);
  for (const auto& p : patterns_)
    if (p.MatchesComponents(comps, is_dir)) return &p;
  return nullptr;
}

std::vector<std::string> ParseExcludeFile(std::string_view text, const std::string& file) {
  if (text.size() > kMaxExcludeFileBytes)
    ThrowConfig(file + ": " + std::to_string(text.size()) + " bytes, more than the " +
                std::to_string(kMaxExcludeFileBytes) + " an exclude file may have");
  std::vector<std::string> out;
  size_t line = 0;
  size_t start = 0;
  while (start < text.size()) {
    line++;
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(start, end - start);
    start = end + 1;
    if (l.find('\0') != std::string_view::npos)
      ThrowConfig(file + ":" + std::to_string(line) + ": a NUL byte: not an exclude file (one pattern a line)");
    while (!l.empty() && (l.back() == '\r' || l.back() == ' ' || l.back() == '\t')) l.remove_suffix(1);
    size_t first = l.find_first_not_of(" \t");
    if (first == std::string_view::npos || l[first] == '#') continue;
    std::string why = CheckExcludePattern(l);
    if (!why.empty()) ThrowConfig(file + ":" + std::to_string(line) + ": exclude pattern \"" + std::string(l) + "\": " + why);
    if (out.size() >= kMaxExcludePatterns)
      ThrowConfig(file + ":" + std::to_string(line) + ": more than " + std::to_string(kMaxExcludePatterns) +
                  " exclude patterns");
    out.emplace_back(l);
  }
  return out;
}

}  // namespace vmback
