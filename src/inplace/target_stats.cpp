#include "inplace/target_stats.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <sstream>

#include "inplace/backends.h"
#include "inplace/target_ops.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

using inplace_internal::Lines;
using inplace_internal::Trim;
using inplace_internal::Words;

// argv run with a deadline of 10 minutes.
RunResult RunForStats(Env* env, const std::vector<std::string>& argv) {
  RunLimits limits;
  limits.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  return env->RunLimited(argv, limits);
}

// r's output, or Error(kIo) naming argv and the first line of its stderr.
std::string OutputOf(const std::vector<std::string>& argv, const RunResult& r) {
  if (r.exit_code == 0) return r.out;
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  const std::string err = Trim(r.err);
  throw Error(ErrorKind::kIo, cmd + " failed (exit " + std::to_string(r.exit_code) + "): " + err.substr(0, err.find('\n')));
}

// A decimal number as du and zfs list -p print it.
uint64_t Number(const std::string& field, const std::string& what) {
  uint64_t n = 0;
  if (field.empty() || field.find_first_not_of("0123456789") != std::string::npos || !ParseSize(field, &n))
    throw Error(ErrorKind::kIo, what + " printed '" + field + "' where a number of bytes was expected");
  return n;
}

// What btrfs's quota groups say of the subvolume at root (a btrfs point):
// referenced and exclusive bytes (exclusive: what deleting it frees);
// nullopt when they cannot tell (quotas not enabled).
std::optional<std::pair<uint64_t, uint64_t>> BtrfsQgroup(Env* env, const std::string& root) {
  const std::vector<std::string> argv = {"btrfs", "--format", "json", "qgroup", "show", "--raw", "-f", "--sync", root};
  const RunResult r = RunForStats(env, argv);
  if (r.exit_code != 0) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const auto& groups = j.at("qgroup-show");
    if (!groups.is_array() || groups.size() != 1) return std::nullopt;
    return std::make_pair(Number(groups[0].at("referenced").get<std::string>(), "btrfs qgroup show"),
                          Number(groups[0].at("exclusive").get<std::string>(), "btrfs qgroup show"));
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::kIo, "btrfs qgroup show " + root + " printed what vmback cannot read");
  }
}

}  // namespace

DestinationStats TargetStats(InplaceTarget* target, Env* env, const std::string& zfs_dataset,
                             const std::vector<std::string>& points, Logger*) {
  const std::vector<std::string> all = target->ListPoints();
  std::vector<std::string> names;
  for (const auto& p : points) {
    if (p == "latest" && all.empty()) ThrowNotFound("no points yet in " + target->describe());
    const std::string name = p == "latest" ? all.back() : p;
    if (std::find(all.begin(), all.end(), name) == all.end())
      ThrowNotFound("point " + p + " is not in " + target->describe());
    names.push_back(name);
  }
  if (points.empty()) names = all;

  DestinationStats s;
  s.json = {{"target", target->describe()}, {"points", nlohmann::json::array()}};
  std::ostringstream text;
  text << target->describe() << "\n";
  if (!zfs_dataset.empty() && !names.empty()) {
    // What ZFS says of each snapshot: used (what destroying it alone would
    // free), referenced, written (since the previous snapshot; a ZFS
    // without that property, as zfs-fuse, gives the other two).
    std::vector<std::string> argv = {"zfs", "get", "-Hp", "-o", "name,property,value", "used,referenced,written"};
    for (const auto& name : names) argv.push_back(zfs_dataset + "@" + name);
    RunResult r = RunForStats(env, argv);
    if (r.exit_code != 0) {
      argv[5] = "used,referenced";
      r = RunForStats(env, argv);
    }
    std::map<std::string, std::map<std::string, uint64_t>> props;  // snapshot -> property -> bytes
    for (const auto& line : Lines(OutputOf(argv, r))) {
      std::vector<std::string> w = Words(line);
      if (w.size() == 3) props[w[0]][w[1]] = Number(w[2], "zfs get");
    }
    for (const auto& name : names) {
      auto& got = props[zfs_dataset + "@" + name];
      if (!got.count("used") || !got.count("referenced"))
        ThrowNotFound("zfs get shows no used and referenced of " + zfs_dataset + "@" + name);
      nlohmann::json j = {{"name", name}, {"used", got["used"]}, {"referenced", got["referenced"]}};
      text << "  " << name << ": used " << FormatBytes(got["used"]) << " (freed by destroying it alone), referenced "
           << FormatBytes(got["referenced"]);
      if (got.count("written")) {
        j["written"] = got["written"];
        text << ", written " << FormatBytes(got["written"]);
      }
      text << " (zfs get)\n";
      s.json["points"].push_back(j);
    }
  } else {
    bool said = false;
    for (const auto& name : names) {
      const OpenedTargetPoint p = OpenTargetPoint(target, env, name);
      const std::string root = p.view->root();
      if (target->kind() == "btrfs") {
        if (auto q = BtrfsQgroup(env, root)) {
          s.json["points"].push_back({{"name", p.name}, {"referenced", q->first}, {"exclusive", q->second}});
          text << "  " << p.name << ": exclusive " << FormatBytes(q->second) << " (freed by deleting it), referenced "
               << FormatBytes(q->first) << " (btrfs qgroup)\n";
          continue;
        }
        if (!said)
          text << "  (btrfs quotas are not enabled: 'btrfs quota enable' gives each point's exclusive size)\n";
        said = true;
      }
      const std::vector<std::string> argv = {"du", "-s", "-x", "-B1", "--", root};
      const std::string out = OutputOf(argv, RunForStats(env, argv));
      const uint64_t bytes = Number(out.substr(0, out.find('\t')), "du -s -x -B1 " + root);
      s.json["points"].push_back({{"name", p.name}, {"du_bytes", bytes}});
      text << "  " << p.name << ": " << FormatBytes(bytes) << " on disk (du of the point)\n";
    }
  }
  s.text = text.str();
  return s;
}

}  // namespace vmback
