// vmback restore.
#include <CLI/CLI.hpp>

#include <optional>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/dump.h"
#include "destination/image_format.h"
#include "destination/point_select.h"
#include "destination/vm_restore.h"
#include "hypervisor/hypervisor.h"
#include "util/encoding.h"

namespace vmback {

namespace {

class RestoreCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT", point_, kPointHelp)->required();
    cmd->add_option("PATH", path_, "VOLUME or VOLUME/path/inside (default: the whole point)");
    cmd->add_option("--to", to_, "destination: a new directory or file, an empty directory, a block device, or - (standard output: one "
                    "file, as 'vmback dump')")->required();
    cmd->add_option("--format", format_,
                    "an image file restored as raw (the default: the bytes the guest saw) or as qcow2 "
                    "(qemu-img convert); qcow2 takes one image file, not a directory or a block device")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    cmd->add_option("--vm", vm_,
                    "every disk of this VM as the point holds it ('vmback ls POINT --vms'), into the "
                    "directory --to as VM-TARGET.img (raw) or .qcow2");
    cmd->add_flag("--define", define_,
                  "with --vm: define the VM in libvirt on the restored disks, from the domain XML the point "
                  "recorded (not started; an existing domain of that name is refused)");
    cmd->add_option("--name", name_,
                    "with --define: the new domain's name (a copy beside the original: new UUID, MAC "
                    "addresses and UEFI variables)");
    cmd->add_option("--connect", connect_, "with --define: the libvirt URI (default: the config's [libvirt] uri, "
                                          "qemu:///system)");
    auto* force = cmd->add_flag("--force", force_,
                                "restore onto an existing destination (needed for a block device; an empty "
                                "directory needs none): a tree is merged, what the point has replaces what is "
                                "there and everything else stays (--delete removes it); with --to -, write to "
                                "a terminal");
    cmd->add_flag("--delete", delete_,
                  "onto an existing directory: make it exactly the point, removing what the point does not "
                  "have (never following a symlink, never across a mount point); implies --force")
        ->excludes(force);
    cmd->add_flag("--fail-fast", fail_fast_,
                  "stop at the first block no copy can give back (by default it is left zero, listed, "
                  "and the restore goes on; exit status 3)");
    cmd->add_flag("--no-owner", no_owner_, "do not restore owners: files belong to the restoring user");
    cmd->add_flag("--no-special", no_special_, "leave out device nodes, fifos and sockets");
    cmd->add_flag("--no-privileges", no_privileges_,
                  "drop setuid/setgid bits and security.* xattrs (capabilities, SELinux labels)");
    cmd->footer(
        "\nBy default a restore is faithful, for disaster recovery: owners, setuid\n"
        "bits, device nodes and every xattr come back as they were backed up. To\n"
        "get files of a guest or another user back as root, add\n"
        "--no-owner --no-special --no-privileges. Nothing outside --to is ever\n"
        "written or deleted: --to may not be a symlink (except a /dev/VG/LV link\n"
        "to a block device, with --force), and --force never deletes across a\n"
        "mount point.\n"
        "\nOnto an existing tree, --force merges: extra.txt that the point lacks\n"
        "stays. --delete makes the tree exactly the point: extra.txt goes, as do\n"
        "symlinks planted in the tree (removed as links, never followed).\n"
        "Each file is written under a temporary name beside it (\".NAME.tmp-*\",\n"
        "0600) and renamed when complete: an interrupted restore (Ctrl-C, SIGTERM;\n"
        "exit status 130, 143) leaves no partial file under the file's name.\n"
        "--to - writes one file to standard output, as 'vmback dump' does.\n"
        "\n--format qcow2 restores the raw image into a private directory beside\n"
        "--to (\"<to>.tmp-<random>\", removed on every path), converts it with\n"
        "qemu-img convert -f raw -O qcow2 (a deadline of 10 minutes plus one\n"
        "second per 32 MiB of data), gives the image the backed-up owner, mode\n"
        "and mtime, and renames it to --to only when the conversion succeeded\n"
        "(Ctrl-C stops the restore or the conversion, and removes the temporaries).\n"
        "PATH must name one image file (a disk of a snapshot = \"libvirt\" volume,\n"
        "or an image file in a volume): a whole point, a directory or a block\n"
        "device as --to is refused before anything is written.\n"
        "\n--vm NAME restores each disk of that VM the point holds into the directory\n"
        "--to (made 0700 when new) as NAME-vda.img (raw: the bytes the guest saw)\n"
        "or NAME-vda.qcow2 (--format qcow2, or a disk backed up as a qcow2 file).\n"
        "With --define, the VM is defined from the domain XML the point recorded,\n"
        "its disks pointed at those files, and left shut off: start it with\n"
        "'virsh start NAME'. A disk the point does not hold refuses --define.\n"
        "\nExamples:\n"
        "  vmback restore --store /mnt/usb/vmback latest --to /srv/restore\n"
        "  vmback restore --store /mnt/usb/vmback 2026-11-26T180102Z images/web.qcow2 --to /tmp/web.qcow2\n"
        "  vmback restore --store /mnt/usb/vmback latest~1 root/etc/fstab --to -\n"
        "  vmback restore --store /mnt/usb/vmback 2026-11-26T18:01:02Z root/etc --to /srv/restore/etc --delete\n"
        "  vmback restore -c /etc/vmback/vmback.toml latest vm-disk --to /dev/vg0/web --force\n"
        "  vmback restore -c /etc/vmback/vmback.toml latest vms/web.qcow2 --to /var/lib/libvirt/images/web.qcow2 "
        "--format qcow2\n"
        "  vmback restore -c /etc/vmback/vmback.toml latest --vm web --to /srv/restore/web --define --name web-restored");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    RestoreOptions options;
    options.overwrite = delete_ ? Overwrite::kDelete : force_ ? Overwrite::kAllow : Overwrite::kRefuse;
    options.owner = !no_owner_;
    options.special = !no_special_;
    options.privileges = !no_privileges_;
    options.fail_fast = fail_fast_;
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    const ImageFormat format = ParseImageFormat(format_);
    point_ = ResolvePointName(dest.get(), point_);
    if (to_ == "-") return RunToStdout(ctx, dest.get(), format);
    if (!vm_.empty()) return RunVm(ctx, config, dest.get(), format, options);
    if (define_ || !name_.empty()) ThrowConfig("--define and --name go with --vm NAME");
    // A signal stops the restore at the next block: the file being written
    // (a temporary) is removed, and qemu-img (in its own process group) is
    // ended; the exit status tells the signal (RunCli).
    SignalCancel cancel;
    RestoreStats s = RestoreInFormat(dest.get(), Env::Default(), format, point_, PointPath(path_), to_, options,
                                     cancel.flag(), ctx.log);
    ctx.out << "restored " << Counted(s.files, "file") << ", " << Counted(s.dirs, "directory", "directories")
            << ", " << Counted(s.other, "other entry", "other entries") << " (" << FormatBytes(s.bytes) << ") to "
            << EscapeForTerminal(to_)
            << (s.skipped ? ", " + Counted(s.skipped, "special file") + " left out" : std::string())
            << (s.removed ? "; removed " + Counted(s.removed, "entry", "entries") + " the point does not have"
                          : std::string())
            << "\n";
    ReportDamage(ctx, s);
    return Outcome(ctx, dest.get(), s);
  }

 private:
  // --to -: one file's content to standard output, as `vmback dump`.
  Findings RunToStdout(CommandContext& ctx, Destination* dest, ImageFormat format) {
    if (!vm_.empty() || format != ImageFormat::kRaw || delete_)
      ThrowConfig("--to - writes one file to standard output: not with --vm, --format qcow2 or --delete");
    if (ctx.out_is_terminal && !force_)
      ThrowConfig("--to - writes one file to standard output, which is a terminal: send it to a pipe or a file, "
                  "or give --force");
    std::string path = DumpPath(PointPath(path_));
    if (path.empty()) ThrowConfig("--to - writes one file to standard output: give the file's PATH");
    // Anything but a regular file is refused before a byte is written.
    const size_t slash = path.rfind('/');
    const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
    for (const PointEntry& e : dest->ListEntries(point_, parent, false))
      if (e.path == path && e.type != "file")
        ThrowConfig("--to - writes one file to standard output, and '" + EscapeForTerminal(path) + "' in point " +
                    point_ + " is a " + (e.type == "dir" ? "directory" : e.type) +
                    ": restore it with --to DIR (or 'vmback ls' it)");
    DumpToStream(dest, point_, path, ctx.out, ctx.log);
    Findings f;
    f.repairs = dest->Health().repairs;
    f.absent_copies = dest->Health().absent_copies;
    return f;
  }

  Findings RunVm(CommandContext& ctx, const Config& config, Destination* dest, ImageFormat format,
                 const RestoreOptions& options) {
    if (!path_.empty()) ThrowConfig("--vm restores a VM's disks: give no PATH with it");
    if (!name_.empty() && !define_) ThrowConfig("--name goes with --define");
    std::unique_ptr<Hypervisor> hv;
    if (define_) hv = ConnectLibvirt(connect_.empty() ? config.libvirt_uri : connect_, ctx.log);
    VmRestoreRequest r;
    r.point = point_;
    r.vm = vm_;
    r.to_dir = to_;
    r.format = format;
    r.define = define_;
    r.new_name = name_;
    r.options = options;
    SignalCancel cancel;
    r.cancel = cancel.flag();
    VmRestoreResult res = RestoreVm(dest, Env::Default(), hv.get(), r, ctx.log);
    for (const auto& d : res.disks)
      ctx.out << "restored disk " << d.target << " (" << d.format << ") to " << EscapeForTerminal(d.path) << "\n";
    ctx.out << "restored VM " << EscapeForTerminal(vm_) << " from point " << res.point << ": "
            << Counted(res.disks.size(), "disk") << ", " << FormatBytes(res.stats.bytes) << "\n";
    if (!res.defined.empty())
      ctx.out << "defined VM " << EscapeForTerminal(res.defined) << " on them (shut off; start it with 'virsh start "
              << EscapeForTerminal(res.defined) << "')\n";
    ReportDamage(ctx, res.stats);
    Findings f = Outcome(ctx, dest, res.stats);
    if (!res.left_out.empty()) f.warnings = std::max<uint64_t>(f.warnings, res.left_out.size());
    return f;
  }

  static void ReportDamage(CommandContext& ctx, const RestoreStats& s) {
    if (!s.damaged) return;
    for (const auto& d : s.damage) ctx.log->Error("damaged: " + d);
    ctx.log->Error("restore incomplete: " + Counted(s.damaged, "damaged range") +
                   (s.damaged > s.damage.size() ? " (the first " + std::to_string(s.damage.size()) + " listed)"
                                                : "") +
                   " left zero; everything else was restored. 'vmback verify' tells which points share the "
                   "damage; an older or newer point may hold the lost blocks");
  }

  static Findings Outcome(CommandContext& ctx, Destination* dest, const RestoreStats& s) {
    Findings f;
    f.damage = s.damaged > 0;
    if (dest->RestoreWarningsCount()) f.warnings = ctx.log->warnings();
    f.repairs = dest->Health().repairs;
    f.absent_copies = dest->Health().absent_copies;
    return f;
  }

  TargetArgs target_;
  std::string point_, path_, to_, vm_, name_, connect_;
  std::string format_ = "raw";
  bool define_ = false, force_ = false, delete_ = false, no_owner_ = false, no_special_ = false, no_privileges_ = false, fail_fast_ = false;
};

}  // namespace

std::unique_ptr<Command> NewRestoreCommand() { return std::make_unique<RestoreCommand>(); }

}  // namespace vmback
