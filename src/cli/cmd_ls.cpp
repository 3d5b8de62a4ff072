// vmback ls: the entries of a point, without restoring anything.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// "drwxr-x---" as ls -l writes it.
std::string ModeString(const PointEntry& e) {
  char s[11];
  const char kinds[][2] = {"-", "d", "l", "c", "b", "p", "s"};
  const char* names[] = {"file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"};
  s[0] = '?';
  for (size_t i = 0; i < 7; i++)
    if (e.type == names[i]) s[0] = kinds[i][0];
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; i++) s[1 + i] = (e.mode >> (8 - i)) & 1 ? rwx[i] : '-';
  if (e.mode & 04000) s[3] = s[3] == 'x' ? 's' : 'S';
  if (e.mode & 02000) s[6] = s[6] == 'x' ? 's' : 'S';
  if (e.mode & 01000) s[9] = s[9] == 'x' ? 't' : 'T';
  s[10] = '\0';
  return s;
}

class LsCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT", point_, kPointHelp)->required();
    cmd->add_option("PATH", path_, "VOLUME or VOLUME/dir inside it (default: the point's volumes)");
    cmd->add_flag("-l,--long", long_, "type and mode, owner (uid:gid), size, UTC mtime, and a link's target");
    cmd->add_flag("-R,--recursive", recursive_, "everything below PATH, not only its entries");
    cmd->add_flag("--json", json_, "the entries as JSON (path, type, mode, uid, gid, size, mtime, target)");
    cmd->add_flag("--vms", vms_,
                  "the VMs the point holds (recorded by 'vmback run'): each disk's target, format, and where "
                  "the point holds it (VOLUME/path, for restore); with --json, each VM's domain XML too");
    cmd->footer("\nShows what a point holds without restoring it: one path per line, as restore\n"
                "takes it (VOLUME/dir/name). For a file, link or device, the entry itself.\n"
                "Names that are not printable are shown escaped; --json gives them exactly\n"
                "(path_hex when not UTF-8).\n\n"
                "--vms lists the VMs instead: 'vmback restore POINT --vm NAME' brings one back.\n\n"
                "Examples:\n  vmback ls -c /etc/vmback/vmback.toml latest\n"
                "  vmback ls --store /mnt/usb/vmback latest root/etc -l\n"
                "  vmback ls --dir /mnt/usb/mirror current images -R --json\n"
                "  vmback ls -c /etc/vmback/vmback.toml latest --vms");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    if (vms_) return ListVms(ctx, config);
    const std::string path = PointPath(path_);
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    const std::vector<PointEntry> entries = dest->ListEntries(ResolvePointName(dest.get(), point_), path, recursive_);
    if (json_) {
      ctx.out << PointEntriesToJson(entries).dump(2) << "\n";
      return {};
    }
    for (const auto& e : entries) {
      std::string shown = EscapeForTerminal(e.path) + (e.type == "dir" ? "/" : "");
      if (!long_) {
        ctx.out << shown << "\n";
        continue;
      }
      char size[32];
      std::snprintf(size, sizeof size, "%12llu", static_cast<unsigned long long>(e.size));
      ctx.out << ModeString(e) << " " << e.uid << ":" << e.gid << " " << size << " " << FormatTimeUtc(e.mtime_ns)
              << " " << shown << (e.type == "symlink" ? " -> " + EscapeForTerminal(e.target) : "") << "\n";
    }
    return {};
  }

 private:
  Findings ListVms(CommandContext& ctx, const Config& config) {
    if (!path_.empty() || recursive_) ThrowConfig("--vms lists a point's VMs: give no PATH and no -R");
    std::string point;
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    const std::vector<VmRecord> vms = dest->PointVms(ResolvePointName(dest.get(), point_), &point);
    if (json_) {
      ctx.out << nlohmann::json{{"point", point}, {"vms", VmRecordsToJson(vms)}}.dump(2) << "\n";
      return {};
    }
    if (vms.empty()) ctx.out << "point " << point << " records no VMs (made by 'vmback backup', or by an older vmback)\n";
    for (const auto& vm : vms) {
      ctx.out << EscapeForTerminal(vm.name) << "\n";
      for (const auto& d : vm.disks) {
        ctx.out << "  " << d.target << "  " << (d.format.empty() ? "?" : d.format) << "  ";
        if (d.located)
          ctx.out << EscapeForTerminal(d.path.empty() ? d.volume : d.volume + "/" + d.path);
        else
          ctx.out << "(not in the point)";
        ctx.out << "  was " << EscapeForTerminal(d.source) << "\n";
      }
    }
    return {};
  }

  TargetArgs target_;
  std::string point_, path_;
  bool long_ = false, recursive_ = false, json_ = false, vms_ = false;
};

}  // namespace

std::unique_ptr<Command> NewLsCommand() { return std::make_unique<LsCommand>(); }

}  // namespace vmback
