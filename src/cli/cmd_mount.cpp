// vmback mount: every point (or one) as a read-only file system (FUSE),
// served in the foreground until unmounted.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"
#include "mount/point_fs.h"
#include "os/fuse_serve.h"
#include "util/error.h"

namespace vmback {

namespace {

class MountCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("DIR", dir_, "an existing directory to mount on")->required();
    cmd->add_option("--point", point_, std::string("show only this point: ") + kPointHelp);
    cmd->add_option("--cache-mib", cache_mib_, "blocks kept in memory, in MiB")
        ->default_val(128)
        ->check(CLI::Range(8, 4096));
    cmd->add_flag("--allow-other", allow_other_,
                  "let other users in: the kernel checks the owners and modes the point recorded");
    cmd->footer("\nMounts the points read-only at DIR and stays in the foreground until\n"
                "'umount DIR', Ctrl-C or SIGTERM, which unmount it. DIR/<point>/<volume>/...\n"
                "holds each point's files and images as a restore would write them, and\n"
                "DIR/latest links to the newest point; points committed while mounted appear\n"
                "within seconds. With --point, DIR holds that point's volumes.\n"
                "Nothing is copied: a read fetches only the blocks it asks for, each checked\n"
                "against its id (a store) or the point's blockmap (an in-place target). A\n"
                "damaged block fails the reads that touch it with EIO (an error naming the\n"
                "file and bytes is logged); the rest of the file reads. Holes read as zeros\n"
                "and show through SEEK_HOLE. On a store the mount holds a shared lock:\n"
                "backups go on beside it, but prune cannot run until it is unmounted\n"
                "('vmback run' then skips its prune with a warning). A ZFS point is read\n"
                "through a clone, destroyed at unmount. Only root may enter the mount\n"
                "unless --allow-other.\n\n"
                "One file from inside a VM's image, without restoring the image:\n"
                "  vmback mount --store /mnt/usb/vmback /mnt/points &\n"
                "  mount -o loop,ro,noload /mnt/points/latest/images/web.raw /mnt/web\n"
                "  cp /mnt/web/etc/nginx/nginx.conf /tmp/ && umount /mnt/web /mnt/points\n"
                "(an image with a partition table: losetup -P -r, then mount the partition.)\n\n"
                "Examples:\n"
                "  vmback mount --store /mnt/usb/vmback /mnt/points\n"
                "  vmback mount -c /etc/vmback/vmback.toml --point latest /mnt/last");
  }

  Findings Run(CommandContext& ctx) override {
    const FileStatus st = ctx.env->Status(dir_);
    if (st.kind != FileKind::kDir)
      ThrowConfig("mount: " + dir_ + " is not a directory (make it first, and give a directory, not a link)");
    Config config = ResolveConfig(target_);
    PointFsOptions options;
    // Resolved once, before the mount: latest~N and a time name one point.
    if (!point_.empty() && point_ != "latest")
      options.point = ResolvePointName(OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log).get(), point_);
    else
      options.point = point_;
    options.cache_bytes = cache_mib_ << 20;
    Logger* log = ctx.log;
    const TargetArgs target = target_;
    PointFs fs([config, target, log] { return OpenDestinationFor(config, target, DestinationAccess::kRead, log); },
               options, log);
    FuseServeOptions serve;
    serve.allow_other = allow_other_;
    const std::string what = fs.single_point().empty() ? "every point" : "point " + fs.single_point();
    ServeFuse(dir_, serve, &fs, [&] {
      log->Info("mounted " + what + " read-only at " + dir_ + "; 'umount " + dir_ +
                "' or Ctrl-C unmounts it");
    });
    log->Info("unmounted " + dir_);
    return {};
  }

 private:
  TargetArgs target_;
  std::string dir_, point_;
  uint64_t cache_mib_ = 128;
  bool allow_other_ = false;
};

}  // namespace

std::unique_ptr<Command> NewMountCommand() { return std::make_unique<MountCommand>(); }

}  // namespace vmback
