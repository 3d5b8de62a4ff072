#include "inplace/target.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "inplace/backends.h"
#include "os/subprocess.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace inplace_internal {

RunResult RunTool(Env* env, const std::vector<std::string>& argv, const std::string& what) {
  RunResult r;
  try {
    r = env->Run(argv);
  } catch (const Error& e) {
    throw Error(ErrorKind::kConfig, what + ": cannot run " + argv[0] + " (" + e.what() + "); is it installed?");
  }
  return r;
}

RunResult RunChecked(Env* env, const std::vector<std::string>& argv, const std::string& what) {
  RunResult r = RunTool(env, argv, what);
  if (r.exit_code != 0) throw Error(ErrorKind::kOther, what + ": " + DescribeFailure(argv, r));
  return r;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
  return s.substr(i);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

void SortPoints(std::vector<std::string>* names, size_t prefix_len) {
  std::sort(names->begin(), names->end(), [prefix_len](const std::string& a, const std::string& b) {
    return PointNameLess(a.substr(prefix_len), b.substr(prefix_len));
  });
}

std::vector<std::string> ZfsSnapshotsOf(const std::string& listing, const std::string& dataset) {
  const std::string own = dataset + "@";
  std::vector<std::string> names;
  for (const auto& line : Lines(listing)) {
    const std::string n = Trim(line);
    if (n.size() > own.size() && n.compare(0, own.size(), own) == 0) names.push_back(n.substr(own.size()));
  }
  return names;
}

std::vector<std::string> OwnPoints(const std::vector<std::string>& snapshots, const std::string& prefix) {
  std::vector<std::string> points;
  for (const auto& n : snapshots)
    if (n.compare(0, prefix.size(), prefix) == 0 && ParsePointStamp(n.substr(prefix.size())) >= 0)
      points.push_back(n);
  SortPoints(&points, prefix.size());
  return points;
}

std::string FreshPointName(const std::string& prefix, int64_t now_ns, const std::vector<std::string>& taken) {
  std::string base = prefix + FormatPointStamp(now_ns);
  std::string name = base;
  for (int i = 2; std::find(taken.begin(), taken.end(), name) != taken.end(); i++)
    name = base + "." + std::to_string(i);
  return name;
}

void CheckOwnPoint(const std::string& prefix, const std::string& name, const std::string& where) {
  if (name.compare(0, prefix.size(), prefix) != 0 || ParsePointStamp(name.substr(prefix.size())) < 0)
    ThrowConfig(name + " in " + where + " is not a vmback point (its names are " + prefix +
                "<UTC time>); vmback leaves it alone");
}

}  // namespace inplace_internal

std::unique_ptr<InplaceTarget> OpenInplaceTarget(Env* env, const TargetConfig& config, Logger* log) {
  switch (config.type) {
    case TargetType::kZfs:
      return inplace_internal::MakeZfsTarget(env, config, log);
    case TargetType::kBtrfs:
      return inplace_internal::MakeBtrfsTarget(env, config, log);
    case TargetType::kDir:
      return inplace_internal::MakeDirTarget(env, config);
    case TargetType::kStore:
      break;
  }
  ThrowConfig("the built-in store is not an in-place target");
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) && std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> MissingMountOptions(const std::string& mountinfo_text, const std::string& path,
                                             std::string* mount_point) {
  // The mount holding path: the last listed (the one on top) of the longest
  // mount point that is path or one of its parents.
  std::string best, best_options;
  std::istringstream lines(mountinfo_text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point, options;
    if (!(fields >> id >> parent >> devno >> root >> point >> options)) continue;
    point = UnescapeMountinfo(point);
    bool holds = point == "/" || path == point || path.rfind(point + "/", 0) == 0;
    if (holds && point.size() >= best.size()) {
      best = point;
      best_options = "," + options + ",";
    }
  }
  std::vector<std::string> missing;
  if (best.empty()) return missing;
  if (mount_point) *mount_point = best;
  for (const char* want : {"nodev", "nosuid", "noexec"})
    if (best_options.find(std::string(",") + want + ",") == std::string::npos) missing.push_back(want);
  return missing;
}

void WarnAboutMountOptions(const InplaceTarget& target, Logger* log) {
  if (target.kind() != "dir" && target.kind() != "btrfs") return;
  // A proc file reports size 0: read it as a stream.
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return;  // no /proc: nothing to tell
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  std::string point;
  auto missing = MissingMountOptions(text, CanonicalPath(target.mirror_dir()), &point);
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ",") + m;
  log->Warn(target.describe() + " is on the mount " + point + " without " + list +
            ": the guests' device nodes and setuid files in the mirror are live on this host;"
            " mount it with nodev,nosuid,noexec");
}

}  // namespace vmback
