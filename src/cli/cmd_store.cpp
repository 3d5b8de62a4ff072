// vmback store init, vmback store sync.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

class StoreInitCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    cmd->add_option("DIR", dir_, "directory for the store (new or empty)")->required();
    cmd->add_option("--block-size", block_size_text_,
                    "block size, a power of two from 4K to 16M (default 64K): smaller finds\n"
                    "more unchanged data in VM images, larger keeps the index smaller");
    cmd->add_option("--mirror", mirrors_,
                    "another copy of the store, on another disk or in a bucket, s3://BUCKET/PREFIX\n"
                    "(repeat for more); every write goes to every copy and a bad copy is repaired\n"
                    "from a good one");
    cmd->add_flag("--encrypt", encrypt_,
                  "encrypt and authenticate everything in the store (AES-256-GCM, keyed block ids);\n"
                  "the key comes from --key-file (made when not there), VMBACK_PASSPHRASE_FILE,\n"
                  "a systemd credential, or a passphrase typed twice on a terminal");
    cmd->add_option("--key-file", key_file_, "with --encrypt: the key file (a new one is made if not there)");
    cmd->add_option("--key-label", key_label_, "with --encrypt: the label of the first key (default initial)");
    cmd->add_option("--kdf-memory", kdf_memory_text_,
                    "with a passphrase: Argon2id memory (default 64M; 8K to 4G)");
    cmd->add_option("--kdf-ops", kdf_ops_, "with a passphrase: Argon2id passes (default 3; 1 to 64)");
    cmd->footer("\nThe copies are recorded in each one's config.json by absolute path (a relative\n"
                "DIR is read against the working directory, here), and each gets a vmback-copy\n"
                "marker first.\n\n"
                "Examples:\n  vmback store init /mnt/usb/vmback --block-size 64K\n"
                "  vmback store init /mnt/usb1/vmback --mirror /mnt/usb2/vmback\n"
                "  vmback store init /mnt/usb/vmback --encrypt --key-file /etc/vmback/store.key");
  }

  Findings Run(CommandContext& ctx) override {
    uint64_t bs;
    if (!ParseSize(block_size_text_, &bs) || bs > UINT32_MAX)
      ThrowConfig("--block-size: cannot read '" + block_size_text_ + "' as a size");
    std::optional<StoreInitEncryption> enc;
    if (encrypt_) {
      enc.emplace();
      enc->sources = KeySources::FromEnvironment(key_file_);
      enc->label = key_label_;
      uint64_t mem = 0;
      if (!ParseSize(kdf_memory_text_, &mem)) ThrowConfig("--kdf-memory: cannot read '" + kdf_memory_text_ + "'");
      enc->kdf = {kdf_ops_, mem};
      if (!KdfParamsValid(enc->kdf)) ThrowConfig("--kdf-memory / --kdf-ops out of bounds (8K to 4G; 1 to 64)");
    } else if (!key_file_.empty()) {
      ThrowConfig("--key-file is for an encrypted store: add --encrypt");
    }
    std::vector<std::string> copies =
        Store::Init(ctx.env, dir_, static_cast<uint32_t>(bs), mirrors_, enc ? &*enc : nullptr);
    ctx.out << "created " << (encrypt_ ? "encrypted " : "") << "store " << copies[0] << " (block size "
            << FormatBytes(bs) << ")";
    for (size_t i = 1; i < copies.size(); i++) ctx.out << ", mirrored on " << copies[i];
    ctx.out << "\n";
    return {};
  }

 private:
  std::string dir_, block_size_text_ = "64K";
  std::vector<std::string> mirrors_;
  bool encrypt_ = false;
  std::string key_file_, key_label_ = "initial", kdf_memory_text_ = "64M";
  uint64_t kdf_ops_ = KdfParams{}.ops;
};

class StoreSyncCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--init", init_,
                  "also make the named copies (the config's [target] path and mirrors, or --store)\n"
                  "new copies where they are empty directories (new disks)");
    cmd->footer("\nA copy that was unplugged during backups gets the packs and points it\n"
                "missed; points pruned meanwhile are removed from it, not brought back.\n"
                "A directory named with --mirror in this command that is empty or not there\n"
                "(a new or replaced disk) becomes a full copy, and every copy's config.json\n"
                "records it; with -c CONFIG, --init does the same for the copies the config\n"
                "names. Nothing else makes a new copy (only a copy whose making was cut short,\n"
                "marked by its vmback-copy file, is finished): an empty directory is the\n"
                "mount point of a disk that is not mounted until the command says otherwise.\n"
                "--mirror names the copies to use instead of the recorded ones: to add a\n"
                "disk, name the present copies too. An encrypted store needs no key here:\n"
                "its sealed files are copied as they are.\n\n"
                "A copy off site in an S3-compatible bucket is named s3://BUCKET/PREFIX: only\n"
                "the packs and files it lacks are sent, four at a time, each checked by the\n"
                "gateway against its Content-MD5 (--upload-limit caps the rate); a sync cut off\n"
                "resumes. The gateway: AWS_ENDPOINT_URL (or [s3] endpoint with -c); the keys:\n"
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials.\n\n"
                "Examples:\n  vmback store sync --store /mnt/usb1/vmback\n"
                "  vmback store sync --store /mnt/usb1/vmback --mirror s3://backups/host1 --upload-limit 5M\n"
                "  vmback store sync --store /mnt/usb1/vmback --mirror /mnt/usb2/vmback\n"
                "  vmback store sync -c /etc/vmback/vmback.toml --init");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    if (IsInplace(config)) ThrowConfig(std::string("store sync is for the built-in store; a ") + TargetTypeName(config.target.type) +
                                       " target keeps its copies in step itself");
    StoreOptions options = StoreOptionsFor(config, target_);
    options.new_copies = target_.mirrors;  // named in this command: may be made copies
    options.init_named = init_;
    // Sealed files are copied as they are: an encrypted store's copies are
    // brought in step without its key (a helper host, a rotation script).
    options.without_key = true;
    auto store = Store::Open(ctx.env, config.target.path, LockMode::kExclusive, ctx.log, options);
    std::vector<std::string> all = store->copies();
    all.insert(all.end(), store->absent_copies().begin(), store->absent_copies().end());
    WarnAboutCopiesOnRootFileSystem(all, ctx.log);
    SyncStats st = store->Sync(false);  // the summary below says it
    ctx.out << "copies in step: " << store->copies().size() << " present";
    if (!store->absent_copies().empty()) ctx.out << ", " << store->absent_copies().size() << " absent";
    ctx.out << "; copied " << Counted(st.packs_copied, "pack") << " and " << Counted(st.files_copied, "file")
            << ", removed " << Counted(st.points_removed, "pruned point");
    if (st.copies_initialized)
      ctx.out << "; made " << st.copies_initialized << " new cop" << (st.copies_initialized == 1 ? "y" : "ies");
    ctx.out << "\n";
    if (std::string line = BucketTraffic(); !line.empty()) ctx.out << line << "\n";
    if (st.copies_initialized && !target_.config.empty() && !target_.mirrors.empty())
      ctx.log->Info("runs with " + target_.config + " use the copies in its [target] path and mirrors: add a "
                    "new copy there so that they write to it");
    Findings f;
    f.absent_copies = store->absent_copies().size();
    return f;
  }

 private:
  TargetArgs target_;
  bool init_ = false;
};

}  // namespace

std::unique_ptr<Command> NewStoreInitCommand() { return std::make_unique<StoreInitCommand>(); }
std::unique_ptr<Command> NewStoreSyncCommand() { return std::make_unique<StoreSyncCommand>(); }

}  // namespace vmback
