// vmback find: which points hold the paths a glob matches, and where their
// content changed.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"
#include "destination/point_find.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

class FindCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("PATTERN", pattern_, "a glob: without '/', matched against names; with '/', against paths")
        ->required();
    auto* point = cmd->add_option("--point", point_, std::string("look in this point only: ") + kPointHelp);
    cmd->add_flag("--all", all_, "look in every point (the default)")->excludes(point);
    cmd->add_option("--newer", newer_, "only entries modified after WHEN (a UTC date or time, or an age: 7d)");
    cmd->add_option("--older", older_, "only entries modified before WHEN");
    cmd->add_option("--size", size_, "only files of more (+N), less (--size=-N) or exactly N bytes; K, M, G");
    cmd->add_flag("--json", json_,
                  "the matches as a JSON list (path, and points: point, type, size, mtime, version, changed)");
    cmd->footer("\nEvery path in the points (oldest first) that PATTERN matches, in path order,\n"
                "and under it each point that holds it: type, size, UTC mtime and the\n"
                "version of its content (v1, v2, ... in the order they appear; the same\n"
                "block list in a store, the same blockmap in an in-place target, is the\n"
                "same version), marked \"changed\" where type or content differ from the\n"
                "point before. No data is read. \"v?\": an in-place file without a blockmap.\n\n"
                "PATTERN: '*' any run of characters but '/', '**' any run including '/',\n"
                "'?' one character but '/', '[abc]', '[a-z]', '[!abc]' one of a set, '\\'\n"
                "quotes. Without '/' it is matched against each entry's name (as find\n"
                "-name), with '/' against its whole path VOLUME/dir/name. Quote it from\n"
                "the shell.\n\n"
                "--newer/--older WHEN: 2026-11-20, 2026-11-20T18:00 (UTC), or an age from\n"
                "now: 36h, 7d, 2w. They test each point's entry by its mtime, --size by its\n"
                "size (files only: --size +1G finds the big images); a path is listed with\n"
                "the points whose entry passes.\n\n"
                "Examples:\n  vmback find -c /etc/vmback/vmback.toml '*.qcow2'\n"
                "  vmback find --store /mnt/usb/vmback 'root/etc/**.conf' --json\n"
                "  vmback find --btrfs /mnt/usb/vmback 'images/web*' --point latest\n"
                "  vmback find -c /etc/vmback/vmback.toml '*' --newer 2d --size +100M");
  }

  Findings Run(CommandContext& ctx) override {
    if (pattern_.size() > kMaxGlobPattern)
      ThrowConfig("PATTERN is " + std::to_string(pattern_.size()) + " bytes long; at most " +
                  std::to_string(kMaxGlobPattern));
    FindFilter filter;
    if (!newer_.empty()) filter.newer_ns = ParseFindTime("--newer", newer_, ctx.env->NowNanos());
    if (!older_.empty()) filter.older_ns = ParseFindTime("--older", older_, ctx.env->NowNanos());
    if (!size_.empty()) ParseFindSize(size_, &filter);
    Config config = ResolveConfig(target_);
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    const std::vector<std::string> names = point_.empty() ? dest->PointNames() : std::vector<std::string>{ResolvePointName(dest.get(), point_)};
    std::vector<std::pair<std::string, std::vector<PointEntry>>> points;
    for (const std::string& name : names) {
      std::string resolved;
      auto entries = dest->FindEntries(name, pattern_, &resolved);
      std::erase_if(entries, [&](const PointEntry& e) { return !filter.Keeps(e); });
      points.emplace_back(resolved, std::move(entries));
    }
    const std::vector<FoundPath> found = GatherFound(points);
    if (json_) {
      ctx.out << FoundToJson(found).dump(2) << "\n";
      return {};
    }
    for (const FoundPath& f : found) {
      ctx.out << EscapeForTerminal(f.path) << (f.points.back().second.type == "dir" ? "/" : "") << "\n";
      std::vector<std::string> versions;
      for (size_t i = 0; i < f.points.size(); i++) {
        const PointEntry& e = f.points[i].second;
        std::string v;
        if (e.type == "file" && e.version.empty()) {
          v = "v?";
        } else if (e.type == "file") {
          size_t n = 0;
          while (n < versions.size() && versions[n] != e.version) n++;
          if (n == versions.size()) versions.push_back(e.version);
          v = "v" + std::to_string(n + 1);
        }
        char kind_size[48];
        std::snprintf(kind_size, sizeof kind_size, "%-8s %12llu", e.type.c_str(),
                      static_cast<unsigned long long>(e.size));
        ctx.out << "  " << f.points[i].first << "  " << kind_size << " " << FormatTimeUtc(e.mtime_ns)
                << (v.empty() ? "" : " " + v) << (ChangedAt(f, i) ? " changed" : "") << "\n";
      }
    }
    if (found.empty()) ctx.out << "nothing matches " << EscapeForTerminal(pattern_) << "\n";
    return {};
  }

 private:
  TargetArgs target_;
  std::string pattern_, point_, newer_, older_, size_;
  bool all_ = false, json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewFindCommand() { return std::make_unique<FindCommand>(); }

}  // namespace vmback
