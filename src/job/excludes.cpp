#include "job/excludes.h"

#include "os/env.h"
#include "util/error.h"

namespace vmback {

std::vector<OwnLocation> OwnLocations(const Config& config) {
  std::vector<OwnLocation> out;
  const TargetConfig& t = config.target;
  if (!t.path.empty()) {
    const std::string kind = t.type == TargetType::kStore ? "the store" : std::string("the ") + TargetTypeName(t.type) + " target";
    out.push_back({t.path, kind + " " + t.path});
  }
  if (t.type == TargetType::kBtrfs && !t.path.empty() && !t.snapshot_prefix.empty())
    out.push_back({JoinPath(DirName(CanonicalPath(t.path)), t.snapshot_prefix),
                   "a point of the btrfs target " + t.path, true});
  for (const auto& m : t.mirrors) out.push_back({m, "the store's copy " + m});
  if (!config.run.state_dir.empty())
    out.push_back({config.run.state_dir, "vmback's state directory " + config.run.state_dir});
  return out;
}

VolumeExcludes ExcludesFor(const std::string& volume, const std::string& source,
                           const std::vector<std::string>& patterns, bool exclude_caches,
                           const std::vector<OwnLocation>& own) {
  VolumeExcludes ex;
  try {
    ex.patterns.AddAll(patterns);
  } catch (const Error& e) {
    ThrowConfig("volume '" + volume + "': " + e.what());
  }
  ex.exclude_caches = exclude_caches;
  const std::string src = CanonicalPath(source);
  const std::string prefix = src == "/" ? "/" : src + "/";
  for (const auto& o : own) {
    // A name prefix is no path of its own: only its directory is resolved.
    const std::string path =
        o.name_prefix ? JoinPath(CanonicalPath(DirName(o.path)), BaseName(o.path)) : CanonicalPath(o.path);
    if (path.size() > prefix.size() && path.rfind(prefix, 0) == 0) {
      bool seen = false;
      const std::string rel = path.substr(prefix.size());
      for (const auto& e : ex.own) seen = seen || (e.rel == rel && e.name_prefix == o.name_prefix);
      if (!seen) ex.own.push_back({rel, o.what, o.name_prefix});
    }
  }
  return ex;
}

BackupExcludes ExcludesOfConfig(const Config& config, const std::vector<std::string>& extra) {
  BackupExcludes out;
  const std::vector<OwnLocation> own = OwnLocations(config);
  for (const auto& v : config.volumes) {
    std::vector<std::string> patterns = v.exclude;
    patterns.insert(patterns.end(), extra.begin(), extra.end());
    out.emplace(v.name, ExcludesFor(v.name, v.source, patterns, v.exclude_caches, own));
  }
  return out;
}

std::vector<std::string> DescribeConfigExcludes(const Config& config, size_t i) {
  const VolumeConfig& v = config.volumes.at(i);
  return DescribeExcludes(ExcludesFor(v.name, v.source, v.exclude, v.exclude_caches, OwnLocations(config)));
}

}  // namespace vmback
