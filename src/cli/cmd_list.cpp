// vmback list.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "run/target_ops.h"
#include "util/encoding.h"

namespace vmback {

namespace {

class ListCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--json", json_, "print the points as JSON");
    cmd->footer("\nOne line per point, oldest first: name, UTC time, volumes. On a zfs or btrfs\n"
                "target the points are vmback's snapshots; a dir target has one, \"current\".\n\n"
                "Examples:\n  vmback list --store /mnt/usb/vmback\n  vmback list --zfs usbpool/vmback --json\n"
                "  vmback list -c /etc/vmback/vmback.toml");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    nlohmann::json points = nlohmann::json::array();
    std::string where;
    if (IsInplace(config)) {
      auto target = OpenInplaceTarget(ctx.env, config.target, ctx.log);
      where = target->describe();
      for (const auto& p : ListTargetPoints(target.get(), ctx.env))
        points.push_back({{"name", p.name},
                          {"time", p.time_ns >= 0 ? FormatTimeUtc(p.time_ns) : ""},
                          {"time_ns", p.time_ns},
                          {"volumes", p.volumes}});
    } else {
      auto store = OpenStore(config, target_, LockMode::kShared, ctx.log);
      where = store->dir();
      for (const auto& name : store->ListPoints()) {
        nlohmann::json m = store->ReadManifest(name);
        nlohmann::json vols = nlohmann::json::array();
        for (const auto& v : m.at("volumes")) vols.push_back(v.at("name"));
        points.push_back({{"name", name},
                          {"time", m.value("time", "")},
                          {"time_ns", m.value("time_ns", int64_t{0})},
                          {"volumes", vols},
                          {"tags", m.value("tags", nlohmann::json::array())},
                          {"stats", m.value("stats", nlohmann::json::object())}});
      }
    }
    std::ostream& out = ctx.out;
    if (json_) {
      out << points.dump(2) << "\n";
    } else if (points.empty()) {
      out << "no points yet in " << where << "\n";
    } else {
      for (const auto& p : points) {
        int64_t t = p["time_ns"].get<int64_t>();
        // Names from the disk: escaped for the terminal (--json keeps them exact).
        out << EscapeForTerminal(p["name"].get<std::string>()) << "  " << (t >= 0 ? FormatTimeUtc(t) : "?") << "  ";
        std::string sep;
        for (const auto& v : p["volumes"]) {
          out << sep << EscapeForTerminal(v.get<std::string>());
          sep = ",";
        }
        if (p.contains("tags"))
          for (const auto& t : p["tags"]) out << "  #" << t.get<std::string>();
        out << "\n";
      }
    }
    return {};
  }

 private:
  TargetArgs target_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewListCommand() { return std::make_unique<ListCommand>(); }

}  // namespace vmback
