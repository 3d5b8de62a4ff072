// vmback instant-restore: a VM booted straight from a point, its disks
// copied to real images while it runs (--migrate-to).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"
#include "hypervisor/hypervisor.h"
#include "mount/instant_restore.h"
#include "util/error.h"

namespace vmback {

namespace {

class InstantRestoreCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("--vm", request_.vm, "the VM to run, as the point records it ('vmback ls POINT --vms')");
    cmd->add_option("--point", request_.point, std::string("the point to run it from: ") + kPointHelp)
        ->capture_default_str();
    cmd->add_option("--name", request_.new_name,
                    "the domain to define (default: the VM's own name, refused while a domain of that name "
                    "exists): a copy beside the original gets a new UUID and MAC addresses");
    cmd->add_option("--migrate-to", request_.migrate_to,
                    "copy the disks into this directory (NAME-vda.img) while the VM runs, move the VM onto "
                    "them, then unmount and remove the overlays");
    cmd->add_option("--migrate-format", request_.migrate_format, "format of the copies")
        ->check(CLI::IsMember({"raw", "qcow2"}))
        ->capture_default_str();
    cmd->add_option("--work-dir", request_.dir,
                    "where the work directory vmback-instant-NAME (mount and overlays) is made; QEMU must "
                    "be able to enter it")
        ->capture_default_str();
    cmd->add_option("--qemu-user", request_.qemu_user,
                    "the user QEMU runs as (qemu.conf's user): the images are shown read-only to it alone")
        ->capture_default_str();
    cmd->add_option("--connect", connect_, "the libvirt URI (default: the config's [libvirt] uri, qemu:///system)");
    cmd->add_option("--cleanup", cleanup_,
                    "undo the instant restore of this domain: force it off and undefine it if it still runs "
                    "on the overlays, unmount, remove the overlays");
    cmd->add_option("--cache-mib", cache_mib_, "blocks kept in memory, in MiB")->default_val(128)->check(CLI::Range(8, 4096));
    cmd->footer(
        "\nBoots a VM straight from a point, without restoring it first. The VM's disk\n"
        "images are served read-only from the point (a FUSE mount in\n"
        "WORK_DIR/vmback-instant-NAME/mnt showing QEMU those images alone, every block\n"
        "checked as it is read); each gets a qcow2 overlay beside it that takes the\n"
        "guest's writes; the VM is defined on the overlays from the domain XML the\n"
        "point recorded, and started. The command stays in the foreground serving the\n"
        "images:\n"
        "  - with --migrate-to DIR, each disk is copied to DIR/NAME-TARGET.img while\n"
        "    the VM runs (libvirt's block copy) and the VM moved onto the copy; then\n"
        "    the mount and the overlays go and the command exits 0, the VM running\n"
        "    on its own disks;\n"
        "  - without it, the VM runs on the overlays until you end it with\n"
        "    'vmback instant-restore --cleanup NAME' (from another shell), which\n"
        "    forces it off, undefines it, unmounts and removes the overlays. Ctrl-C\n"
        "    or SIGTERM unmount too, and leave a running VM without its disks: use\n"
        "    --cleanup. To keep it in the background:\n"
        "    systemd-run --unit vmback-instant vmback instant-restore ...\n"
        "Reads the guest makes fetch only the blocks they ask for, so the VM boots\n"
        "at once; a read of a damaged block fails with EIO inside the guest.\n\n"
        "Examples:\n"
        "  vmback instant-restore -c /etc/vmback/vmback.toml --vm web --migrate-to /var/lib/libvirt/images\n"
        "  vmback instant-restore --store /mnt/usb/vmback --point 2026-11-26T180102Z --vm web --name web-test\n"
        "  vmback instant-restore --cleanup web-test");
  }

  Findings Run(CommandContext& ctx) override {
    // --cleanup reads nothing from the target: only the config's libvirt uri, when given.
    Config config = cleanup_.empty() || TargetGiven(target_) ? ResolveConfig(target_) : Config{};
    std::unique_ptr<Hypervisor> hv = ConnectLibvirt(connect_.empty() ? config.libvirt_uri : connect_, ctx.log);
    if (!cleanup_.empty()) {
      if (!request_.vm.empty()) ThrowConfig("--cleanup NAME takes no --vm");
      CleanupInstantRestore(hv.get(), ctx.env, request_.dir, cleanup_, ctx.log);
      return {};
    }
    if (request_.vm.empty()) ThrowConfig("give --vm NAME (or --cleanup NAME)");
    request_.cache_bytes = cache_mib_ << 20;
    Logger* log = ctx.log;
    const TargetArgs target = target_;
    if (request_.point != "latest")
      request_.point =
          ResolvePointName(OpenDestinationFor(config, target_, DestinationAccess::kRead, log).get(), request_.point);
    InstantRestore([config, target, log] { return OpenDestinationFor(config, target, DestinationAccess::kRead, log); },
                   hv.get(), ctx.env, request_, log);
    return {};
  }

 private:
  TargetArgs target_;
  InstantRestoreRequest request_;
  std::string connect_, cleanup_;
  uint64_t cache_mib_ = 128;
};

}  // namespace

std::unique_ptr<Command> NewInstantRestoreCommand() { return std::make_unique<InstantRestoreCommand>(); }

}  // namespace vmback
